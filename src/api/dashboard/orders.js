"use strict";
// Pane: order lookup for operators, by order id, exact link or reseller (account id),
// with the order's ledger entries, refunds and provider exchanges.
(() => {
  const { el, fill, pill, get, pane, facts, table, notice, when, show } = Console;
  const view = { root: null, by: "id", q: "", found: null, detail: null, error: null };

  async function search() {
    view.error = null;
    view.found = null;
    view.detail = null;
    const q = view.q.trim();
    if (!q) return draw();
    try {
      if (view.by === "id") {
        if (!/^\d+$/.test(q)) throw new Error("an order id is a number");
        view.detail = await get(`/v1/admin/orders/${q}`);
      } else {
        const param = view.by === "link" ? "link" : "account_id";
        const page = await get(`/v1/admin/orders?${param}=${encodeURIComponent(q)}&limit=50`);
        view.found = page.data;
        if (page.data.length === 1) view.detail = await get(`/v1/admin/orders/${page.data[0].id}`);
      }
    } catch (e) {
      if (e instanceof Console.AuthError) throw e;
      view.error = e.message;
    }
    draw();
  }

  async function openOrder(id) {
    view.detail = await get(`/v1/admin/orders/${id}`);
    draw();
  }

  function detailView(d) {
    const o = d.order;
    return el("div", { class: "card", "data-testid": "order-detail", "data-order": o.id },
      el("h2", {}, `Order #${o.id} `, pill(o.status)),
      el("div", { class: "cols" },
        facts([
          ["account", "#" + o.account_id, "order-account"], ["service", "#" + o.service_id], ["link", o.link],
          ["quantity", o.quantity], ["charge", o.charge, "order-charge"], ["refunded", o.refunded, "order-refunded"],
          ["refundable", o.refundable], ["start count", o.start_count], ["remains", o.remains],
          ["external ref", o.external_ref], ["placed", when(o.created_at)], ["updated", when(o.updated_at)],
        ].concat(Console.typeFacts(o))),
        d.forwarding ? facts([
          ["upstream", pill(d.forwarding.state)], ["provider", "#" + d.forwarding.provider_id],
          ["provider order", d.forwarding.provider_order_id], ["attempts / failures", `${d.forwarding.attempts} / ${d.forwarding.failures}`],
          ["last error", d.forwarding.last_error], ["last synced", when(d.forwarding.last_synced_at)],
        ]) : el("p", { class: "muted" }, "Fulfilled by hand: no provider.")),
      el("h3", {}, "Ledger entries"),
      table(["entry", "kind", "amount", "balance after", "refund", "when"], d.ledger.map((e) =>
        el("tr", { "data-testid": "ledger-row", "data-kind": e.kind, "data-amount": e.amount },
          [`#${e.id}`, e.kind, e.amount, e.balance_after, show(e.refund_id), when(e.created_at)].map((c) => el("td", {}, c))))),
      el("h3", {}, "Refunds and requests"),
      d.refunds.length ? table(["refund", "reason", "amount", "status", "source", "decision"], d.refunds.map((r) =>
        [`#${r.id}`, r.reason, r.amount, pill(r.status), r.source, show(r.decision_reason)])) : el("p", { class: "muted" }, "None."),
      d.attempts.length ? [el("h3", {}, "Provider exchanges"), Console.attemptsTable(d.attempts)] : null);
  }

  function draw() {
    const by = el("select", { class: "small", id: "lookup-by", "aria-label": "Look up by" },
      [["id", "order id"], ["link", "link"], ["account", "reseller (account id)"]].map(([v, t]) => el("option", { value: v, selected: v === view.by }, t)));
    const q = el("input", { class: "small", id: "lookup-q", value: view.q, size: 48, placeholder: "12345, https://…, or an account id", "aria-label": "Search" });
    const form = el("form", { class: "inline-form", id: "lookup-form" }, by, q, el("button", { class: "primary", type: "submit" }, "Look up"));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); view.by = by.value; view.q = q.value; search(); });
    fill(view.root,
      el("div", { class: "card" }, el("h2", {}, "Order lookup"), form),
      view.error ? notice("bad", view.error, { "data-testid": "lookup-error" }) : null,
      view.found && view.found.length !== 1 ? el("div", { class: "card" },
        el("h2", {}, `${view.found.length} order(s)${view.found.length === 50 ? " (newest 50)" : ""}`),
        view.found.length ? table(["order", "account", "link", "quantity", "charge", "refunded", "status", "placed"], view.found.map((o) =>
          el("tr", { "data-order": o.id, onclick: () => openOrder(o.id), class: "clickable" },
            [`#${o.id}`, "#" + o.account_id, o.link, String(o.quantity), o.charge, o.refunded, pill(o.status), when(o.created_at).slice(0, 16)].map((c) => el("td", {}, c)))))
          : el("div", { class: "empty" }, "No order matches.")) : null,
      view.detail ? detailView(view.detail) : null);
    view.root.dataset.state = "ready";
  }

  async function render(root, params) {
    view.root = root;
    if (params.get("id")) { view.by = "id"; view.q = params.get("id"); await search(); return; }
    draw();
  }

  pane({ id: "orders", title: "Order lookup", roles: ["admin"], render });
})();
