"""Drives our /api/v2 with third-party API v2 client libraries (started by run.sh).

Each library gets a reseller of its own, funded with 10 USD, and a refillable, cancelable
service at 1 USD per 1000: it lists services, places two orders, reads their status one
and many at a time, has one marked partial over REST, requests its refill and reads the
refill's status (one and batch), cancels the other and reads the balance, each answer
asserted exactly. Then the shapes these libraries do not send, with plain requests.

Subscriptions: of the API v2 client libraries on PyPI we looked at (babismm 1.0.1,
smmpy 0.1.0, safesmm 0.1.0, optsmm 1.0.1), only babismm sends the panel dialect's
subscription fields: its `add_order` takes `username`, `min`, `max`, `posts`, `delay` and
`expiry` (and passes others such as `old_posts` through) and leaves out `link` and
`quantity` when they are None. smmpy's `add_order` requires `link` and `quantity`, and
safesmm's and optsmm's always send `link` (optsmm is also async and bound to one panel's
URL). So babismm creates and reads a subscription here: `add` answers `{"order": id}`,
`status` of that id answers the subscription as panels do (status, expiry as dd/mm/YYYY,
posts served, child order ids), each child's `status` is an order's, `cancel` ends it; the
hold, the children's charges and the release are asserted over REST to the micro-unit
(balance and held), and refusals (bad fields, a hold the balance does not cover) change
nothing.

    python tests/api_v2_clients/clients.py BASE_URL ADMIN_KEY SERVER_LOG
"""

import json
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import requests
import safesmm
import smm as babismm
import smmpy

BASE, ADMIN_KEY, SERVER_LOG = sys.argv[1], sys.argv[2], sys.argv[3]
MISSING = 999999


def rest(method, path, token=None, body=None, expect=200):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = requests.request(method, BASE + path, json=body, headers=headers, timeout=30)
    assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


admin = rest("POST", "/v1/auth/token", body={"api_key": ADMIN_KEY})["access_token"]
service = rest("POST", "/v1/admin/services", admin, {
    "name": "Followers", "category": "Clients", "type": "default", "rate": "1",
    "min": 10, "max": 10000, "refill": True, "cancel": True}, expect=201)["id"]
keys = []


def reseller(name):
    created = rest("POST", "/v1/admin/accounts", admin, {"name": name, "role": "reseller"}, expect=201)
    rest("POST", f"/v1/admin/accounts/{created['account']['id']}/top-ups", admin,
         {"amount": "10", "gateway": "test", "gateway_ref": f"clients-{name}"}, expect=201)
    keys.append(created["api_key"])
    return created["api_key"]


def partial(order):
    rest("POST", f"/v1/admin/orders/{order}/outcome", admin, {"status": "partial", "remains": 40})


def refused(call, text):
    try:
        call()
    except Exception as error:  # each library raises its own type with the dialect's text
        assert text in str(error), f"{error!r} lacks {text!r}"
        return
    raise AssertionError(f"expected the error {text!r}")


def pending(quantity):
    return {"charge": str(Decimal(quantity) / 1000), "start_count": "0", "status": "Pending",
            "remains": str(quantity), "currency": "USD"}


def drive(name, c):
    """c: the library's calls, by our names; None where the library has none."""
    listed = [s for s in c["services"]() if s["service"] == service]
    assert listed == [{"service": service, "name": "Followers", "type": "Default", "category": "Clients",
                       "rate": "1", "min": "10", "max": "10000", "dripfeed": False,
                       "refill": True, "cancel": True}], listed
    assert c["balance"]() == {"balance": "10", "currency": "USD"}
    a = c["add"](service, "https://example.com/p/1", 100)["order"]
    b = c["add"](service, "https://example.com/p/2", 200)["order"]
    assert isinstance(a, int) and isinstance(b, int), (a, b)
    assert c["status"](a) == pending(100)
    many = c["multi_status"]([a, b, MISSING])
    assert many == {str(a): pending(100), str(b): pending(200),
                    str(MISSING): {"error": "Incorrect order ID"}}, many
    refused(lambda: c["status"](MISSING), "Incorrect order ID")
    partial(a)
    refill = c["refill"](a)["refill"]
    assert refill.isdigit(), refill
    if c.get("refill_status"):
        assert c["refill_status"](refill) == {"status": "Pending"}
        batch = c["multi_refill_status"]([refill, MISSING])
        assert batch == [{"refill": int(refill), "status": "Pending"},
                         {"refill": MISSING, "status": {"error": "Refill not found"}}], batch
    canceled = c["cancel"]([b, MISSING])
    assert canceled == [{"order": b, "cancel": 1},
                        {"order": MISSING, "cancel": {"error": "Incorrect order ID"}}], canceled
    # 10 - 0.1 - 0.2 + 0.2 (canceled) + 0.04 (40 of 100 undelivered)
    assert c["balance"]() == {"balance": "9.94", "currency": "USD"}, c["balance"]()
    print(f"ok {name}")


