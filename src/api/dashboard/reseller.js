"use strict";
// Pane: a reseller's own orders and refunds, and filing a dispute on an order
// (POST /v1/orders/{id}/refunds, with an Idempotency-Key so a double click files one).
(() => {
  const { el, fill, pill, api, get, all, pane, table, notice, when, show } = Console;
  const view = { root: null, disputing: null, result: null };
  const REASONS = ["not_delivered", "partially_delivered", "dropped", "duplicate_order", "other"];

  async function file(order, form) {
    const amount = form.querySelector("[name=amount]").value.trim();
    const note = form.querySelector("[name=note]").value.trim();
    const body = { reason: form.querySelector("[name=reason]").value };
    if (note) body.note = note;
    if (amount) body.amount = amount;
    const key = form.dataset.key;
    const reply = await api("POST", `/v1/orders/${order.id}/refunds`, body, { "idempotency-key": key });
    if (reply.ok) {
      const r = reply.body;
      view.result = { kind: r.status === "succeeded" ? "good" : "info", refund: r.id, status: r.status,
        text: r.status === "succeeded" ? `Refund #${r.id}: ${r.amount} credited at once.` : `Refund request #${r.id} for ${r.amount} on order #${order.id} is pending review by an operator.` };
      view.disputing = null;
    } else {
      view.result = { kind: "bad", refund: "", status: "", text: `Not filed: ${(reply.body && reply.body.detail) || reply.status} (${(reply.body && reply.body.code) || reply.status}).` };
    }
    await draw();
  }

  function disputeForm(order) {
    const form = el("form", { class: "inline-form", id: "dispute-form", "data-order": order.id, "data-key": "console-" + crypto.randomUUID() },
      el("select", { class: "small", name: "reason", "aria-label": "Reason" }, REASONS.map((r) => el("option", { value: r }, r.replace(/_/g, " ")))),
      el("input", { class: "small", name: "amount", inputmode: "decimal", placeholder: `amount (up to ${order.refundable})`, "aria-label": "Amount" }),
      el("input", { class: "small", name: "note", size: 40, placeholder: "what went wrong", "aria-label": "Note" }),
      el("button", { class: "primary", type: "submit", id: "file-dispute" }, "File refund request"),
      el("button", { class: "plain", type: "button", onclick: () => { view.disputing = null; draw(); } }, "Cancel"));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); file(order, form); });
    return el("tr", {}, el("td", { colspan: 9 }, form));
  }

  async function draw() {
    const [account, orders, refunds] = await Promise.all([get("/v1/account"), all("/v1/orders", 100), all("/v1/refunds", 100)]);
    const rows = [];
    for (const o of orders) {
      const canDispute = o.status !== "canceled" && o.refundable !== "0";
      rows.push(el("tr", { "data-order": o.id, "data-status": o.status },
        [`#${o.id}`, "#" + o.service_id, o.link, String(o.quantity), o.charge, o.refunded, o.refundable, pill(o.status),
          canDispute ? el("button", { class: "plain", "data-dispute": o.id, onclick: () => { view.disputing = o.id; view.result = null; draw(); } }, "Dispute…") : ""]
          .map((c) => el("td", {}, c))));
      if (view.disputing === o.id) rows.push(disputeForm(o));
    }
    const x = view.result;
    fill(view.root,
      x ? notice(x.kind, x.text, { "data-testid": "dispute-result", "data-refund": x.refund, "data-status": x.status }) : null,
      el("div", { class: "card" },
        el("h2", {}, `Your orders · balance `, el("span", { "data-testid": "my-balance" }, account.balance), ` ${account.currency}`),
        table(["order", "service", "link", "quantity", "charge", "refunded", "refundable", "status", ""], rows, { "data-testid": "my-orders" })),
      el("div", { class: "card" },
        el("h2", {}, "Your refunds and requests"),
        refunds.length ? table(["refund", "order", "reason", "amount", "status", "filed", "decision"], refunds.map((r) =>
          el("tr", { "data-refund": r.id, "data-status": r.status },
            [`#${r.id}`, show(r.order_id), r.reason, r.amount, pill(r.status), when(r.created_at).slice(0, 16), show(r.decision_reason)].map((c) => el("td", {}, c)))),
        { "data-testid": "my-refunds" }) : el("div", { class: "empty" }, "No refunds yet.")));
    view.root.dataset.state = "ready";
  }

  async function render(root) {
    view.root = root;
    view.result = null;
    view.disputing = null;
    await draw();
  }

  pane({ id: "mine", title: "Orders & refunds", roles: ["reseller"], render });
})();
