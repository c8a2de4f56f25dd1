// The console in real headless Chromium (the Debian package, driven by playwright-core):
// every step is a click or a key press on the page, and every money figure the page shows
// is checked against the API to the micro-unit.
//
// usage: node console.mjs BASE_URL ADMIN_KEY SHOTS_DIR
//   (tests/console/run.sh starts the server on a fresh database and runs this)
import http from "node:http";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [BASE, ADMIN_KEY, SHOTS] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
fs.mkdirSync(SHOTS, { recursive: true });
let failures = 0, passed = 0;

const text = (v) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() + "µ" : x));
function check(what, got, want) {
  if (text(got) === text(want)) { passed++; return; }
  failures++;
  console.error(`FAIL ${what}: got ${text(got)}, want ${text(want)}`);
}

// Money on the wire is a decimal string; compare in integer micro-units, never floats.
function micros(s) {
  const [whole, frac = ""] = String(s).replace(/^-/, "").split(".");
  const value = BigInt(whole) * 1000000n + BigInt((frac + "000000").slice(0, 6));
  return String(s).startsWith("-") ? -value : value;
}

async function call(method, p, token, body, headers) {
  const r = await fetch(BASE + p, {
    method, headers: { ...(token ? { authorization: "Bearer " + token } : {}), ...(body ? { "content-type": "application/json" } : {}), ...(headers || {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
  if (!r.ok && !(headers && headers["x-expect-error"])) throw new Error(`${method} ${p} -> ${r.status} ${text}`);
  return { status: r.status, body: json, headers: r.headers };
}
const tokenFor = async (key) => (await call("POST", "/v1/auth/token", null, { api_key: key })).body.access_token;
const balance = async (token) => micros((await call("GET", "/v1/account", token)).body.balance);
const ledger = async (token) => (await call("GET", "/v1/ledger?limit=100", token)).body.data;

// A stand-in upstream provider on loopback: its `add` answers too late (the send becomes
// `ambiguous`), its `status` reads the order as in progress.
const upstream = http.createServer((req, res) => {
  let raw = "";
  req.on("data", (c) => (raw += c));
  req.on("end", () => {
    const fields = new URLSearchParams(raw);
    if (fields.get("action") === "add") {
      setTimeout(() => { res.end('{"order":5}'); }, 1500);
    } else {
      // It bills in USD, as configured, but its status replies name EUR: the mismatch the
      // providers pane shows.
      res.end(JSON.stringify({ 5: { charge: "1", start_count: "10", status: "In progress", remains: "1000", currency: "EUR" } }));
    }
  });
}).listen(0, "127.0.0.1");
await new Promise((ok) => upstream.once("listening", ok));
const UPSTREAM = `http://127.0.0.1:${upstream.address().port}/api/v2`;

// A second stand-in provider that takes every order at once (the alert burst goes to it).
let quickIds = 100;
const quick = http.createServer((req, res) => {
  let raw = "";
  req.on("data", (c) => (raw += c));
  req.on("end", () => {
    const fields = new URLSearchParams(raw);
    if (fields.get("action") === "add") { res.end(JSON.stringify({ order: quickIds++ })); return; }
    const ids = (fields.get("orders") || fields.get("order") || "").split(",").filter(Boolean);
    res.end(JSON.stringify(Object.fromEntries(ids.map((id) => [id, { charge: "1", start_count: "0", status: "Pending", remains: "1000", currency: "USD" }]))));
  });
}).listen(0, "127.0.0.1");
await new Promise((ok) => quick.once("listening", ok));

// The reseller's webhook receiver on loopback: keeps every request, answers 200 (500 on
// /fail, for a delivery that stays pending).
const received = [];
const receiver = http.createServer((req, res) => {
  let raw = "";
  req.on("data", (c) => (raw += c));
  req.on("end", () => {
    received.push({ headers: req.headers, body: raw });
    if (req.url.startsWith("/fail")) { res.statusCode = 500; res.end("down for maintenance"); return; }
    res.end("thanks, got it");
  });
}).listen(0, "127.0.0.1");
await new Promise((ok) => receiver.once("listening", ok));
const HOOK_URL = `http://127.0.0.1:${receiver.address().port}/hooks`;
// Standard Webhooks, checked here with node's own HMAC, not the server's code.
function signedBy(request, secret) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const h = request.headers;
  const want = "v1," + crypto.createHmac("sha256", key).update(`${h["webhook-id"]}.${h["webhook-timestamp"]}.${request.body}`).digest("base64");
  return (h["webhook-signature"] || "").split(" ").includes(want);
}
const deliveredAs = (eventId) => received.filter((r) => r.headers["webhook-id"] === String(eventId));
async function until(what, probe, ms) {
  for (let waited = 0; waited < (ms || 15000); waited += 100) {
    const value = await probe();
    if (value) return value;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error("timed out waiting for " + what);
}

// ---- Data, through the API as any script would make it.
const ADMIN = await tokenFor(ADMIN_KEY);
const created = (await call("POST", "/v1/admin/accounts", ADMIN, { name: "Acme Media", role: "reseller" })).body;
const reseller = { id: created.account.id, key: created.api_key };
reseller.token = await tokenFor(reseller.key);
await call("POST", `/v1/admin/accounts/${reseller.id}/top-ups`, ADMIN, { amount: "50", gateway: "stripe", gateway_ref: "pi_console_1" });
const service = async (name, rate, extra) => (await call("POST", "/v1/admin/services", ADMIN,
  { name, category: "Instagram", type: "default", rate, min: 10, max: 100000, cancel: true, ...(extra || {}) })).body.id;
const likes = await service("Instagram Likes", "2");
const views = await service("TikTok Views", "3");
const order = async (serviceId, quantity, link) => (await call("POST", "/v1/orders", reseller.token,
  { service_id: serviceId, link: link || "https://instagram.com/p/console", quantity }, { "idempotency-key": "o-" + Math.random() })).body.id;
const outcome = (id, body) => call("POST", `/v1/admin/orders/${id}/outcome`, ADMIN, body);
const disputed = [];
for (const [note, amount] of [["lost 25% overnight", "0.5"], ["never arrived", null], ["dropped", "0.7"]]) {
  const id = await order(likes, 1000);
  await outcome(id, { status: "completed", start_count: 120 });
  const r = await call("POST", `/v1/orders/${id}/refunds`, reseller.token, { reason: "dropped", note, ...(amount ? { amount } : {}) });
  disputed.push({ order: id, refund: r.body.id });
}
const pageDisputeOrder = await order(likes, 1000, "https://instagram.com/p/filed-from-the-page");
await outcome(pageDisputeOrder, { status: "completed", start_count: 50 });
// In flight on the service to disable: two pending (3 each, back in full) and one half delivered (1.5 back).
await order(views, 1000); await order(views, 1000);
const halfway = await order(views, 1000);
await outcome(halfway, { status: "in_progress", remains: 500, start_count: 7 });
const provider = (await call("POST", "/v1/admin/providers", ADMIN, { allow_private_network: true, name: "Upstream X", url: UPSTREAM, key: "upstream-secret", timeout_ms: 300 })).body.id;
const routed = await service("YouTube Views", "1", { provider_id: provider, provider_service_id: "77" });
const ambiguousOrder = await order(routed, 1000, "https://youtube.com/watch?v=console");
for (let i = 0; i < 100; i++) {
  const f = await call("GET", `/v1/admin/orders/${ambiguousOrder}/forwarding`, ADMIN);
  if (f.body.state === "ambiguous") break;
  await new Promise((ok) => setTimeout(ok, 100));
}
check("the stand-in's late reply leaves the send ambiguous", (await call("GET", `/v1/admin/orders/${ambiguousOrder}/forwarding`, ADMIN)).body.state, "ambiguous");

// A burst of partial refunds on one provider (its own reseller, so the disputes above are
// untouched): 5 orders of 1 each, 2 of them half delivered → 40 % by count, 20 % by amount,
// over the warning (10 %) and, by count, the critical (25 %) rate; alerts count from 5 orders.
const burstCo = (await call("POST", "/v1/admin/accounts", ADMIN, { name: "Burst Co", role: "reseller" })).body;
const burstToken = await tokenFor(burstCo.api_key);
await call("POST", `/v1/admin/accounts/${burstCo.account.id}/top-ups`, ADMIN, { amount: "20", gateway: "stripe", gateway_ref: "pi_console_burst" });
const alertProvider = (await call("POST", "/v1/admin/providers", ADMIN, { allow_private_network: true, name: "Upstream Q", url: `http://127.0.0.1:${quick.address().port}/api/v2`, key: "quick-secret", timeout_ms: 2000 })).body.id;
const burstService = await service("Instagram Followers", "1", { provider_id: alertProvider, provider_service_id: "9" });
const burst = [];
for (let i = 0; i < 5; i++) {
  burst.push((await call("POST", "/v1/orders", burstToken, { service_id: burstService, link: "https://instagram.com/burst" + i, quantity: 1000 }, { "idempotency-key": "burst-" + i })).body.id);
}
for (const id of burst.slice(0, 2)) await outcome(id, { status: "partial", remains: 500 });
const activeAlerts = async () => (await call("GET", "/v1/admin/alerts?active=true&limit=100", ADMIN)).body.data;
const byCount = await until("the provider's count alert to be critical", async () =>
  (await activeAlerts()).find((a) => a.scope === "provider" && a.subject_id === alertProvider && a.window === "1h" && a.measure === "count" && a.level === "critical"));
check("alert: 2 of 5 orders refunded, 40 % by count against the critical 25 %", [byCount.rate, byCount.threshold, byCount.orders, byCount.refunded_orders], ["0.4", "0.25", 5, 2]);
// One more pass settles every window and measure before the page reads them.
await until("the alerts to settle", async () => {
  const a = text(await activeAlerts());
  await new Promise((ok) => setTimeout(ok, 300));
  return a === text(await activeAlerts());
});

// ---- The browser.
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const seen = []; // every page opened, to check for CSP violations and page errors at the end
async function signedIn(key) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => { failures++; console.error("FAIL page error: " + e.message); });
  await page.goto(BASE + "/dashboard");
  await page.fill("#secret", key);
  await page.click("#sign-in");
  await page.waitForSelector("section.pane[data-state=ready], section.pane[data-state=refused]");
  seen.push(page);
  return page;
}
const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, name + ".png") });
const attr = (page, selector, name) => page.getAttribute(selector, name);

