"use strict";
// Pane: refund-rate alerts (GET /v1/admin/alerts): the current ones (`?active=true`) and
// the recent ones, cleared included, each linked to its service or provider with the
// numbers of its last change: level, window, measure, rate against the threshold, orders
// and refunded orders, charged and refunded, raised / escalated / cleared times.
(() => {
  const { el, fill, get, all, pane, table, pill, when, pct, show } = Console;
  const view = { root: null };
  const RECENT = 50;

  /** The service's or provider's name, linked to its pane with its row picked out. */
  function subject(a, names) {
    const name = names[a.scope].get(String(a.subject_id));
    const pane = a.scope === "service" ? "services" : "providers";
    return el("a", { href: `#${pane}?id=${a.subject_id}`, "data-subject-link": `${a.scope}:${a.subject_id}` },
      `${a.scope} #${a.subject_id}${name ? " · " + name : ""}`);
  }

  function rows(alerts, names) {
    return alerts.map((a) => el("tr", {
      "data-alert": a.id, "data-scope": a.scope, "data-subject": a.subject_id, "data-window": a.window,
      "data-measure": a.measure, "data-level": a.level, "data-active": String(a.active), "data-rate": a.rate,
      "data-threshold": a.threshold, "data-orders": a.orders, "data-refunded-orders": a.refunded_orders,
      "data-charged": a.charged, "data-refunded": a.refunded,
    }, [
      el("span", { class: "pill " + a.level }, a.level), subject(a, names), a.window,
      { amount: "by amount", count: "by count", unrecovered: "unrecovered credits" }[a.measure] || a.measure,
      el("span", {}, el("strong", {}, pct(a.rate)), el("span", { class: "muted" }, ` vs ${pct(a.threshold)}`)),
      `${a.refunded_orders} of ${a.orders}`, `${a.refunded} of ${a.charged}`,
      when(a.raised_at).slice(0, 19), show(a.escalated_at && when(a.escalated_at).slice(0, 19)),
      a.active ? pill("active") : show(a.cleared_at && when(a.cleared_at).slice(0, 19)),
    ].map((c) => el("td", {}, c))));
  }

  const HEADERS = ["level", "service / provider", "window", "measure", "rate vs threshold", "refunded orders", "refunded / charged", "raised", "escalated", "cleared"];

  async function draw() {
    const [active, recent, services, health] = await Promise.all([
      all("/v1/admin/alerts?active=true", 500), get(`/v1/admin/alerts?limit=${RECENT}`),
      all("/v1/admin/services", 1000), get("/v1/admin/provider-health")]);
    const names = {
      service: new Map(services.map((s) => [String(s.id), s.name])),
      provider: new Map(health.data.map((p) => [String(p.provider_id), p.name])),
    };
    const critical = active.filter((a) => a.level === "critical").length;
    const past = recent.data.filter((a) => !a.active);
    fill(view.root,
      el("div", { class: "toolbar" },
        el("p", { class: "sub" }, "A service's or provider's refund rate over a rolling window (orders placed in it), by amount or by count, ",
          "against its warning and critical thresholds; an alert clears only well below the warning rate. Rates and numbers are those of the alert's last change."),
        el("button", { class: "plain", id: "alerts-refresh", onclick: () => draw() }, "Refresh")),
      el("div", { class: "card" },
        el("h2", {}, "Active alerts ",
          el("span", { "data-testid": "active-count", "data-critical": critical, "data-warning": active.length - critical },
            active.length ? `· ${critical} critical, ${active.length - critical} warning` : "· none")),
        active.length
          ? table(HEADERS, rows(active, names), { "data-testid": "active-alerts" })
          : el("div", { class: "empty", "data-testid": "no-alerts" }, "No refund rate is above its threshold.")),
      el("div", { class: "card" },
        el("h2", {}, `Recently cleared (of the last ${RECENT} alerts)`),
        past.length
          ? table(HEADERS, rows(past, names), { "data-testid": "cleared-alerts" })
          : el("div", { class: "empty" }, "None cleared.")));
    view.root.dataset.state = "ready";
  }

  async function render(root) {
    view.root = root;
    await draw();
  }

  pane({ id: "alerts", title: "Alerts", roles: ["admin"], render });
})();
