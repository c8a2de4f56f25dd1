"use strict";
// Pane: the catalog with each service's 30-day refund rate and active alerts. Disable first asks the API
// for a dry run (POST …/disable?dry_run=true: orders in flight, the exact refund), then
// confirms; the result shows what was refunded.
(() => {
  const { el, fill, api, all, get, pane, table, notice, pct } = Console;
  const view = { root: null, pending: null, result: null, picked: null };


  async function preview(service) {
    const reply = await api("POST", `/v1/admin/services/${service.id}/disable?dry_run=true`);
    if (!reply.ok) throw Console.problemError(reply);
    view.pending = { service, preview: reply.body };
    view.result = null;
    await draw();
  }

  async function confirm() {
    const { service } = view.pending;
    const reply = await api("POST", `/v1/admin/services/${service.id}/disable`);
    if (!reply.ok) throw Console.problemError(reply);
    view.result = { service, body: reply.body };
    view.pending = null;
    await draw();
  }

  function previewBox() {
    if (!view.pending) return null;
    const { service, preview: p } = view.pending;
    return el("div", { class: "card", "data-testid": "disable-preview", "data-service": service.id,
      "data-in-flight": p.orders_in_flight, "data-orders-refunded": p.orders_refunded, "data-amount": p.amount_refunded },
      el("h2", {}, `Disable “${service.name}” (#${service.id})?`),
      el("p", {}, `It takes no new orders. ${p.orders_in_flight} order(s) in flight end now; ${p.orders_refunded} of them are refunded, `,
        el("strong", {}, p.amount_refunded), " in all, by the refund rule (nothing delivered: in full; progress known: the undelivered share)."),
      el("p", { class: "muted" }, "Dry run from the API: nothing has changed yet. Orders that move before you confirm are refunded by what they are then."),
      el("div", { class: "actions" },
        el("button", { class: "danger", id: "confirm-disable", onclick: () => confirm() }, `Disable and refund ${p.amount_refunded}`),
        el("button", { class: "plain", id: "cancel-disable", onclick: () => { view.pending = null; draw(); } }, "Cancel")));
  }

  async function draw() {
    const [services, report, alerts] = await Promise.all([all("/v1/admin/services", 1000), get("/v1/admin/reports/refunds?" + Console.last30("service")),
      all("/v1/admin/alerts?active=true", 500)]);
    const rates = new Map(report.rows.map((r) => [String(r.group), r]));
    const rows = services.map((s) => {
      const r = rates.get(String(s.id));
      const disable = s.status === "active"
        ? el("button", { class: "plain", "data-disable": s.id, onclick: () => preview(s) }, "Disable…")
        : el("span", { class: "muted" }, "—");
      return el("tr", { "data-service": s.id, "data-status": s.status },
        [[`#${s.id} `, Console.historyLink("service", s.id)], s.name, s.category, s.provider_id ? "#" + s.provider_id : "by hand", s.rate, el("span", { class: "pill " + s.status }, s.status),
          r ? String(r.orders_count) : "0", r ? r.refunded_amount : "0", r ? pct(r.refund_rate_amount) : "—", Console.alertBadge(alerts, "service", s.id), disable]
          .map((c) => el("td", {}, c)));
    });
    const x = view.result;
    fill(view.root,
      x ? notice("good", `Disabled “${x.service.name}”: ${x.body.orders_in_flight} order(s) in flight ended, ${x.body.orders_refunded} refunded, ${x.body.amount_refunded} credited back.`,
        { "data-testid": "disable-result", "data-amount": x.body.amount_refunded, "data-orders-refunded": x.body.orders_refunded, "data-in-flight": x.body.orders_in_flight }) : null,
      previewBox(),
      el("div", { class: "card" },
        el("h2", {}, "Services"),
        el("div", { class: "note" }, "Refund rates are of orders placed in the last 30 days (UTC), from the admin refund report."),
        table(["service", "name", "category", "provider", "rate / 1000", "status", "orders 30d", "refunded 30d", "refund rate", "alerts", ""], rows, { "data-testid": "services" })));
    Console.pick(view.root, "service", view.picked);
    view.root.dataset.state = "ready";
  }

  async function render(root, params) {
    view.root = root;
    view.picked = params.get("id");
    view.pending = null;
    view.result = null;
    await draw();
  }

  pane({ id: "services", title: "Services", roles: ["admin"], render });
})();
