#!/usr/bin/env bash
# Headless browser check of /dashboard: seeds a database, starts the server, loads the
# page in Chromium (Debian package) as an operator and as a reseller, checks that the
# numbers it draws are the report API's, and saves a screenshot.
#
#   bash tests/dashboard/check.sh            # uses ${CARGO_TARGET_DIR:-target}/debug/reseller-api
#   BIN=target/release/reseller-api bash tests/dashboard/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${BIN:-$TARGET/debug/reseller-api}"
SHOT="${SHOT:-$TARGET/dashboard.png}"
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
[ -x "$BIN" ] || cargo build -q
[ -n "$CHROMIUM" ] || { echo "chromium is not installed (apt-get install -y chromium)"; exit 1; }

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
export DATABASE_URL="sqlite://$WORK/dashboard.db"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"

echo "seeding $DATABASE_URL"
"$BIN" seed --orders 60000 --refunds 6000 --accounts 25 --pending 17 --days 120 --seed 7 2>/dev/null
ADMIN_KEY="$("$BIN" accounts create --name ops --role admin 2>/dev/null | tail -n1)"
"$BIN" verify 2>/dev/null | tail -n1

RUST_LOG=warn "$BIN" serve --bind "127.0.0.1:$PORT" --workers 2 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$BASE/healthz" >/dev/null || { cat "$WORK/server.log"; exit 1; }

token_for() {
  curl -sf -X POST "$BASE/v1/auth/token" -H 'content-type: application/json' \
    -d "{\"api_key\":\"$1\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
ADMIN_TOKEN="$(token_for "$ADMIN_KEY")"
# The busiest seeded reseller (account 1) gets a key, to check the reseller's view too.
RESELLER_KEY="$(curl -sf -X POST "$BASE/v1/admin/accounts/1/api-keys" -H "authorization: Bearer $ADMIN_TOKEN" \
  -H 'content-type: application/json' -d '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"
RESELLER_TOKEN="$(token_for "$RESELLER_KEY")"

browser() {
  local profile; profile="$(mktemp -d "$WORK/profile.XXXX")"
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size=1400,1000 --hide-scrollbars \
    --virtual-time-budget=20000 "$@" 2>>"$WORK/chromium.log"
}

check() {
  local who="$1" token="$2" days="$3"
  browser --dump-dom "$BASE/dashboard#token=$token&days=$days&tz=UTC" > "$WORK/$who.html"
  python3 tests/dashboard/check_dom.py "$WORK/$who.html" "$BASE" "$token" "$who"
}
check admin "$ADMIN_TOKEN" 30
check reseller "$RESELLER_TOKEN" 90

mkdir -p "$(dirname "$SHOT")"
browser --screenshot="$SHOT" "$BASE/dashboard#token=$ADMIN_TOKEN&days=30&tz=UTC" >/dev/null
python3 - "$SHOT" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
width, height = struct.unpack(">II", data[16:24])
assert (width, height) == (1400, 1000), (width, height)
assert len(data) > 40_000, f"screenshot suspiciously small ({len(data)} bytes): blank page?"
PY
echo "dashboard screenshot: $(cd "$(dirname "$SHOT")" && pwd)/$(basename "$SHOT")"
echo "dashboard check passed"
