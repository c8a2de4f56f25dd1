#!/usr/bin/env bash
# The console in headless Chromium (Debian `chromium`, driven by playwright-core pinned in
# package.json; no browser is ever downloaded):
#   1. the reports pane on a seeded database draws the report API's numbers (check_dom.py);
#   2. on a fresh database, every operator task (alerts included) and the reseller's view and
#      webhook endpoints, by clicks and keys, money and alert figures checked against the API,
#      deliveries against a loopback receiver (console.mjs); then `verify`.
# Screenshots land in $CARGO_TARGET_DIR/console/shots (or target/…); with UPDATE_DOCS=1
# they are also copied to docs/console/ for docs/console.md.
#
#   bash tests/console/run.sh      # uses ${CARGO_TARGET_DIR:-target}/debug/reseller-api
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${BIN:-$TARGET/debug/reseller-api}"
OUT="$TARGET/console"
SHOTS="$OUT/shots"
export CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
[ -x "$BIN" ] || cargo build -q
[ -n "$CHROMIUM" ] || { echo "chromium is not installed (apt-get install -y chromium)"; exit 1; }
command -v npm >/dev/null || { echo "npm is not installed (apt-get install -y nodejs npm)"; exit 1; }

# The driver, pinned, installed outside the source tree; it must not fetch a browser.
rm -rf "$SHOTS"
mkdir -p "$OUT/node" "$SHOTS"
cp tests/console/package.json tests/console/package-lock.json tests/console/*.mjs "$OUT/node/"
(cd "$OUT/node" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)

WORK="$(mktemp -d)"
SERVER=""
stop() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=""; fi
}
trap 'stop; rm -rf "$WORK"' EXIT
start() {
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  BASE="http://127.0.0.1:$port"
  RUST_LOG=warn "$BIN" serve --bind "127.0.0.1:$port" --workers 2 2>"$WORK/server.log" &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "$BASE/healthz" >/dev/null || { cat "$WORK/server.log"; exit 1; }
}
token_for() {
  curl -sf -X POST "$BASE/v1/auth/token" -H 'content-type: application/json' \
    -d "{\"api_key\":\"$1\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

echo "== reports on a seeded database"
export DATABASE_URL="sqlite://$WORK/reports.db"
"$BIN" seed --orders 60000 --refunds 6000 --accounts 25 --pending 17 --days 120 --seed 7 2>/dev/null
ADMIN_KEY="$("$BIN" accounts create --name ops --role admin 2>/dev/null | tail -n1)"
start
ADMIN_TOKEN="$(token_for "$ADMIN_KEY")"
# The busiest seeded reseller (account 1) gets a key, to check the reseller's view too.
RESELLER_KEY="$(curl -sf -X POST "$BASE/v1/admin/accounts/1/api-keys" -H "authorization: Bearer $ADMIN_TOKEN" \
  -H 'content-type: application/json' -d '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"
node "$OUT/node/reports.mjs" "$BASE" "$ADMIN_KEY" 30 "$WORK/admin.html" "$SHOTS/reports.png"
python3 tests/console/check_dom.py "$WORK/admin.html" "$BASE" "$ADMIN_TOKEN" admin
node "$OUT/node/reports.mjs" "$BASE" "$RESELLER_KEY" 90 "$WORK/reseller.html"
python3 tests/console/check_dom.py "$WORK/reseller.html" "$BASE" "$(token_for "$RESELLER_KEY")" reseller
stop

echo "== the console's tasks on a fresh database"
export DATABASE_URL="sqlite://$WORK/console.db"
# Alerts evaluated on every worker pass from 5 orders; webhooks delivered every 50 ms to
# the test's loopback receiver (plain http on 127.0.0.1 is allowed for tests only).
export RESELLER_API_ALERT_INTERVAL_SECS=0 RESELLER_API_ALERT_MIN_ORDERS=5
export RESELLER_API_WEBHOOK_INTERVAL_MS=50 RESELLER_API_WEBHOOK_ALLOW_PRIVATE=true
"$BIN" migrate 2>/dev/null
ADMIN_KEY="$("$BIN" accounts create --name console-ops --role admin 2>/dev/null | tail -n1)"
start
node "$OUT/node/console.mjs" "$BASE" "$ADMIN_KEY" "$SHOTS"
stop
"$BIN" verify 2>/dev/null | tail -n1
"$BIN" verify >/dev/null 2>&1 || { echo "verify failed after the console tests"; "$BIN" verify; exit 1; }

python3 - "$SHOTS" <<'PY'
import os, struct, sys
for name in sorted(os.listdir(sys.argv[1])):
    data = open(os.path.join(sys.argv[1], name), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: not a PNG"
    assert struct.unpack(">II", data[16:24]) == (1400, 1000), name
    assert len(data) > 15_000, f"{name}: suspiciously small ({len(data)} bytes): blank page?"
PY
if [ "${UPDATE_DOCS:-}" = 1 ]; then
  mkdir -p "$ROOT/docs/console"
  cp "$SHOTS"/*.png "$ROOT/docs/console/"
  echo "docs/console/ updated"
fi
echo "screenshots: $(cd "$SHOTS" && pwd)"
echo "console check passed"
