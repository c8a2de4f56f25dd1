#!/usr/bin/env bash
# Webhooks checked by an independent verifier: the real debug binary on a fresh SQLite
# database delivers every event type to receivers in receivers.py, which verify each
# signature with the `standardwebhooks` package from PyPI (pinned), not with our code.
#
#   bash tests/webhooks/run.sh   # uses ${CARGO_TARGET_DIR:-target}/debug/reseller-api
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${RESELLER_API_BIN:-${CARGO_TARGET_DIR:-target}/debug/reseller-api}"
[ -x "$BIN" ] || cargo build -q

PINS=(standardwebhooks==1.1.0)
VENV="${HOME}/.cache/reseller-api/webhooks-venv"
STAMP="$VENV/.pins"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "${PINS[*]}" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" || { apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
  "$VENV/bin/python" -m pip install -q "${PINS[@]}"
  echo "${PINS[*]}" >"$STAMP"
fi

# Loopback receivers, a fast worker, alerts evaluated on every pass from 5 orders.
export RESELLER_API_WEBHOOK_ALLOW_PRIVATE=true
export RESELLER_API_WEBHOOK_INTERVAL_MS=50
export RESELLER_API_ALERT_INTERVAL_SECS=0
export RESELLER_API_ALERT_MIN_ORDERS=5
export RESELLER_API_ALERT_WARNING_RATE=0.1
export RESELLER_API_ALERT_CRITICAL_RATE=0.3

# shellcheck source=../lib/serve.sh
. tests/lib/serve.sh
serve_fresh webhooks

"$VENV/bin/python" tests/webhooks/receivers.py "$BASE" "$ADMIN_KEY" \
  || { tail -n 20 "$WORK/server.log"; exit 1; }
"$BIN" verify
