# Sourced by the scripts that check the real binary (tests/metrics, tests/api_v2_clients):
# `serve_fresh NAME` starts `$BIN serve` on a fresh SQLite database in a temp folder, on a
# free port, with an operator account, and stops it on exit. It sets WORK, BASE, ADMIN_KEY
# and SERVER; the server's log is "$WORK/server.log".
serve_fresh() {
  local name="$1" port
  WORK="$(mktemp -d)"
  SERVER=""
  trap 'if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT
  export DATABASE_URL="sqlite://$WORK/$name.db"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  BASE="http://127.0.0.1:$port"
  "$BIN" migrate
  ADMIN_KEY="$("$BIN" accounts create --name "$name-ops" --role admin | tail -n 1)"
  "$BIN" serve --bind "127.0.0.1:$port" --workers 2 >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -fs "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  curl -fs "$BASE/healthz" >/dev/null || { cat "$WORK/server.log"; exit 1; }
}
