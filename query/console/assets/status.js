// Status: the organization's pipeline at a glance, from GET /api/v1/status.
"use strict";

(function () {
  const { $, api } = window.Tally;

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
  }

  let wired = false;
  window.Tally.start(async () => {
    if (!wired) {
      $("refresh").addEventListener("click", () => window.Tally.guard(load));
      wired = true;
    }
    await load();
  });
})();
