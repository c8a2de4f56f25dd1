"""Drives our /api/v2 with third-party API v2 client libraries (started by run.sh).

Each library gets a reseller of its own, funded with 10 USD, and a refillable, cancelable
service at 1 USD per 1000: it lists services, places two orders, reads their status one
and many at a time, has one marked partial over REST, requests its refill and reads the
refill's status (one and batch), cancels the other and reads the balance, each answer
asserted exactly. Then the shapes these libraries do not send, with plain requests.

    python tests/api_v2_clients/clients.py BASE_URL ADMIN_KEY SERVER_LOG
"""

import json
import sys
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
assert ok(requests.post(url, data={"key": key, "action": "balance", "comments": "x" * 1_100_000})) \
    == {"error": "Request body too large"}
print("ok raw requests shapes")

with open(SERVER_LOG, encoding="utf-8", errors="replace") as log:
    text = log.read()
leaked = [k for k in keys if k in text]
assert not leaked, "an API key reached the server log"
print("ok no key in the server log")
