"""A reseller's journey through the Python client generated from openapi/openapi.json.

Run by tests/sdk/run.sh against a live server:
    PYTHONPATH=target/sdk/python python tests/sdk/journey.py --base-url URL --admin-key KEY

Every call goes through the generated client (`reseller_api_client`); money is compared
as the exact strings the API sends. Exits non-zero on the first difference.
"""

import argparse
import csv
import datetime
import io
import secrets
import sys

from reseller_api_client import AuthenticatedClient, Client
from reseller_api_client.api.admin import (
    approve_refund,
    create_account,
    create_service,
    create_top_up,
    record_outcome,
)
from reseller_api_client.api.account import find_account
from reseller_api_client.api.auth import create_token
from reseller_api_client.api.orders import batch_order_status, create_order, find_order, list_orders
from reseller_api_client.api.refunds import create_dispute, list_refunds
from reseller_api_client.api.reports import find_refund_report
from reseller_api_client.api.services import list_services
from reseller_api_client.models import (
    AccountResponse,
    AdminServiceResponse,
    ApproveRefundRequest,
    BatchStatusResponse,
    CreateAccountRequest,
    CreateDisputeRequest,
    CreateOrderRequest,
    CreateServiceRequest,
    CreateTokenRequest,
    CreateTopUpRequest,
    CreatedAccountResponse,
    DisputeReason,
    FindRefundReportFormat,
    OrderResponse,
    OrderStatus,
    OutcomeRequest,
    PageOrderResponse,
    PageRefundResponse,
    PageServiceResponse,
    Problem,
    RefundReportResponse,
    RefundResponse,
    RefundStatus,
    ReportGroup,
    Role,
    ServiceType,
    TypeName,
    SettlementResponse,
    TokenResponse,
    TopUpResponse,
    TopUpStatus,
)

LANGUAGE = "python"


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def equal(actual, expected, what):
    check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


def parsed(response, status, model):
    """The typed body of a response that must have this status and type."""
    body = response.parsed
    check(
        int(response.status_code) == status and isinstance(body, model),
        f"expected {status} {model.__name__}, got {int(response.status_code)}: {response.content[:300]!r}",
    )
    return body


