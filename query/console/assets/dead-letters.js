// Dead letters: the latest events that could not be metered, and how
// many by reason, from GET /api/v1/dead_letters.
"use strict";

(function () {
  const { h, $, api, fill, table, guard, query, pretty } = window.Tally;
  const params = new URLSearchParams(location.search);
  const seenReasons = new Set();

  function selection() {
    return [["reason", $("reason").value], ["customer_id", $("customer").value],
      ["since", $("since").value.trim()], ["limit", $("limit").value.trim()]];
  }

  function reasonOptions(current) {
    fill("reason", h("option", { value: "" }, "any"),
      [...seenReasons].sort().map((r) => h("option", { value: r, selected: r === current }, r)));
  }

  // latest numbers the requests: the answer (or failure) of one that a
  // later filter superseded is not shown over the later one's.
  let latest = 0;

  async function show() {
    const mine = ++latest;
    const pairs = selection();
    history.replaceState(null, "", location.pathname + query(pairs));
    const body = await api("/dead_letters" + query(pairs)).catch((e) => { if (mine === latest) throw e; return null; });
    if (mine !== latest) return;
    const current = $("reason").value;
    for (const r of body.by_reason) seenReasons.add(r.reason);
    reasonOptions(current);
    fill("reasons", table([
      { title: "reason", value: (r) => h("button", { type: "button", class: "link", onclick: () => filterReason(r.reason) }, r.reason) },
      { title: "dead letters", num: true, value: (r) => r.count.text },
    ], body.by_reason, "No dead letters. Every event was metered.", { id: "reasons-table", "data-total": body.total.text }));
    fill("latest", body.data.length === 0 ? [] : [
      h("p", { class: "note" }, "The latest " + body.data.length + " of " + body.total.text + ", newest first."),
      table([
        { title: "dead-lettered", value: (d) => d.dead_lettered_at },
        { title: "customer", value: (d) => d.customer_id },
        { title: "event", value: (d) => [h("div", {}, d.event_id || "(no id)"), h("div", { class: "note" }, d.event_type)] },
        { title: "meter", value: (d) => d.meter_key || "(none)" },
        { title: "reason", value: (d) => h("code", {}, d.reason) },
        { title: "message", value: (d) => d.message },
        { title: "record", value: (d) => d.event === "" ? h("span", { class: "note" }, "with another dead letter of the event") :
          h("details", {}, h("summary", {}, "show"), h("pre", {}, typeof d.event === "string" ? d.event : pretty(d.event))) },
      ], body.data, "", { id: "latest-table", "data-rows": body.data.length }),
    ]);
  }

  function filterReason(reason) {
    $("reason").value = reason;
    guard(show);
  }

  let wired = false;
  window.Tally.start(async () => {
    if (!wired) {
      for (const r of params.getAll("reason")) seenReasons.add(r);
      reasonOptions(params.get("reason") || "");
      $("customer").value = params.get("customer_id") || "";
      $("since").value = params.get("since") || "";
      if (params.get("limit")) $("limit").value = params.get("limit");
      $("filter").addEventListener("submit", (ev) => { ev.preventDefault(); guard(show); });
      wired = true;
    }
    await show();
  });
})();
