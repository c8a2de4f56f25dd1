#!/usr/bin/env bash
# Our /api/v2 driven by third-party API v2 client libraries from PyPI, pinned, against the
# real debug binary on a fresh SQLite database: services, add, status, multi status,
# cancel, refill, refill status (one and batch) and balance, every answer asserted
# (clients.py); a subscription created, read (status, multi status) and canceled with
# babismm, the one of them that sends the subscription fields (username, min, max, posts,
# delay, expiry), its hold, captures and release checked over REST; plus the shapes those
# libraries do not send (GET, trailing slash, JSON, multipart, no action) with plain requests.
#
#   bash tests/api_v2_clients/run.sh   # uses ${CARGO_TARGET_DIR:-target}/debug/reseller-api
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${RESELLER_API_BIN:-${CARGO_TARGET_DIR:-target}/debug/reseller-api}"
[ -x "$BIN" ] || cargo build -q

# The clients, pinned; requests is what two of them are built on. Of the API v2 clients on
# PyPI only babismm sends subscriptions (clients.py's docstring says which were read).
PINS=(babismm==1.0.1 smmpy==0.1.0 safesmm==0.1.0 requests==2.34.2)
VENV="${HOME}/.cache/reseller-api/api-v2-clients-venv"
STAMP="$VENV/.pins"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "${PINS[*]}" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" || { apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
  "$VENV/bin/python" -m pip install -q "${PINS[@]}"
  echo "${PINS[*]}" >"$STAMP"
fi

# shellcheck source=../lib/serve.sh
. tests/lib/serve.sh
serve_fresh clients

"$VENV/bin/python" tests/api_v2_clients/clients.py "$BASE" "$ADMIN_KEY" "$WORK/server.log" \
  || { tail -n 20 "$WORK/server.log"; exit 1; }
