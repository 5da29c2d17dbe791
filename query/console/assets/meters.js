// Meters: the organization's meter definitions, from GET /api/v1/meters.
"use strict";

(function () {
  const { h, api, fill, table, pretty } = window.Tally;

  async function load() {
    const meters = (await api("/meters")).data;
    fill("meters", table([
      { title: "key", value: (m) => h("a", { href: "/console?meter=" + encodeURIComponent(m.key) }, m.key) },
      { title: "name", value: (m) => [m.name || "", m.description ? h("div", { class: "note" }, m.description) : null] },
      { title: "event type", value: (m) => h("code", {}, m.event_type) },
      { title: "aggregation", value: (m) => m.aggregation },
      { title: "value property", value: (m) => m.value_property ? h("code", {}, m.value_property) : "" },
      { title: "group keys", value: (m) => Object.keys(m.group_by || {}).sort().map((k) => h("div", {}, k + " ← ", h("code", {}, m.group_by[k]))) },
      { title: "filter", value: (m) => m.filter ? h("pre", { class: "mono" }, pretty(m.filter)) : "" },
      { title: "revision", num: true, value: (m) => String(m.revision) },
      { title: "created", value: (m) => m.created_at || "" },
    ], meters, "No meters yet: create one with POST /api/v1/meters (README, \"Try it\").", { id: "meters-table", "data-rows": meters.length }));
  }

  window.Tally.start(load);
})();
