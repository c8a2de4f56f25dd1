"use strict";
// Pane: the refund reports and charts (both roles), read from the report endpoints.
(() => {
  const { $, el, get, pane, state } = Console;
  const view = { days: 30, tz: null };
  const money = (s) => {
    const n = Number(s);
    return n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: n !== 0 && Math.abs(n) < 1 ? 4 : 2 });
  };
  const pct = Console.pct;
  const int = (n) => Number(n).toLocaleString("en-US");
  const svgEl = (tag, attrs, text) => el(tag, { ...attrs, svg: true }, text);

  function localOffset() {
    const minutes = -new Date().getTimezoneOffset();
    if (minutes === 0) return "UTC";
    const a = Math.abs(minutes), sign = minutes < 0 ? "-" : "+";
    return sign + String(Math.floor(a / 60)).padStart(2, "0") + ":" + String(a % 60).padStart(2, "0");
  }
  function dateIn(offsetMinutes, shiftDays) {
    const t = new Date(Date.now() + offsetMinutes * 60000 + shiftDays * 86400000);
    return t.toISOString().slice(0, 10);
  }
  function tzMinutes(tz) {
    if (tz === "UTC") return 0;
    const m = /^([+-])(\d\d):(\d\d)$/.exec(tz);
    return m ? (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
  }
  function windowParams(groupBy, format) {
    const tz = view.tz || localOffset();
    const minutes = tzMinutes(tz);
    // Whole local days: from the start of (today − days + 1) to the start of tomorrow.
    const to = dateIn(minutes, 1), from = dateIn(minutes, 1 - view.days);
    const q = new URLSearchParams({ from, to, group_by: groupBy, timezone: tz });
    if (format) q.set("format", format);
    return q;
  }
  function endpoint() {
    return Console.isAdmin() ? "/v1/admin/reports/refunds" : "/v1/reports/refunds";
  }
  const report = (groupBy) => get(endpoint() + "?" + windowParams(groupBy));

  function rateClass(rate) { const r = Number(rate); return r >= 0.15 ? "high" : r >= 0.05 ? "mid" : "low"; }

  function drawTrend(data) {
    const svg = $("trend");
    svg.replaceChildren();
    const rows = data.rows;
    svg.dataset.points = String(rows.length);
    const W = svg.clientWidth || 1200, H = 260, L = 48, R = 64, T = 12, B = 30;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    if (!rows.length) { svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "No orders in this window")); return; }
    const maxRate = Math.max(0.05, ...rows.map((r) => Number(r.refund_rate_amount)));
    // Four gridlines at a round step (1 %, 2 %, 2.5 %, 5 %, …) that fits the highest point.
    const tick = [0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25].find((t) => t * 4 >= maxRate) || 0.25;
    const top = tick * 4;
    const maxCharged = Math.max(...rows.map((r) => Number(r.charged_amount)), 1);
    const step = (W - L - R) / rows.length;
    const x = (i) => L + step * (i + 0.5);
    const y = (rate) => T + (H - T - B) * (1 - rate / top);
    for (let k = 0; k <= 4; k++) {
      const v = (top * k) / 4, yy = y(v);
      svg.append(svgEl("line", { x1: L, x2: W - R, y1: yy, y2: yy, stroke: "#eef1f6" }));
      svg.append(svgEl("text", { x: L - 8, y: yy + 4, "text-anchor": "end" }, (Math.round(v * 1000) / 10).toLocaleString("en-US") + " %"));
    }
    rows.forEach((r, i) => {
      const h = (H - T - B) * (Number(r.charged_amount) / maxCharged) * 0.9;
      const bar = svgEl("rect", { x: x(i) - step * 0.36, width: Math.max(1, step * 0.72), y: H - B - h, height: h, fill: "#dbe4ff", rx: 2 });
      bar.append(svgEl("title", {}, `${r.label}: charged ${money(r.charged_amount)}`));
      svg.append(bar);
    });
    svg.append(svgEl("text", { x: W - R + 8, y: T + 10 }, "charged"));
    svg.append(svgEl("text", { x: W - R + 8, y: T + 24 }, money(String(maxCharged))));
    const path = rows.map((r, i) => (i ? "L" : "M") + x(i).toFixed(1) + " " + y(Number(r.refund_rate_amount)).toFixed(1)).join(" ");
    svg.append(svgEl("path", { d: path, fill: "none", stroke: "#e03131", "stroke-width": 2.2, "stroke-linejoin": "round" }));
    rows.forEach((r, i) => {
      const dot = svgEl("circle", { cx: x(i), cy: y(Number(r.refund_rate_amount)), r: rows.length > 60 ? 2 : 3.5, fill: "#fff", stroke: "#e03131", "stroke-width": 2,
        "data-group": r.group, "data-rate": r.refund_rate_amount, "data-refunded": r.refunded_amount });
      dot.append(svgEl("title", {}, `${r.label}: ${pct(r.refund_rate_amount)} refunded (${money(r.refunded_amount)} of ${money(r.charged_amount)}, ${int(r.orders_count)} orders)`));
      svg.append(dot);
    });
    const every = Math.ceil(rows.length / 12);
    rows.forEach((r, i) => {
      if (i % every === 0) svg.append(svgEl("text", { x: x(i), y: H - 10, "text-anchor": "middle" }, r.label.length === 10 ? r.label.slice(5) : r.label));
    });
  }

  function drawTable(target, data, nameHeader, limit) {
    const box = $(target);
    box.replaceChildren();
    const rows = data.rows.filter((r) => Number(r.refunded_amount) > 0 || data.group_by !== "reason").slice(0, limit);
    box.dataset.rows = String(rows.length);
    if (!rows.length) { box.append(el("div", { class: "empty" }, "Nothing refunded in this window")); return; }
    const max = Math.max(...rows.map((r) => Number(r.refunded_amount)), 1e-9);
    const table = el("table");
    const head = el("tr");
    const reason = data.group_by === "reason";
    for (const [t, cls] of [[nameHeader, ""], ["", ""], [reason ? "refunds" : "orders", "num"], ["refunded", "num"], [reason ? "share" : "rate", "num"]]) head.append(el("th", { class: cls }, t));
    table.append(head);
    const totalRefunded = Number(data.totals.refunded_amount) || 1;
    for (const r of rows) {
      const tr = el("tr", { "data-testid": target + "-row", "data-group": r.group, "data-refunded": r.refunded_amount });
      tr.append(el("td", { class: "name", title: r.label }, r.label));
      const track = el("div", { class: "bartrack" });
      track.append(el("div", { class: "bar", style: `width:${(100 * Number(r.refunded_amount)) / max}%` }));
      const cell = el("td", { style: "width:30%" }); cell.append(track); tr.append(cell);
      tr.append(el("td", { class: "num" }, int(reason ? r.refunds_count : r.orders_count)));
      tr.append(el("td", { class: "num" }, money(r.refunded_amount)));
      const rateCell = el("td", { class: "num" });
      const shown = reason ? String(Number(r.refunded_amount) / totalRefunded) : r.refund_rate_amount;
      rateCell.append(el("span", { class: "rate " + (reason ? "mid" : rateClass(r.refund_rate_amount)) }, pct(shown)));
      tr.append(rateCell);
      table.append(tr);
    }
    box.append(table);
  }

  function setKpi(id, text, exact) {
    const node = document.querySelector(`[data-testid="${id}"]`);
    node.textContent = text;
    node.dataset.value = exact;
  }

  function skeleton(root) {
    const range = el("div", { class: "range", id: "range" },
      [[7, "7 days"], [30, "30 days"], [90, "90 days"], [365, "12 months"]].map(([days, label]) =>
        el("button", { "data-days": days, class: days === view.days ? "on" : "", onclick: () => { view.days = days; Console.open(); } }, label)));
    root.append(
      el("div", { class: "toolbar" }, el("p", { class: "sub", id: "window" }), range,
        el("button", { class: "btn", id: "csv", onclick: downloadCsv }, "Download CSV")),
      el("div", { class: "kpis" },
        [["Orders", "kpi-orders", "", "kpi-orders-hint"], ["Charged", "kpi-charged", "", null, "placed in the window"],
         ["Refunded", "kpi-refunded", "bad", "kpi-refunds-hint"], ["Refund rate", "kpi-rate-amount", "bad", null, "of the amount charged"],
         ["Orders refunded", "kpi-rate-count", "", null, "share with any refund"], ["Pending review", "kpi-pending", "warn", null, "refund requests now"]]
          .map(([name, id, cls, hintId, hint]) => el("div", { class: "kpi " + cls },
            el("div", { class: "name" }, name), el("div", { class: "value", "data-testid": id }),
            el("div", { class: "hint", id: hintId }, hint || "")))),
      el("div", { class: "card" },
        el("h2", {}, "Refund rate over time"), el("div", { class: "note", id: "trend-note" }),
        el("div", { class: "legend" }, el("span", {}, el("i", { class: "swatch-bad" }), "refund rate (of amount charged)"), el("span", {}, el("i", { class: "swatch-soft" }), "charged")),
        el("svg", { id: "trend", width: "100%", height: "260", role: "img", "aria-label": "Refund rate over time" })),
      el("div", { class: "grid" },
        [["services", "Top services by refunded amount", "Orders placed in the window and what came back of them."],
         ["providers", "Top providers by refunded amount", "Upstream providers the services forward to."],
         ["reasons", "Refunds by reason", "Share of all money refunded in the window."],
         ["accounts", "Top accounts by refunded amount", "Resellers whose orders were refunded most."]]
          .filter(([id]) => id !== "accounts" || Console.isAdmin())
          .map(([id, title, note]) => el("div", { class: "card" }, el("h2", {}, title), el("div", { class: "note" }, note), el("div", { id })))),
      el("footer", {}, "Buckets are by order date: a period shows the orders placed in it and every refund of those orders, whenever it came. Amounts are exact decimal strings from the API; rates are rounded to 0.1 %."));
  }

  async function render(root, params) {
    if (params.get("days")) view.days = Math.max(1, Math.min(365, parseInt(params.get("days"), 10) || 30));
    if (params.get("tz")) view.tz = params.get("tz");
    document.body.dataset.state = "loading";
    skeleton(root);
    const admin = Console.isAdmin();
    const trendGroup = view.days > 92 ? "week" : "day";
    const wanted = [trendGroup, "service", "provider", "reason"].concat(admin ? ["account"] : []);
    let trend, services, providers, reasons, accounts;
    try {
      [trend, services, providers, reasons, accounts] = await Promise.all(wanted.map(report));
    } catch (e) { document.body.dataset.state = "error"; throw e; }
    const t = trend.totals;
    setKpi("kpi-orders", int(t.orders_count), String(t.orders_count));
    setKpi("kpi-charged", money(t.charged_amount), t.charged_amount);
    setKpi("kpi-refunded", money(t.refunded_amount), t.refunded_amount);
    setKpi("kpi-rate-amount", pct(t.refund_rate_amount), t.refund_rate_amount);
    setKpi("kpi-rate-count", pct(t.refund_rate_count), t.refund_rate_count);
    setKpi("kpi-pending", int(trend.pending_review_count), String(trend.pending_review_count));
    $("kpi-orders-hint").textContent = int(t.refunded_orders_count) + " with a refund";
    $("kpi-refunds-hint").textContent = int(t.refunds_count) + " refunds";
    const to = new Date(trend.to);
    $("window").textContent = `Orders placed ${trend.from.slice(0, 10)} to ${new Date(to - 1).toISOString().slice(0, 10)} (${trend.timezone}), by ${trendGroup}. Updated ${new Date().toLocaleTimeString()}.`;
    $("trend-note").textContent = `Share of each ${trendGroup}'s charged amount that was refunded; hover a point for the figures.`;
    Object.assign(document.body.dataset, { from: trend.from, to: trend.to, timezone: trend.timezone, trendGroup });
    drawTrend(trend);
    drawTable("services", services, "service", 8);
    drawTable("providers", providers, "provider", 8);
    drawTable("reasons", reasons, "reason", 12);
    if (admin) drawTable("accounts", accounts, "account", 8);
    document.body.dataset.state = "ready";
  }

  async function downloadCsv() {
    const r = await fetch(endpoint() + "?" + windowParams("service", "csv"), { headers: { authorization: "Bearer " + state.token } });
    if (!r.ok) return;
    const name = /filename="([^"]+)"/.exec(r.headers.get("content-disposition") || "");
    const a = el("a", { href: URL.createObjectURL(await r.blob()), download: name ? name[1] : "refunds.csv" });
    document.body.append(a); a.click(); a.remove();
  }

  pane({ id: "reports", title: "Reports", roles: ["admin", "reseller"], render });
})();