def smm_style(client):
    return {
        "services": client.get_services, "balance": client.get_balance,
        "add": lambda s, link, q: client.add_order(s, link, q),
        "status": client.get_status, "multi_status": client.get_multi_status,
        "refill": client.create_refill, "refill_status": client.get_refill_status,
        "multi_refill_status": client.get_multi_refill_status, "cancel": client.cancel_orders,
    }


drive("babismm 1.0.1", smm_style(babismm.SMM(BASE + "/api/v2", reseller("babismm"))))
# The trailing-slash endpoint, as panels print it in their docs.
drive("smmpy 0.1.0", smm_style(smmpy.smm(BASE + "/api/v2/", reseller("smmpy"))))
safe = safesmm.SafeSMM(reseller("safesmm"), api_url=BASE + "/api/v2")
drive("safesmm 0.1.0 (no refill status call)", {
    "services": safe.services, "balance": safe.balance, "add": safe.add_order,
    "status": safe.status, "multi_status": safe.multi_status, "refill": safe.refill,
    "cancel": safe.cancel,
})



def subscriptions():
    """babismm creates, reads and cancels a subscription (the docstring says why babismm)."""
    subs = rest("POST", "/v1/admin/services", admin, {
        "name": "Auto likes", "category": "Clients", "type": "subscriptions", "rate": "1.333333",
        "min": 50, "max": 1000}, expect=201)["id"]
    key = reseller("babismm-subscriptions")
    token = rest("POST", "/v1/auth/token", body={"api_key": key})["access_token"]
    c = babismm.SMM(BASE + "/api/v2", key)

    def money():
        account = rest("GET", "/v1/account", token)
        return account["balance"], account["held"]

    listed = [s for s in c.get_services() if s["service"] == subs]
    assert listed == [{"service": subs, "name": "Auto likes", "type": "Subscriptions", "category": "Clients",
                       "rate": "1.333333", "min": "50", "max": "1000", "dripfeed": False,
                       "refill": False, "cancel": False}], listed
    expiry = (datetime.now(timezone.utc) + timedelta(days=30)).strftime("%d/%m/%Y")
    # Refused, nothing held: posts 0 (an unbounded subscription cannot be held), max over
    # the service's, a delay the service does not offer, a hold over the balance
    # (100 posts × 1000 × 1.333333 / 1000 = 133.3333).
    for fields, text in [({"posts": 0}, "Incorrect posts"), ({"max": 1001}, "Incorrect max"),
                         ({"delay": 7}, "Incorrect delay"), ({"max": 1000, "posts": 100}, "Not enough funds on balance")]:
        ask = {"username": "acme.autos", "min": 100, "max": 150, "posts": 3, "delay": 15, "expiry": expiry, **fields}
        refused(lambda: c.add_order(subs, **ask), text)
    assert money() == ("10", "0"), money()

    # 3 posts of at most 150 units: one costs 1.333333 × 150 / 1000 = 0.19999995 → 0.2;
    # 0.6 held from the balance.
    sub = c.add_order(subs, username="@acme.autos", min=100, max=150, posts=3, delay=15, expiry=expiry)["order"]
    assert isinstance(sub, int), sub
    assert c.get_status(sub) == {"status": "Active", "expiry": expiry, "posts": "0", "orders": []}, c.get_status(sub)
    assert c.get_balance() == {"balance": "9.4", "currency": "USD"}, c.get_balance()
    assert money() == ("9.4", "0.6"), money()
    mine = rest("GET", f"/v1/subscriptions/{sub}", token)
    assert [mine["username"], mine["min"], mine["max"], mine["posts"], mine["delay"], mine["held"]] == \
        ["acme.autos", 100, 150, 3, 15, "0.6"], mine

    # Two posts recorded by an operator (no provider): 100 units (0.1333333 → 0.133333)
    # and max (0.2), both paid from the hold.
    children = []
    for post, quantity in [("p1", 100), ("p2", None)]:
        body = {"post_key": post, "link": f"https://instagram.com/p/{post}", **({"quantity": quantity} if quantity else {})}
        children.append(rest("POST", f"/v1/admin/subscriptions/{sub}/posts", admin, body, expect=201)["order"]["id"])
    assert c.get_status(sub) == {"status": "Active", "expiry": expiry, "posts": "2", "orders": children}, c.get_status(sub)
    child = {"start_count": "0", "status": "Pending", "currency": "USD"}
    many = c.get_multi_status([sub, *children, MISSING])
    assert many == {str(sub): {"status": "Active", "expiry": expiry, "posts": "2", "orders": children},
                    str(children[0]): {**child, "charge": "0.133333", "remains": "100"},
                    str(children[1]): {**child, "charge": "0.2", "remains": "150"},
                    str(MISSING): {"error": "Incorrect order ID"}}, many
    assert money() == ("9.4", "0.266667"), money()
    assert c.get_balance() == {"balance": "9.4", "currency": "USD"}, "the hold is not spendable"

    # Canceled through the client: what is still held (0.6 − 0.333333) comes back.
    assert c.cancel_orders([sub]) == [{"order": sub, "cancel": 1}]
    status = c.get_status(sub)
    assert status == {"status": "Canceled", "expiry": expiry, "posts": "2", "orders": children}, status
    assert money() == ("9.666667", "0"), money()
    assert c.get_balance() == {"balance": "9.666667", "currency": "USD"}, c.get_balance()
    ended = rest("GET", f"/v1/subscriptions/{sub}", token)
    assert [ended["captured"], ended["released"], ended["hold_left"]] == ["0.333333", "0.266667", "0"], ended
    ledger = [(e["kind"], e["amount"], e["held_amount"]) for e in reversed(rest("GET", "/v1/ledger?limit=100", token)["data"])]
    assert [(k, Decimal(a), Decimal(h)) for k, a, h in ledger] == [
        ("top_up", Decimal("10"), 0), ("subscription_hold", Decimal("-0.6"), Decimal("0.6")),
        ("order_charge", 0, Decimal("-0.133333")), ("order_charge", 0, Decimal("-0.2")),
        ("subscription_release", Decimal("0.266667"), Decimal("-0.266667"))], ledger
    print("ok babismm 1.0.1 subscription: add, status, multi status, cancel")


