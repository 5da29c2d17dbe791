// Status: the organization's pipeline at a glance, from GET /api/v1/status.
"use strict";

(function () {
  const { $, api, h } = window.Tally;

  const count = (n) => (n === null || n === undefined ? "unknown" : String(n));

  async function load() {
    const s = await api("/status", { allow: [503] });
    $("checked-at").textContent = s.checked_at;
    $("organization").textContent = s.organization;
    const ch = $("clickhouse");
    ch.textContent = s.clickhouse.ok ? "OK" : "unavailable";
    ch.className = "big " + (s.clickhouse.ok ? "ok" : "bad");
    $("clickhouse-error").textContent = s.clickhouse.error;
    $("events-hour").textContent = count(s.events && s.events.last_hour);
    $("events-day").textContent = count(s.events && s.events.last_24h);
    $("latest-event").textContent = s.events ? s.events.latest_ingested_at || "none yet" : "unknown";
    const dl = $("dead-letters");
    dl.textContent = count(s.dead_letters && s.dead_letters.last_24h);
    dl.className = "big" + (s.dead_letters && String(s.dead_letters.last_24h) !== "0" ? " bad" : "");
    $("meters").textContent = count(s.meters);
    window.Tally.fill("components", (s.components || []).map(componentCard));
  }

  // componentCard is one component: ready or not, the checks that fail
  // (or why it gave no answer), and every check it reported. Text only:
  // names go in as text nodes, never as markup.
  function componentCard(c) {
    const checks = Object.keys(c.checks || {}).sort();
    const failing = checks.filter((n) => c.checks[n] !== "ok");
    let why = "";
    if (c.error) why = c.error;
    else if (failing.length > 0) why = "failing: " + failing.join(", ");
    return h("div", { class: "card tile component", dataset: { name: c.name, ready: String(c.ready) } },
      h("h2", {}, c.name),
      h("p", { class: "big " + (c.ready ? "ok" : "bad") }, c.ready ? "ready" : "not ready"),
      h("p", { class: "why " + (c.ready ? "note" : "bad") }, why),
      h("p", { class: "note checks" }, checks.map((n) => n + " " + c.checks[n]).join(", ")));
  }
  window.Tally.componentCard = componentCard;

  let wired = false;
  window.Tally.start(async () => {
    if (!wired) {
      $("refresh").addEventListener("click", () => window.Tally.guard(load));
      wired = true;
    }
    await load();
  });
})();
