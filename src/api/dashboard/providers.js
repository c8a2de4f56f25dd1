"use strict";
// Pane: provider health (balance if read, orders by forwarding state, 30-day refund rate,
// active refund-rate alerts) and the sends
// waiting in `ambiguous`, each with its attempt log and the two reconcile actions:
// attach the provider's order id, or send it again.
(() => {
  const { el, fill, api, get, all, pane, table, notice, when, pct, show } = Console;
  const view = { root: null, result: null, picked: null };


  async function reconcile(orderId, providerOrderId) {
    const body = providerOrderId ? { provider_order_id: providerOrderId } : {};
    const reply = await api("POST", `/v1/admin/orders/${orderId}/forwarding`, body);
    view.result = reply.ok
      ? { kind: "good", order: orderId, state: reply.body.state, text: providerOrderId
        ? `Order #${orderId} attached to the provider's order ${providerOrderId}: now ${reply.body.state}, polled for its status.`
        : `Order #${orderId} queued to be sent again: now ${reply.body.state}.` }
      : { kind: "bad", order: orderId, state: "", text: `The API refused: ${reply.body && reply.body.detail} (${reply.body && reply.body.code}).` };
    await draw();
  }

  function waitingCard(f, detail) {
    const input = el("input", { class: "small", placeholder: "provider's order id", "aria-label": `Provider order id for order ${f.order_id}`, "data-attach-input": f.order_id });
    return el("div", { class: "card", "data-testid": "ambiguous", "data-order": f.order_id },
      el("h2", {}, `Order #${f.order_id} · provider #${f.provider_id} `, el("span", { class: "pill " + f.state }, f.state)),
      el("div", { class: "cols" },
        el("div", {},
          Console.facts([
            ["order", detail ? `${detail.order.link} · ${detail.order.quantity} units · charge ${detail.order.charge}` : "—"],
            ["attempts / failures", `${f.attempts} / ${f.failures}`], ["last error", f.last_error],
            ["provider order", f.provider_order_id],
          ]),
          el("p", { class: "muted" }, "The provider may or may not have this order. Look it up in the provider's panel: attach its id if it is there, or send it again if it is not."),
          el("div", { class: "inline-form" }, input,
            el("button", { class: "primary", "data-attach": f.order_id, onclick: () => { const v = input.value.trim(); if (v) reconcile(f.order_id, v); else input.focus(); } }, "Attach id"),
            el("button", { class: "plain", "data-resend": f.order_id, onclick: () => reconcile(f.order_id, null) }, "Send again"))),
        el("div", {},
          el("h3", {}, "Attempt log"),
          detail && detail.attempts.length
            ? Console.attemptsTable(detail.attempts)
            : el("p", { class: "muted" }, "No exchange recorded."))));
  }

  async function draw() {
    const [health, report, waiting, providers, alerts] = await Promise.all([
      get("/v1/admin/provider-health"), get("/v1/admin/reports/refunds?" + Console.last30("provider")), all("/v1/admin/forwarding?state=ambiguous", 100),
      get("/v1/admin/providers"), all("/v1/admin/alerts?active=true", 500)]);
    const configs = new Map(providers.data.map((p) => [String(p.id), p]));
    const details = await Promise.all(waiting.map((f) => get(`/v1/admin/orders/${f.order_id}`).catch(() => null)));
    const rates = new Map(report.rows.map((r) => [String(r.group), r]));
    const states = ["queued", "sending", "sent", "ambiguous", "failed", "given_up"];
    const x = view.result;
    fill(view.root,
      x ? notice(x.kind, x.text, { "data-testid": "reconcile-result", "data-order": x.order, "data-state": x.state }) : null,
      el("div", { class: "card" },
        el("h2", {}, "Providers"),
        el("div", { class: "note" }, "Orders by forwarding state now; refund rate of orders placed in the last 30 days; active refund-rate alerts. A balance is read only for a provider with a minimum balance."),
        table(["provider", "name", "enabled", "balance", ...states, "refund rate", "alerts"], health.data.map((p) => {
          const r = rates.get(String(p.provider_id));
          const c = configs.get(String(p.provider_id));
          const balance = c && c.balance !== null && c.balance !== undefined
            ? el("span", { title: c.paused_because || "" }, `${c.balance} ${c.balance_currency || ""}`, c.paused_because ? el("span", { class: "pill paused" }, "paused") : null)
            : "—";
          return el("tr", { "data-provider": p.provider_id, "data-ambiguous": p.orders.ambiguous },
            [[`#${p.provider_id} `, Console.historyLink("provider", p.provider_id)], p.name, p.enabled ? "yes" : "no", balance, ...states.map((s) => String(p.orders[s] ?? 0)), r ? pct(r.refund_rate_amount) : "—",
              Console.alertBadge(alerts, "provider", p.provider_id)]
              .map((c) => el("td", {}, c)));
        }), { "data-testid": "providers" })),
      el("h2", { class: "section" }, `Waiting for an operator (${waiting.length} ambiguous)`),
      waiting.length ? waiting.map((f, i) => waitingCard(f, details[i])) : el("div", { class: "card empty", "data-testid": "no-ambiguous" }, "No send waits for reconciliation."));
    Console.pick(view.root, "provider", view.picked);
    view.root.dataset.state = "ready";
  }

  async function render(root, params) {
    view.root = root;
    view.picked = params.get("id");
    view.result = null;
    await draw();
  }

  pane({ id: "providers", title: "Providers", roles: ["admin"], render });
})();
