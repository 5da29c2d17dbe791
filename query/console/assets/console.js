// Tally console: what every page shares. The API key, requests to the
// public API, exact JSON numbers, tables and error display. No framework:
// each page script calls Tally.start(load) and builds its DOM with
// Tally.h; text always goes in as text (textContent), never as HTML.
"use strict";

(function () {
  const keyName = "tally.apiKey"; // sessionStorage only: gone with the tab

  // Exact is a JSON number as the API wrote it. Its text is what the pages
  // show; its float (valueOf) is only for drawing the chart.
  class Exact {
    constructor(text) { this.text = text; }
    toString() { return this.text; }
    valueOf() { return Number(this.text); }
  }

  // parseExact parses JSON like JSON.parse, except that every number
  // becomes an Exact holding its text: 1200.5 stays "1200.5", and
  // 0.100000000000000000001 is not rounded to 0.1. Object members are
  // defined, not assigned, so a member named __proto__ is only data.
  function parseExact(text) {
    let i = 0;
    const number = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    const fail = (what) => { throw new SyntaxError("bad JSON at " + i + ": " + what); };
    const ws = () => { while (i < text.length && " \t\n\r".includes(text[i])) i++; };
    const expect = (c) => { ws(); if (text[i] !== c) fail("want " + c); i++; };
    function string() {
      ws();
      const start = i;
      if (text[i] !== "\"") fail("want a string");
      for (i++; i < text.length; i++) {
        if (text[i] === "\\") { i++; continue; }
        if (text[i] === "\"") { i++; return JSON.parse(text.slice(start, i)); }
      }
      fail("unterminated string");
    }
    function value() {
      ws();
      const c = text[i];
      if (c === "{") {
        i++;
        const o = {};
        ws();
        if (text[i] === "}") { i++; return o; }
        for (;;) {
          const k = string();
          expect(":");
          Object.defineProperty(o, k, { value: value(), enumerable: true, writable: true, configurable: true });
          ws();
          if (text[i] === ",") { i++; continue; }
          expect("}");
          return o;
        }
      }
      if (c === "[") {
        i++;
        const a = [];
        ws();
        if (text[i] === "]") { i++; return a; }
        for (;;) {
          a.push(value());
          ws();
          if (text[i] === ",") { i++; continue; }
          expect("]");
          return a;
        }
      }
      if (c === "\"") return string();
      for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
        if (text.startsWith(word, i)) { i += word.length; return v; }
      }
      number.lastIndex = i;
      const m = number.exec(text);
      if (!m) fail("unexpected " + JSON.stringify(text.slice(i, i + 10)));
      i = number.lastIndex;
      return new Exact(m[0]);
    }
    const v = value();
    ws();
    if (i !== text.length) fail("trailing text");
    return v;
  }

  // pretty writes a value parsed by parseExact as indented JSON, numbers
  // as their exact text.
  function pretty(v, indent = "") {
    if (v instanceof Exact) return v.text;
    if (v === null || typeof v !== "object") return JSON.stringify(v);
    const inner = indent + "  ";
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      return "[\n" + v.map((x) => inner + pretty(x, inner)).join(",\n") + "\n" + indent + "]";
    }
    const keys = Object.keys(v);
    if (keys.length === 0) return "{}";
    return "{\n" + keys.map((k) => inner + JSON.stringify(k) + ": " + pretty(v[k], inner)).join(",\n") + "\n" + indent + "}";
  }

  // h builds an element: h("td", {class: "num"}, "12"). Children are
  // nodes or text; null and false are skipped.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  const $ = (id) => document.getElementById(id);

  // table renders rows under columns {title, value(row), num}; a string
  // value is shown as text. An empty list says so instead.
  function table(columns, rows, empty, attrs) {
    if (rows.length === 0) return h("p", { class: "empty" }, empty || "Nothing here.");
    return h("table", attrs || {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title)))),
      h("tbody", {}, rows.map((r) => h("tr", { class: r._class || null },
        columns.map((c) => h("td", { class: c.num ? "num" : null }, c.value(r)))))));
  }

  // fill replaces the children of the element with id by nodes (or
  // text); null and false are skipped.
  function fill(id, ...nodes) { $(id).replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false)); }

  function getKey() { return sessionStorage.getItem(keyName); }

  // APIError is a failed API request: the API's code and message.
  class APIError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  // api requests path (under /api/v1) of the API on this origin with the
  // key; it resolves to the body parsed by parseExact, or the text when
  // accept is not JSON. A status in allow is an answer too (the status
  // route's 503 has the status body). A 401 forgets the key and asks for
  // it again.
  async function api(path, { accept = "application/json", allow = [] } = {}) {
    const key = getKey();
    if (!key) { askKey(); throw new APIError(401, "unauthorized", "no API key"); }
    let resp;
    try {
      resp = await fetch("/api/v1" + path, {
        headers: { "Authorization": "Bearer " + key, "Accept": accept },
        credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
      });
    } catch (e) {
      throw new APIError(0, "network", "the API did not answer: " + e.message);
    }
    const text = await resp.text();
    if (!resp.ok && !allow.includes(resp.status)) {
      let code = "http_" + resp.status, message = text;
      try { const e = JSON.parse(text); code = e.code || code; message = e.message || message; } catch (_) { /* not JSON */ }
      if (resp.status === 401) askKey("The API refused the key (" + message + "); enter it again.");
      throw new APIError(resp.status, code, message);
    }
    return accept === "application/json" ? parseExact(text) : text;
  }

  function showError(err) {
    if (err instanceof APIError && err.status === 401) return; // the key form says it
    const box = $("error");
    box.textContent = err instanceof APIError ? err.code + ": " + err.message : String(err && err.message || err);
    box.hidden = false;
  }

  function clearError() { $("error").hidden = true; $("error").textContent = ""; }

  let loadPage = null;

  function askKey(problem) {
    sessionStorage.removeItem(keyName);
    document.body.dataset.state = "key"; // no page data until a key is entered

    $("page").hidden = true;
    $("forget-key").hidden = true;
    $("key-form").hidden = false;
    $("key-problem").hidden = !problem;
    $("key-problem").textContent = problem || "";
    $("key-input").focus();
  }

  async function run() {
    clearError();
    $("key-form").hidden = true;
    $("page").hidden = false;
    $("forget-key").hidden = false;
    document.body.dataset.state = "loading";
    try {
      await loadPage();
      document.body.dataset.state = "ready";
    } catch (e) {
      document.body.dataset.state = "error";
      showError(e);
    }
  }

  // start runs load once the page is ready and a key is known, and again
  // after a new key is entered.
  function start(load) {
    loadPage = load;
    document.addEventListener("DOMContentLoaded", () => {
      $("key-form").addEventListener("submit", (ev) => {
        ev.preventDefault();
        const key = $("key-input").value.trim();
        if (!key) return;
        sessionStorage.setItem(keyName, key);
        $("key-input").value = "";
        run();
      });
      $("forget-key").addEventListener("click", () => askKey());
      if (getKey()) run(); else askKey();
    });
  }

  // guard runs an action of the page (a form submit), showing its error.
  async function guard(action) {
    clearError();
    document.body.dataset.state = "loading";
    try {
      await action();
      document.body.dataset.state = "ready";
    } catch (e) {
      document.body.dataset.state = "error";
      showError(e);
    }
  }

  // query builds a query string from [name, value] pairs, skipping empty
  // values.
  function query(pairs) {
    const p = new URLSearchParams();
    for (const [k, v] of pairs) if (v !== "" && v !== null && v !== undefined) p.append(k, v);
    const s = p.toString();
    return s ? "?" + s : "";
  }

  // splitList reads a comma-separated list typed in a field: customer ids
  // or filter values, which may themselves hold commas (the API takes any
  // text). A value in double quotes is taken as written, commas and
  // spaces included, with "" for a quote in it; an unquoted value is
  // trimmed. Empty values are skipped. A quote left open, or text after a
  // closing quote, is an error rather than a guess.
  function splitList(s) {
    const out = [];
    let i = 0;
    while (i < s.length) {
      while (i < s.length && /\s/.test(s[i])) i++;
      if (i >= s.length) break;
      let v = "";
      if (s[i] === "\"") {
        const start = i;
        for (i++; ; i++) {
          if (i >= s.length) throw new Error("the quote at character " + (start + 1) + " of " + JSON.stringify(s) + " is not closed");
          if (s[i] === "\"") {
            if (s[i + 1] === "\"") { v += "\""; i++; continue; }
            i++;
            break;
          }
          v += s[i];
        }
        while (i < s.length && /\s/.test(s[i])) i++;
        if (i < s.length && s[i] !== ",") {
          throw new Error("text after the quoted value " + JSON.stringify(v) + " in " + JSON.stringify(s) + "; separate values with commas");
        }
        i++;
      } else {
        const j = s.indexOf(",", i);
        v = (j < 0 ? s.slice(i) : s.slice(i, j)).trim();
        i = j < 0 ? s.length : j + 1;
      }
      if (v !== "") out.push(v);
    }
    return out;
  }

  // joinList writes values as splitList reads them back: quoted when a
  // value holds a comma or a quote or starts or ends with a space.
  const joinList = (values) => values.map((v) => (/[",]|^\s|\s$/.test(v) ? "\"" + v.replaceAll("\"", "\"\"") + "\"" : v)).join(", ");

  // groupText is a group's values as one label.
  const groupText = (groupBy, keys) => keys.map((k) => k + "=" + groupBy[k]).join(", ") || "all";

  window.Tally = { Exact, parseExact, pretty, h, $, table, fill, api, guard, start, query, groupText, splitList, joinList, showError, APIError };
})();
