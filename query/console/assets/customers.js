// Customers and subscriptions: the catalog, and a subscription's usage
// with amounts for its current billing period, per charge and per group,
// from GET /api/v1/subscriptions/{external_id}/usage.
"use strict";

(function () {
  const { h, $, api, fill, table, guard, query, groupText } = window.Tally;
  const params = new URLSearchParams(location.search);
  let customers = [];
  let cursor = null;

  async function moreCustomers() {
    const page = await api("/customers" + query([["limit", "100"], ["cursor", cursor]]));
    customers = customers.concat(page.data);
    cursor = page.next_cursor;
    $("more-customers").hidden = !cursor;
    fill("customers", table([
      { title: "customer", value: (c) => c.external_id },
      { title: "name", value: (c) => c.name || "" },
      { title: "email", value: (c) => c.email || "" },
      { title: "currency", value: (c) => c.currency || "" },
      { title: "time zone", value: (c) => c.timezone || "" },
      { title: "", value: (c) => h("a", { href: "/console?customer_id=" + encodeURIComponent(c.external_id) }, "usage") },
    ], customers, "No customers yet: create them with POST /api/v1/customers.", { id: "customers-table", "data-rows": customers.length }));
  }

  const money = (m) => m.amount;

  async function showUsage(id, period) {
    const u = await api("/subscriptions/" + encodeURIComponent(id) + "/usage" + query([["period", period]]));
    history.replaceState(null, "", location.pathname + query([["subscription", id], ["period", period === "current" ? "" : period]]));
    $("usage").hidden = false;
    fill("usage-title", "Usage of ", h("code", {}, u.subscription.external_id), " (", u.subscription.external_customer_id,
      ", plan ", u.subscription.plan_code, ", ", u.subscription.status, ")");
    fill("usage-period", "Billing period ", u.from, " to ", u.to, "; amounts in ", u.currency, ". ",
      h("button", { type: "button", class: "link", onclick: () => guard(() => showUsage(id, period === "previous" ? "current" : "previous")) },
        period === "previous" ? "show the current period" : "show the previous period"));
    const rows = [];
    for (const c of u.charges) {
      rows.push({ ...c, _label: c.invoice_display_name || c.charge_id, _amount: money(c) });
      for (const g of c.groups || []) {
        rows.push({ _class: "sub", _label: groupText(g.group_by, Object.keys(g.group_by).sort()), meter: "", charge_model: "",
          units: g.units, events_count: g.events_count, _amount: c.group_amounts ? g.amount : "" });
      }
      if (c.groups_omitted) rows.push({ _class: "sub", _label: "(too many groups to list)", meter: "", charge_model: "", units: "", events_count: "", _amount: "" });
    }
    fill("usage-charges", table([
      { title: "charge", value: (r) => r._label },
      { title: "meter", value: (r) => r.meter },
      { title: "model", value: (r) => r.charge_model },
      { title: "units", num: true, value: (r) => String(r.units) },
      { title: "events", num: true, value: (r) => String(r.events_count) },
      { title: "amount", num: true, value: (r) => r._amount },
    ], rows, "The plan has no usage charges.", { id: "charges-table", "data-rows": rows.length }));
    const totals = [
      ["Charges", u.charges_total], ["Fixed fee" + (u.fixed_fee.prorated ? " (prorated)" : ""), u.fixed_fee],
      ["Minimum commitment" + (u.minimum_commitment.prorated ? " (prorated)" : ""), u.minimum_commitment],
      ["Minimum commitment true-up", u.minimum_commitment_true_up], ["Total", u.total],
    ].map(([label, m]) => ({ label, amount: money(m) }));
    fill("usage-totals", table([
      { title: "", value: (r) => r.label },
      { title: "amount (" + u.currency + ")", num: true, value: (r) => r.amount },
    ], totals, "", { id: "usage-totals-table" }));
  }

  async function load() {
    const subs = (await api("/subscriptions" + query([["limit", "100"]])));
    fill("subscriptions", [
      table([
        { title: "subscription", value: (s) => s.external_id },
        { title: "customer", value: (s) => s.external_customer_id },
        { title: "plan", value: (s) => s.plan_code },
        { title: "status", value: (s) => s.status },
        { title: "since", value: (s) => s.subscription_at },
        { title: "", value: (s) => h("button", { type: "button", class: "link", onclick: () => guard(() => showUsage(s.external_id, "current")) }, "usage") },
      ], subs.data, "No subscriptions yet: create them with POST /api/v1/subscriptions.", { id: "subscriptions-table", "data-rows": subs.data.length }),
      subs.next_cursor ? h("p", { class: "note" }, "The first 100 subscriptions are listed.") : null,
    ]);
    customers = [];
    cursor = null;
    await moreCustomers();
    const chosen = params.get("subscription") || (subs.data.length > 0 ? subs.data[0].external_id : "");
    if (chosen) await showUsage(chosen, params.get("period") || "current");
  }

  let wired = false;
  window.Tally.start(async () => {
    if (!wired) {
      $("more-customers").addEventListener("click", () => guard(moreCustomers));
      wired = true;
    }
    await load();
  });
})();
