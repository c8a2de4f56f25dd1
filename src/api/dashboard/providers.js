"use strict";
// Pane: provider health (balance if read, currency and exchange rate with any mismatch a
// reply showed, orders by forwarding state, 30-day refund rate, active refund-rate alerts),
// the provider money of the last 30 days (a day chart of refunds paid against credits
// recovered, and a table by provider from the provider money report), and the sends
// waiting in `ambiguous`, each with its attempt log and the two reconcile actions:
// attach the provider's order id, or send it again.
(() => {
  const { el, fill, api, get, all, pane, table, notice, when, pct, show } = Console;
  const view = { root: null, result: null, picked: null };
  const svgEl = (tag, attrs, text) => el(tag, { ...attrs, svg: true }, text);
  const MONEY = ["orders_count", "revenue", "provider_cost", "margin", "refunds_paid", "credits_recovered", "unrecovered", "awaiting_credit", "recovery_rate", "credited_to_balance"];

  // The provider's currency: the panel's, or its own at the operator's rate, and the
  // currency a status reply named instead (its charges are not used as cost meanwhile).
  function currencyCell(c) {
    if (!c) return "—";
    const own = c.exchange_rate ? `${c.currency} at ${c.exchange_rate}` : c.currency;
    return el("span", { "data-currency": c.currency },
      own,
      c.currency_mismatch ? el("span", { class: "pill critical gap", "data-mismatch": c.currency_mismatch,
        title: `A status reply at ${when(c.currency_mismatch_at)} named ${c.currency_mismatch}; its charges are not used as cost until the provider's currency is corrected.` },
      `replies in ${c.currency_mismatch}`) : null);
  }

  // Refunds paid (bars) against credits recovered (inner bars) per day.
  function moneyChart(series) {
    const rows = series.rows;
    const W = 1200, H = 200, L = 64, R = 16, T = 12, B = 28;
    const svg = svgEl("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, "data-testid": "money-chart", "data-points": rows.length, role: "img",
      "aria-label": "Refunds paid because of the providers and credits they gave back, per day" });
    const paid = rows.map((r) => Number(r.refunds_paid)), back = rows.map((r) => Number(r.credits_recovered));
    const top = Math.max(...paid, ...back, 0);
    if (!rows.length || top === 0) {
      svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "No refund caused by a provider in this window"));
      return svg;
    }
    const step = (W - L - R) / rows.length, y = (v) => T + (H - T - B) * (1 - v / top);
    for (let k = 0; k <= 4; k++) {
      const v = (top * k) / 4;
      svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eef1f6" }));
      svg.append(svgEl("text", { x: L - 8, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(2)));
    }
    rows.forEach((r, i) => {
      const x = L + step * i;
      const bar = svgEl("rect", { x: x + step * 0.14, width: Math.max(1, step * 0.72), y: y(paid[i]), height: H - B - y(paid[i]), fill: "#ffd8a8", rx: 2,
        "data-group": r.group, "data-paid": r.refunds_paid, "data-recovered": r.credits_recovered });
      bar.append(svgEl("title", {}, `${r.label}: refunds paid ${r.refunds_paid}, credited back ${r.credits_recovered}, unrecovered ${r.unrecovered}`));
      svg.append(bar);
      svg.append(svgEl("rect", { x: x + step * 0.3, width: Math.max(1, step * 0.4), y: y(back[i]), height: H - B - y(back[i]), fill: "#51cf66", rx: 2 }));
      if (i % Math.ceil(rows.length / 12) === 0) svg.append(svgEl("text", { x: x + step / 2, y: H - 8, "text-anchor": "middle" }, r.label.slice(5)));
    });
    return svg;
  }

  function moneyCard(byProvider, byDay) {
    const t = byProvider.totals;
    return el("div", { class: "card", "data-testid": "provider-money" },
      el("h2", {}, `Provider money, last 30 days (${byProvider.currency})`),
      el("div", { class: "note" }, "Forwarded orders placed in the window: revenue is our charges less every refund, cost the providers' latest charges (the expected cost until one is reported; orders without cost have neither yet, so their margin is their revenue). Orange: refunds we paid because a provider reported Partial or Canceled; green: what the providers credited back. Unrecovered: short after the watch window. Owed via balance: refunds of providers that credit their balance instead of lowering the charge, to check against their balance."),
      moneyChart(byDay),
      table(["provider", "orders", "revenue", "cost", "orders without cost", "margin", "refunds paid", "credited back", "unrecovered", "awaiting", "recovery", "owed via balance"],
        [...byProvider.rows, { ...t, group: "total", label: "Total" }].map((r) =>
          el("tr", { "data-money-provider": r.group, ...Object.fromEntries(MONEY.map((k) => ["data-" + k.replace(/_/g, "-"), String(r[k])])) },
            [r.group === "total" ? "Total" : `#${r.group} ${r.label}`, String(r.orders_count), r.revenue, r.provider_cost, String(r.orders_without_cost),
              el("span", { class: r.margin.startsWith("-") ? "bad" : "" }, r.margin), r.refunds_paid, r.credits_recovered,
              el("span", { class: r.unrecovered !== "0" ? "bad" : "" }, r.unrecovered), r.awaiting_credit, pct(r.recovery_rate), r.credited_to_balance]
              .map((c) => el("td", {}, c)))), { "data-testid": "money-table" }));
  }


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
    const [health, report, waiting, providers, alerts, moneyByProvider, moneyByDay] = await Promise.all([
      get("/v1/admin/provider-health"), get("/v1/admin/reports/refunds?" + Console.last30("provider")), all("/v1/admin/forwarding?state=ambiguous", 100),
      get("/v1/admin/providers"), all("/v1/admin/alerts?active=true", 500),
      get("/v1/admin/reports/provider-money?" + Console.last30("provider")), get("/v1/admin/reports/provider-money?" + Console.last30("day"))]);
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
        table(["provider", "name", "enabled", "currency", "balance", ...states, "refund rate", "alerts"], health.data.map((p) => {
          const r = rates.get(String(p.provider_id));
          const c = configs.get(String(p.provider_id));
          const balance = c && c.balance !== null && c.balance !== undefined
            ? el("span", { title: c.paused_because || "" }, `${c.balance} ${c.balance_currency || ""}`, c.paused_because ? el("span", { class: "pill paused" }, "paused") : null)
            : "—";
          return el("tr", { "data-provider": p.provider_id, "data-ambiguous": p.orders.ambiguous },
            [[`#${p.provider_id} `, Console.historyLink("provider", p.provider_id)], p.name, p.enabled ? "yes" : "no", currencyCell(c), balance, ...states.map((s) => String(p.orders[s] ?? 0)), r ? pct(r.refund_rate_amount) : "—",
              Console.alertBadge(alerts, "provider", p.provider_id)]
              .map((c) => el("td", {}, c)));
        }), { "data-testid": "providers" })),
      moneyCard(moneyByProvider, moneyByDay),
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