// The CSP is strict: own scripts and styles only, no inline script, only this origin.
const csp = (await call("GET", "/dashboard")).headers.get("content-security-policy");
check("CSP allows scripts only from the server", /script-src 'self';/.test(csp) && !csp.includes("unsafe"), true);
check("CSP connects only to this origin", csp.includes("connect-src 'self'"), true);

try {
// 1. One click approves the oldest request; the balance and ledger move by exactly its amount.
const ops = await signedIn(ADMIN_KEY);
check("the queue opens the oldest request", await attr(ops, "[data-testid=case]", "data-refund"), String(disputed[0].refund));
check("the case shows the order's charge", await ops.textContent("[data-testid=case-charge]"), "2");
check("the case shows the policy rule", await ops.textContent("[data-testid=policy-rule]"), "manual_review");
check("the token is not in the URL", ops.url().includes("eyJ") || ops.url().includes("rk_"), false);
check("the token is in sessionStorage", (await ops.evaluate(() => sessionStorage.getItem("console-token") || "")).startsWith("eyJ"), true);
await shot(ops, "queue");
let before = await balance(reseller.token);
await ops.click("#approve");
await ops.waitForSelector("[data-testid=result][data-outcome=approved]");
let after = await balance(reseller.token);
check("approve: the page shows the amount credited", await attr(ops, "[data-testid=result]", "data-amount"), "0.5");
check("approve: the balance moved by exactly 0.5", after - before, 500000n);
check("approve: the page shows the new balance", micros(await attr(ops, "[data-testid=result]", "data-balance")), after);
let entries = await ledger(reseller.token);
check("approve: one ledger entry, the refund", [entries[0].kind, entries[0].refund_id, micros(entries[0].amount)], ["refund", disputed[0].refund, 500000n]);
await ops.waitForSelector(`[data-testid=case][data-refund="${disputed[1].refund}"]`);
await shot(ops, "decision");

// N opens the next request, and wraps round to the oldest.
await ops.keyboard.press("n");
await ops.waitForSelector(`[data-testid=case][data-refund="${disputed[2].refund}"]`);
await ops.keyboard.press("n");
await ops.waitForSelector(`[data-testid=case][data-refund="${disputed[1].refund}"]`);
passed++;

// 2. R asks for a reason; Enter rejects. No money moves.
before = await balance(reseller.token);
await ops.keyboard.press("r");
await ops.fill("#reject-reason", "delivered in full, start count 120 confirms");
await ops.keyboard.press("Enter");
await ops.waitForSelector("[data-testid=result][data-outcome=rejected]");
const rejected = (await call("GET", `/v1/admin/refunds/${disputed[1].refund}/case`, ADMIN)).body.refund;
check("reject: stored with the reason typed", [rejected.status, rejected.decision_reason], ["rejected", "delivered in full, start count 120 confirms"]);
check("reject: no money moved", await balance(reseller.token), before);

// 3. Two operators approve the same request at once (one clicks, the other presses A):
// one refund; the other sees its outcome.
await ops.waitForSelector(`[data-testid=case][data-refund="${disputed[2].refund}"]`);
const ops2 = await signedIn(ADMIN_KEY);
check("the second operator has the same request open", await attr(ops2, "[data-testid=case]", "data-refund"), String(disputed[2].refund));
before = await balance(reseller.token);
await Promise.all([ops.click("#approve"), ops2.keyboard.press("a")]);
// Each page's result for this request (the first page still shows the rejection's until then).
await Promise.all([ops, ops2].map((p) => p.waitForSelector(`[data-testid=result][data-refund="${disputed[2].refund}"]`)));
const outcomes = (await Promise.all([ops, ops2].map((p) => attr(p, "[data-testid=result]", "data-outcome")))).sort();
check("race: one approved, the other shown the first's outcome", outcomes, ["already-decided", "approved"]);
const loser = (await attr(ops, "[data-testid=result]", "data-outcome")) === "already-decided" ? ops : ops2;
check("race: the loser sees the winner's status and amount", [await attr(loser, "[data-testid=result]", "data-status"), await attr(loser, "[data-testid=result]", "data-amount")], ["succeeded", "0.7"]);
check("race: the balance moved once, by 0.7", (await balance(reseller.token)) - before, 700000n);
const raced = (await call("GET", `/v1/admin/orders/${disputed[2].order}`, ADMIN)).body;
check("race: one refund entry in the order's ledger", raced.ledger.filter((e) => e.kind === "refund").map((e) => e.amount), ["0.7"]);
await shot(loser, "race");

// 4. Disable: the dry run's figures are what the real call then refunds.
await ops.goto(BASE + "/dashboard#services");
await ops.waitForSelector("#pane-services[data-state=ready]");
await shot(ops, "services");
before = await balance(reseller.token);
await ops.click(`[data-disable="${views}"]`);
await ops.waitForSelector("[data-testid=disable-preview]");
const preview = { amount: await attr(ops, "[data-testid=disable-preview]", "data-amount"), inFlight: await attr(ops, "[data-testid=disable-preview]", "data-in-flight") };
check("preview: 3 + 3 + 1.5 from three orders in flight", [preview.amount, preview.inFlight], ["7.5", "3"]);
check("preview: nothing moved yet", await balance(reseller.token), before);
await shot(ops, "disable-preview");
await ops.click("#confirm-disable");
await ops.waitForSelector("[data-testid=disable-result]");
check("disable: the page shows the preview's amount refunded", await attr(ops, "[data-testid=disable-result]", "data-amount"), preview.amount);
check("disable: the balance moved by the preview's amount", (await balance(reseller.token)) - before, micros(preview.amount));
check("disable: the service is disabled", await attr(ops, `tr[data-service="${views}"]`, "data-status"), "disabled");

// 5. Providers: the ambiguous send, reconciled by attaching the provider's id.
await ops.goto(BASE + "/dashboard#providers");
await ops.waitForSelector(`[data-testid=ambiguous][data-order="${ambiguousOrder}"]`);
check("providers: the health row counts the ambiguous send", await attr(ops, `tr[data-provider="${provider}"]`, "data-ambiguous"), "1");
check("providers: the attempt log is beside it", (await ops.textContent(`[data-testid=ambiguous][data-order="${ambiguousOrder}"]`)).includes("add"), true);
await shot(ops, "providers");
await ops.fill(`[data-attach-input="${ambiguousOrder}"]`, "5");
await ops.click(`[data-attach="${ambiguousOrder}"]`);
await ops.waitForSelector("[data-testid=reconcile-result]");
check("reconcile: the page shows the new state", await attr(ops, "[data-testid=reconcile-result]", "data-state"), "sent");
check("reconcile: the API has the provider's id", (await call("GET", `/v1/admin/orders/${ambiguousOrder}/forwarding`, ADMIN)).body.provider_order_id, "5");
// Polled once attached, its reply names EUR: the provider is flagged, and the pane says so.
await until("the reply in another currency to be flagged", async () =>
  (await call("GET", "/v1/admin/providers", ADMIN)).body.data.find((p) => p.id === provider).currency_mismatch === "EUR");
// The worker settles every send first (the burst's orders are sent, or withdrawn when an
// outcome came before the send), so the page and the report below read the same orders.
await until("every send to be settled", async () =>
  (await call("GET", "/v1/admin/provider-health", ADMIN)).body.data.every((p) => (p.orders.queued ?? 0) === 0 && (p.orders.sending ?? 0) === 0));
await ops.goto(BASE + "/dashboard#queue");
await ops.goto(BASE + "/dashboard#providers");
await ops.waitForSelector(`tr[data-provider="${provider}"] [data-mismatch]`);
check("providers: the currency mismatch is shown on its row", await attr(ops, `tr[data-provider="${provider}"] [data-mismatch]`, "data-mismatch"), "EUR");
check("providers: the other provider shows none", await ops.$(`tr[data-provider="${alertProvider}"] [data-mismatch]`), null);
// The provider money card draws the provider money report of the same 30 days.
const day = (shift) => new Date(Date.now() + shift * 86400000).toISOString().slice(0, 10);
const moneyReport = async (groupBy) => (await call("GET", "/v1/admin/reports/provider-money?" +
  new URLSearchParams({ from: day(-29), to: day(1), group_by: groupBy, timezone: "UTC" }), ADMIN)).body;
const [moneyByProvider, moneyByDay] = [await moneyReport("provider"), await moneyReport("day")];
check("provider money: a row per provider in the report", Number(await ops.$$eval("[data-testid=money-table] tr[data-money-provider]", (rows) => rows.length)),
  moneyByProvider.rows.length + 1);
for (const r of [...moneyByProvider.rows, { ...moneyByProvider.totals, group: "total" }]) {
  const row = `[data-testid=money-table] tr[data-money-provider="${r.group}"]`;
  check(`provider money: ${r.group}'s figures are the report's`,
    await Promise.all(["orders-count", "revenue", "provider-cost", "margin", "refunds-paid", "credits-recovered", "unrecovered"].map((k) => attr(ops, row, "data-" + k))),
    [String(r.orders_count), r.revenue, r.provider_cost, r.margin, r.refunds_paid, r.credits_recovered, r.unrecovered]);
}
check("provider money: the burst's provider's row counts the orders it took", moneyByProvider.rows.find((r) => r.group === String(alertProvider)).orders_count > 0, true);
check("provider money: the chart has a point per day of the report", Number(await attr(ops, "[data-testid=money-chart]", "data-points")), moneyByDay.rows.length);
await shot(ops, "provider-money");

// 6. Order lookup by id, with the order's ledger entries.
await ops.goto(BASE + "/dashboard#orders");
await ops.waitForSelector("#pane-orders[data-state=ready]");
await ops.selectOption("#lookup-by", "id");
await ops.fill("#lookup-q", String(disputed[0].order));
await ops.keyboard.press("Enter");
await ops.waitForSelector(`[data-testid=order-detail][data-order="${disputed[0].order}"]`);
const rows = await ops.$$eval("[data-testid=ledger-row]", (trs) => trs.map((tr) => [tr.dataset.kind, tr.dataset.amount]));
check("lookup: the order's ledger entries", rows, [["order_charge", "-2"], ["refund", "0.5"]]);
await shot(ops, "order-lookup");
await ops.selectOption("#lookup-by", "link");
await ops.fill("#lookup-q", "https://instagram.com/p/filed-from-the-page");
await ops.keyboard.press("Enter");
await ops.waitForSelector(`[data-testid=order-detail][data-order="${pageDisputeOrder}"]`);
passed++;

// 6a. Audit: the order's page links to its history; the pane's filters ask the API.
await ops.goto(BASE + `/dashboard#orders?id=${disputed[0].order}`);
await ops.waitForSelector(`[data-testid=order-detail][data-order="${disputed[0].order}"]`);
await ops.click(`[data-history="order:${disputed[0].order}"]`);
await ops.waitForSelector("#pane-audit[data-state=ready]");
const orderHistory = await ops.$$eval("[data-testid=audit-entries] tr[data-entry]", (trs) => trs.map((tr) => [tr.dataset.action, tr.dataset.target]));
const apiHistory = (await call("GET", `/v1/admin/audit?target_type=order&target_id=${disputed[0].order}`, ADMIN)).body.data;
check("audit: the order's history is the API's", orderHistory, apiHistory.map((e) => [e.action, `order:${disputed[0].order}`]));
check("audit: the operator's outcome is in it", orderHistory.map(([action]) => action), ["order.outcome"]);
await ops.selectOption("#audit-target_type", "");
await ops.fill("#audit-target_id", "");
await ops.selectOption("#audit-action", "refund.approve");
await ops.click("#audit-apply");
await ops.waitForFunction(() => location.hash.includes("action=refund.approve") && document.querySelector("#pane-audit[data-state=ready]"));
const approvals = await ops.$$eval("[data-testid=audit-entries] tr[data-entry]", (trs) => trs.map((tr) => Number(tr.dataset.entry)));
const apiApprovals = (await call("GET", "/v1/admin/audit?action=refund.approve&limit=100", ADMIN)).body.data;
check("audit: filtered by action, the API's entries", approvals, apiApprovals.map((e) => e.id));
check("audit: the approvals the console made are there", apiApprovals.length >= 2, true);
await shot(ops, "audit");

// 6b. Alerts: the burst's alerts with the API's numbers, each linked to its provider or
// service, whose panes count them.
await ops.goto(BASE + "/dashboard#alerts");
await ops.waitForSelector("#pane-alerts[data-state=ready]");
const shownAlerts = await ops.$$eval("[data-testid=active-alerts] tr[data-alert]", (trs) => trs.map((tr) => ({ ...tr.dataset })));
const apiAlerts = await activeAlerts();
check("alerts: every active alert is listed, newest first", shownAlerts.map((a) => Number(a.alert)), apiAlerts.map((a) => a.id));
check("alerts: each row has the API's level, window, measure and numbers", shownAlerts.map((a) =>
  [a.scope, a.subject, a.window, a.measure, a.level, a.rate, a.threshold, a.orders, a.refundedOrders, micros(a.charged), micros(a.refunded)]),
apiAlerts.map((a) => [a.scope, String(a.subject_id), a.window, a.measure, a.level, a.rate, a.threshold, String(a.orders), String(a.refunded_orders), micros(a.charged), micros(a.refunded)]));
check("alerts: the provider and its service both alert, over the three windows", [...new Set(apiAlerts.map((a) => `${a.scope}:${a.subject_id}`))].sort(),
  [`provider:${alertProvider}`, `service:${burstService}`].sort());
const countRow = `[data-testid=active-alerts] tr[data-alert="${byCount.id}"]`;
check("alerts: the row reads rate vs threshold as percentages", (await ops.textContent(countRow)).includes("40.0 % vs 25.0 %"), true);
check("alerts: the header counts the critical ones", Number(await attr(ops, "[data-testid=active-count]", "data-critical")), apiAlerts.filter((a) => a.level === "critical").length);
await shot(ops, "alerts");
await ops.click(`${countRow} [data-subject-link]`);
await ops.waitForSelector(`#pane-providers[data-state=ready] tr.picked[data-provider="${alertProvider}"]`);
check("alerts → providers: the provider's badge counts its active alerts", Number(await attr(ops, `tr[data-provider="${alertProvider}"] [data-alerts]`, "data-alerts")),
  apiAlerts.filter((a) => a.scope === "provider" && a.subject_id === alertProvider).length);
check("providers: no badge on the provider without alerts", await attr(ops, `tr[data-provider="${provider}"] [data-alerts]`, "data-alerts"), "0");
await ops.goto(BASE + `/dashboard#services?id=${burstService}`);
await ops.waitForSelector(`#pane-services[data-state=ready] tr.picked[data-service="${burstService}"]`);
check("services: the service's badge counts its active alerts", Number(await attr(ops, `tr[data-service="${burstService}"] [data-alerts]`, "data-alerts")),
  apiAlerts.filter((a) => a.scope === "service" && a.subject_id === burstService).length);
// An operator may subscribe its own endpoints to the alert events.
await ops.goto(BASE + "/dashboard#webhooks");
await ops.waitForSelector("#pane-webhooks[data-state=ready]");
const EVENT_TYPES = (await call("GET", "/openapi.json")).body.components.schemas.EventType.enum;
check("operator webhooks: a box for every event type but ping, the alerts included", await ops.$$eval("[data-event-type]", (xs) => xs.map((x) => x.value)),
  EVENT_TYPES.filter((t) => t !== "ping"));
check("operator webhooks: the three alert events among them", await ops.$$eval("[data-event-type^='alert.']", (xs) => xs.length), 3);

// 7. The reseller files a dispute from the page and sees it pending.
const mine = await signedIn(reseller.key);
check("the reseller lands on its own orders", await mine.getAttribute("section.pane", "data-pane"), "mine");
await mine.click(`[data-dispute="${pageDisputeOrder}"]`);
await mine.fill("#dispute-form [name=amount]", "0.3");
await mine.fill("#dispute-form [name=note]", "30% dropped within a day");
await mine.click("#file-dispute");
await mine.waitForSelector("[data-testid=dispute-result]");
check("dispute: pending review", await attr(mine, "[data-testid=dispute-result]", "data-status"), "pending_review");
const filed = await attr(mine, "[data-testid=dispute-result]", "data-refund");
check("dispute: listed as pending among the reseller's refunds", await attr(mine, `[data-testid=my-refunds] tr[data-refund="${filed}"]`, "data-status"), "pending_review");
const queue = (await call("GET", "/v1/admin/review-queue", ADMIN)).body.data.map((r) => [String(r.id), r.amount]);
check("dispute: in the operators' queue for 0.3", queue, [[filed, "0.3"]]);
await shot(mine, "reseller");

// 7b. The reseller's webhook endpoint: created with its events, the secret shown once, a
// test ping delivered and logged with its status code, the secret rotated (both sign for a
// while), an event redelivered from the log and from the event log, disabled and enabled,
// deleted.
await mine.goto(BASE + "/dashboard#webhooks");
await mine.waitForSelector("#pane-webhooks[data-state=ready]");
check("reseller webhooks: every event type but ping and the alerts (the API refuses them)", await mine.$$eval("[data-event-type]", (xs) => xs.map((x) => x.value)),
  EVENT_TYPES.filter((t) => t !== "ping" && !t.startsWith("alert.")));
await mine.fill("#endpoint-url", HOOK_URL);
await mine.check("[data-event-type='order.created']");
await mine.check("[data-event-type='refund.succeeded']");
await mine.click("#create-endpoint");
await mine.waitForSelector("[data-testid=secret][data-kind=created]");
const firstSecret = await mine.textContent("[data-testid=secret-value]");
const endpoint = Number(await attr(mine, "[data-testid=secret]", "data-endpoint"));
check("create: the secret is shown, whsec_ + base64", /^whsec_[A-Za-z0-9+/=]+$/.test(firstSecret), true);
const listed = (await call("GET", "/v1/webhook-endpoints", reseller.token)).body.data;
check("create: the API has the endpoint with the events ticked", listed.map((e) => [e.id, e.url, [...e.events].sort(), e.status]),
  [[endpoint, HOOK_URL, ["order.created", "refund.succeeded"], "enabled"]]);
check("create: the secret is kept in neither storage nor the URL", await mine.evaluate((secret) =>
  JSON.stringify(sessionStorage).includes(secret) || JSON.stringify(localStorage).includes(secret) || location.href.includes(secret), firstSecret), false);
await mine.click(`[data-test="${endpoint}"]`);
await mine.waitForSelector("[data-testid=webhook-result][data-status-code]");
const ping1 = Number(await attr(mine, "[data-testid=webhook-result]", "data-event"));
check("ping: delivered, 200", await attr(mine, "[data-testid=webhook-result]", "data-status-code"), "200");
check("ping: in the delivery log with its status code", await attr(mine, `[data-testid=attempt][data-event="${ping1}"]`, "data-status-code"), "200");
check("ping: the log shows the receiver's answer", (await mine.textContent(`[data-testid=attempt][data-event="${ping1}"]`)).includes("thanks, got it"), true);
check("ping: the receiver got it once, signed with the secret the page showed", deliveredAs(ping1).map((r) => [JSON.parse(r.body).type, signedBy(r, firstSecret)]), [["ping", true]]);
await shot(mine, "webhooks");
await mine.click("#hide-secret");
await mine.waitForSelector("[data-testid=secret]", { state: "detached" });
await mine.reload();
await mine.waitForSelector("#pane-webhooks[data-state=ready]");
check("the secret is not shown again", await mine.$$eval("[data-testid=secret]", (xs) => xs.length), 0);

// Each delivery's state: a second endpoint, whose receiver answers 500, gets a ping; the
// pane shows it pending with its attempts and the next attempt's time (the API's), the
// state filter narrows the list, and the first endpoint's ping shows succeeded.
const failingUrl = `http://127.0.0.1:${receiver.address().port}/fail`;
const failing = (await call("POST", "/v1/webhook-endpoints", reseller.token, { url: failingUrl, events: ["refund.succeeded"] })).body;
const failPing = (await call("POST", `/v1/webhook-endpoints/${failing.id}/test`, reseller.token)).body.id;
const failedOnce = async () => (await call("GET", `/v1/webhook-endpoints/${failing.id}/event-deliveries`, reseller.token)).body.data
  .find((d) => d.event_id === failPing && d.attempts >= 1);
await until("the failing ping's first attempt", failedOnce);
await mine.reload();
await mine.waitForSelector("#pane-webhooks[data-state=ready]");
await mine.click(`[data-deliveries="${failing.id}"]`);
const failRow = `[data-testid=deliveries][data-endpoint="${failing.id}"] [data-testid=delivery][data-event="${failPing}"]`;
await mine.waitForSelector(failRow);
const failApi = await failedOnce();
check("delivery state: the failing ping is pending, as the API says", [await attr(mine, failRow, "data-state"), await attr(mine, failRow, "data-attempts")],
  ["pending", String(failApi.attempts)]);
check("delivery state: the next attempt's time is the API's", await attr(mine, failRow, "data-next-attempt"), failApi.next_attempt_at);
check("delivery state: the next attempt is shown, after the last one", (await mine.textContent(`${failRow} [data-testid=next-attempt]`)).trim().length > 0
  && Date.parse(failApi.next_attempt_at) > Date.parse(failApi.last_attempt_at), true);
check("delivery state: the attempt is logged with the receiver's 500", await attr(mine, `[data-testid=attempt][data-event="${failPing}"]`, "data-status-code"), "500");
await mine.selectOption("#delivery-state", "succeeded");
await mine.waitForSelector("[data-testid=no-deliveries]");
await mine.selectOption("#delivery-state", "pending");
await mine.waitForSelector(failRow);
check("delivery state: the pending filter lists the ping", await mine.$$eval("[data-testid=delivery]", (xs) => xs.map((x) => x.dataset.state)), ["pending"]);
await shot(mine, "webhook-deliveries");
check("delivery state: deleted with its endpoint", (await call("DELETE", `/v1/webhook-endpoints/${failing.id}`, reseller.token)).status, 200);
await mine.reload();
await mine.waitForSelector("#pane-webhooks[data-state=ready]");
const okRow = `[data-testid=deliveries][data-endpoint="${endpoint}"] [data-testid=delivery][data-event="${ping1}"]`;
await mine.waitForSelector(okRow);
check("delivery state: the first ping succeeded in one attempt, nothing next",
  [await attr(mine, okRow, "data-state"), await attr(mine, okRow, "data-attempts"), await attr(mine, okRow, "data-next-attempt")], ["succeeded", "1", ""]);

await mine.click(`[data-rotate="${endpoint}"]`);
await mine.waitForSelector("[data-testid=secret][data-kind=rotated]");
const secondSecret = await mine.textContent("[data-testid=secret-value]");
check("rotate: a new secret, shown once", /^whsec_/.test(secondSecret) && secondSecret !== firstSecret, true);
await mine.click(`[data-test="${endpoint}"]`);
await mine.waitForSelector(`[data-testid=webhook-result][data-status-code]:not([data-event="${ping1}"])`);
const ping2 = Number(await attr(mine, "[data-testid=webhook-result]", "data-event"));
const [rotated] = deliveredAs(ping2);
check("rotate: the next ping is signed by the new secret and the old one", [signedBy(rotated, secondSecret), signedBy(rotated, firstSecret), rotated.headers["webhook-signature"].split(" ").length], [true, true, 2]);

const firstAttempt = Number(await attr(mine, `[data-testid=attempt][data-event="${ping1}"]`, "data-attempt"));
await mine.click(`[data-testid=attempt][data-event="${ping1}"] [data-redeliver]`);
await mine.waitForSelector(`[data-testid=webhook-result][data-event="${ping1}"][data-status-code]`);
check("redeliver: delivered again, 200", await attr(mine, "[data-testid=webhook-result]", "data-status-code"), "200");
check("redeliver: a new attempt in the log", Number(await attr(mine, "[data-testid=webhook-result]", "data-attempt")) > firstAttempt, true);
check("redeliver: two attempts of that event in the log", await mine.$$eval(`[data-testid=attempt][data-event="${ping1}"]`, (xs) => xs.length), 2);
check("redeliver: the receiver got it twice under the same webhook-id", deliveredAs(ping1).length, 2);
const orderEvent = (await call("GET", "/v1/events?type=order.created&limit=1", reseller.token)).body.data[0];
await mine.click(`[data-testid=events] tr[data-event="${orderEvent.id}"] [data-redeliver-event]`);
await mine.waitForSelector(`[data-testid=webhook-result][data-event="${orderEvent.id}"][data-status-code]`);
const replayed = deliveredAs(orderEvent.id);
check("event log: an earlier order.created replayed, signed, with the order", replayed.map((r) => [JSON.parse(r.body).type, JSON.parse(r.body).data.order.id, signedBy(r, secondSecret)]),
  [["order.created", orderEvent.data.order.id, true]]);

await mine.click(`[data-toggle="${endpoint}"]`);
await mine.waitForSelector(`[data-testid=webhook-result][data-status=disabled]`);
check("disable: the API has it disabled", (await call("GET", `/v1/webhook-endpoints/${endpoint}`, reseller.token)).body.status, "disabled");
check("disable: no test ping offered while disabled (the API refuses it)", await mine.isDisabled(`[data-test="${endpoint}"]`), true);
await mine.click(`[data-toggle="${endpoint}"]`);
await mine.waitForSelector(`[data-testid=webhook-result][data-status=enabled]`);
check("enable: the API has it enabled", (await call("GET", `/v1/webhook-endpoints/${endpoint}`, reseller.token)).body.status, "enabled");
await mine.click(`[data-delete="${endpoint}"]`);
await mine.click(`[data-confirm-delete="${endpoint}"]`);
await mine.waitForSelector(`[data-testid=webhook-result][data-deleted="${endpoint}"]`);
check("delete: gone from the API", (await call("GET", "/v1/webhook-endpoints", reseller.token)).body.data.length, 0);

// 8. A reseller's token reaches no operator view: the page refuses, and so does the API.
check("no operator pane in the reseller's nav", await mine.$$eval("#nav a", (as) => as.map((a) => a.dataset.pane)), ["mine", "subscriptions", "webhooks", "reports"]);
for (const paneId of ["queue", "services", "providers", "alerts", "orders", "audit"]) {
  await mine.goto(BASE + "/dashboard#" + paneId);
  await mine.waitForSelector(`#pane-${paneId}[data-state=refused]`);
  passed++;
}
await shot(mine, "reseller-refused");
const refusals = await mine.evaluate(async (paths) => {
  const token = sessionStorage.getItem("console-token");
  const out = [];
  for (const [method, p] of paths) {
    const r = await fetch(p, { method, headers: { authorization: "Bearer " + token } });
    out.push([r.status, (await r.json()).code]);
  }
  return out;
}, [["GET", "/v1/admin/review-queue"], ["GET", `/v1/admin/refunds/${filed}/case`], ["POST", `/v1/admin/refunds/${filed}/approve`],
  ["POST", `/v1/admin/services/${likes}/disable?dry_run=true`], ["GET", "/v1/admin/provider-health"], ["GET", `/v1/admin/orders/${pageDisputeOrder}`],
  ["GET", "/v1/admin/alerts?active=true"], ["GET", "/v1/admin/audit"]]);
check("the API refuses every operator call with the reseller's token", refusals, Array(8).fill([403, "admin_only"]));
check("the request is still pending", (await call("GET", "/v1/admin/review-queue", ADMIN)).body.data.length, 1);

// 9. The reseller's order form renders the fields of the chosen service's type; the order
// lookup shows the fields an order was placed with.
const pollService = (await call("POST", "/v1/admin/services", ADMIN, { name: "Poll votes", category: "Telegram", type: "poll", rate: "3", min: 10, max: 10000 })).body.id;
const listService = (await call("POST", "/v1/admin/services", ADMIN, { name: "Mention list", category: "Instagram", type: "mentions_custom_list", rate: "4", min: 1, max: 1000 })).body.id;
await mine.goto(BASE + "/dashboard#mine");
await mine.reload();
await mine.waitForSelector("#order-form");
await mine.selectOption("#order-service", String(pollService));
await mine.waitForSelector('#order-form[data-type="poll"]');
check("order form: a poll asks for its link, quantity and answer", await mine.$$eval("#order-form [data-field]", (xs) => xs.map((x) => x.name)), ["link", "quantity", "answer_number"]);
await mine.fill("#order-form [name=link]", "https://t.me/c/1/2");
await mine.fill("#order-form [name=quantity]", "100");
await mine.fill("#order-form [name=answer_number]", "2");
await mine.click("#place-order");
await mine.waitForSelector("[data-testid=order-result][data-order]:not([data-order=''])");
const pollOrder = await attr(mine, "[data-testid=order-result]", "data-order");
const placedPoll = (await call("GET", `/v1/orders/${pollOrder}`, reseller.token)).body;
check("order form: the poll placed with its answer, 100 × 3 / 1000", [placedPoll.service_type, placedPoll.answer_number, placedPoll.charge], ["poll", 2, "0.3"]);
await mine.selectOption("#order-service", String(listService));
await mine.waitForSelector('#order-form[data-type="mentions_custom_list"]');
check("order form: a custom list asks for usernames, one per line, and no quantity", await mine.$$eval("#order-form [data-field]", (xs) => xs.map((x) => [x.name, x.tagName])), [["link", "INPUT"], ["usernames", "TEXTAREA"]]);
await mine.fill("#order-form [name=link]", "https://instagram.com/p/list");
await mine.fill("#order-form [name=usernames]", "@ann\nbob\n\ncid");
await mine.click("#place-order");
await mine.waitForSelector(`[data-testid=order-result][data-order]:not([data-order=''])`);
const listOrder = await attr(mine, "[data-testid=order-result]", "data-order");
const placedList = (await call("GET", `/v1/orders/${listOrder}`, reseller.token)).body;
check("order form: the list counted as the quantity, 3 × 4 / 1000", [placedList.usernames, placedList.quantity, placedList.charge], [["ann", "bob", "cid"], 3, "0.012"]);
await shot(mine, "order-form");
await ops.goto(BASE + `/dashboard#orders?id=${listOrder}`);
await ops.waitForSelector(`[data-testid=order-detail][data-order="${listOrder}"]`);
check("lookup: the order's type", await ops.textContent("[data-testid=order-type]"), "mentions_custom_list");
check("lookup: the usernames it was placed with", await ops.textContent("[data-testid=order-field-usernames]"), "ann\nbob\ncid");

// 10. Subscriptions, both sides, the money exact to the micro-unit (docs/subscriptions.md's
// worked example): a reseller creates one from its pane (posts 3 of 100 to 150 units at
// 1.333333 per 1000: one post costs at most 0.2, 0.6 held); an operator finds it by id in
// the order lookup, records two posts there (100 units: 0.133333; left at max: 0.2) and
// the first again (nothing new); the first child ends Partial (40 of 100 undelivered:
// 0.053333 back); the operator ends it after a confirmation (0.266667 released); the
// reseller's page, opened before, asks to cancel and shows the server's refusal. A second
// subscription is canceled by the reseller (its whole hold back).
const autoCo = (await call("POST", "/v1/admin/accounts", ADMIN, { name: "Auto Co", role: "reseller" })).body;
const autoToken = await tokenFor(autoCo.api_key);
await call("POST", `/v1/admin/accounts/${autoCo.account.id}/top-ups`, ADMIN, { amount: "10", gateway: "stripe", gateway_ref: "pi_console_auto" });
const autoLikes = (await call("POST", "/v1/admin/services", ADMIN,
  { name: "Auto likes", category: "Instagram", type: "subscriptions", rate: "1.333333", min: 50, max: 1000 })).body.id;
const account = async (token) => (await call("GET", "/v1/account", token)).body;
const subOf = async (id) => (await call("GET", `/v1/subscriptions/${id}`, autoToken)).body;
const money = (s) => [s.status, micros(s.held), micros(s.captured), micros(s.released), micros(s.hold_left)];
const pageMoney = async (page, sel) => [await attr(page, sel, "data-status"), ...(await Promise.all(["held", "captured", "released", "hold-left"].map(async (k) => micros(await attr(page, sel, "data-" + k)))))];
const expiry = new Date(Date.now() + 30 * 86400000).toISOString().slice(0, 10);

const auto = await signedIn(autoCo.api_key);
await auto.click("#nav a[data-pane=subscriptions]");
await auto.waitForSelector("#pane-subscriptions[data-state=ready] #subscription-form");
check("subscriptions: the form offers the subscriptions service only", await auto.$$eval("#sub-service option", (xs) => xs.map((x) => Number(x.value))), [autoLikes]);
check("subscriptions: the delays are the service's", await auto.$$eval("#subscription-form [name=delay] option", (xs) => xs.map((x) => x.value)), ["0", "5", "10", "15", "30", "60", "90"]);
// Refused first (posts 0: an unbounded subscription cannot be held): the server's answer
// shown, nothing held.
await auto.fill("#subscription-form [name=username]", "@acme.autos");
await auto.fill("#subscription-form [name=min]", "100");
await auto.fill("#subscription-form [name=max]", "150");
await auto.fill("#subscription-form [name=posts]", "0");
await auto.click("#create-subscription");
await auto.waitForSelector("[data-testid=subscription-created][data-subscription='']");
const refusedText = await auto.textContent("[data-testid=subscription-created]");
check("create refused: the server's code and field shown", [refusedText.includes("validation_failed"), refusedText.includes("posts")], [true, true]);
check("create refused: nothing held, nothing listed", [(await account(autoToken)).held, (await call("GET", "/v1/subscriptions", autoToken)).body.data.length], ["0", 0]);
await auto.fill("#subscription-form [name=username]", "@acme.autos");
await auto.fill("#subscription-form [name=min]", "100");
await auto.fill("#subscription-form [name=max]", "150");
await auto.fill("#subscription-form [name=posts]", "3");
await auto.selectOption("#subscription-form [name=delay]", "15");
await auto.fill("#subscription-form [name=expiry]", expiry);
await auto.click("#create-subscription");
await auto.waitForSelector("[data-testid=subscription-created][data-subscription]:not([data-subscription=''])");
const subId = Number(await attr(auto, "[data-testid=subscription-created]", "data-subscription"));
await auto.waitForSelector(`[data-testid=subscription-detail][data-subscription="${subId}"]`);
let sub = await subOf(subId);
check("create: the API has it as typed", [sub.service_id, sub.username, sub.min, sub.max, sub.posts, sub.delay, sub.expiry, sub.status],
  [autoLikes, "acme.autos", 100, 150, 3, 15, expiry, "active"]);
check("create: 3 × 0.2 held, nothing captured or released", money(sub), ["active", 600000n, 0n, 0n, 600000n]);
check("create: the page shows the API's hold", await pageMoney(auto, `[data-testid=subscription-detail]`), money(sub));
check("create: the notice names the hold", (await auto.textContent("[data-testid=subscription-created]")).includes(`${sub.held} held for 3 post(s)`), true);
let acct = await account(autoToken);
check("create: balance 9.4, held 0.6", [micros(acct.balance), micros(acct.held)], [9400000n, 600000n]);
check("create: the page shows balance and held as the API", [await auto.textContent("[data-testid=my-balance]"), await auto.textContent("[data-testid=my-held]")], [acct.balance, acct.held]);
check("create: listed with its money", await pageMoney(auto, `[data-testid=my-subscriptions] tr[data-subscription="${subId}"]`), money(sub));
await auto.reload();
await auto.waitForSelector("#pane-subscriptions[data-state=ready]");
check("create: one subscription after a reload (one click, one hold)", (await call("GET", "/v1/subscriptions", autoToken)).body.data.length, 1);

// The operator: the subscription's id in the order lookup (one id space).
await ops.goto(BASE + "/dashboard#orders");
await ops.waitForSelector("#pane-orders[data-state=ready]");
await ops.selectOption("#lookup-by", "id");
await ops.fill("#lookup-q", String(subId));
await ops.keyboard.press("Enter");
const opsSub = `[data-testid=subscription-detail][data-subscription="${subId}"]`;
await ops.waitForSelector(opsSub);
check("lookup: a subscription id shows the subscription, no order", [await ops.$$eval("[data-testid=order-detail]", (xs) => xs.length), await ops.$$eval("[data-testid=no-children]", (xs) => xs.length)], [0, 1]);
check("lookup: its money is the API's", await pageMoney(ops, opsSub), money(sub));
const recordPost = async (key, link, quantity) => {
  // The answer shown before is marked: the page draws a new one for this post.
  await ops.$$eval("[data-testid=subscription-answer]", (xs) => xs.forEach((x) => { x.dataset.fresh = "old"; }));
  await ops.fill("#post-form [name=post_key]", key);
  await ops.fill("#post-form [name=link]", link);
  await ops.fill("#post-form [name=quantity]", quantity);
  await ops.click("#record-post");
  await ops.waitForSelector("[data-testid=subscription-answer]:not([data-fresh=old])");
  return ops.$eval("[data-testid=subscription-answer]", (x) => ({ ...x.dataset, text: x.textContent }));
};
let answer = await recordPost("post-1", "https://instagram.com/p/auto1", "100");
check("post 1: recorded, a child of 100 units, 0.133333 captured", [answer.outcome, answer.created, answer.text.includes("100 units, 0.133333 captured")], ["ok", "true", true]);
const child1 = Number(answer.order);
answer = await recordPost("post-2", "https://instagram.com/p/auto2", "");
check("post 2: left at max, 150 units, 0.2 captured", [answer.outcome, answer.created, answer.text.includes("150 units, 0.2 captured")], ["ok", "true", true]);
const child2 = Number(answer.order);
answer = await recordPost("post-1", "https://instagram.com/p/auto1", "100");
check("post 1 again: the child already made, nothing new", [answer.outcome, answer.created, Number(answer.order)], ["ok", "false", child1]);
sub = await subOf(subId);
check("posts: two children, 0.333333 captured, 0.266667 still held", [sub.posts_served, sub.orders, ...money(sub)], [2, [child1, child2], "active", 600000n, 333333n, 0n, 266667n]);
check("posts: the page shows the API's money", await pageMoney(ops, opsSub), money(sub));
check("posts: the children with their charges", await ops.$$eval(`${opsSub} [data-testid=child]`, (trs) => trs.map((tr) => [Number(tr.dataset.order), tr.dataset.charge])),
  sub.children.map((o) => [o.id, o.charge]));
check("posts: charges exact", sub.children.map((o) => micros(o.charge)), [133333n, 200000n]);
await shot(ops, "subscription-posts");
await outcome(child1, { status: "partial", remains: 40 });
// A child's id in the lookup: the order, and below it its subscription.
await ops.click(`${opsSub} [data-child-link="${child1}"]`);
await ops.waitForSelector(`[data-testid=order-detail][data-order="${child1}"]`);
await ops.waitForSelector(opsSub);
check("child lookup: its ledger, the charge from the hold and the partial's refund",
  await ops.$$eval("[data-testid=ledger-row]", (trs) => trs.map((tr) => [tr.dataset.kind, tr.dataset.amount])), [["order_charge", "0"], ["refund", "0.053333"]]);
check("child lookup: the subscription's reseller", (await ops.textContent("[data-testid=sub-account]")).includes(`#${autoCo.account.id}`), true);
check("child lookup: the child refunded 0.053333 of 0.133333, 40 remaining",
  [await attr(ops, `${opsSub} [data-testid=child][data-order="${child1}"]`, "data-status"), await attr(ops, `${opsSub} [data-testid=child][data-order="${child1}"]`, "data-refunded"),
    await attr(ops, `${opsSub} [data-testid=child][data-order="${child1}"]`, "data-remains")], ["partial", "0.053333", "40"]);
await shot(ops, "subscription-lookup");

// The reseller opens it (the Cancel button is there); meanwhile the operator ends it.
await auto.reload();
await auto.waitForSelector("#pane-subscriptions[data-state=ready]");
await auto.click(`[data-testid=my-subscriptions] tr[data-subscription="${subId}"]`);
await auto.waitForSelector(`[data-testid=subscription-detail][data-subscription="${subId}"] [data-testid=child][data-order="${child2}"]`);
check("reseller: the children with status, charge, refunds as the API", await auto.$$eval("[data-testid=child]", (trs) => trs.map((tr) => [Number(tr.dataset.order), tr.dataset.status, tr.dataset.charge, tr.dataset.refunded])),
  (await subOf(subId)).children.map((o) => [o.id, o.status, o.charge, o.refunded]));
check("reseller: the cancel is offered", await auto.$$eval("#cancel-subscription", (xs) => xs.length), 1);
await auto.locator("#cancel-subscription").scrollIntoViewIfNeeded();
await shot(auto, "subscriptions");

await ops.click("#end-subscription");
await ops.waitForSelector("[data-testid=end-confirm]");
check("end: nothing moves before the confirmation", money(await subOf(subId)), ["active", 600000n, 333333n, 0n, 266667n]);
check("end: the confirmation names what it releases", (await ops.textContent("[data-testid=end-confirm]")).includes("release 0.266667"), true);
await ops.fill("#end-reason", "the account went private");
await ops.locator("[data-testid=end-confirm]").scrollIntoViewIfNeeded();
await shot(ops, "subscription-end-confirm");
await ops.click("#confirm-end");
await ops.waitForSelector("[data-testid=subscription-answer][data-outcome=ok][data-status=canceled]");
check("end: the page shows what was released", await attr(ops, "[data-testid=subscription-answer]", "data-released"), "0.266667");
sub = await subOf(subId);
check("end: canceled, the rest released", [...money(sub), sub.status_reason], ["canceled", 600000n, 333333n, 266667n, 0n, "the account went private"]);
check("end: the card shows the API's money, no more actions", [await pageMoney(ops, opsSub), await ops.$$eval("#record-post, #end-subscription", (xs) => xs.length)], [money(sub), 0]);
acct = await account(autoToken);
// 10 − 0.6 + 0.053333 (child 1's refund) + 0.266667 (release)
check("end: balance 9.72, nothing held", [micros(acct.balance), micros(acct.held)], [9720000n, 0n]);
await ops.locator("[data-testid=subscription-answer]").evaluate((x) => x.scrollIntoView({ block: "start" }));
await shot(ops, "subscription-end");

await auto.click("#cancel-subscription");
await auto.waitForSelector("[data-testid=subscription-answer][data-outcome=refused]");
check("reseller cancel after the end: the server's refusal shown", [await attr(auto, "[data-testid=subscription-answer]", "data-code"),
  (await auto.textContent("[data-testid=subscription-answer]")).includes("409")], ["invalid_transition", true]);
check("reseller cancel after the end: nothing moved", [money(await subOf(subId)), micros((await account(autoToken)).balance)], [money(sub), 9720000n]);
check("reseller: the page now shows it canceled, released 0.266667, no cancel offered",
  [...(await pageMoney(auto, `[data-testid=subscription-detail][data-subscription="${subId}"]`)), await auto.$$eval("#cancel-subscription", (xs) => xs.length)],
  [...money(sub), 0]);
await auto.locator("[data-testid=subscription-answer]").evaluate((x) => x.scrollIntoView({ block: "start" }));
await shot(auto, "subscription-refused");

// A second one, canceled by the reseller from the page: its whole hold comes back.
await auto.fill("#subscription-form [name=username]", "acme.autos");
await auto.fill("#subscription-form [name=min]", "100");
await auto.fill("#subscription-form [name=max]", "100");
await auto.fill("#subscription-form [name=posts]", "1");
await auto.click("#create-subscription");
await auto.waitForSelector(`[data-testid=subscription-created][data-subscription]:not([data-subscription=''])`);
const sub2 = Number(await attr(auto, "[data-testid=subscription-created]", "data-subscription"));
check("second: 0.133333 held", money(await subOf(sub2)), ["active", 133333n, 0n, 0n, 133333n]);
await auto.waitForSelector(`[data-testid=subscription-detail][data-subscription="${sub2}"] #cancel-subscription`);
await auto.click("#cancel-subscription");
await auto.waitForSelector("[data-testid=subscription-answer][data-outcome=ok]");
check("second: canceled, 0.133333 released, shown", [await attr(auto, "[data-testid=subscription-answer]", "data-status"), await attr(auto, "[data-testid=subscription-answer]", "data-released")],
  ["canceled", "0.133333"]);
check("second: the API agrees", money(await subOf(sub2)), ["canceled", 133333n, 0n, 133333n, 0n]);
acct = await account(autoToken);
check("second: balance back to 9.72, nothing held; the page says so", [micros(acct.balance), micros(acct.held), await auto.textContent("[data-testid=my-balance]"), await auto.textContent("[data-testid=my-held]")],
  [9720000n, 0n, acct.balance, acct.held]);
const autoLedger = (await call("GET", "/v1/ledger?limit=100", autoToken)).body.data.reverse();
check("ledger: every move one entry, available and held, exact", autoLedger.map((e) => [e.kind, micros(e.amount), micros(e.held_amount)]), [
  ["top_up", 10000000n, 0n], ["subscription_hold", -600000n, 600000n], ["order_charge", 0n, -133333n], ["order_charge", 0n, -200000n],
  ["refund", 53333n, 0n], ["subscription_release", 266667n, -266667n], ["subscription_hold", -133333n, 133333n], ["subscription_release", 133333n, -133333n]]);
check("the reseller's subscriptions are listed for it, not the operator's", await auto.$$eval("[data-testid=my-subscriptions] tr[data-subscription]", (trs) => trs.map((tr) => Number(tr.dataset.subscription))), [sub2, subId]);
await auto.goto(BASE + "/dashboard#mine");
await auto.waitForSelector("#pane-mine[data-state=ready] #order-form");
check("the order form does not offer the subscriptions service (it takes no order)",
  (await auto.$$eval("#order-service option", (xs) => xs.map((x) => Number(x.value)))).includes(autoLikes), false);

} catch (e) {
  // A step that timed out: keep what each page showed, for the log and a look.
  console.error(e);
  for (const [i, page] of seen.entries()) {
    await page.screenshot({ path: path.join(SHOTS, `failed-${i}.png`) }).catch(() => {});
    console.error(`page ${i} (${page.url()}):`, (await page.textContent("main").catch(() => "")).slice(0, 1500));
  }
  failures++;
}
for (const page of seen) {
  check("no CSP violation on the page", await page.evaluate(() => document.body.dataset.cspViolations || "0"), "0");
}
await browser.close();
upstream.close();
quick.close();
receiver.close();
console.log(`console: ${passed} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
