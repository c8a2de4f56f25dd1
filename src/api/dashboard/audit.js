"use strict";
// Pane: the audit log (GET /v1/admin/audit): who changed what, when, from where, and the
// fields before and after, newest first, with the endpoint's filters (actor, action,
// target, account, time window in a time zone), "Load more" through the cursor and the
// CSV export. Read only: nothing here edits or deletes an entry. Other panes link here
// with a filter in the hash (`#audit?target_type=order&target_id=42`).
(() => {
  const { el, fill, pane, table, notice, when, show, state } = Console;
  const view = { root: null, filters: {}, entries: [], cursor: null, error: null };
  const FILTERS = ["actor", "action", "target_type", "target_id", "account_id", "from", "to", "timezone"];
  const ACTIONS = [
    "account.create", "account.suspend", "account.reactivate", "account.refund_allowlist_set", "account.refund_allowlist_end",
    "api_key.create", "api_key.revoke", "top_up.create", "top_up.refund", "top_up.chargeback",
    "refund.gateway_succeed", "refund.gateway_fail", "refund.approve", "refund.reject",
    "service.create", "service.update", "service.disable", "provider.create", "provider.update", "provider.catalog_sync",
    "order.outcome", "order.forwarding_attach", "order.forwarding_resend", "refill.complete", "refill.reject", "alert_rule.set",
    "webhook_endpoint.create", "webhook_endpoint.update", "webhook_endpoint.delete", "webhook_endpoint.rotate_secret",
    "signing_key.rotate", "master_key.rotate", "subscription.record_post", "subscription.end",
  ];
  const TARGETS = ["account", "api_key", "top_up", "refund", "service", "provider", "order", "refill", "webhook_endpoint", "signing_key", "master_key", "subscription"];

  function query() {
    const q = new URLSearchParams();
    for (const k of FILTERS) if (view.filters[k]) q.set(k, view.filters[k]);
    return q;
  }

  /** The target, linked to its pane where there is one. */
  function target(t) {
    const label = `${t.type}${t.id === null ? "" : " #" + t.id}`;
    const panes = { service: "services", provider: "providers" };
    if (panes[t.type]) return el("a", { href: `#${panes[t.type]}?id=${t.id}` }, label);
    // Subscriptions share the orders' ids: the order lookup shows either.
    if (t.type === "order" || t.type === "subscription") return el("a", { href: `#orders?id=${t.id}` }, label);
    return label;
  }

  function actor(a) {
    return a.kind === "cli" ? "cli" : `account #${a.account_id} · key #${a.api_key_id} · ${a.role}`;
  }

  /** Before → after, one line per changed field; secrets named, never shown. */
  function change(e) {
    const keys = new Set([...Object.keys(e.before || {}), ...Object.keys(e.after || {})]);
    const text = (v) => (v === undefined ? "—" : JSON.stringify(v));
    return el("div", { class: "change" },
      [...keys].map((k) => el("div", {}, el("code", {}, k), ": ",
        e.before ? el("span", { class: "muted" }, text(e.before[k]) + " → ") : null, text((e.after || {})[k]))),
      e.secrets.length ? el("div", { class: "muted", "data-secrets": e.secrets.join(",") }, "secret set: " + e.secrets.join(", ") + " (not recorded)") : null);
  }

  function rows() {
    return view.entries.map((e) => el("tr", { "data-entry": e.id, "data-action": e.action, "data-target": `${e.target.type}:${e.target.id}` },
      [when(e.created_at).slice(0, 19), actor(e.actor), el("code", {}, e.action), target(e.target),
        e.account_id === null ? "—" : el("a", { href: `#audit?account_id=${e.account_id}` }, "#" + e.account_id),
        change(e), `${show(e.client_addr)} · ${show(e.request_id)}`].map((c) => el("td", {}, c))));
  }

  function form() {
    const input = (name, placeholder) => el("input", { name, id: "audit-" + name, value: view.filters[name] || "", placeholder, "aria-label": name });
    const select = (name, options) => el("select", { name, id: "audit-" + name, "aria-label": name },
      el("option", { value: "" }, "any " + name.replace("_", " ")),
      options.map((o) => el("option", { value: o, selected: view.filters[name] === o }, o)));
    return el("form", { class: "filters", id: "audit-filters", onsubmit: (ev) => {
      ev.preventDefault();
      const data = new FormData(ev.target);
      view.filters = Object.fromEntries(FILTERS.map((k) => [k, (data.get(k) || "").trim()]));
      location.hash = "audit?" + query().toString();
    } },
    input("actor", "cli or account id"), select("action", ACTIONS), select("target_type", TARGETS),
    input("target_id", "target id"), input("account_id", "account id"),
    input("from", "from (2026-12-01 or RFC 3339)"), input("to", "to"), input("timezone", "UTC or +03:00"),
    el("button", { type: "submit", class: "btn", id: "audit-apply" }, "Filter"),
    el("button", { type: "button", class: "plain", id: "audit-csv", onclick: downloadCsv }, "Download CSV"));
  }

  function draw() {
    fill(view.root,
      el("div", { class: "toolbar" },
        el("p", { class: "sub" }, "Every operator's and the command line's writes, with who made them, from where, and the fields before and after. Append-only: entries go only after --audit-retention-days.")),
      el("div", { class: "card" }, form()),
      view.error ? notice("bad", view.error, { "data-testid": "audit-error" }) : null,
      el("div", { class: "card" },
        el("h2", {}, "Entries ", el("span", { "data-testid": "audit-count", "data-count": view.entries.length }, `· ${view.entries.length}${view.cursor ? "+" : ""}`)),
        view.entries.length
          ? table(["when (UTC)", "actor", "action", "target", "account", "change", "from · request"], rows(), { "data-testid": "audit-entries" })
          : el("div", { class: "empty", "data-testid": "no-entries" }, "No entry matches."),
        view.cursor ? el("button", { class: "plain", id: "audit-more", onclick: more }, "Load more") : null));
    view.root.dataset.state = "ready";
  }

  async function load(cursor) {
    const q = query();
    q.set("limit", "50");
    if (cursor) q.set("starting_after", cursor);
    const reply = await Console.api("GET", "/v1/admin/audit?" + q.toString());
    if (!reply.ok) {
      view.error = (reply.body && reply.body.detail) || ("the call failed with status " + reply.status);
      view.cursor = null;
      return;
    }
    view.error = null;
    view.entries.push(...reply.body.data);
    view.cursor = reply.body.has_more ? reply.body.next_cursor : null;
  }

  async function more() {
    await load(view.cursor);
    draw();
  }

  async function downloadCsv() {
    const q = query();
    q.set("format", "csv");
    const r = await fetch("/v1/admin/audit?" + q.toString(), { headers: { authorization: "Bearer " + state.token } });
    if (!r.ok) return;
    const a = el("a", { href: URL.createObjectURL(await r.blob()), download: "audit.csv" });
    document.body.append(a); a.click(); a.remove();
  }

  async function render(root, params) {
    view.root = root;
    view.filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ""]));
    view.entries = [];
    view.cursor = null;
    await load(null);
    draw();
  }

  pane({ id: "audit", title: "Audit", roles: ["admin"], render });
})();
