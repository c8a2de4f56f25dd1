"use strict";
// Pane: a reseller's own orders and refunds, placing an order (the form renders the fields of
// the chosen service's type, from GET /v1/services), and filing a dispute on an order
// (POST /v1/orders/{id}/refunds, with an Idempotency-Key so a double click files one).
(() => {
  const { el, fill, pill, api, get, all, pane, table, notice, when, show } = Console;
  const view = { root: null, disputing: null, result: null, services: [], service: null, placed: null };

  /** One input per field the chosen service's order takes, named as the API names it. */
  function orderInputs(svc) {
    const rows = [["link", el("input", { name: "link", size: 48, required: true, placeholder: "https://…", "data-field": "link" })]];
    if (svc.pricing !== "flat" && !svc.quantity_from) {
      rows.push(["quantity", el("input", { name: "quantity", inputmode: "numeric", required: true, placeholder: `${svc.min} to ${svc.max}`, "data-field": "quantity" })]);
    }
    for (const f of svc.fields) {
      const label = f.name.replace(/_/g, " ") + (f.required ? "" : " (optional)");
      const hint = f.shape === "list" ? "one per line" : f.shape === "integer" ? `${f.minimum} to ${f.maximum}` : f.note || f.shape;
      const attrs = { name: f.name, "data-field": f.name, "data-shape": f.shape, placeholder: f.note ? `${hint}; ${f.note}` : hint, required: f.required };
      rows.push([label, f.shape === "list" ? el("textarea", Object.assign({ rows: 4, cols: 48 }, attrs)) : el("input", Object.assign({ size: 48 }, attrs))]);
    }
    if (svc.dripfeed) {
      rows.push(["runs (optional)", el("input", { name: "runs", inputmode: "numeric", placeholder: "drip-feed: 2 to 10000", "data-field": "runs" })]);
      rows.push(["interval (optional)", el("input", { name: "interval", inputmode: "numeric", placeholder: "minutes between runs", "data-field": "interval" })]);
    }
    if (svc.quantity_from) rows.push(["quantity", el("span", { class: "muted" }, `one per line of ${svc.quantity_from}`)]);
    if (svc.pricing === "flat") rows.push(["price", el("span", { class: "muted" }, `${svc.rate} for the package`)]);
    return rows;
  }

  async function place(svc, form) {
    const body = { service_id: svc.id };
    for (const input of form.querySelectorAll("[data-field]")) {
      const value = input.value.trim();
      if (!value) continue;
      const shape = input.dataset.shape;
      if (shape === "list") body[input.name] = input.value.split(/\r?\n/);
      else if (shape === "integer" || ["quantity", "runs", "interval"].includes(input.name)) body[input.name] = /^\d+$/.test(value) ? Number(value) : value;
      else body[input.name] = value;
    }
    const reply = await api("POST", "/v1/orders", body, { "idempotency-key": form.dataset.key });
    view.placed = reply.ok
      ? { kind: "good", order: reply.body.id, text: `Order #${reply.body.id} placed: ${reply.body.charge} charged.` }
      : { kind: "bad", order: "", text: `Not placed: ${(reply.body && reply.body.detail) || reply.status}${reply.body && reply.body.param ? ` (${reply.body.param})` : ""}.` };
    await draw();
  }

  function orderForm() {
    // A subscriptions service takes no order (POST /v1/orders refuses it): the Subscriptions pane creates those.
    const active = view.services.filter((s) => s.status === "active" && s.type !== "subscriptions");
    if (!active.length) return el("div", { class: "empty" }, "No service takes orders now.");
    const svc = active.find((s) => s.id === view.service) || active[0];
    const pick = el("select", { name: "service", id: "order-service", "aria-label": "Service", onchange: (ev) => { view.service = Number(ev.target.value); view.placed = null; draw(); } },
      active.map((s) => el("option", { value: s.id, selected: s.id === svc.id }, `#${s.id} ${s.name} (${s.type})`)));
    const form = el("form", { class: "order-form", id: "order-form", "data-type": svc.type, "data-key": "console-" + crypto.randomUUID() },
      el("label", {}, "service"), pick,
      orderInputs(svc).map(([label, input]) => [el("label", {}, label), input]),
      el("span", {}), el("button", { class: "primary", type: "submit", id: "place-order" }, "Place order"));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); place(svc, form); });
    return form;
  }
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
    const [account, orders, refunds, services] = await Promise.all([get("/v1/account"), all("/v1/orders", 100), all("/v1/refunds", 100), all("/v1/services", 1000).catch((e) => { if (e instanceof Console.AuthError) throw e; return []; })]);
    view.services = services;
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
    const p = view.placed;
    fill(view.root,
      el("div", { class: "card" }, el("h2", {}, "Place an order"), orderForm(),
        p ? notice(p.kind, p.text, { "data-testid": "order-result", "data-order": p.order }) : null),
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
    view.placed = null;
    await draw();
  }

  pane({ id: "mine", title: "Orders & refunds", roles: ["reseller"], render });
})();
