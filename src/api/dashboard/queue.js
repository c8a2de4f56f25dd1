"use strict";
// Pane: the review queue. Pending refund requests oldest first; the open one shows its
// case file (GET /v1/admin/refunds/{id}/case). Approve is one click (A), Reject asks a
// reason (R), N opens the next. A request another operator decided first shows their outcome.
(() => {
  const { el, fill, pill, api, get, all, pane, facts, table, notice, when, pct, show } = Console;
  const view = { root: null, queue: [], openId: null, result: null, busy: false };

  function renderList(box) {
    fill(box,
      el("h2", {}, `Awaiting review (${view.queue.length})`),
      view.queue.length
        ? el("ul", { class: "list", "data-testid": "queue" }, view.queue.map((r) =>
          el("li", { class: r.id === view.openId ? "on" : "", "data-refund": r.id, onclick: () => openCase(r.id) },
            el("span", {}, `#${r.id} · order ${show(r.order_id)}`, el("div", { class: "meta" }, `${r.reason} · asked ${r.amount}`)),
            el("span", { class: "meta" }, when(r.created_at).slice(5, 16)))))
        : el("div", { class: "empty", "data-testid": "queue-empty" }, "Nothing awaits review."));
  }

  function policyBlock(policy) {
    if (!policy) return el("p", { class: "muted" }, "No policy decision recorded.");
    const detail = policy.detail || {};
    return el("div", { "data-testid": "policy" },
      facts([["rule", policy.rule, "policy-rule"], ["outcome", policy.outcome]].concat(
        Object.entries(detail).map(([k, v]) => [k.replace(/_/g, " "), typeof v === "object" ? JSON.stringify(v) : v]))));
  }

  function caseView(c) {
    const r = c.refund, o = c.order, s = c.standing;
    const decided = r.status !== "pending_review";
    const amount = el("input", { class: "small", id: "approve-amount", inputmode: "decimal", placeholder: r.amount, "aria-label": "Amount to credit", size: 10 });
    const approve = el("button", { class: "primary", id: "approve", disabled: decided, onclick: () => decide("approve") }, "Approve " + r.amount, el("kbd", {}, "A"));
    const reject = el("button", { class: "danger", id: "reject", disabled: decided, onclick: () => askReason() }, "Reject…", el("kbd", {}, "R"));
    const next = el("button", { class: "plain", id: "next", onclick: () => openNext() }, "Next", el("kbd", {}, "N"));
    amount.addEventListener("input", () => { approve.firstChild.textContent = "Approve " + (amount.value.trim() || r.amount); });
    const rejectBox = el("div", { class: "inline-form hidden", id: "reject-box" },
      el("textarea", { class: "small", id: "reject-reason", placeholder: "Why it is rejected (shown to the reseller). Enter to confirm, Esc to cancel.", "aria-label": "Reason for rejecting" }),
      el("button", { class: "danger", id: "confirm-reject", onclick: () => decide("reject") }, "Reject request"));
    return el("div", { class: "card", "data-testid": "case", "data-refund": r.id, "data-status": r.status },
      el("h2", {}, `Refund request #${r.id} `, pill(r.status)),
      el("p", { class: "muted" }, `${c.account.name} (account ${c.account.id}) asks ${r.amount} ${c.account.currency} for “${r.reason}”${r.note ? ": " + r.note : ""} · filed ${when(r.created_at)}`),
      decided ? notice("warn", `Already decided: ${r.status}${r.decision_reason ? " (" + r.decision_reason + ")" : ""} at ${when(r.decided_at)}.`) : null,
      el("div", { class: "cols3" },
        el("div", {},
          el("h3", {}, "Order"),
          o ? facts([
            ["order", "#" + o.id, "case-order"], ["service", c.service ? `${c.service.name} (#${c.service.id})` : o.service_id],
            ["link", o.link], ["quantity", o.quantity], ["status", pill(o.status)], ["charge", o.charge, "case-charge"],
            ["refunded", o.refunded, "case-refunded"], ["refundable", o.refundable, "case-refundable"],
            ["start count", o.start_count], ["remains", o.remains], ["placed", when(o.created_at)], ["updated", when(o.updated_at)],
          ].concat(Console.typeFacts(o))) : el("p", { class: "muted" }, "Not an order's refund.")),
        el("div", {},
          el("h3", {}, "Why it is here"), policyBlock(r.policy),
          el("h3", {}, "Reseller's standing"),
          facts([
            ["balance", `${c.account.balance} ${c.account.currency}`, "case-balance"],
            ["refund rate 30d", `${pct(s.refund_rate_amount)} of amount · ${pct(s.refund_rate_count)} of orders`, "case-rate"],
            ["charged / refunded 30d", `${s.charged_30d} / ${s.refunded_30d}`],
            ["requests last hour / day", `${s.requests_last_hour ?? "—"} / ${s.requests_last_day ?? "—"}`],
            ["rejections 7d", s.rejections_7d ?? s.rejected_7d], ["refusals 7d", s.refusals_7d],
            ["last rejection", when(s.last_rejection_at)], ["allow-listed until", when(s.allowlisted_until)],
          ])),
        el("div", {},
          el("h3", {}, "Provider progress"),
          c.forwarding ? facts([
            ["state", pill(c.forwarding.state)], ["provider", "#" + c.forwarding.provider_id],
            ["provider order", c.forwarding.provider_order_id], ["attempts / failures", `${c.forwarding.attempts} / ${c.forwarding.failures}`],
            ["last error", c.forwarding.last_error], ["last synced", when(c.forwarding.last_synced_at)],
          ]) : el("p", { class: "muted" }, "Fulfilled by hand: no provider."),
          c.attempts.length ? Console.attemptsTable(c.attempts) : null)),
      el("h3", {}, "Recent requests by this reseller"),
      table(["request", "order", "amount", "status", "filed", "decision"], c.recent_requests.map((q) =>
        [`#${q.id}`, show(q.order_id), q.amount, pill(q.status), when(q.created_at).slice(0, 16), show(q.decision_reason)]), { "data-testid": "recent-requests" }),
      el("div", { class: "actions" }, amount, approve, reject, next), rejectBox);
  }

  function resultView() {
    const x = view.result;
    if (!x) return null;
    return el("div", { class: "notice " + x.kind, "data-testid": "result", "data-outcome": x.outcome, "data-refund": x.refund,
      "data-amount": x.amount || "", "data-balance": x.balance || "", "data-status": x.status || "" }, x.text);
  }

  function draw(c) {
    const root = view.root;
    const list = el("div", { class: "card" });
    renderList(list);
    const right = el("div", {}, resultView(), c ? caseView(c) : el("div", { class: "card empty" }, view.queue.length ? "" : "The queue is empty."));
    fill(root, el("div", { class: "split" }, list, right));
  }

  async function loadQueue() {
    view.queue = await all("/v1/admin/review-queue", 500);
  }

  async function openCase(id) {
    view.openId = id;
    const c = id ? await get(`/v1/admin/refunds/${id}/case`) : null;
    draw(c);
    view.root.dataset.state = "ready";
    view.root.dataset.open = id ? String(id) : "";
  }

  async function openNext() {
    const after = view.queue.find((r) => r.id > (view.openId || 0)) || view.queue[0];
    await openCase(after ? after.id : null);
  }

  function askReason() {
    const box = document.getElementById("reject-box");
    if (!box || document.getElementById("reject").disabled) return;
    box.classList.remove("hidden");
    document.getElementById("reject-reason").focus();
  }

  async function decide(kind) {
    const id = view.openId;
    if (!id || view.busy) return;
    let body;
    if (kind === "approve") {
      const typed = document.getElementById("approve-amount").value.trim();
      body = typed ? { amount: typed } : {};
    } else {
      const reason = document.getElementById("reject-reason").value.trim();
      if (!reason) { document.getElementById("reject-reason").focus(); return; }
      body = { reason };
    }
    view.busy = true;
    view.root.dataset.state = "deciding";
    try {
      const reply = await api("POST", `/v1/admin/refunds/${id}/${kind}`, body);
      // The case after the decision: the account's balance now, or another operator's outcome.
      const after = await get(`/v1/admin/refunds/${id}/case`);
      const account = `${after.account.name} (account ${after.account.id})`;
      if (reply.ok && kind === "approve") {
        const credited = reply.body.refund ? reply.body.refund.amount : "0";
        view.result = { kind: "good", outcome: "approved", refund: id, amount: credited, balance: after.account.balance, status: "succeeded",
          text: `Approved #${id}: ${credited} ${after.account.currency} credited to ${account}; balance now ${after.account.balance}. Order #${reply.body.order.id} refunded ${reply.body.order.refunded} of ${reply.body.order.charge}.` };
      } else if (reply.ok) {
        view.result = { kind: "info", outcome: "rejected", refund: id, amount: "0", balance: after.account.balance, status: "rejected",
          text: `Rejected #${id} (“${reply.body.decision_reason}”): no money moved; ${account} balance stays ${after.account.balance}.` };
      } else if (reply.body && reply.body.code === "refund_already_decided") {
        const r = after.refund;
        view.result = { kind: "warn", outcome: "already-decided", refund: id, amount: r.status === "succeeded" ? r.amount : "0", balance: after.account.balance, status: r.status,
          text: `Another operator decided #${id} first: ${r.status}${r.status === "succeeded" ? " " + r.amount + " credited" : ""}${r.decision_reason ? " (“" + r.decision_reason + "”)" : ""} at ${when(r.decided_at)}. Nothing more moved; balance ${after.account.balance}. (${reply.body.detail})` };
      } else {
        view.result = { kind: "bad", outcome: "refused", refund: id, status: after.refund.status, text: `The API refused: ${(reply.body && reply.body.detail) || reply.status} (${(reply.body && reply.body.code) || reply.status}).` };
        view.busy = false;
        await openCase(id);
        return;
      }
      await loadQueue();
      view.busy = false;
      await openNext();
    } catch (e) {
      view.busy = false;
      throw e;
    }
  }

  async function render(root) {
    view.root = root;
    view.result = null;
    await loadQueue();
    const keep = view.queue.find((r) => r.id === view.openId);
    await openCase(keep ? keep.id : (view.queue[0] ? view.queue[0].id : null));
  }

  function keys(event, typing) {
    if (typing) {
      if (event.target.id === "reject-reason" && event.key === "Enter" && !event.shiftKey) { event.preventDefault(); decide("reject"); }
      if (event.key === "Escape") { event.target.blur(); document.getElementById("reject-box")?.classList.add("hidden"); }
      if (event.target.id === "approve-amount" && event.key === "Enter") { event.preventDefault(); decide("approve"); }
      return;
    }
    const key = event.key.toLowerCase();
    if (key === "a" && !document.getElementById("approve")?.disabled) { event.preventDefault(); decide("approve"); }
    else if (key === "r") { event.preventDefault(); askReason(); }
    else if (key === "n" || key === "j") { event.preventDefault(); openNext(); }
  }

  pane({ id: "queue", title: "Review queue", roles: ["admin"], render, keys });
})();
