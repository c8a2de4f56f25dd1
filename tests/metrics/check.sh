#!/usr/bin/env bash
# Exact check of /metrics with the real binary and the reference Prometheus text parser
# (prometheus_client, pinned): a server of its own on a fresh SQLite database, so every
# counter can be asserted to the unit and every amount to the micro-unit (check.py).
#
#   bash tests/metrics/check.sh      # uses ${CARGO_TARGET_DIR:-target}/debug/reseller-api
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${RESELLER_API_BIN:-${CARGO_TARGET_DIR:-target}/debug/reseller-api}"
[ -x "$BIN" ] || cargo build -q

if ! python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("prometheus_client") != "0.26.0")' 2>/dev/null; then
  python3 -m pip install -q "prometheus_client==0.26.0"
fi

WORK="$(mktemp -d)"
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
export DATABASE_URL="sqlite://$WORK/metrics.db"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"

"$BIN" migrate
ADMIN_KEY="$("$BIN" accounts create --name metrics-ops --role admin | tail -n 1)"
"$BIN" serve --bind "127.0.0.1:$PORT" --workers 2 >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -fs "$BASE/healthz" >/dev/null && break; sleep 0.1; done
curl -fs "$BASE/healthz" >/dev/null || { cat "$WORK/server.log"; exit 1; }

python3 tests/metrics/check.py "$BASE" "$ADMIN_KEY" || { tail -n 20 "$WORK/server.log"; exit 1; }
