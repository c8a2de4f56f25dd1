"use strict";
// Pane: a reseller's subscriptions ("auto likes"): the list with each one's money (held,
// captured, released, still held: the API's decimal strings, shown as they are), a
// subscription opened with its child orders, and its Cancel with the server's answer, a
// refusal included. A create form for the Subscriptions services (POST /v1/subscriptions
// with an Idempotency-Key, so a double click creates one).
//
// Console.subscriptionView is shared with the operators' order lookup (orders.js), which
// shows the same subscription with its children and its own actions.
(() => {
  const { el, fill, pill, api, get, all, pane, facts, table, notice, when, show } = Console;
  const view = { root: null, open: null, created: null, answer: null, services: [], service: null };

  /** "served / total": the posts served of posts (+ old posts). */
  const served = (s) => `${s.posts_served} / ${s.posts + s.old_posts}${s.old_posts ? ` (${s.old_posts} old)` : ""}`;
  const ended = (s) => ["completed", "expired", "canceled", "error"].includes(s.status);

  /** The money of one subscription as facts rows, each value the API's string as it is. */
  function moneyFacts(s) {
    return [["one post at most", s.post_charge, "sub-post-charge"], ["held", s.held, "sub-held"], ["captured", s.captured, "sub-captured"],
      ["released", s.released, "sub-released"], ["still held", s.hold_left, "sub-hold-left"]];
  }

  /** A subscription with its children: facts, money, the child orders (status, charge,
   * remains, refunds). `opts.childLink(id)` turns a child's id into a link or button;
   * `opts.actions` is appended (the reseller's Cancel, the operator's post and end). */
  function subscriptionView(d, opts) {
    const s = d;
    const children = d.children || [];
    const attrs = { class: "card", "data-testid": "subscription-detail", "data-subscription": s.id, "data-status": s.status,
      "data-held": s.held, "data-captured": s.captured, "data-released": s.released, "data-hold-left": s.hold_left,
      "data-posts-served": s.posts_served };
    return el("div", attrs,
      el("h2", {}, `Subscription #${s.id} `, pill(s.status), opts.title ? [" ", opts.title] : null),
      el("div", { class: "cols" },
        facts([
          ["service", opts.serviceName ? opts.serviceName(s.service_id) : "#" + s.service_id, "sub-service"], ["username", s.username, "sub-username"],
          ["per post", `${s.min} to ${s.max}`, "sub-min-max"], ["posts served", served(s), "sub-posts"],
          ["delay", `${s.delay} min`], ["expiry", s.expiry ? s.expiry + " (ends as it begins, UTC)" : "none", "sub-expiry"],
          ["created", when(s.created_at)], ["ended", when(s.ended_at)], ["why it ended", show(s.status_reason), "sub-reason"],
        ]),
        facts(moneyFacts(s))),
      el("h3", {}, `Child orders (${children.length})`),
      children.length ? table(["order", "status", "link", "quantity", "charge", "remains", "refunded", "refundable", "placed"], children.map((o) =>
        el("tr", { "data-testid": "child", "data-order": o.id, "data-status": o.status, "data-charge": o.charge, "data-refunded": o.refunded, "data-remains": show(o.remains) },
          [opts.childLink ? opts.childLink(o.id) : `#${o.id}`, pill(o.status), o.link, String(o.quantity), o.charge, show(o.remains), o.refunded, o.refundable, when(o.created_at).slice(0, 16)]
            .map((c) => el("td", {}, c)))), { "data-testid": "children" })
        : el("div", { class: "empty", "data-testid": "no-children" }, "No post served yet."),
      opts.actions || null);
  }

  /** A server's answer to an action, as a notice: the problem's detail and code on a refusal. */
  function answerNotice(a) {
    return notice(a.kind, a.text, { "data-testid": "subscription-answer", "data-outcome": a.outcome, "data-status": a.status || "", "data-code": a.code || "", "data-released": a.released || "",
      "data-order": a.order || "", "data-created": a.created || "" });
  }

  /** Turns an API reply into an answer: `good(body)` words a success. */
  function answerOf(reply, good) {
    if (reply.ok) return { kind: "good", outcome: "ok", status: reply.body.status, released: reply.body.released, text: good(reply.body) };
    const b = reply.body || {};
    return { kind: "bad", outcome: "refused", code: b.code || String(reply.status), status: "", text: `Refused (${reply.status} ${b.code || ""}): ${b.detail || b.title || "the call failed"}` };
  }

  async function cancel(id) {
    const reply = await api("POST", `/v1/subscriptions/${id}/cancel`);
    view.answer = answerOf(reply, (s) => `Subscription #${s.id} is ${s.status}: ${s.released} released to your balance.`);
    await draw();
  }

  async function create(svc, form) {
    const body = { service_id: svc.id };
    for (const input of form.querySelectorAll("[data-field]")) {
      const value = input.value.trim();
      if (!value) continue;
      body[input.name] = input.name === "username" || input.name === "expiry" || !/^\d+$/.test(value) ? value : Number(value);
    }
    const reply = await api("POST", "/v1/subscriptions", body, { "idempotency-key": form.dataset.key });
    view.created = reply.ok
      ? { kind: "good", id: reply.body.id, text: `Subscription #${reply.body.id} created: ${reply.body.held} held for ${reply.body.posts + reply.body.old_posts} post(s) of up to ${reply.body.max}.` }
      : { kind: "bad", id: "", text: `Not created: ${(reply.body && reply.body.detail) || reply.status} (${(reply.body && reply.body.code) || reply.status}).` };
    if (reply.ok) view.open = reply.body.id;
    await draw();
  }

  function createForm() {
    const offered = view.services.filter((s) => s.status === "active" && s.type === "subscriptions");
    if (!offered.length) return el("div", { class: "empty" }, "No subscriptions service is offered now.");
    const svc = offered.find((s) => s.id === view.service) || offered[0];
    const terms = svc.subscription || { posts_max: 1, delays: [0], old_posts: false };
    const pick = el("select", { id: "sub-service", "aria-label": "Service", onchange: (ev) => { view.service = Number(ev.target.value); view.created = null; draw(); } },
      offered.map((s) => el("option", { value: s.id, selected: s.id === svc.id }, `#${s.id} ${s.name} (${s.rate} per 1000)`)));
    const rows = [
      ["username", el("input", { name: "username", "data-field": "username", size: 40, required: true, placeholder: "@account or its profile link" })],
      ["min per post", el("input", { name: "min", "data-field": "min", inputmode: "numeric", required: true, placeholder: `${svc.min} or more` })],
      ["max per post", el("input", { name: "max", "data-field": "max", inputmode: "numeric", required: true, placeholder: `up to ${svc.max}` })],
      ["posts", el("input", { name: "posts", "data-field": "posts", inputmode: "numeric", required: true, placeholder: `1 to ${terms.posts_max}` })],
    ];
    if (terms.old_posts) rows.push(["old posts (optional)", el("input", { name: "old_posts", "data-field": "old_posts", inputmode: "numeric", placeholder: `0 to ${terms.posts_max}` })]);
    rows.push(["delay", el("select", { name: "delay", "data-field": "delay" }, terms.delays.map((d) => el("option", { value: d }, `${d} min`)))]);
    rows.push(["expiry (optional)", el("input", { name: "expiry", "data-field": "expiry", type: "date", "aria-label": "Expiry (UTC)" })]);
    const form = el("form", { class: "order-form", id: "subscription-form", "data-key": "console-" + crypto.randomUUID() },
      el("label", {}, "service"), pick,
      rows.map(([label, input]) => [el("label", {}, label), input]),
      el("span", {}), el("span", { class: "muted" }, `Holds posts × the charge of one order of max units (${svc.rate} per 1000) from your balance; what is not spent comes back when it ends.`),
      el("span", {}), el("button", { class: "primary", type: "submit", id: "create-subscription" }, "Create subscription"));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); create(svc, form); });
    return form;
  }

  function serviceName(id) {
    const s = view.services.find((x) => x.id === id);
    return s ? `#${id} ${s.name}` : `#${id}`;
  }

  async function draw() {
    const [account, subs, services] = await Promise.all([get("/v1/account"), all("/v1/subscriptions", 200),
      all("/v1/services", 1000).catch((e) => { if (e instanceof Console.AuthError) throw e; return []; })]);
    view.services = services;
    const detail = view.open ? await get(`/v1/subscriptions/${view.open}`) : null;
    const c = view.created;
    const rows = subs.map((s) => el("tr", { "data-subscription": s.id, "data-status": s.status, "data-held": s.held, "data-captured": s.captured,
      "data-released": s.released, "data-hold-left": s.hold_left, class: "clickable" + (view.open === s.id ? " selected" : ""),
      onclick: () => { view.open = s.id; view.answer = null; draw(); } },
    [`#${s.id}`, pill(s.status), serviceName(s.service_id), s.username, `${s.min}–${s.max}`, served(s), `${s.delay} min`, show(s.expiry),
      s.held, s.captured, s.released, s.hold_left].map((x) => el("td", {}, x))));
    const actions = detail && !ended(detail)
      ? el("div", { class: "actions" }, el("button", { class: "danger", id: "cancel-subscription", "data-cancel": detail.id, onclick: () => cancel(detail.id) }, "Cancel subscription"),
        el("span", { class: "muted" }, `Ends it now: the ${detail.hold_left} still held comes back to your balance.`))
      : null;
    fill(view.root,
      c ? notice(c.kind, c.text, { "data-testid": "subscription-created", "data-subscription": c.id }) : null,
      el("div", { class: "card" },
        el("h2", {}, "Your subscriptions · balance ", el("span", { "data-testid": "my-balance" }, account.balance),
          " · held ", el("span", { "data-testid": "my-held" }, account.held), ` ${account.currency}`),
        subs.length ? table(["subscription", "status", "service", "username", "per post", "posts", "delay", "expiry", "held", "captured", "released", "still held"], rows,
          { "data-testid": "my-subscriptions" }) : el("div", { class: "empty" }, "No subscriptions yet.")),
      view.answer ? answerNotice(view.answer) : null,
      detail ? subscriptionView(detail, { serviceName, actions }) : null,
      el("div", { class: "card" }, el("h2", {}, "New subscription"), createForm()));
    view.root.dataset.state = "ready";
  }

  async function render(root, params) {
    view.root = root;
    view.answer = null;
    view.created = null;
    view.open = params.get("id") ? Number(params.get("id")) : null;
    await draw();
  }

  Console.subscriptionView = subscriptionView;
  Console.answerOf = answerOf;
  Console.answerNotice = answerNotice;
  pane({ id: "subscriptions", title: "Subscriptions", roles: ["reseller"], render });
})();
