"""Drives every event type through the API and checks each delivery with the
`standardwebhooks` package: a reseller endpoint (all events), an operator endpoint
(alerts), a test ping, and a secret rotation (both secrets must verify)."""

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

BASE, ADMIN_KEY = sys.argv[1], sys.argv[2]
RECEIVED = {}  # path -> list of (headers, body)
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        with LOCK:
            RECEIVED.setdefault(self.path, []).append((dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
HOOKS = f"http://127.0.0.1:{server.server_address[1]}"


def call(method, path, token=None, body=None, expect=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    if expect is not None and status != expect:
        sys.exit(f"{method} {path}: {status} {text}")
    return json.loads(text) if text else None


def token(key):
    return call("POST", "/v1/auth/token", body={"api_key": key}, expect=200)["access_token"]


def deliveries(path):
    with LOCK:
        return list(RECEIVED.get(path, []))


def types(path):
    return [json.loads(body)["type"] for _, body in deliveries(path)]


def wait_for(path, event_type, count=1, seconds=20):
    deadline = time.time() + seconds
    while types(path).count(event_type) < count:
        if time.time() > deadline:
            sys.exit(f"{event_type} never reached {path}; got {types(path)}")
        time.sleep(0.05)


admin = token(ADMIN_KEY)
created = call("POST", "/v1/admin/accounts", admin, {"name": "Acme", "role": "reseller"}, 201)
reseller_id, reseller = created["account"]["id"], token(created["api_key"])
mine = call("POST", "/v1/webhook-endpoints", reseller, {"url": HOOKS + "/reseller"}, 201)
ops = call("POST", "/v1/webhook-endpoints", admin,
           {"url": HOOKS + "/ops", "events": ["alert.raised", "alert.escalated", "alert.cleared"]}, 201)

# Money in, orders, a partial delivery and its refund.
call("POST", f"/v1/admin/accounts/{reseller_id}/top-ups", admin,
     {"amount": "500", "gateway": "test", "gateway_ref": "wh-1"}, 201)
service = call("POST", "/v1/admin/services", admin, {"name": "Likes", "category": "IG", "type": "default",
               "rate": "1", "min": 10, "max": 100000}, 201)["id"]


def order(quantity=1000, svc=None):
    return call("POST", "/v1/orders", reseller,
                {"service_id": svc or service, "link": "https://x/p", "quantity": quantity}, 201)["id"]


def outcome(order_id, body):
    call("POST", f"/v1/admin/orders/{order_id}/outcome", admin, body, 200)


first = order()
outcome(first, {"status": "partial", "remains": 100})
# A dispute approved, another rejected.
for decision in ("approve", "reject"):
    o = order()
    outcome(o, {"status": "completed"})
    dispute = call("POST", f"/v1/orders/{o}/refunds", reseller, {"reason": "not_delivered"}, 202)
    body = {} if decision == "approve" else {"reason": "delivered"}
    call("POST", f"/v1/admin/refunds/{dispute['id']}/{decision}", admin, body, 200)
# Top-up refunds to the payment method, one confirmed, one failed; then a chargeback.
top_up = call("POST", f"/v1/admin/accounts/{reseller_id}/top-ups", admin,
              {"amount": "20", "gateway": "test", "gateway_ref": "wh-2"}, 201)["id"]
for answer in ("succeed", "fail"):
    back = call("POST", f"/v1/admin/top-ups/{top_up}/refund", admin, {"amount": "1", "reason": "manual"}, 201)
    call("POST", f"/v1/admin/refunds/{back['id']}/{answer}", admin, {}, 200)
call("POST", f"/v1/admin/top-ups/{top_up}/chargeback", admin, {}, 201)
call("POST", f"/v1/admin/accounts/{reseller_id}/reactivate", admin, {}, 200)
call("POST", f"/v1/webhook-endpoints/{mine['id']}/test", reseller, {}, 202)
# A refill, completed by an operator (the service has no provider).
refillable = call("POST", "/v1/admin/services", admin, {"name": "Followers", "category": "IG",
                  "type": "default", "rate": "1", "min": 10, "max": 100000, "refill": True,
                  "refill_days": 30}, 201)["id"]
refilled = order(svc=refillable)
outcome(refilled, {"status": "completed"})
refill = call("POST", f"/v1/orders/{refilled}/refills", reseller, {}, 201)
call("POST", f"/v1/admin/refills/{refill['id']}/complete", admin, {}, 200)

# A subscription (no provider): created with its hold, one post recorded (its child), and
# completed by that last post, the rest released.
auto = call("POST", "/v1/admin/services", admin, {"name": "Auto likes", "category": "IG",
            "type": "subscriptions", "rate": "1", "min": 10, "max": 1000}, 201)["id"]
sub = call("POST", "/v1/subscriptions", reseller, {"service_id": auto, "username": "alice",
           "min": 100, "max": 200, "posts": 1}, 201)
call("POST", f"/v1/admin/subscriptions/{sub['id']}/posts", admin,
     {"post_key": "p1", "link": "https://x/p1", "quantity": 150}, 201)

# Alerts on a service of their own: 10 clean orders, 2 half delivered (20 % by count:
# warning), 2 more (40 %: critical), then 50 clean ones (4 of 64: under 8 %, cleared).
alerting = call("POST", "/v1/admin/services", admin, {"name": "Views", "category": "YT", "type": "default",
                "rate": "1", "min": 10, "max": 100000}, 201)["id"]
batch = [order(svc=alerting) for _ in range(10)]
for o in batch[:2]:
    outcome(o, {"status": "partial", "remains": 500})
wait_for("/ops", "alert.raised")
for o in batch[2:4]:
    outcome(o, {"status": "partial", "remains": 500})
wait_for("/ops", "alert.escalated")
for _ in range(50):
    outcome(order(svc=alerting), {"status": "completed"})
wait_for("/ops", "alert.cleared")

EXPECTED = {
    "order.created", "order.status_changed", "refund.succeeded", "refund.pending_review",
    "refund.approved", "refund.rejected", "top_up.succeeded", "top_up_refund.succeeded",
    "top_up_refund.failed", "chargeback.created", "account.suspended", "account.reactivated", "ping",
    "refill.created", "refill.status_changed",
    "subscription.created", "subscription.child_created", "subscription.status_changed",
}
for t in sorted(EXPECTED):
    wait_for("/reseller", t)

# A rotation: a delivery signed after it carries both signatures, each verifying alone.
# The delivery looked at is that of an order placed after the rotation: deliveries of
# earlier events may still be in flight, signed before it.
rotated = call("POST", f"/v1/webhook-endpoints/{mine['id']}/rotate-secret", reseller, {}, 200)
after_rotation = order()


def created_delivery(order_id):
    for headers, body in deliveries("/reseller"):
        payload = json.loads(body)
        if payload["type"] == "order.created" and payload["data"]["order"]["id"] == order_id:
            return headers, body
    return None


deadline = time.time() + 20
while created_delivery(after_rotation) is None:
    if time.time() > deadline:
        sys.exit("no delivery after the rotation")
    time.sleep(0.05)


def verify_all(path, secret):
    verifier = Webhook(secret)
    ids = []
    for headers, body in deliveries(path):
        try:
            payload = verifier.verify(body, headers)
        except WebhookVerificationError as error:
            sys.exit(f"{path}: {error}: {headers} {body}")
        assert set(payload) == {"type", "timestamp", "data"}, payload
        ids.append(headers["webhook-id"])
    assert len(ids) == len(set(ids)), f"{path}: a webhook-id delivered twice: {ids}"
    return len(ids)


last_headers, last_body = created_delivery(after_rotation)
assert len(last_headers["webhook-signature"].split(" ")) == 2, last_headers
for secret in (mine["secret"], rotated["secret"]):
    Webhook(secret).verify(last_body, last_headers)
# Everything before the rotation was signed with the first secret only.
verify_all("/reseller", mine["secret"])
n_ops = verify_all("/ops", ops["secret"])
got = set(types("/reseller"))
assert EXPECTED <= got, EXPECTED - got
assert not any(t.startswith("alert.") for t in got), "a reseller never gets operator alerts"
assert {"alert.raised", "alert.escalated", "alert.cleared"} <= set(types("/ops"))
# The event log agrees with what was delivered.
for t in EXPECTED:
    page = call("GET", f"/v1/events?type={t}&limit=100", reseller, expect=200)["data"]
    started = time.time()
    wait_for("/reseller", t, count=len(page))
    if time.time() - started > 1:
        print(f"{t}: waited {time.time() - started:.1f}s for the last deliveries")
    # Deliveries run in parallel, so they may arrive out of order: match them by id.
    delivered = {h["webhook-id"]: json.loads(b) for h, b in deliveries("/reseller")
                 if json.loads(b)["type"] == t}
    assert {str(e["id"]): e["data"] for e in page} == {k: d["data"] for k, d in delivered.items()}, t
print(f"webhooks: {len(deliveries('/reseller'))} reseller and {n_ops} operator deliveries, "
      f"all {len(EXPECTED) + 3} event types verified by standardwebhooks")
