"""A dashboard page on another origin calls the API in headless Chromium.

Run by tests/sdk/run.sh with a server started with `--cors-origins http://127.0.0.1:ALLOWED`:
    python tests/sdk/browser.py --api URL --key KEY --allowed-port ALLOWED --other-port OTHER

Serves tests/sdk/browser/ on both ports. From the allowed origin the page must get a token,
read the account and its exposed headers (RateLimit, X-Request-Id) and a problem document;
from the other origin the browser must refuse to hand the page anything.
"""

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

PAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_page(port):
    handler = functools.partial(QuietHandler, directory=PAGE_DIR)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("[browser] FAILED: no chromium on PATH (apt-get install -y chromium)")


def run_page(port, api, key):
    """Loads the page from 127.0.0.1:port and returns what its script wrote."""
    url = f"http://127.0.0.1:{port}/index.html#api={api}&key={key}"
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    if not found or found.group(1) == "running":
        sys.exit(f"[browser] FAILED: the page did not finish; DOM was:\n{dom[:2000]}")
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def check(condition, message):
    if not condition:
        sys.exit(f"[browser] FAILED: {message}")


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--api", required=True)
    args.add_argument("--key", required=True)
    args.add_argument("--allowed-port", type=int, required=True)
    args.add_argument("--other-port", type=int, required=True)
    opts = args.parse_args()
    servers = [serve_page(opts.allowed_port), serve_page(opts.other_port)]
    try:
        allowed = run_page(opts.allowed_port, opts.api, opts.key)
        print(f"[browser] from the configured origin: {allowed}", flush=True)
        check(allowed.get("ok") is True, f"the configured origin could not call the API: {allowed}")
        check(allowed["token_status"] == 200 and allowed["account_status"] == 200, "statuses")
        check(allowed["balance"] == "0", "the operator's balance as a decimal string")
        check(bool(allowed["ratelimit"]) and bool(allowed["ratelimit_policy"]), "RateLimit headers readable")
        check(allowed["request_id"] == "dashboard-check-1", "X-Request-Id sent and read back")
        check(allowed["problem_status"] == 404 and allowed["problem_code"] == "not_found", "problem readable")

        other = run_page(opts.other_port, opts.api, opts.key)
        print(f"[browser] from an unlisted origin: {other}", flush=True)
        check(other.get("ok") is False, f"an unlisted origin could read the API: {other}")
        check("Failed to fetch" in other.get("error", ""), f"expected a CORS refusal: {other}")
    finally:
        for server in servers:
            server.shutdown()
    print("[browser] dashboard check complete", flush=True)


if __name__ == "__main__":
    main()