def token(base_url, api_key):
    public = Client(base_url=base_url, raise_on_unexpected_status=True)
    reply = parsed(
        create_token.sync_detailed(client=public, body=CreateTokenRequest(api_key=api_key)),
        200,
        TokenResponse,
    )
    equal(reply.token_type, "Bearer", "token_type")
    return AuthenticatedClient(base_url=base_url, token=reply.access_token, raise_on_unexpected_status=True)


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--base-url", required=True)
    args.add_argument("--admin-key", required=True)
    opts = args.parse_args()
    step = lambda text: print(f"[{LANGUAGE}] {text}", flush=True)  # noqa: E731

    step("operator: token, reseller account, top-up, service")
    admin = token(opts.base_url, opts.admin_key)
    created = parsed(
        create_account.sync_detailed(
            client=admin, body=CreateAccountRequest(name=f"Acme ({LANGUAGE})", role=Role.RESELLER)
        ),
        201,
        CreatedAccountResponse,
    )
    account_id = created.account.id
    top_up = parsed(
        create_top_up.sync_detailed(
            account_id,
            client=admin,
            body=CreateTopUpRequest(amount="50", gateway="stripe", gateway_ref=f"pi_{LANGUAGE}_{secrets.token_hex(6)}"),
        ),
        201,
        TopUpResponse,
    )
    equal(top_up.amount, "50", "top-up amount")
    equal(top_up.status, TopUpStatus.SUCCEEDED, "top-up status")
    service = parsed(
        create_service.sync_detailed(
            client=admin,
            body=CreateServiceRequest(
                name=f"Instagram Likes ({LANGUAGE})",
                category="Instagram",
                type_=TypeName.DEFAULT,
                rate="0.9",
                min_=10,
                max_=100000,
                cancel=True,
            ),
        ),
        201,
        AdminServiceResponse,
    )

    step("reseller: token, catalog")
    reseller = token(opts.base_url, created.api_key)
    catalog = parsed(list_services.sync_detailed(client=reseller, limit=100), 200, PageServiceResponse)
    listed = [s for s in catalog.data if s.id == service.id]
    check(len(listed) == 1, f"service {service.id} not in the catalog")
    equal(listed[0].rate, "0.9", "service rate")

    step("place an order with an Idempotency-Key; the retry replays it")
    body = CreateOrderRequest(service_id=service.id, link="https://instagram.com/p/sdk", quantity=1234)
    key = f"order-{LANGUAGE}-{secrets.token_hex(6)}"
    first = create_order.sync_detailed(client=reseller, body=body, idempotency_key=key)
    order = parsed(first, 201, OrderResponse)
    equal(order.charge, "1.1106", "charge of 1234 at 0.9 per 1000")
    equal(order.status, OrderStatus.PENDING, "status")
    equal(order.refunded, "0", "refunded")
    equal(order.refundable, "1.1106", "refundable")
    equal(first.headers.get("location"), f"/v1/orders/{order.id}", "Location")
    check("idempotent-replayed" not in first.headers, "a first request is not a replay")
    check("ratelimit" in first.headers and "ratelimit-policy" in first.headers, "rate-limit headers")
    again = create_order.sync_detailed(client=reseller, body=body, idempotency_key=key)
    replay = parsed(again, 201, OrderResponse)
    equal(replay.id, order.id, "replayed order id")
    equal(replay.charge, "1.1106", "replayed charge")
    equal(again.headers.get("idempotent-replayed"), "true", "Idempotent-Replayed")

    step("read its status; a second order; batch status")
    found = parsed(find_order.sync_detailed(order.id, client=reseller), 200, OrderResponse)
    equal(found.status, OrderStatus.PENDING, "status")
    equal(found.charge, "1.1106", "charge")
    second = parsed(
        create_order.sync_detailed(
            client=reseller,
            body=CreateOrderRequest(service_id=service.id, link="https://instagram.com/p/sdk2", quantity=1000),
        ),
        201,
        OrderResponse,
    )
    equal(second.charge, "0.9", "charge of 1000 at 0.9 per 1000")
    batch = parsed(
        batch_order_status.sync_detailed(client=reseller, ids=f"{order.id},{second.id},999999"),
        200,
        BatchStatusResponse,
    )
    equal([item.id for item in batch.data], [order.id, second.id, 999999], "batch ids")
    equal(batch.data[0].order.charge, "1.1106", "batch charge")
    equal(batch.data[1].order.status, OrderStatus.PENDING, "batch status")
    equal(batch.data[2].order, None, "unknown id has no order")
    equal(batch.data[2].error.code, "not_found", "unknown id error")
    account = parsed(find_account.sync_detailed(client=reseller), 200, AccountResponse)
    equal(account.balance, "47.9894", "balance after two orders")

    step("pages: limit=1 has a next page and a Link header")
    page = list_orders.sync_detailed(client=reseller, limit=1)
    first_page = parsed(page, 200, PageOrderResponse)
    equal([o.id for o in first_page.data], [second.id], "newest first")
    check(first_page.has_more, "has_more")
    check('rel="next"' in page.headers.get("link", ""), f"Link header: {page.headers.get('link')!r}")
    rest = parsed(
        list_orders.sync_detailed(client=reseller, limit=1, starting_after=first_page.next_cursor),
        200,
        PageOrderResponse,
    )
    equal([o.id for o in rest.data], [order.id], "second page")

    step("the operator completes the order; the reseller disputes part of it")
    settled = parsed(
        record_outcome.sync_detailed(order.id, client=admin, body=OutcomeRequest(status=OrderStatus.COMPLETED)),
        200,
        SettlementResponse,
    )
    equal(settled.order.status, OrderStatus.COMPLETED, "completed")
    dispute = parsed(
        create_dispute.sync_detailed(
            order.id,
            client=reseller,
            body=CreateDisputeRequest(reason=DisputeReason.DROPPED, note="lost 30% overnight", amount="0.3"),
            idempotency_key=f"dispute-{LANGUAGE}-{secrets.token_hex(6)}",
        ),
        202,
        RefundResponse,
    )
    equal(dispute.status, RefundStatus.PENDING_REVIEW, "dispute status")
    equal(dispute.amount, "0.3", "dispute amount")
    approved = parsed(
        approve_refund.sync_detailed(dispute.id, client=admin, body=ApproveRefundRequest()),
        200,
        SettlementResponse,
    )
    equal(approved.order.refunded, "0.3", "refunded after approval")
    equal(approved.order.refundable, "0.8106", "refundable after approval")

    step("list refunds")
    refunds = parsed(
        list_refunds.sync_detailed(client=reseller, order_id=order.id), 200, PageRefundResponse
    )
    equal(len(refunds.data), 1, "one refund on the order")
    equal(refunds.data[0].id, dispute.id, "the dispute")
    equal(refunds.data[0].status, RefundStatus.SUCCEEDED, "approved dispute status")
    equal(refunds.data[0].amount, "0.3", "refund amount")
    account = parsed(find_account.sync_detailed(client=reseller), 200, AccountResponse)
    equal(account.balance, "48.2894", "balance after the refund")

    step("refund report as JSON and as CSV")
    today = datetime.datetime.now(datetime.timezone.utc).date()
    window = {
        "from_": (today - datetime.timedelta(days=1)).isoformat(),
        "to": (today + datetime.timedelta(days=1)).isoformat(),
        "group_by": ReportGroup.SERVICE,
    }
    report = parsed(
        find_refund_report.sync_detailed(client=reseller, format_=FindRefundReportFormat.JSON, **window),
        200,
        RefundReportResponse,
    )
    equal(report.group_by, ReportGroup.SERVICE, "group_by")
    equal([row.group for row in report.rows], [str(service.id)], "one row, our service")
    for what, metrics in [("row", report.rows[0]), ("totals", report.totals)]:
        equal(metrics.orders_count, 2, f"{what} orders_count")
        equal(metrics.charged_amount, "2.0106", f"{what} charged_amount")
        equal(metrics.refunds_count, 1, f"{what} refunds_count")
        equal(metrics.refunded_amount, "0.3", f"{what} refunded_amount")
        equal(metrics.refund_rate_count, "0.5", f"{what} refund_rate_count")
        equal(metrics.refund_rate_amount, "0.149209", f"{what} refund_rate_amount")
        equal(metrics.by_reason["dropped"].amount, "0.3", f"{what} by_reason dropped")
    # openapi-python-client reads only the first media type of a response (JSON here), so
    # the CSV variant is fetched with the generated client's own authenticated httpx client.
    params = {"from": window["from_"], "to": window["to"], "group_by": "service", "format": "csv"}
    raw = reseller.get_httpx_client().get("/v1/reports/refunds", params=params)
    equal(raw.status_code, 200, f"CSV report status ({raw.text[:200]})")
    check(raw.headers["content-type"].startswith("text/csv"), f"content-type {raw.headers['content-type']}")
    rows = list(csv.DictReader(io.StringIO(raw.text)))
    equal([r["group"] for r in rows], [str(service.id), "total"], "CSV rows")
    for r in rows:
        equal(r["charged_amount"], "2.0106", f"CSV {r['group']} charged_amount")
        equal(r["refunded_amount"], "0.3", f"CSV {r['group']} refunded_amount")

    step("a problem document as a typed error")
    bad = create_order.sync_detailed(
        client=reseller,
        body=CreateOrderRequest(service_id=service.id, link="https://instagram.com/p/sdk3", quantity=5),
    )
    problem = parsed(bad, 422, Problem)
    equal(problem.status, 422, "problem status")
    equal(problem.code, "validation_failed", "problem code")
    check(bad.headers["content-type"] == "application/problem+json", "problem content type")
    check(problem.request_id, "problem request_id")
    equal([e.param for e in problem.errors], ["quantity"], "failing fields")
    account = parsed(find_account.sync_detailed(client=reseller), 200, AccountResponse)
    equal(account.balance, "48.2894", "a refused order charges nothing")

    step("service types: a Poll and a Mentions Custom List, typed fields")
    poll = parsed(
        create_service.sync_detailed(
            client=admin,
            body=CreateServiceRequest(
                name=f"Poll votes ({LANGUAGE})", category="Telegram", type_=TypeName.POLL,
                rate="3", min_=10, max_=10000,
            ),
        ),
        201,
        AdminServiceResponse,
    )
    custom_list = parsed(
        create_service.sync_detailed(
            client=admin,
            body=CreateServiceRequest(
                name=f"Mention list ({LANGUAGE})", category="Instagram", type_=TypeName.MENTIONS_CUSTOM_LIST,
                rate="4", min_=1, max_=1000,
            ),
        ),
        201,
        AdminServiceResponse,
    )
    equal(custom_list.quantity_from, "usernames", "a custom list counts its usernames")
    voted = parsed(
        create_order.sync_detailed(
            client=reseller,
            body=CreateOrderRequest(service_id=poll.id, link="https://t.me/c/1/2", quantity=100, answer_number=2),
        ),
        201,
        OrderResponse,
    )
    equal((voted.service_type, voted.answer_number, voted.charge), (ServiceType.POLL, 2, "0.3"), "poll order")
    mentioned = parsed(
        create_order.sync_detailed(
            client=reseller,
            body=CreateOrderRequest(
                service_id=custom_list.id, link="https://instagram.com/p/list", usernames=["@ann", "bob", " ", "cid"]
            ),
        ),
        201,
        OrderResponse,
    )
    equal((mentioned.usernames, mentioned.quantity, mentioned.charge), (["ann", "bob", "cid"], 3, "0.012"), "custom list order")
    account = parsed(find_account.sync_detailed(client=reseller), 200, AccountResponse)
    equal(account.balance, "47.9774", "both charged exactly")

    step("journey complete")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"[{LANGUAGE}] FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
