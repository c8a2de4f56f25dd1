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

# shellcheck source=../lib/serve.sh
. tests/lib/serve.sh
serve_fresh metrics

python3 tests/metrics/check.py "$BASE" "$ADMIN_KEY" || { tail -n 20 "$WORK/server.log"; exit 1; }
