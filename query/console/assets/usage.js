// Usage explorer: a meter's usage over a range, by window and group, from
// GET /api/v1/meters/{key}/query. The totals table is the API's answer
// without a window, the window table and the chart its answer with one;
// the CSV is the API's own text/csv. No number is computed here.
"use strict";

(function () {
  const { h, $, api, fill, table, guard, query, groupText, splitList, joinList, Exact } = window.Tally;
  const palette = ["#2457c5", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0b7285", "#e67700", "#5c940d", "#862e9c", "#495057"];
  const maxSeries = 20;
  const maxTableRows = 2000; // more rows than a page shows well; the CSV has them all
  let meters = [];
  let chart = null;
  // shown is the query the tables show: the form it came from and the
  // range [from, to) the API answered for, which the windows, the chart
  // and the CSV of the same form ask for again. Left to the API, `to` is
  // its now at each request (and "last 24 hours" is the browser's now):
  // usage metered in between would make them disagree.
  let shown = null;

  const params = new URLSearchParams(location.search);
  const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

  function meterByKey(key) { return meters.find((m) => m.key === key); }

  // groupKeys are customer_id and the meter's group keys, sorted.
  function groupKeys(m) { return ["customer_id", ...Object.keys(m.group_by || {}).sort()]; }

  function renderGroupControls(m, fromURL) {
    const wanted = fromURL && params.has("group_by") ? params.getAll("group_by") : groupKeys(m);
    fill("groups", h("legend", {}, "Group by"), groupKeys(m).map((k) =>
      h("label", {}, h("input", { type: "checkbox", name: "group_by", value: k, checked: wanted.includes(k) }), k)));
    const keys = Object.keys(m.group_by || {}).sort();
    fill("filters", h("legend", {}, "Filters"), keys.length === 0 ? h("span", { class: "note" }, "the meter has no group keys") :
      keys.map((k) => h("label", {}, k, h("input", {
        name: "filter[" + k + "]", "data-key": k, placeholder: "any; or values, comma-separated", spellcheck: "false",
        value: fromURL ? joinList(params.getAll("filter[" + k + "]")) : "",
      }))));
  }

  // selection is the form as query parameters, without window_size.
  function selection() {
    const pairs = [];
    for (const c of splitList($("customers").value)) pairs.push(["customer_id", c]);
    const now = Date.now(), hour = 3600e3;
    switch ($("range").value) {
      case "24h": pairs.push(["from", new Date(now - 24 * hour).toISOString()]); break;
      case "7d": pairs.push(["from", new Date(now - 7 * 24 * hour).toISOString()]); break;
      case "30d": pairs.push(["from", new Date(now - 30 * 24 * hour).toISOString()]); break;
      case "custom": pairs.push(["from", $("from").value.trim()], ["to", $("to").value.trim()]); break;
    }
    pairs.push(["window_time_zone", $("tz").value.trim()]);
    for (const cb of document.querySelectorAll("#groups input:checked")) pairs.push(["group_by", cb.value]);
    for (const input of document.querySelectorAll("#filters input")) {
      for (const v of splitList(input.value)) pairs.push(["filter[" + input.dataset.key + "]", v]);
    }
    return pairs;
  }

  // remember puts the form in the address, so a reload or a link shows
  // the same query (never the key). Customers and filter values are one
  // parameter each, as the API takes them (an id may hold a comma).
  function remember(pairs) {
    const p = new URLSearchParams();
    p.set("meter", $("meter").value);
    p.set("range", $("range").value);
    p.set("window_size", $("window").value);
    for (const [k, v] of pairs) {
      if (k === "from" || k === "to") { if ($("range").value === "custom") p.append(k, v); continue; }
      p.append(k, v);
    }
    history.replaceState(null, "", location.pathname + "?" + p.toString());
  }

  // formKey is the form's choices, whatever time it is.
  function formKey() {
    return JSON.stringify([$("meter").value, $("range").value, $("from").value, $("to").value, $("tz").value,
      $("customers").value, [...document.querySelectorAll("#groups input:checked")].map((cb) => cb.value),
      [...document.querySelectorAll("#filters input")].map((i) => [i.name, i.value])]);
  }

  // inRange is pairs with the range replaced by [from, to).
  function inRange(pairs, from, to) {
    return [...pairs.filter(([k]) => k !== "from" && k !== "to"), ["from", from], ["to", to]];
  }

  function usagePath(pairs) { return "/meters/" + encodeURIComponent($("meter").value) + "/query" + query(pairs); }

  // latest numbers the runs: a run whose answers arrive after a later run
  // started (a slow meter, then another picked) shows nothing, so the
  // page never shows one query's numbers under another's form.
  let latest = 0;

  async function run() {
    const mine = ++latest;
    const pairs = selection();
    remember(pairs);
    const windowSize = $("window").value;
    const key = formKey();
    // A superseded run's failure is not shown either.
    const current = (e) => { if (mine === latest) throw e; return null; };
    const totals = await api(usagePath(pairs)).catch(current);
    if (mine !== latest) return;
    const windowed = windowSize ? await api(usagePath([...inRange(pairs, totals.from, totals.to), ["window_size", windowSize]])).catch(current) : null;
    if (mine !== latest) return;
    shown = { key, from: totals.from, to: totals.to };
    const keys = pairs.filter(([k]) => k === "group_by").map(([, v]) => v);
    $("range-note").textContent = "From " + totals.from + " to " + totals.to + " (" + totals.window_time_zone + ").";
    const groupColumns = keys.map((k) => ({ title: k, value: (r) => r.group_by[k] }));
    const valueColumn = { title: "value", num: true, value: (r) => r.value.text };
    fill("totals", table([...groupColumns, valueColumn], totals.data,
      "No usage in this range.", { id: "totals-table", "data-rows": totals.data.length }));
    $("windows-title").hidden = !windowed;
    fill("windows", windowed ? [
      table([
        { title: "window start", value: (r) => r.window_start },
        { title: "window end", value: (r) => r.window_end },
        ...groupColumns, valueColumn,
      ], windowed.data.slice(0, maxTableRows), "No usage in this range.", { id: "windows-table", "data-rows": windowed.data.length }),
      windowed.data.length > maxTableRows ? h("p", { class: "note" },
        "The first " + maxTableRows + " of " + windowed.data.length + " rows are shown; Download CSV has them all.") : null,
    ] : []);
    drawChart(windowed, totals, keys);
  }

  // drawChart plots one series per group (the largest maxSeries by
  // total), a point per window; a window without usage is a gap, as the
  // API leaves it out. The legend shows the API's exact values.
  function drawChart(windowed, totals, keys) {
    if (chart) { chart.destroy(); chart = null; }
    const box = $("chart");
    box.replaceChildren();
    delete box.dataset.series;
    box.dataset.rendered = "false";
    if (!windowed) { box.append(h("p", { class: "note" }, "Pick a window size to chart usage over time.")); return; }
    if (windowed.data.length === 0) { box.append(h("p", { class: "empty" }, "No usage in this range.")); return; }
    // A group is identified by its values (a label could be the same for
    // two groups whose values hold ", ").
    const id = (r) => JSON.stringify(keys.map((k) => r.group_by[k]));
    const ranked = [...totals.data].sort((a, b) => b.value - a.value); // ranking only; nothing is added
    const groups = ranked.slice(0, maxSeries);
    const series = new Map(groups.map((r, i) => [id(r), i]));
    const xs = [...new Set(windowed.data.map((r) => Date.parse(r.window_start) / 1000))].sort((a, b) => a - b);
    const column = new Map(xs.map((x, i) => [x, i]));
    const exact = groups.map(() => new Array(xs.length).fill(null));
    for (const r of windowed.data) {
      const g = series.get(id(r));
      if (g !== undefined) exact[g][column.get(Date.parse(r.window_start) / 1000)] = r.value;
    }
    const tz = totals.window_time_zone;
    // The x axis spans the query's range (and the windows that reach
    // beyond it); the y axis starts at zero unless usage is negative.
    const xMin = Math.min(Date.parse(totals.from) / 1000, xs[0]);
    const xMax = Math.max(Date.parse(totals.to) / 1000, xs[xs.length - 1]);
    const opts = {
      width: Math.max(box.clientWidth - 32, 300), height: 320,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
      scales: {
        x: { time: true, range: () => [xMin, xMax] },
        y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] },
      },
      series: [{ label: "window" }, ...groups.map((r, i) => ({
        label: groupText(r.group_by, keys), stroke: palette[i % palette.length], width: 2, points: { show: true, size: 6 },
        value: (u, v, si, idx) => idx === null || exact[si - 1][idx] === null ? "–" : exact[si - 1][idx].text,
      }))],
    };
    const data = [xs, ...exact.map((col) => col.map((v) => (v instanceof Exact ? Number(v.text) : null)))];
    chart = new uPlot(opts, data, box);
    box.dataset.series = String(groups.length);
    box.dataset.points = String(xs.length);
    box.dataset.rendered = "true";
    if (ranked.length > groups.length) {
      box.append(h("p", { class: "note" }, "The " + groups.length + " largest of " + ranked.length + " groups are charted; the tables have them all."));
    }
  }

  async function downloadCSV() {
    let pairs = selection();
    if (shown && shown.key === formKey()) pairs = inRange(pairs, shown.from, shown.to); // the numbers on the page
    const windowSize = $("window").value;
    const text = await api(usagePath(windowSize ? [...pairs, ["window_size", windowSize]] : pairs), { accept: "text/csv" });
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    const a = h("a", { href: url, download: $("meter").value + "-usage.csv" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function toggleCustom() {
    for (const el of document.querySelectorAll(".custom-range")) el.hidden = $("range").value !== "custom";
  }

  let wired = false;

  async function load() {
    meters = (await api("/meters")).data;
    const none = meters.length === 0;
    $("query").hidden = none;
    $("results").hidden = none;
    $("no-meters").hidden = !none;
    if (none) return;
    fill("meter", meters.map((m) => h("option", { value: m.key }, m.name ? m.key + " (" + m.name + ")" : m.key)));
    const first = !wired;
    if (first) {
      if (params.get("meter") && meterByKey(params.get("meter"))) $("meter").value = params.get("meter");
      $("customers").value = joinList(params.getAll("customer_id"));
      if (params.get("range")) $("range").value = params.get("range");
      $("from").value = params.get("from") || "";
      $("to").value = params.get("to") || "";
      if (params.has("window_size")) $("window").value = params.get("window_size");
      $("tz").value = params.get("window_time_zone") || browserZone();
      $("query").addEventListener("submit", (ev) => { ev.preventDefault(); guard(run); });
      $("meter").addEventListener("change", () => { renderGroupControls(meterByKey($("meter").value), false); guard(run); });
      $("range").addEventListener("change", toggleCustom);
      $("csv").addEventListener("click", () => guard(downloadCSV));
      window.addEventListener("resize", () => { if (chart) chart.setSize({ width: Math.max($("chart").clientWidth - 32, 300), height: 320 }); });
      wired = true;
    }
    toggleCustom();
    renderGroupControls(meterByKey($("meter").value), first);
    await run();
  }

  window.Tally.start(load);
})();
