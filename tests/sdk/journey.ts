// A reseller's journey through the TypeScript client generated from openapi/openapi.json:
// types from openapi-typescript, calls through openapi-fetch. Run by tests/sdk/run.sh,
// which type-checks this file (strict) against the generated types before running it:
//     node dist/journey.js --base-url URL --admin-key KEY
// Money is compared as the exact strings the API sends. Exits non-zero on the first difference.

import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";

import createClient from "openapi-fetch";

import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
type Api = ReturnType<typeof createClient<paths>>;

const LANGUAGE = "typescript";

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function equal<T>(actual: T, expected: T, what: string): void {
  check(
    JSON.stringify(actual) === JSON.stringify(expected),
    `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`,
  );
}

/** The typed body of a call that must have answered with this status. */
function ok<T>(result: { data?: T; error?: unknown; response: Response }, status: number): T {
  check(
    result.response.status === status && result.data !== undefined,
    `expected ${status}, got ${result.response.status}: ${JSON.stringify(result.error)}`,
  );
  return result.data;
}

const suffix = () => randomBytes(6).toString("hex");
const step = (text: string) => console.log(`[${LANGUAGE}] ${text}`);

function client(baseUrl: string, token?: string): Api {
  return createClient<paths>({
    baseUrl,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
}

async function token(baseUrl: string, apiKey: string): Promise<Api> {
  const reply = ok(await client(baseUrl).POST("/v1/auth/token", { body: { api_key: apiKey } }), 200);
  equal(reply.token_type, "Bearer", "token_type");
  return client(baseUrl, reply.access_token);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { "base-url": { type: "string" }, "admin-key": { type: "string" } },
  });
  const baseUrl = values["base-url"];
  const adminKey = values["admin-key"];
  check(baseUrl !== undefined && adminKey !== undefined, "usage: --base-url URL --admin-key KEY");

  step("operator: token, reseller account, top-up, service");
  const admin = await token(baseUrl, adminKey);
  const created = ok(
    await admin.POST("/v1/admin/accounts", { body: { name: `Acme (${LANGUAGE})`, role: "reseller" } }),
    201,
  );
  const topUp = ok(
    await admin.POST("/v1/admin/accounts/{id}/top-ups", {
      params: { path: { id: created.account.id } },
      body: { amount: "50", gateway: "stripe", gateway_ref: `pi_${LANGUAGE}_${suffix()}` },
    }),
    201,
  );
  equal(topUp.amount, "50", "top-up amount");
  const topUpStatus: Schemas["TopUpStatus"] = topUp.status;
  equal(topUpStatus, "succeeded", "top-up status");
  const service = ok(
    await admin.POST("/v1/admin/services", {
      body: {
        name: `Instagram Likes (${LANGUAGE})`,
        category: "Instagram",
        type: "default",
        rate: "0.9",
        min: 10,
        max: 100000,
        cancel: true,
      },
    }),
    201,
  );

  step("reseller: token, catalog");
  const reseller = await token(baseUrl, created.api_key);
  const catalog = ok(await reseller.GET("/v1/services", { params: { query: { limit: 100 } } }), 200);
  const listed = catalog.data.filter((s) => s.id === service.id);
  equal(listed.length, 1, `service ${service.id} in the catalog`);
  equal(listed[0].rate, "0.9", "service rate");

  step("place an order with an Idempotency-Key; the retry replays it");
  const body: Schemas["CreateOrderRequest"] = {
    service_id: service.id,
    link: "https://instagram.com/p/sdk",
    quantity: 1234,
  };
  const key = `order-${LANGUAGE}-${suffix()}`;
  const first = await reseller.POST("/v1/orders", { body, params: { header: { "Idempotency-Key": key } } });
  const order = ok(first, 201);
  equal(order.charge, "1.1106", "charge of 1234 at 0.9 per 1000");
  equal(order.status, "pending", "status");
  equal(order.refunded, "0", "refunded");
  equal(order.refundable, "1.1106", "refundable");
  equal(first.response.headers.get("location"), `/v1/orders/${order.id}`, "Location");
  equal(first.response.headers.get("idempotent-replayed"), null, "a first request is not a replay");
  check(first.response.headers.get("ratelimit") !== null, "RateLimit header");
  check(first.response.headers.get("ratelimit-policy") !== null, "RateLimit-Policy header");
  const again = await reseller.POST("/v1/orders", { body, params: { header: { "Idempotency-Key": key } } });
  const replay = ok(again, 201);
  equal(replay.id, order.id, "replayed order id");
  equal(replay.charge, "1.1106", "replayed charge");
  equal(again.response.headers.get("idempotent-replayed"), "true", "Idempotent-Replayed");

  step("read its status; a second order; batch status");
  const found = ok(await reseller.GET("/v1/orders/{id}", { params: { path: { id: order.id } } }), 200);
  equal(found.status, "pending", "status");
  equal(found.charge, "1.1106", "charge");
  const second = ok(
    await reseller.POST("/v1/orders", {
      body: { service_id: service.id, link: "https://instagram.com/p/sdk2", quantity: 1000 },
    }),
    201,
  );
  equal(second.charge, "0.9", "charge of 1000 at 0.9 per 1000");
  const batch = ok(
    await reseller.GET("/v1/orders/status", { params: { query: { ids: `${order.id},${second.id},999999` } } }),
    200,
  );
  equal(batch.data.map((item) => item.id), [order.id, second.id, 999999], "batch ids");
  equal(batch.data[0].order?.charge, "1.1106", "batch charge");
  equal(batch.data[1].order?.status, "pending", "batch status");
  equal(batch.data[2].order ?? null, null, "unknown id has no order");
  equal(batch.data[2].error?.code, "not_found", "unknown id error");
  let account = ok(await reseller.GET("/v1/account"), 200);
  equal(account.balance, "47.9894", "balance after two orders");

  step("pages: limit=1 has a next page and a Link header");
  const page = await reseller.GET("/v1/orders", { params: { query: { limit: 1 } } });
  const firstPage = ok(page, 200);
  equal(firstPage.data.map((o) => o.id), [second.id], "newest first");
  check(firstPage.has_more, "has_more");
  check((page.response.headers.get("link") ?? "").includes('rel="next"'), "Link header");
  const rest = ok(
    await reseller.GET("/v1/orders", {
      params: { query: { limit: 1, starting_after: firstPage.next_cursor ?? undefined } },
    }),
    200,
  );
  equal(rest.data.map((o) => o.id), [order.id], "second page");

  step("the operator completes the order; the reseller disputes part of it");
  const settled = ok(
    await admin.POST("/v1/admin/orders/{id}/outcome", {
      params: { path: { id: order.id } },
      body: { status: "completed" },
    }),
    200,
  );
  equal(settled.order.status, "completed", "completed");
  const dispute = ok(
    await reseller.POST("/v1/orders/{id}/refunds", {
      params: { path: { id: order.id }, header: { "Idempotency-Key": `dispute-${LANGUAGE}-${suffix()}` } },
      body: { reason: "dropped", note: "lost 30% overnight", amount: "0.3" },
    }),
    202,
  );
  equal(dispute.status, "pending_review", "dispute status");
  equal(dispute.amount, "0.3", "dispute amount");
  const approved = ok(
    await admin.POST("/v1/admin/refunds/{id}/approve", { params: { path: { id: dispute.id } }, body: {} }),
    200,
  );
  equal(approved.order.refunded, "0.3", "refunded after approval");
  equal(approved.order.refundable, "0.8106", "refundable after approval");

  step("list refunds");
  const refunds = ok(await reseller.GET("/v1/refunds", { params: { query: { order_id: order.id } } }), 200);
  equal(refunds.data.length, 1, "one refund on the order");
  equal(refunds.data[0].id, dispute.id, "the dispute");
  equal(refunds.data[0].status, "succeeded", "approved dispute status");
  equal(refunds.data[0].amount, "0.3", "refund amount");
  account = ok(await reseller.GET("/v1/account"), 200);
  equal(account.balance, "48.2894", "balance after the refund");

  step("refund report as JSON and as CSV");
  const day = 24 * 3600 * 1000;
  const date = (at: number) => new Date(at).toISOString().slice(0, 10);
  const window = { from: date(Date.now() - day), to: date(Date.now() + day), group_by: "service" as const };
  const report = ok(
    await reseller.GET("/v1/reports/refunds", { params: { query: { ...window, format: "json" } } }),
    200,
  );
  // The call documents both bodies (JSON and CSV); format=json must give the object.
  check(typeof report !== "string", "format=json answers with a JSON report");
  equal(report.group_by, "service", "group_by");
  equal(report.rows.map((row) => row.group), [String(service.id)], "one row, our service");
  const metrics: Array<[string, Schemas["RefundReportMetrics"]]> = [
    ["row", report.rows[0]],
    ["totals", report.totals],
  ];
  for (const [what, m] of metrics) {
    equal(m.orders_count, 2, `${what} orders_count`);
    equal(m.charged_amount, "2.0106", `${what} charged_amount`);
    equal(m.refunds_count, 1, `${what} refunds_count`);
    equal(m.refunded_amount, "0.3", `${what} refunded_amount`);
    equal(m.refund_rate_count, "0.5", `${what} refund_rate_count`);
    equal(m.refund_rate_amount, "0.149209", `${what} refund_rate_amount`);
    equal(m.by_reason["dropped"]?.amount, "0.3", `${what} by_reason dropped`);
  }
  const csvReply = await reseller.GET("/v1/reports/refunds", {
    params: { query: { ...window, format: "csv" } },
    parseAs: "text",
  });
  const csvText = ok(csvReply, 200);
  check(
    (csvReply.response.headers.get("content-type") ?? "").startsWith("text/csv"),
    "CSV content type",
  );
  // No quoted cells in this report: the service id, its name and plain numbers.
  const [header, ...lines] = csvText.trim().split("\r\n").map((line) => line.split(","));
  const column = (name: string) => header.indexOf(name);
  equal(lines.map((cells) => cells[column("group")]), [String(service.id), "total"], "CSV rows");
  for (const cells of lines) {
    equal(cells[column("charged_amount")], "2.0106", `CSV ${cells[0]} charged_amount`);
    equal(cells[column("refunded_amount")], "0.3", `CSV ${cells[0]} refunded_amount`);
  }

  step("a problem document as a typed error");
  const bad = await reseller.POST("/v1/orders", {
    body: { service_id: service.id, link: "https://instagram.com/p/sdk3", quantity: 5 },
  });
  equal(bad.response.status, 422, "status");
  equal(bad.response.headers.get("content-type"), "application/problem+json", "problem content type");
  check(bad.error !== undefined, "an error body");
  const problem: Schemas["Problem"] = bad.error;
  equal(problem.status, 422, "problem status");
  equal(problem.code, "validation_failed", "problem code");
  check(problem.request_id.length > 0, "problem request_id");
  equal((problem.errors ?? []).map((e) => e.param), ["quantity"], "failing fields");
  account = ok(await reseller.GET("/v1/account"), 200);
  equal(account.balance, "48.2894", "a refused order charges nothing");

  step("service types: a Poll and a Mentions Custom List, typed fields");
  const pollType: Schemas["TypeName"] = "poll";
  const poll = ok(
    await admin.POST("/v1/admin/services", {
      body: { name: `Poll votes (${LANGUAGE})`, category: "Telegram", type: pollType, rate: "3", min: 10, max: 10000 },
    }),
    201,
  );
  const customList = ok(
    await admin.POST("/v1/admin/services", {
      body: { name: `Mention list (${LANGUAGE})`, category: "Instagram", type: "mentions_custom_list", rate: "4", min: 1, max: 1000 },
    }),
    201,
  );
  equal(customList.quantity_from, "usernames", "a custom list counts its usernames");
  const voted = ok(
    await reseller.POST("/v1/orders", {
      body: { service_id: poll.id, link: "https://t.me/c/1/2", quantity: 100, answer_number: 2 },
    }),
    201,
  );
  const votedType: Schemas["ServiceType"] = voted.service_type;
  equal([votedType, voted.answer_number, voted.charge], ["poll", 2, "0.3"], "poll order");
  const mentioned = ok(
    await reseller.POST("/v1/orders", {
      body: { service_id: customList.id, link: "https://instagram.com/p/list", usernames: ["@ann", "bob", " ", "cid"] },
    }),
    201,
  );
  equal([mentioned.usernames, mentioned.quantity, mentioned.charge], [["ann", "bob", "cid"], 3, "0.012"], "custom list order");
  account = ok(await reseller.GET("/v1/account"), 200);
  equal(account.balance, "47.9774", "both charged exactly");

  step("journey complete");
}

main().catch((failure: unknown) => {
  console.error(`[${LANGUAGE}] FAILED: ${failure instanceof Error ? failure.message : String(failure)}`);
  process.exit(1);
});
