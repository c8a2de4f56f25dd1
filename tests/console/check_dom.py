"""Checks a dashboard DOM (as Chromium dumped it after its scripts ran) against the API.

usage: check_dom.py DOM_FILE BASE_URL TOKEN admin|reseller
"""
import json
import sys
import urllib.parse
import urllib.request
from html.parser import HTMLParser


class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.body = {}
        self.kpis = {}
        self.circles = []
        self.rows = {}
        self.boxes = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        testid = a.get("data-testid", "")
        if testid.startswith("kpi-"):
            self.kpis[testid] = a.get("data-value")
        if tag == "circle" and "data-group" in a:
            self.circles.append((a["data-group"], a["data-rate"], a["data-refunded"]))
        if testid.endswith("-row"):
            self.rows.setdefault(testid[:-4], []).append((a["data-group"], a["data-refunded"]))
        if tag == "div" and a.get("id") in ("services", "providers", "reasons", "accounts"):
            self.boxes[a["id"]] = a.get("data-rows")


def main():
    dom_file, base, token, who = sys.argv[1:5]
    dom = Dom()
    dom.feed(open(dom_file, encoding="utf-8").read())
    failures = []

    def expect(what, got, want):
        if got != want:
            failures.append(f"{who}: {what}: page shows {got!r}, API says {want!r}")

    expect("page state", dom.body.get("data-state"), "ready")
    if failures:
        sys.exit("\n".join(failures))
    path = "/v1/admin/reports/refunds" if who == "admin" else "/v1/reports/refunds"

    def report(group_by):
        query = urllib.parse.urlencode({
            "from": dom.body["data-from"], "to": dom.body["data-to"],
            "timezone": dom.body["data-timezone"], "group_by": group_by,
        })
        request = urllib.request.Request(f"{base}{path}?{query}", headers={"authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request) as response:
            return json.load(response)

    trend = report(dom.body["data-trend-group"])
    totals = trend["totals"]
    expect("orders", dom.kpis.get("kpi-orders"), str(totals["orders_count"]))
    expect("charged", dom.kpis.get("kpi-charged"), totals["charged_amount"])
    expect("refunded", dom.kpis.get("kpi-refunded"), totals["refunded_amount"])
    expect("refund rate (amount)", dom.kpis.get("kpi-rate-amount"), totals["refund_rate_amount"])
    expect("refund rate (count)", dom.kpis.get("kpi-rate-count"), totals["refund_rate_count"])
    expect("pending review", dom.kpis.get("kpi-pending"), str(trend["pending_review_count"]))
    expect("chart points", dom.circles,
           [(r["group"], r["refund_rate_amount"], r["refunded_amount"]) for r in trend["rows"]])
    if len(trend["rows"]) < 20:
        failures.append(f"{who}: the seeded window should give at least 20 points, got {len(trend['rows'])}")
    if totals["refunded_amount"] == "0":
        failures.append(f"{who}: the seeded data should have refunds in the window")
    tables = [("services", "service", 8), ("providers", "provider", 8), ("reasons", "reason", 12)]
    if who == "admin":
        tables.append(("accounts", "account", 8))
    for box, group_by, limit in tables:
        rows = [r for r in report(group_by)["rows"] if group_by != "reason" or r["refunded_amount"] != "0"]
        expect(f"{box} table", dom.rows.get(box, []),
               [(r["group"], r["refunded_amount"]) for r in rows[:limit]])
    if failures:
        sys.exit("\n".join(failures))
    print(f"{who}: {len(dom.circles)} chart points, {sum(len(v) for v in dom.rows.values())} table rows and "
          f"6 totals match the API (refunded {totals['refunded_amount']} of {totals['charged_amount']})")


if __name__ == "__main__":
    main()
