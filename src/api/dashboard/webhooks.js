"use strict";
// Pane: the caller's own webhook endpoints (a reseller's, or an operator's for alerts):
// create one with its URL and event types, see its signing secret once (create and
// rotate are the only replies that carry it; the page keeps it in memory only until it
// is hidden or the pane changes), send a test ping, rotate the secret, disable or enable,
// delete; the deliveries of the selected endpoint (each event's state: pending with its next
// attempt, succeeded, or failed for good; filterable by state) and every attempt of them,
// and redelivery of an event to it from its log or from the event log.
(() => {
  const { el, fill, api, get, all, pane, table, pill, notice, when, show, isAdmin } = Console;
  const blankForm = () => ({ url: "", description: "", events: new Set() });
  const view = { root: null, selected: null, secret: null, result: null, deleting: null, form: blankForm(), waiting: 0, types: null, state: "" };
  const DELIVERY_STATES = ["pending", "succeeded", "failed"];

  /** The event types one may subscribe to, from the server's own OpenAPI document (so the
   * boxes follow the API): every type but `ping` (sent by the test button only), and the
   * `alert.*` ones only for operators (the API refuses them to a reseller's endpoint). */
  async function subscribable() {
    if (!view.types) {
      const r = await fetch("/openapi.json");
      if (!r.ok) throw new Error("the API's event types could not be read (GET /openapi.json: " + r.status + ")");
      view.types = (await r.json()).components.schemas.EventType.enum;
    }
    return view.types.filter((t) => t !== "ping" && (isAdmin() || !t.startsWith("alert.")));
  }

  const refused = (reply) => {
    const b = reply.body || {};
    const fields = Array.isArray(b.errors) ? b.errors.map((e) => `${e.param || e.field || ""}: ${e.message || e.detail || ""}`).join("; ") : "";
    return `The API refused: ${b.detail || reply.status}${fields ? " (" + fields + ")" : ""} [${b.code || reply.status}]`;
  };

  async function create() {
    const body = { url: view.form.url.trim(), events: [...view.form.events] };
    if (view.form.description.trim()) body.description = view.form.description.trim();
    const reply = await api("POST", "/v1/webhook-endpoints", body);
    if (reply.ok) {
      view.secret = { endpoint: reply.body.id, secret: reply.body.secret, kind: "created" };
      view.selected = reply.body.id;
      view.form = blankForm();
      view.result = null;
    } else {
      view.result = { kind: "bad", text: refused(reply), attrs: { "data-code": (reply.body && reply.body.code) || "" } };
    }
    await draw();
  }

  async function rotate(e) {
    view.selected = e.id;
    const reply = await api("POST", `/v1/webhook-endpoints/${e.id}/rotate-secret`);
    if (reply.ok) {
      view.secret = { endpoint: e.id, secret: reply.body.secret, kind: "rotated", until: reply.body.previous_secret_expires_at };
      view.result = null;
    } else view.result = { kind: "bad", text: refused(reply) };
    await draw();
  }

  async function setStatus(e, status) {
    view.selected = e.id;
    const reply = await api("PATCH", `/v1/webhook-endpoints/${e.id}`, { status });
    view.result = reply.ok
      ? { kind: "good", text: `Endpoint #${e.id} is ${reply.body.status}.`, attrs: { "data-endpoint": e.id, "data-status": reply.body.status } }
      : { kind: "bad", text: refused(reply) };
    await draw();
  }

  async function remove(e) {
    const reply = await api("DELETE", `/v1/webhook-endpoints/${e.id}`);
    view.deleting = null;
    if (reply.ok) {
      if (view.selected === e.id) view.selected = null;
      if (view.secret && view.secret.endpoint === e.id) view.secret = null;
      view.result = { kind: "good", text: `Endpoint #${e.id} (${e.url}) deleted with its delivery log.`, attrs: { "data-deleted": e.id } };
    } else view.result = { kind: "bad", text: refused(reply) };
    await draw();
  }

  /** Waits (polling the log) for a new attempt of `eventId` to endpoint `id` after `afterId`. */
  async function attemptAfter(id, eventId, afterId) {
    for (let i = 0; i < 60; i++) {
      const page = await get(`/v1/webhook-endpoints/${id}/deliveries?limit=20`);
      const hit = page.data.find((d) => d.event_id === eventId && d.id > afterId);
      if (hit) return hit;
      await new Promise((ok) => setTimeout(ok, 250));
    }
    return null;
  }

  async function lastAttemptId(id) {
    const page = await get(`/v1/webhook-endpoints/${id}/deliveries?limit=1`);
    return page.data.length ? page.data[0].id : 0;
  }

  /** Shows that `what` was queued, waits for its attempt, then shows how it went. */
  async function follow(endpointId, eventId, what, afterId) {
    view.waiting++;
    view.result = { kind: "info", text: `${what} queued (event #${eventId}); waiting for the attempt…`, attrs: { "data-event": eventId, "data-pending": "true" } };
    await draw();
    const a = await attemptAfter(endpointId, eventId, afterId);
    view.waiting--;
    const ok = a && a.status_code !== null && a.status_code >= 200 && a.status_code < 300;
    view.result = !a
      ? { kind: "warn", text: `${what} (event #${eventId}) is queued; no attempt yet. Refresh the log later.`, attrs: { "data-event": eventId } }
      : { kind: ok ? "good" : "bad",
        text: `${what} (event #${eventId}) ${ok ? "delivered" : "failed"}: ${a.status_code === null ? "no answer" : "HTTP " + a.status_code} in ${a.duration_ms} ms${a.error ? " · " + a.error : ""}${ok ? "" : "; it is retried on the schedule"}.`,
        attrs: { "data-event": eventId, "data-status-code": show(a.status_code), "data-attempt": a.id } };
    await draw();
  }

  async function ping(e) {
    view.selected = e.id;
    const before = await lastAttemptId(e.id);
    const reply = await api("POST", `/v1/webhook-endpoints/${e.id}/test`);
    if (!reply.ok) { view.result = { kind: "bad", text: refused(reply) }; await draw(); return; }
    await follow(e.id, reply.body.id, "Test ping", before);
  }

  async function redeliver(e, eventId) {
    view.selected = e.id;
    const before = await lastAttemptId(e.id);
    const reply = await api("POST", `/v1/events/${eventId}/redeliver`, { endpoint_id: e.id });
    if (!reply.ok) { view.result = { kind: "bad", text: refused(reply) }; await draw(); return; }
    await follow(e.id, eventId, "Redelivery", before);
  }

  function secretBox() {
    const s = view.secret;
    if (!s) return null;
    const code = el("code", { "data-testid": "secret-value" }, s.secret);
    const copied = el("span", { class: "muted", role: "status" });
    const copy = async () => {
      try { await navigator.clipboard.writeText(s.secret); copied.textContent = "Copied."; } catch (err) {
        getSelection().selectAllChildren(code);
        copied.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
      }
    };
    return el("div", { class: "card secret", "data-testid": "secret", "data-endpoint": s.endpoint, "data-kind": s.kind },
      el("h2", {}, s.kind === "created" ? `Endpoint #${s.endpoint} created: its signing secret` : `Endpoint #${s.endpoint}: the new signing secret`),
      el("p", {}, el("strong", {}, "Shown this once. "), "Copy it into your receiver now: the API never shows it again and this page does not keep it. ",
        "Verify each delivery's webhook-signature with it (any Standard Webhooks library).",
        s.kind === "rotated" ? ` The previous secret keeps signing alongside it until ${when(s.until)}.` : ""),
      code,
      el("div", { class: "inline-form" },
        el("button", { class: "primary", id: "copy-secret", onclick: copy }, "Copy"),
        el("button", { class: "plain", id: "hide-secret", onclick: () => { view.secret = null; draw(); } }, "I have stored it: hide"), copied));
  }

  function endpointRow(e) {
    const enabled = e.status === "enabled";
    const notes = [e.description, e.disabled_reason && "disabled: " + e.disabled_reason,
      e.failing_since && "failing since " + when(e.failing_since).slice(0, 16),
      e.previous_secret_expires_at && "old secret signs until " + when(e.previous_secret_expires_at).slice(0, 16)].filter(Boolean).join(" · ");
    const actions = view.deleting === e.id
      ? [el("button", { class: "danger", "data-confirm-delete": e.id, onclick: () => remove(e) }, `Delete #${e.id} and its log`),
        el("button", { class: "plain", onclick: () => { view.deleting = null; draw(); } }, "Cancel")]
      : [el("button", { class: "plain", "data-deliveries": e.id, onclick: () => { view.selected = e.id; view.result = null; draw(); } }, "Deliveries"),
        el("button", { class: "plain", "data-test": e.id, disabled: !enabled, title: enabled ? "" : "enable it first", onclick: () => ping(e) }, "Send test"),
        el("button", { class: "plain", "data-rotate": e.id, onclick: () => rotate(e) }, "Rotate secret"),
        el("button", { class: "plain", "data-toggle": e.id, onclick: () => setStatus(e, enabled ? "disabled" : "enabled") }, enabled ? "Disable" : "Enable"),
        el("button", { class: "plain", "data-delete": e.id, onclick: () => { view.deleting = e.id; draw(); } }, "Delete…")];
    return el("tr", { "data-endpoint": e.id, "data-status": e.status, class: view.selected === e.id ? "selected" : null }, [
      `#${e.id}`, el("span", { class: "url" }, e.url), e.events.length ? e.events.join(", ") : "every event", el("span", { class: "pill " + e.status }, e.status),
      notes || "—", el("span", {}, actions),
    ].map((c, i) => el("td", { class: i === 5 ? "actions-cell" : null }, c)));
  }

  function createForm(types) {
    const f = view.form;
    const url = el("input", { class: "small", id: "endpoint-url", size: 56, value: f.url, placeholder: "https://hooks.example.com/smm", "aria-label": "Endpoint URL",
      oninput: (ev) => { f.url = ev.target.value; } });
    const description = el("input", { class: "small", id: "endpoint-description", size: 30, value: f.description, placeholder: "description (optional)",
      "aria-label": "Description", oninput: (ev) => { f.description = ev.target.value; } });
    const checks = el("div", { class: "checks", "data-testid": "event-types" }, types.map((t) => el("label", {},
      el("input", { type: "checkbox", value: t, "data-event-type": t, checked: f.events.has(t),
        onchange: (ev) => { if (ev.target.checked) f.events.add(t); else f.events.delete(t); } }), t)));
    const form = el("form", { id: "endpoint-form" },
      el("div", { class: "inline-form" }, url, description, el("button", { class: "primary", type: "submit", id: "create-endpoint" }, "Add endpoint")),
      checks,
      el("p", { class: "muted" }, "No box ticked: every event ", isAdmin() ? "(every account's, and the alerts)" : "of your account", ". ",
        "The URL must be https on a public address (unless the server allows private ones, for testing). ",
        "Deliveries are signed (Standard Webhooks) and retried on the Standard Webhooks schedule; dedupe on webhook-id."));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); create(); });
    return form;
  }

  /** One row per event sent to the endpoint: where its delivery stands. */
  function eventDeliveries(deliveries) {
    const filter = el("select", { class: "small", id: "delivery-state", "aria-label": "Deliveries in state",
      onchange: (ev) => { view.state = ev.target.value; draw(); } },
      [["", "every state"], ...DELIVERY_STATES.map((st) => [st, st])].map(([v, t]) => el("option", { value: v, selected: v === view.state }, t)));
    return [
      el("div", { class: "toolbar" }, el("h3", { class: "grow" }, "By event"), filter),
      deliveries.length ? table(["event", "type", "state", "attempts", "last attempt", "next attempt", "queued"], deliveries.map((d) =>
        el("tr", { "data-testid": "delivery", "data-delivery": d.id, "data-event": d.event_id, "data-state": d.state, "data-attempts": d.attempts,
          "data-next-attempt": d.next_attempt_at || "" }, [
          `#${d.event_id}`, d.event_type, pill(d.state), String(d.attempts),
          d.last_attempt_at ? when(d.last_attempt_at).slice(0, 19) : "—",
          d.next_attempt_at ? el("span", { "data-testid": "next-attempt" }, when(d.next_attempt_at).slice(0, 19))
            : el("span", { class: "muted" }, d.state === "failed" ? "none: gave up" : "—"),
          when(d.created_at).slice(0, 19),
        ].map((c) => el("td", {}, c)))), { "data-testid": "event-deliveries" })
        : el("div", { class: "empty", "data-testid": "no-deliveries" }, view.state ? `No ${view.state} delivery.` : "No delivery yet."),
      el("h3", {}, "Attempts"),
    ];
  }

  function deliveriesCard(e, attempts, deliveries, types) {
    const enabled = e.status === "enabled";
    return el("div", { class: "card", "data-testid": "deliveries", "data-endpoint": e.id },
      el("div", { class: "toolbar" },
        el("h2", { class: "grow" }, `Deliveries to #${e.id} · ${e.url}`),
        el("button", { class: "plain", id: "deliveries-refresh", onclick: () => draw() }, "Refresh")),
      el("div", { class: "note" }, "A delivery is pending while attempts remain (retried on the schedule), succeeded after a 2xx, failed after the last attempt, a 410 Gone, or when the endpoint was disabled. Redeliver starts one again."),
      eventDeliveries(deliveries),
      attempts.length ? table(["when", "event", "attempt", "status", "duration", "error", "response body", ""], attempts.map((a) =>
        el("tr", { "data-testid": "attempt", "data-attempt": a.id, "data-event": a.event_id, "data-status-code": show(a.status_code), "data-n": a.attempt }, [
          when(a.created_at).slice(0, 19), `#${a.event_id}${types.has(a.event_id) ? " · " + types.get(a.event_id) : ""}`, String(a.attempt),
          a.status_code === null ? pill("no answer") : el("span", { class: "pill " + (a.status_code < 300 ? "succeeded" : "failed") }, String(a.status_code)),
          `${a.duration_ms} ms`, show(a.error), el("pre", { class: "reply" }, show(a.response_body)),
          el("button", { class: "plain", "data-redeliver": a.event_id, disabled: !enabled, onclick: () => redeliver(e, a.event_id) }, "Redeliver"),
        ].map((c) => el("td", {}, c)))), { "data-testid": "attempts" })
        : el("div", { class: "empty" }, "No delivery yet. Send a test ping, or wait for an event."));
  }

  function eventsCard(e, events) {
    const enabled = e && e.status === "enabled";
    return el("div", { class: "card", "data-testid": "events" },
      el("h2", {}, "Event log (newest 20)"),
      el("div", { class: "note" }, "Everything you can see (GET /v1/events). A client that missed a delivery catches up from here; Redeliver sends the event again, from the first attempt of the schedule."),
      events.length ? table(["event", "type", "when", ""], events.map((ev) => el("tr", { "data-event": ev.id, "data-type": ev.type }, [
        `#${ev.id}`, ev.type, when(ev.created_at).slice(0, 19),
        e ? el("button", { class: "plain", "data-redeliver-event": ev.id, disabled: !enabled, onclick: () => redeliver(e, ev.id) }, `Redeliver to #${e.id}`) : "",
      ].map((c) => el("td", {}, c))))) : el("div", { class: "empty" }, "No event yet."));
  }

  async function draw() {
    const [endpoints, types] = await Promise.all([all("/v1/webhook-endpoints", 100), subscribable()]);
    // The endpoint last acted on, else the newest: its deliveries show below.
    const selected = endpoints.find((e) => e.id === view.selected) || endpoints[0] || null;
    view.selected = selected && selected.id;
    const only = view.state ? `&state=${view.state}` : "";
    const [attempts, deliveries, events] = await Promise.all([
      selected ? get(`/v1/webhook-endpoints/${selected.id}/deliveries?limit=50`).then((p) => p.data) : [],
      selected ? get(`/v1/webhook-endpoints/${selected.id}/event-deliveries?limit=50${only}`).then((p) => p.data) : [],
      get("/v1/events?limit=100").then((p) => p.data)]);
    const typeOf = new Map(events.map((ev) => [ev.id, ev.type]));
    const x = view.result;
    fill(view.root,
      x ? notice(x.kind, x.text, { "data-testid": "webhook-result", ...(x.attrs || {}) }) : null,
      secretBox(),
      el("div", { class: "card" },
        el("h2", {}, isAdmin() ? "Your webhook endpoints (operator: alerts and every account's events)" : "Your webhook endpoints"),
        endpoints.length ? table(["endpoint", "url", "events", "status", "notes", ""], endpoints.map(endpointRow), { "data-testid": "endpoints" })
          : el("div", { class: "empty", "data-testid": "no-endpoints" }, "No endpoint yet."),
        el("h3", {}, "Add an endpoint"),
        createForm(types)),
      selected ? deliveriesCard(selected, attempts, deliveries, typeOf) : null,
      eventsCard(selected, events.slice(0, 20)));
    view.root.dataset.state = view.waiting ? "waiting" : "ready";
  }

  async function render(root) {
    view.root = root;
    view.secret = null;
    view.result = null;
    view.deleting = null;
    view.waiting = 0;
    await draw();
  }

  pane({ id: "webhooks", title: "Webhooks", roles: ["admin", "reseller"], render });
})();
