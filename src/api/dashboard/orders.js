"use strict";
// Pane: order lookup for operators, by order id, exact link or reseller (account id),
// with the order's ledger entries, refunds and provider exchanges. Subscriptions share the
// orders' ids: an id that is a subscription, or a child order (its `subscription_id`), shows
// the subscription with its children and money, where an operator records a post
// (POST /v1/admin/subscriptions/{id}/posts) or ends it here after a confirmation
// (POST /v1/admin/subscriptions/{id}/end: what is still held goes back to the reseller).
(() => {
  const { el, fill, pill, api, get, pane, facts, table, notice, when, show } = Console;
  const view = { root: null, by: "id", q: "", found: null, detail: null, error: null, sub: null, answer: null, ending: false };

  /** The order's subscription (or the subscription the id names), with its children and
   * its reseller. */
  async function loadSubscription(id) {
    view.sub = id ? await get(`/v1/admin/subscriptions/${id}`) : null;
    view.ending = false;
    view.subAccount = view.sub ? view.sub.account_id : null;
  }

  /** An order id, or failing that (404) a subscription id: one id space. */
  async function lookUp(id) {
    try {
      view.detail = await get(`/v1/admin/orders/${id}`);
      await loadSubscription(view.detail.order.subscription_id);
    } catch (e) {
      if (!(e.reply && e.reply.status === 404)) throw e;
      try {
        await loadSubscription(id);
      } catch (e2) {
        if (!(e2.reply && e2.reply.status === 404)) throw e2;
        throw new Error(`No order or subscription #${id}.`);
      }
    }
  }

  async function search() {
    view.error = null;
    view.found = null;
    view.detail = null;
    view.sub = null;
    view.answer = null;
    const q = view.q.trim();
    if (!q) return draw();
    try {
      if (view.by === "id") {
        if (!/^\d+$/.test(q)) throw new Error("an order id is a number");
        await lookUp(q);
      } else {
        const param = view.by === "link" ? "link" : "account_id";
        const page = await get(`/v1/admin/orders?${param}=${encodeURIComponent(q)}&limit=50`);
        view.found = page.data;
        if (page.data.length === 1) await lookUp(page.data[0].id);
      }
    } catch (e) {
      if (e instanceof Console.AuthError) throw e;
      view.error = e.message;
    }
    draw();
  }

  async function openOrder(id) {
    view.answer = null;
    await lookUp(id);
    draw();
  }

  async function recordPost(sub, form) {
    const body = { post_key: form.querySelector("[name=post_key]").value.trim(), link: form.querySelector("[name=link]").value.trim() };
    const quantity = form.querySelector("[name=quantity]").value.trim();
    if (quantity) body.quantity = /^\d+$/.test(quantity) ? Number(quantity) : quantity;
    const reply = await api("POST", `/v1/admin/subscriptions/${sub.id}/posts`, body);
    view.answer = Console.answerOf(reply, (r) => (r.created
      ? `Post recorded: child order #${r.order.id}, ${r.order.quantity} units, ${r.order.charge} captured from the hold; ${r.subscription.hold_left} still held.`
      : `That post was recorded before: child order #${r.order.id}; nothing new was made.`));
    if (reply.ok) Object.assign(view.answer, { status: reply.body.subscription.status, released: reply.body.subscription.released, order: reply.body.order.id, created: String(reply.body.created) });
    await loadSubscription(sub.id);
    draw();
  }

  async function end(sub, reason) {
    const reply = await api("POST", `/v1/admin/subscriptions/${sub.id}/end`, reason ? { reason } : {});
    view.answer = Console.answerOf(reply, (s) => `Subscription #${s.id} is ${s.status}: ${s.released} released to the reseller's balance.`);
    await loadSubscription(sub.id);
    draw();
  }

  /** The operator's actions on an open subscription: record a post, end it (confirmed). */
  function subscriptionActions(s) {
    if (["completed", "expired", "canceled", "error"].includes(s.status)) return null;
    const post = el("form", { class: "inline-form", id: "post-form", "data-subscription": s.id },
      el("input", { class: "small", name: "post_key", size: 24, required: true, placeholder: "post id or URL (its key)", "aria-label": "Post key" }),
      el("input", { class: "small", name: "link", size: 36, required: true, placeholder: "https://… (the child order's link)", "aria-label": "Link" }),
      el("input", { class: "small", name: "quantity", size: 12, inputmode: "numeric", placeholder: `${s.min} to ${s.max} (default ${s.max})`, "aria-label": "Quantity" }),
      el("button", { class: "primary", type: "submit", id: "record-post" }, "Record post"));
    post.addEventListener("submit", (ev) => { ev.preventDefault(); recordPost(s, post); });
    let confirm = null;
    if (view.ending) {
      const reason = el("input", { class: "small", id: "end-reason", size: 40, placeholder: "why (kept on it and in the audit log)", "aria-label": "Reason" });
      confirm = el("form", { class: "inline-form", id: "end-confirm", "data-testid": "end-confirm" },
        el("span", {}, `End #${s.id} here as canceled and release ${s.hold_left} to the reseller? An upstream, if any, is left as it is.`), reason,
        el("button", { class: "danger", type: "submit", id: "confirm-end" }, "End and release"),
        el("button", { class: "plain", type: "button", onclick: () => { view.ending = false; draw(); } }, "Keep it"));
      confirm.addEventListener("submit", (ev) => { ev.preventDefault(); end(s, reason.value.trim()); });
    }
    return el("div", { class: "actions" }, el("h3", { style: "width:100%;margin:0" }, "Record a post"), post,
      confirm || el("button", { class: "danger", type: "button", id: "end-subscription", onclick: () => { view.ending = true; view.answer = null; draw(); } }, "End here…"));
  }

  function subscriptionCard(s) {
    return Console.subscriptionView(s, {
      title: [Console.historyLink("subscription", s.id), view.subAccount ? el("span", { class: "muted", "data-testid": "sub-account" }, " · reseller #" + view.subAccount, " ", Console.historyLink("account", view.subAccount)) : null],
      childLink: (id) => el("a", { href: `#orders?id=${id}`, "data-child-link": id }, `#${id}`),
      actions: subscriptionActions(s),
    });
  }

  function detailView(d) {
    const o = d.order;
    return el("div", { class: "card", "data-testid": "order-detail", "data-order": o.id },
      el("h2", {}, `Order #${o.id} `, pill(o.status), " ", Console.historyLink("order", o.id)),
      el("div", { class: "cols" },
        facts([
          ["account", el("span", {}, "#" + o.account_id, " ", Console.historyLink("account", o.account_id)), "order-account"], ["service", "#" + o.service_id], ["link", o.link],
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
      view.detail ? detailView(view.detail) : null,
      view.answer ? Console.answerNotice(view.answer) : null,
      view.sub ? subscriptionCard(view.sub) : null);
    view.root.dataset.state = "ready";
  }

  async function render(root, params) {
    view.root = root;
    if (params.get("id")) { view.by = "id"; view.q = params.get("id"); await search(); return; }
    draw();
  }

  pane({ id: "orders", title: "Order lookup", roles: ["admin"], render });
})();
