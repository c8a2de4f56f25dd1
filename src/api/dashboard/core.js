"use strict";
// The console's core: sign-in, the token (this tab's sessionStorage only, never a URL),
// calls to the public API with the caller's own token, the pane registry, the nav and
// the keyboard. Each pane is one file that calls Console.pane({...}).
window.Console = (() => {
  const TOKEN_KEY = "console-token";
  const $ = (id) => document.getElementById(id);
  const state = { token: null, claims: null, panes: [], current: null };

  // Every blocked load or script is counted, so the browser tests can assert there is none.
  document.addEventListener("securitypolicyviolation", (event) => {
    const body = document.body;
    body.dataset.cspViolations = String(Number(body.dataset.cspViolations || 0) + 1);
    body.dataset.cspLast = event.violatedDirective + " " + event.blockedURI;
  });

  /** Builds an element: attrs are attributes (`style` goes through CSSOM, which CSP allows),
   * children are nodes or text. */
  function el(tag, attrs, ...children) {
    const svg = tag === "svg" || (attrs && attrs.svg);
    const node = document.createElementNS(svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "svg" || v === undefined || v === null || v === false) continue;
      if (k === "style") node.style.cssText = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** Replaces a node's children, skipping empty ones (null, false) and flattening lists. */
  function fill(node, ...children) {
    node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
      .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
    return node;
  }

  function decodeClaims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    } catch (e) { return null; }
  }

  class AuthError extends Error {}

  /** One call to the public API with the caller's token: {status, ok, body, headers}. */
  async function api(method, path, body, headers) {
    const init = { method, headers: { authorization: "Bearer " + state.token, ...(headers || {}) } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    const type = r.headers.get("content-type") || "";
    const parsed = type.includes("json") ? await r.json().catch(() => null) : await r.text();
    if (r.status === 401) {
      signOut("Your token expired or is not valid; sign in again.");
      throw new AuthError("unauthorized");
    }
    return { status: r.status, ok: r.ok, body: parsed, headers: r.headers };
  }

  /** The body of a successful call, or an Error carrying the problem document. */
  async function get(path) {
    const reply = await api("GET", path);
    if (!reply.ok) throw problemError(reply);
    return reply.body;
  }

  function problemError(reply) {
    const body = reply.body || {};
    return Object.assign(new Error(body.detail || ("the call failed with status " + reply.status)), { reply, code: body.code });
  }

  /** Every item of a paginated list, following `next_cursor` up to `max` items. */
  async function all(path, max) {
    const items = [];
    let cursor = null;
    do {
      const sep = path.includes("?") ? "&" : "?";
      const page = await get(path + sep + "limit=100" + (cursor ? "&starting_after=" + cursor : ""));
      items.push(...page.data);
      cursor = page.has_more ? page.next_cursor : null;
    } while (cursor && items.length < (max || 1000));
    return items;
  }

  const isAdmin = () => !!state.claims && state.claims.role === "admin";
  const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : "—");
  const pct = (s) => (Number(s) * 100).toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 }) + " %";
  const show = (v) => (v === null || v === undefined || v === "" ? "—" : String(v));

  /** A small definition list: [[label, value, testid?], …]. */
  function facts(rows) {
    return el("dl", { class: "facts" }, rows.map(([k, v, id]) => [el("dt", {}, k), el("dd", { "data-testid": id }, v instanceof Node ? v : show(v))]));
  }

  /** The type fields an order was placed with, as facts rows: lists one item per line. */
  const TYPE_FIELDS = ["comments", "usernames", "hashtags", "hashtag", "username", "media", "answer_number",
    "groups", "keywords", "country", "device", "type_of_traffic", "google_keyword", "referring_url"];
  function typeFacts(o) {
    const rows = [["type", o.service_type, "order-type"]];
    for (const name of TYPE_FIELDS) {
      if (o[name] === undefined || o[name] === null) continue;
      const value = Array.isArray(o[name]) ? el("pre", { class: "lines" }, o[name].join("\n")) : String(o[name]);
      rows.push([name.replace(/_/g, " "), value, "order-field-" + name]);
    }
    if (o.runs) rows.push(["runs × interval", `${o.runs} × ${o.interval} min`]);
    return rows;
  }

  /** A table from column headers and rows of cells (nodes or text). */
  function table(headers, rows, attrs) {
    return el("table", attrs || {},
      el("tr", {}, headers.map((h) => el("th", {}, h))),
      rows.map((cells) => (cells instanceof Node ? cells : el("tr", {}, cells.map((c) => el("td", {}, c instanceof Node ? c : show(c)))))));
  }

  /** A status word as a coloured pill. */
  function pill(word) { return el("span", { class: "pill " + word }, word); }

  /** A provider exchange log: when, action, how the reply was read, the raw reply. */
  function attemptsTable(attempts) {
    return table(["when", "action", "outcome", "reply"], attempts.map((a) =>
      [when(a.created_at).slice(5, 19), a.action, `${a.outcome}${a.http_status ? " · " + a.http_status : ""}`, el("pre", { class: "reply" }, show(a.body))]));
  }

  /** The active refund-rate alerts of one service or provider as a badge linking to the
   * alerts pane (count and highest level), or a dash. */
  function alertBadge(alerts, scope, id) {
    const mine = alerts.filter((a) => a.scope === scope && String(a.subject_id) === String(id));
    if (!mine.length) return el("span", { class: "muted", "data-alerts": 0 }, "—");
    const critical = mine.filter((a) => a.level === "critical").length;
    const level = critical ? "critical" : "warning";
    const words = [critical ? `${critical} critical` : null, mine.length > critical ? `${mine.length - critical} warning` : null];
    return el("a", { href: "#alerts", class: "pill " + level, "data-alerts": mine.length, "data-level": level,
      title: mine.map((a) => `${a.window} by ${a.measure}: ${pct(a.rate)} vs ${pct(a.threshold)}`).join("\n") }, words.filter(Boolean).join(", "));
  }

  /** Picks out the row `[data-<key>=id]` a link asked for (`#pane?id=…`), and scrolls to it. */
  function pick(root, key, id) {
    const row = id ? root.querySelector(`tr[data-${key}="${CSS.escape(id)}"]`) : null;
    if (row) { row.classList.add("picked"); row.scrollIntoView({ block: "center" }); }
  }

  /** Report parameters for orders placed in the last 30 days (UTC), grouped by `groupBy`. */
  function last30(groupBy) {
    const day = (shift) => new Date(Date.now() + shift * 86400000).toISOString().slice(0, 10);
    return new URLSearchParams({ from: day(-29), to: day(1), group_by: groupBy, timezone: "UTC" });
  }

  function notice(kind, text, attrs) {
    return el("div", { class: "notice " + kind, role: "status", ...(attrs || {}) }, text);
  }

  /** Registers a pane: {id, title, roles: ["admin"|"reseller"], render(root, params), keys?(event)}. */
  function pane(definition) { state.panes.push(definition); }

  function allowed(p) { return p.roles.includes(isAdmin() ? "admin" : "reseller"); }

  function route() {
    const [id, query] = location.hash.slice(1).split("?");
    return { id, params: new URLSearchParams(query || "") };
  }

  async function open() {
    const { id, params } = route();
    const first = state.panes.find(allowed);
    const target = state.panes.find((p) => p.id === id) || first;
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("on", a.dataset.pane === target.id);
    const main = $("panes");
    const root = el("section", { id: "pane-" + target.id, class: "pane", "data-pane": target.id, "data-state": "loading" });
    main.replaceChildren(root);
    state.current = target;
    if (!allowed(target)) {
      // The API refuses these calls to a reseller's token too; the page does not even try.
      root.dataset.state = "refused";
      root.append(el("div", { class: "card refused", "data-testid": "refused" },
        el("h2", {}, "Operators only"),
        el("p", {}, "This view is for operator accounts. Your token is a reseller's: the API refuses its calls (403 admin_only).")));
      state.current = null;
      return;
    }
    try {
      await target.render(root, params);
      if (root.dataset.state === "loading") root.dataset.state = "ready";
    } catch (e) {
      if (e instanceof AuthError) return;
      root.dataset.state = "error";
      root.append(notice("bad", e.message, { "data-testid": "pane-error" }));
    }
  }

  function showLogin(message) {
    $("login").classList.remove("hidden");
    $("panes").classList.add("hidden");
    for (const id of ["nav", "who", "logout"]) $(id).classList.add("hidden");
    $("login-error").textContent = message || "";
    document.body.dataset.state = "login";
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.claims = null;
    showLogin(message || "");
  }

  async function exchange(secret) {
    if (!secret.startsWith("rk_")) return secret;
    const r = await fetch("/v1/auth/token", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ api_key: secret }) });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.detail || "the API key was refused");
    return body.access_token;
  }

  async function start(secret) {
    try {
      const token = await exchange(secret.trim());
      const claims = decodeClaims(token);
      if (!claims) throw new Error("that is neither an access token nor an API key");
      state.token = token;
      state.claims = claims;
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch (e) { showLogin(e.message); return; }
    $("login").classList.add("hidden");
    $("panes").classList.remove("hidden");
    $("secret").value = "";
    $("who").textContent = isAdmin() ? "Operator · account " + state.claims.sub : "Reseller · account " + state.claims.sub;
    document.body.dataset.role = isAdmin() ? "admin" : "reseller";
    const nav = $("nav");
    nav.replaceChildren(...state.panes.filter(allowed).map((p) => el("a", { href: "#" + p.id, "data-pane": p.id }, p.title)));
    for (const id of ["nav", "who", "logout"]) $(id).classList.remove("hidden");
    document.body.dataset.state = "signed-in";
    await open();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (ev) => { ev.preventDefault(); start($("secret").value); });
    $("logout").addEventListener("click", () => signOut(""));
    window.addEventListener("hashchange", () => { if (state.token) open(); });
    document.addEventListener("keydown", (event) => {
      if (!state.current || !state.current.keys || event.ctrlKey || event.metaKey || event.altKey) return;
      const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName);
      state.current.keys(event, typing);
    });
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) start(saved); else showLogin("");
  });

  return { $, el, fill, api, get, all, problemError, pane, facts, typeFacts, table, attemptsTable, alertBadge, pick, last30, pill, notice, when, pct, show, isAdmin, state, AuthError, open };
})();