subscriptions()

# The shapes no library above sends, with plain requests.
key = reseller("raw")
url = BASE + "/api/v2"


def ok(response):
    assert response.status_code == 200, f"{response.status_code} {response.text}"
    return response.json()


added = ok(requests.get(url, params={"key": key, "action": "add", "service": service,
                                     "link": "https://example.com/p/3", "quantity": "100",
                                     "runs": "", "interval": "None", "comments": "undefined"}))
order = added["order"]
assert ok(requests.get(url + "/", params={"key": key, "action": "Status", "order": order})) == pending(100)
assert ok(requests.post(url, json={"key": key, "action": "status", "order": order})) == pending(100)
multipart = {"key": (None, key), "action": (None, "status"), "order": (None, str(order))}
assert ok(requests.post(url, files=multipart)) == pending(100)
partial(order)
refill = ok(requests.post(url, data={"key": key, "order": order}))["refill"]  # no action
assert ok(requests.post(url, data={"key": key, "refills": f"{refill},{MISSING}"})) == [
    {"refill": int(refill), "status": "Pending"},
    {"refill": MISSING, "status": {"error": "Refill not found"}}]
for method, path in [("PUT", "/api/v2"), ("DELETE", "/api/v2/"), ("GET", "/api/v2/nope")]:
    reply = ok(requests.request(method, BASE + path, params={"key": key, "action": "balance"}))
    assert list(reply) == ["error"], reply
assert ok(requests.post(url, data={"key": key, "action": "balance", "comments": "x" * 2_200_000})) \
    == {"error": "Request body too large"}
print("ok raw requests shapes")

with open(SERVER_LOG, encoding="utf-8", errors="replace") as log:
    text = log.read()
leaked = [k for k in keys if k in text]
assert not leaked, "an API key reached the server log"
print("ok no key in the server log")
