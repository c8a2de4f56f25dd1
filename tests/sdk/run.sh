#!/usr/bin/env bash
# Generated clients and a browser dashboard against a live server, from the committed spec:
#   1. validate openapi/openapi.json (openapi-spec-validator, redocly lint: no errors);
#   2. generate a Python client (openapi-python-client) and TypeScript types
#      (openapi-typescript, called through openapi-fetch) into target/sdk/, outside git;
#   3. start the server on a fresh SQLite database and run the same reseller journey with
#      each client, then a page on another origin in headless Chromium (CORS).
# Tool versions are pinned in tests/sdk/requirements.txt and tests/sdk/package-lock.json.
# The server binary is target/debug/reseller-api (under CARGO_TARGET_DIR if set), built
# here if needed; RESELLER_API_BIN overrides it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SDK="$ROOT/tests/sdk"
OUT="$ROOT/target/sdk"
BIN="${RESELLER_API_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/reseller-api}"

say() { printf '\n--> %s\n' "$*"; }

say "tools (pinned)"
mkdir -p "$OUT"
if [ ! -x "$OUT/venv/bin/python" ]; then
  python3 -m venv "$OUT/venv"
fi
"$OUT/venv/bin/python" -m pip install -q --disable-pip-version-check -r "$SDK/requirements.txt"
# The npm project runs in target/sdk/typescript, next to the generated types, so nothing
# installed or generated lands in the source tree.
TS="$OUT/typescript"
mkdir -p "$TS"
cp "$SDK/package.json" "$SDK/package-lock.json" "$SDK/tsconfig.json" "$SDK/journey.ts" "$TS/"
(cd "$TS" && npm ci --no-audit --no-fund --loglevel=error)
say "validate the spec"
"$OUT/venv/bin/python" -m openapi_spec_validator openapi/openapi.json
# Errors fail the run; warnings are printed. The grep drops @redocly/cli's boxed banner
# about Node 20 support, the lint's own exit status decides.
lint_status=0
"$TS/node_modules/.bin/redocly" lint openapi/openapi.json --format=stylish >"$OUT/lint.log" 2>&1 || lint_status=$?
grep -v '[║╔╚]' "$OUT/lint.log" | grep -v '^\s*$' || true
[ "$lint_status" -eq 0 ]

say "generate the Python client"
rm -rf "$OUT/python"
mkdir -p "$OUT/python"
PATH="$OUT/venv/bin:$PATH" "$OUT/venv/bin/openapi-python-client" generate \
  --path openapi/openapi.json --output-path "$OUT/python/reseller_api_client" --meta none \
  --fail-on-warning
# An operation without a typed response generates as `Response[Any]` (or `Any | …`): none
# may, but the panel API v2 (`api_v2/`), whose replies differ per action and serve existing
# panel tooling rather than generated clients.
if grep -rEl --exclude-dir=api_v2 'Response\[([^]]*[ |])?Any[] |]' "$OUT/python/reseller_api_client/api"; then
  echo "untyped operations in the generated Python client (listed above)" >&2
  exit 1
fi

say "generate the TypeScript client types and type-check the journey against them"
(cd "$TS" && node_modules/.bin/openapi-typescript "$ROOT/openapi/openapi.json" -o schema.d.ts \
  && node_modules/.bin/tsc -p .)

say "closed sets are enums in both clients: problem codes, forwarding states"
# Python: an Enum class per set, and the fields typed with it.
PY_MODELS="$OUT/python/reseller_api_client/models"
grep -qE '^class ErrorCode\(((Str)?Enum|str, Enum)\)' "$PY_MODELS/error_code.py"
grep -qE '^class ForwardingState\(((Str)?Enum|str, Enum)\)' "$PY_MODELS/forwarding_state.py"
grep -qE '^    code: ErrorCode$' "$PY_MODELS/problem.py"
grep -qE '^    state: ForwardingState$' "$PY_MODELS/forwarding_response.py"
# TypeScript: a union of string literals per set, and the fields pointing at it.
grep -qE '^ *ErrorCode: "[a-z_]+" \|' "$TS/schema.d.ts"
grep -qE '^ *ForwardingState: "queued" \| "sending" \| "sent" \| "ambiguous" \| "failed" \| "done" \| "given_up";' "$TS/schema.d.ts"
grep -qE 'code: components\["schemas"\]\["ErrorCode"\]' "$TS/schema.d.ts"
grep -qE 'state: components\["schemas"\]\["ForwardingState"\]' "$TS/schema.d.ts"

say "start the server"
if [ -z "${RESELLER_API_BIN:-}" ]; then
  cargo build --quiet --bin reseller-api
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port)
PAGE_PORT=$(free_port)
OTHER_PORT=$(free_port)
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
export DATABASE_URL="sqlite://$WORK/db.sqlite"
ADMIN_KEY=$("$BIN" accounts create --name ops --role admin 2>/dev/null | tail -n1)
"$BIN" serve --bind "127.0.0.1:$API_PORT" --cors-origins "http://127.0.0.1:$PAGE_PORT" \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
API="http://127.0.0.1:$API_PORT"
for _ in $(seq 1 50); do
  curl -sf "$API/readyz" >/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
  sleep 0.2
done
curl -sf "$API/readyz" >/dev/null

say "the journey with the Python client"
PYTHONPATH="$OUT/python" "$OUT/venv/bin/python" "$SDK/journey.py" --base-url "$API" --admin-key "$ADMIN_KEY"

say "the journey with the TypeScript client"
node "$TS/dist/journey.js" --base-url "$API" --admin-key "$ADMIN_KEY"

say "a dashboard on another origin, in headless Chromium"
python3 "$SDK/browser.py" --api "$API" --key "$ADMIN_KEY" \
  --allowed-port "$PAGE_PORT" --other-port "$OTHER_PORT"

say "the server's books balance after both journeys"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
"$BIN" verify

echo
echo "sdk: 3 passed, 0 failed"
