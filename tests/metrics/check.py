"""Exact check of /metrics against a server of its own (started by check.sh).

Scrapes with the reference parser (prometheus_client), places and refuses a known number
of orders, makes refunds of known reasons and amounts through several triggers, scrapes
again and asserts every counter moved by exactly that, the review-queue gauge, and that
the histograms are whole (buckets, +Inf = count, sum).

    python3 tests/metrics/check.py BASE_URL ADMIN_KEY
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

BASE, ADMIN_KEY = sys.argv[1], sys.argv[2]


def call(method, path, token=None, body=None, form=None, expect=None):
    headers = {}
    data = None
    if body is not None:
        headers["content-type"] = "application/json"
        data = json.dumps(body).encode()
    if form is not None:
        headers["content-type"] = "application/x-www-form-urlencoded"
        data = urllib.parse.urlencode(form).encode()
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request) as response:
            status, text = response.status, response.read().decode()
            content_type = response.headers.get("content-type", "")
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
        content_type = error.headers.get("content-type", "")
    if expect is not None:
        assert status == expect, f"{method} {path}: {status} {text}"
    if content_type.startswith("text/plain"):
        return status, text
    return status, json.loads(text) if text else None


def token(api_key):
    return call("POST", "/v1/auth/token", body={"api_key": api_key}, expect=200)[1]["access_token"]


def scrape():
    """{(sample name, frozenset of labels): Decimal}, plus the families by name."""
    _, text = call("GET", "/metrics", expect=200)
    samples, families = {}, {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            # repr of a parsed float is the shortest decimal that reads back the same:
            # the decimal written, for amounts of up to 15 significant digits.
            samples[key] = Decimal(repr(sample.value))
    return samples, families, text


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), Decimal(0))


admin = token(ADMIN_KEY)
_, created = call("POST", "/v1/admin/accounts", admin, {"name": "metrics reseller", "role": "reseller"}, expect=201)
reseller_key, reseller_id = created["api_key"], created["account"]["id"]
reseller = token(reseller_key)
call("POST", f"/v1/admin/accounts/{reseller_id}/top-ups", admin,
     {"amount": "20", "gateway": "test", "gateway_ref": "metrics-1"}, expect=201)
rate_2 = call("POST", "/v1/admin/services", admin, {
    "name": "Likes", "category": "Metrics", "type": "default", "rate": "2",
    "min": 10, "max": 100000, "refill": False, "cancel": True}, expect=201)[1]["id"]
odd_rate = call("POST", "/v1/admin/services", admin, {
    "name": "Odd likes", "category": "Metrics", "type": "default", "rate": "1.234567",
    "min": 10, "max": 100000, "refill": False, "cancel": True}, expect=201)[1]["id"]


def order(service, quantity, expect):
    return call("POST", "/v1/orders", reseller,
                {"service_id": service, "link": "https://example.com/p/1", "quantity": quantity},
                expect=expect)[1]


before, _, _ = scrape()

# Placed: 5 REST orders and 1 through API v2 (6 in all, 12 + 1.234567 charged).
orders = [order(rate_2, 1000, 201)["id"] for _ in range(4)]
odd = order(odd_rate, 1000, 201)["id"]
_, added = call("POST", "/api/v2", form={"key": reseller_key, "action": "add", "service": rate_2,
                                         "link": "https://example.com/p/2", "quantity": 1000}, expect=200)
assert "order" in added, added
PLACED = 6
POSTS = 5
# Refused: 2 for want of funds, 2 unknown services (REST and API v2 alike: validation_failed).
for _ in range(2):
    assert order(rate_2, 100000, 402)["code"] == "insufficient_funds"
    POSTS += 1
assert order(999999, 100, 422)["code"] == "validation_failed"
POSTS += 1
_, refused = call("POST", "/api/v2", form={"key": reseller_key, "action": "add", "service": 999999,
                                           "link": "https://example.com/p/3", "quantity": 100}, expect=200)
assert "error" in refused, refused

# Refunds: two cancels (2 + 1.234567), a partial outcome (250 of 1000 undelivered: 0.5).
call("POST", f"/v1/orders/{orders[0]}/cancel", reseller, expect=200)
call("POST", f"/v1/orders/{odd}/cancel", reseller, expect=200)
call("POST", f"/v1/admin/orders/{orders[1]}/outcome", admin, {"status": "partial", "remains": 250}, expect=200)
# A dispute of a completed order waits for review; an approved one refunds "dropped".
call("POST", f"/v1/admin/orders/{orders[2]}/outcome", admin, {"status": "completed"}, expect=200)
_, pending = call("POST", f"/v1/orders/{orders[2]}/refunds", reseller, {"reason": "dropped", "amount": "0.25"}, expect=202)
assert pending["status"] == "pending_review", pending
call("POST", f"/v1/admin/orders/{orders[3]}/outcome", admin, {"status": "completed"}, expect=200)
_, approved = call("POST", f"/v1/orders/{orders[3]}/refunds", reseller, {"reason": "not_delivered", "amount": "0.75"}, expect=202)
call("POST", f"/v1/admin/refunds/{approved['id']}/approve", admin, {}, expect=200)

# Top-up refunds are counted apart: 1.5 back to the card, then a chargeback of the rest.
_, other = call("POST", "/v1/admin/accounts", admin, {"name": "metrics payer", "role": "reseller"}, expect=201)
_, top_up = call("POST", f"/v1/admin/accounts/{other['account']['id']}/top-ups", admin,
                 {"amount": "5", "gateway": "test", "gateway_ref": "metrics-2"}, expect=201)
_, card = call("POST", f"/v1/admin/top-ups/{top_up['id']}/refund", admin,
               {"amount": "1.5", "reason": "duplicate_top_up"}, expect=201)
call("POST", f"/v1/admin/refunds/{card['id']}/succeed", admin, {}, expect=200)
call("POST", f"/v1/admin/top-ups/{top_up['id']}/chargeback", admin, {}, expect=201)

after, families, text = scrape()


def moved(name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


def expect(name, want, **labels):
    got = moved(name, **labels)
    assert got == Decimal(want), f"{name}{labels}: moved by {got}, expected {want}"


expect("orders_placed_total", PLACED)
expect("orders_refused_total", 2, reason="insufficient_funds")
expect("orders_refused_total", 2, reason="validation_failed")
expect("refunds_total", 2, reason="canceled_by_reseller")
expect("refunds_amount_total", "3.234567", reason="canceled_by_reseller", currency="USD")
expect("refunds_total", 1, reason="partial_delivery")
expect("refunds_amount_total", "0.5", reason="partial_delivery", currency="USD")
expect("refunds_total", 1, reason="not_delivered")
expect("refunds_amount_total", "0.75", reason="not_delivered", currency="USD")
expect("refunds_total", 0, reason="dropped")
expect("top_up_refunds_total", 1, reason="duplicate_top_up")
expect("top_up_refunds_amount_total", "1.5", reason="duplicate_top_up", currency="USD")
expect("top_up_refunds_total", 1, reason="chargeback")
expect("top_up_refunds_amount_total", "3.5", reason="chargeback", currency="USD")
assert sum(v for (n, _), v in after.items() if n == "refunds_total") == 4, "no other sales refund"
assert value(after, "refunds_pending_review") == 1
assert value(after, "db_up") == 1
expect("http_requests_total", 2, status="402")
expect("http_request_duration_seconds_count", POSTS, method="POST", route="/v1/orders")

# The exact text of an amount: a decimal in the currency unit, never a float rendering.
assert 'refunds_amount_total{reason="canceled_by_reseller",currency="USD"} 3.234567\n' in text, text

for name in ("http_request_duration_seconds", "db_pool_wait_seconds"):
    family = families[name]
    assert family.type == "histogram", (name, family.type)
    series = {}
    for sample in family.samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        entry = series.setdefault(frozenset(labels.items()), {"buckets": [], "count": None, "sum": None})
        if sample.name.endswith("_bucket"):
            entry["buckets"].append((float(sample.labels["le"]), sample.value))
        elif sample.name.endswith("_count"):
            entry["count"] = sample.value
        elif sample.name.endswith("_sum"):
            entry["sum"] = sample.value
    assert series, f"{name} has no series"
    for labels, entry in series.items():
        buckets = entry["buckets"]
        assert len(buckets) >= 2 and buckets[-1][0] == float("inf"), (name, labels, buckets)
        assert [b for b, _ in buckets] == sorted(b for b, _ in buckets), (name, labels)
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), f"{name}{labels}: buckets are cumulative"
        assert counts[-1] == entry["count"], f"{name}{labels}: +Inf = count"
        assert entry["sum"] is not None and entry["sum"] >= 0, (name, labels)
assert moved("db_pool_wait_seconds_count") > 0

for family in families.values():
    assert family.type in ("counter", "gauge", "histogram"), (family.name, family.type)
    assert family.documentation, f"{family.name} has no HELP"

print(f"metrics check: {PLACED} orders placed, 4 refused, 4 order refunds, 2 top-up refunds, "
      f"{len(families)} families; all exact")
