#!/usr/bin/env bash
# Load benchmark of the release server, on SQLite and on PostgreSQL, against two ceilings
# measured in the same run:
#   ceiling 1  the order transaction straight through the data layer, no HTTP
#              (`reseller-api bench-load orders`), for order placement;
#   ceiling 2  a bare actix-web handler with no database (`reseller-api bench-load bare`),
#              for status reads;
#   fsync      the disk's sync rate on the SQLite database's filesystem (PostgreSQL's
#              `pg_test_fsync`, one 8 kB write + fdatasync): one commit per order caps
#              placement there, so SQLite placement is also shown as a multiple of it
#              (above 1.0x only by committing several orders at once).
# Usage: bash bench/run.sh
# Knobs (environment): BENCH_SECONDS (per point, default 10), BENCH_LEVELS (connections,
# default "1 8 64"), BENCH_LEASES (PostgreSQL: account quota leases to measure the read
# rows with, default "12 1"; rows "…, lease N"), BENCH_BACKENDS (default "sqlite postgres"), BENCH_PG_URL (server,
# default postgres://postgres@127.0.0.1:5432), BENCH_PORT (default 18080),
# CARGO_TARGET_DIR, BENCH_BASELINE (a commit: also builds it in a temporary git worktree,
# target dir target/bench-baseline, and measures its server's and this one's order
# placement and reads side by side: BENCH_ROUNDS rounds, default 3, the order alternating,
# each server on a fresh database of its own per round and with its worker running unless
# BENCH_SIDE_WORKER=0; a second table gives each side's mean, their ratio and each
# round's ratio; BENCH_SIDE_ONLY=1 measures only that; BENCH_SIDE_MODES picks the calls, of
# orders get v2status, bench/load.lua's names).
# Ceiling 1, this server and the baseline each start on a fresh database.
# Not part of `cargo test` or `.ci/run`. BENCH_REPORTS=1 adds the report section (bench/reports.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${BENCH_SECONDS:-10}
LEVELS=${BENCH_LEVELS:-"1 8 64"}
BACKENDS=${BENCH_BACKENDS:-"sqlite postgres"}
PG_BASE=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
PORT=${BENCH_PORT:-18080}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/reseller-api
LEASES=${BENCH_LEASES:-"12 1"}
ROUNDS=${BENCH_ROUNDS:-3}
SIDE_ONLY=${BENCH_SIDE_ONLY:-0}
SIDE_MODES=${BENCH_SIDE_MODES:-"orders get v2status"}
MAX_LEVEL=$(printf '%s\n' $LEVELS | sort -n | tail -n1)

say() { printf '==> %s\n' "$*" >&2; }

if ! command -v wrk >/dev/null; then
  say "installing wrk"
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
fi
say "building the release binary"
cargo build --release --quiet
BASELINE=${BENCH_BASELINE:-}
BASELINE_BIN=""
if [ -n "$BASELINE" ]; then
  BASELINE=$(git rev-parse --short "$BASELINE")
  BASELINE_TREE=$ROOT/target/bench-baseline/src-$BASELINE
  if [ ! -d "$BASELINE_TREE" ]; then
    # A worktree whose folder went with `target/` is still registered until pruned.
    git worktree prune
    git worktree add --detach "$BASELINE_TREE" "$BASELINE" >/dev/null
  fi
  say "building the baseline $BASELINE"
  (cd "$BASELINE_TREE" && CARGO_TARGET_DIR=$ROOT/target/bench-baseline/target cargo build --release --quiet)
  BASELINE_BIN=$ROOT/target/bench-baseline/target/release/reseller-api
fi

WORK=$(mktemp -d)
SERVER_PID=""
PG_DBS=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  declare -F drop_dbs >/dev/null && drop_dbs
  rm -rf "$WORK"
}
trap cleanup EXIT

# Quotas high enough that the benchmark measures the API, not 429s; tokens that outlive
# the run; no provider worker (there are no providers).
export RESELLER_API_RATE_ACCOUNT=1000000000 RESELLER_API_RATE_TOKEN=1000000 \
  RESELLER_API_RATE_DISPUTE=1000000 RESELLER_API_TOKEN_TTL=7200 RESELLER_API_NO_WORKER=true
export BENCH_ACCOUNTS=$WORK/accounts.txt
RESULTS=$WORK/results.tsv
: >"$RESULTS"
SIDE=$WORK/side.tsv
: >"$SIDE"

# record BACKEND WHAT CONNS "RESULT ..." : one row of the results table.
record() {
  local line=$4
  [ -n "$line" ] || { say "no result for $1 $2 c=$3"; exit 1; }
  # shellcheck disable=SC2086
  local $(echo "${line#RESULT }")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$rps" "$p50_us" "$p99_us" "$errors" >>"$RESULTS"
  say "$1 $2 c=$3: $rps req/s, p50 ${p50_us} us, p99 ${p99_us} us, errors $errors"
}

start() { # start COMMAND...: runs a server in the background, waits until it answers
  "$@" 2>>"$WORK/server.log" >/dev/null &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/${HEALTH_PATH}" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
  done
  say "server did not come up"; exit 1
}

stop() {
  kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

peak_rss_mb() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

wrk_point() { # wrk_point MODE CONNS: one wrk run, prints its RESULT line
  local threads=2
  [ "$2" -lt 2 ] && threads=1
  BENCH_MODE=$1 wrk -t"$threads" -c"$2" -d"${DURATION}s" --timeout 10s -s bench/load.lua \
    "http://127.0.0.1:$PORT" | grep '^RESULT' || true
}

if [ "$SIDE_ONLY" != 1 ]; then # (BENCH_SIDE_ONLY=1: only the side by side below)
  PG_TEST_FSYNC=${BENCH_PG_TEST_FSYNC:-/usr/lib/postgresql/15/bin/pg_test_fsync}
  say "fsync: pg_test_fsync on the database's filesystem ($WORK)"
  # The fdatasync line of the "one 8kB write" block: "fdatasync  5807.456 ops/sec  172 usecs/op".
  # (Its whole output first: awk stopping early would end it with SIGPIPE under pipefail.)
  "$PG_TEST_FSYNC" -f "$WORK/fsync.test" -s 2 >"$WORK/fsync.txt" 2>>"$WORK/server.log"
  rm -f "$WORK/fsync.test"
  FSYNC_LINE=$(awk '/one 8kB write/ { block = 1; next } block && $1 == "fdatasync" { print $2, $4; exit }' "$WORK/fsync.txt")
  read -r FSYNC_OPS FSYNC_US <<<"${FSYNC_LINE:-0 0}"
  [ "${FSYNC_OPS%.*}" -gt 0 ] || { say "pg_test_fsync gave no fdatasync figure"; exit 1; }
  # One op at a time: its per-op time is the same figure as p50 and p99.
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "sqlite" "fsync: 8kB write + fdatasync" 1 "$FSYNC_OPS" \
    "$FSYNC_US" "$FSYNC_US" 0 >>"$RESULTS"
  say "fsync: $FSYNC_OPS syncs/s, ${FSYNC_US} us each"

  say "ceiling 2: bare actix-web handler"
  HEALTH_PATH=bare start "$BIN" bench-load bare --bind "127.0.0.1:$PORT"
  for c in $LEVELS; do record "-" "ceiling 2: bare handler" "$c" "$(wrk_point bare "$c")"; done
  stop
fi

# fresh_db BACKEND NAME: points DATABASE_URL at a new, empty database (migrated by the
# next setup). Each server measured, and ceiling 1, gets its own, so none starts on the
# rows (and, on PostgreSQL, the dead row versions) another left behind.
fresh_db() {
  case $1 in
    sqlite) export DATABASE_URL="sqlite://$WORK/$2.db" ;;
    postgres)
      local db="reseller_bench_${2}_$$"
      psql -q "$PG_BASE/postgres" -c "CREATE DATABASE $db" >/dev/null
      PG_DBS="$PG_DBS $db"
      # PostgreSQL requires the master key that encrypts secrets at rest.
      [ -f "$WORK/master.key" ] || (umask 077; head -c 32 /dev/urandom | base64 > "$WORK/master.key")
      export RESELLER_MASTER_KEY_FILE="$WORK/master.key"
      export DATABASE_URL="$PG_BASE/$db" ;;
    *) say "unknown backend $1"; exit 1 ;;
  esac
}

drop_dbs() {
  for db in $PG_DBS; do
    psql -q "$PG_BASE/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  done
  PG_DBS=""
}

verify_books() {
  say "$1: checking the books"
  "$BIN" verify 2>>"$WORK/server.log" | tail -n 2 >&2
}

RSS=()
for backend in $BACKENDS; do
  if [ "$SIDE_ONLY" != 1 ]; then
    say "$backend: ceiling 1, the order transaction with no HTTP"
    fresh_db "$backend" ceiling
    "$BIN" bench-load setup --accounts 16 --orders 100 --out "$BENCH_ACCOUNTS" 2>>"$WORK/server.log" >&2
    for c in $LEVELS; do
      record "$backend" "ceiling 1: order tx, no HTTP" "$c" \
        "$("$BIN" bench-load orders --accounts-file "$BENCH_ACCOUNTS" --threads "$c" --seconds "$DURATION" 2>>"$WORK/server.log" | grep '^RESULT')"
    done
    verify_books "$backend ceiling 1"

    say "$backend: the API server"
    fresh_db "$backend" api
    "$BIN" bench-load setup --accounts 16 --orders 100 --out "$BENCH_ACCOUNTS" 2>>"$WORK/server.log" >&2
    HEALTH_PATH=healthz start "$BIN" serve --bind "127.0.0.1:$PORT"
    for c in $LEVELS; do record "$backend" "POST /v1/orders" "$c" "$(wrk_point orders "$c")"; done
    for c in $LEVELS; do record "$backend" "POST /api/v2 add" "$c" "$(wrk_point v2add "$c")"; done
    for c in $LEVELS; do record "$backend" "GET /v1/orders/{id}" "$c" "$(wrk_point get "$c")"; done
    for c in $LEVELS; do record "$backend" "GET /v1/orders/status (100 ids)" "$c" "$(wrk_point batch "$c")"; done
    for c in $LEVELS; do record "$backend" "POST /api/v2 status" "$c" "$(wrk_point v2status "$c")"; done
    RSS+=("$backend $(peak_rss_mb)")
    stop
    verify_books "$backend API"

    if [ "$backend" = postgres ]; then
      # The account quota's cost on the read path: on PostgreSQL every process leases
      # requests from the account's quota cell in the database (one write per lease). The
      # rows above ran with the largest lease (50, the quota being raised); these with the
      # lease a default quota gets (600 per 60 s: 12) and with a lease of 1, a write per
      # request, the worst case.
      for lease in $LEASES; do
        say "$backend: reads with a quota lease of $lease"
        HEALTH_PATH=healthz RESELLER_API_RATE_ACCOUNT_LEASE=$lease start "$BIN" serve --bind "127.0.0.1:$PORT"
        for c in $LEVELS; do record "$backend" "GET /v1/orders/{id}, lease $lease" "$c" "$(wrk_point get "$c")"; done
        for c in $LEVELS; do record "$backend" "POST /api/v2 status, lease $lease" "$c" "$(wrk_point v2status "$c")"; done
        stop
      done
  fi

  fi
  if [ -n "$BASELINE_BIN" ]; then
    # Side by side with the baseline: ROUNDS rounds, each server on a fresh database of its
    # own set up by its own binary, the order alternating (this then baseline, baseline then
    # this, ...), so a machine that slows down or speeds up during the run (a shared host
    # does) weighs on both alike. Measured one after the other, minutes apart, the same two
    # binaries differed by up to 35% on this machine; interleaved, by a few percent.
    for round in $(seq 1 "$ROUNDS"); do
      sides="this baseline"
      [ $((round % 2)) -eq 0 ] && sides="baseline this"
      for side in $sides; do
        say "$backend: side by side, round $round of $ROUNDS, $side"
        side_bin=$BIN
        [ "$side" = baseline ] && side_bin=$BASELINE_BIN
        fresh_db "$backend" "${side}_$round"
        "$side_bin" bench-load setup --accounts 16 --orders 100 --out "$WORK/side-accounts.txt" \
          2>>"$WORK/server.log" >&2
        # With its worker, as in production (this one's folds the report rollups every
        # second beside the orders); BENCH_SIDE_WORKER=0 measures without.
        if [ "${BENCH_SIDE_WORKER:-1}" = 1 ]; then
          HEALTH_PATH=healthz start env -u RESELLER_API_NO_WORKER "$side_bin" serve --bind "127.0.0.1:$PORT"
        else
          HEALTH_PATH=healthz start "$side_bin" serve --bind "127.0.0.1:$PORT"
        fi
        for mode in $SIDE_MODES; do
          for c in $LEVELS; do
            line=$(BENCH_ACCOUNTS=$WORK/side-accounts.txt wrk_point "$mode" "$c")
            [ -n "$line" ] || { say "no result for $backend $side $mode c=$c"; exit 1; }
            side_rps=$(echo "${line#RESULT }" | tr ' ' '\n' | awk -F= '$1 == "rps" { print $2 }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$mode" "$c" "$round" "$side" "$side_rps" >>"$SIDE"
            say "$backend $side $mode c=$c: $side_rps req/s"
          done
        done
        stop
      done
    done
  fi
  drop_dbs
  unset DATABASE_URL
done

# The table: each API figure as a ratio to its ceiling's best throughput (order placement
# to ceiling 1 of the same backend, reads to ceiling 2), and SQLite placement as a multiple
# of the disk's fsync rate.
if [ -s "$RESULTS" ]; then
printf '\n| backend | measurement | conns | req/s | p50 ms | p99 ms | errors | vs ceiling |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|\n'
awk -F'\t' '
  { rows[NR] = $0; if ($2 ~ /^ceiling 1/ && $4 > c1[$1]) c1[$1] = $4; if ($2 ~ /^ceiling 2/ && $4 > c2) c2 = $4
    if ($2 ~ /^fsync/) fsync[$1] = $4
  }
  END {
    for (i = 1; i <= NR; i++) {
      split(rows[i], f, "\t")
      ratio = "-"
      if (f[2] ~ /orders$|add$/ && c1[f[1]] > 0) ratio = sprintf("%.0f%% of c1", 100 * f[4] / c1[f[1]])
      if (f[2] ~ /orders$|add$/ && fsync[f[1]] > 0) ratio = sprintf("%s, %.2fx fsync", ratio, f[4] / fsync[f[1]])
      if ((f[2] ~ /^GET/ || f[2] ~ /status(, lease [0-9]+)?$/) && c2 > 0) ratio = sprintf("%.0f%% of c2", 100 * f[4] / c2)
      printf "| %s | %s | %s | %.0f | %.2f | %.2f | %s | %s |\n", f[1], f[2], f[3], f[4], f[5] / 1000, f[6] / 1000, f[7], ratio
    }
  }' "$RESULTS"
fi
if [ -s "$SIDE" ]; then
  # This server against the baseline, round by round: the mean of each side's rounds, the
  # ratio of the means (the figure), and each round's own ratio (the spread).
  printf '\nSide by side with the baseline %s (%s rounds, order alternating, each server on a fresh database per round):\n\n' "$BASELINE" "$ROUNDS"
  printf '| backend | measurement | conns | this req/s | baseline req/s | ratio | each round |\n'
  printf '|---|---|---:|---:|---:|---:|---|\n'
  awk -F'\t' '
    BEGIN { name["orders"] = "POST /v1/orders"; name["get"] = "GET /v1/orders/{id}"; name["v2status"] = "POST /api/v2 status" }
    { k = $1 "\t" $2 "\t" $3; if (!(k in seen)) { seen[k] = 1; keys[++n] = k }
      sum[k "\t" $5] += $6; cnt[k "\t" $5]++; rps[k "\t" $4 "\t" $5] = $6; if ($4 > rounds) rounds = $4 }
    END {
      for (i = 1; i <= n; i++) {
        k = keys[i]; split(k, f, "\t")
        a = sum[k "\tthis"] / cnt[k "\tthis"]; b = sum[k "\tbaseline"] / cnt[k "\tbaseline"]
        each = ""
        for (r = 1; r <= rounds; r++) {
          x = rps[k "\t" r "\tthis"]; y = rps[k "\t" r "\tbaseline"]
          if (y > 0) each = each (each == "" ? "" : " ") sprintf("%.2f", x / y)
        }
        printf "| %s | %s | %s | %.0f | %.0f | %.2fx | %s |\n", f[1], name[f[2]], f[3], a, b, (b > 0 ? a / b : 0), each
      }
    }' "$SIDE"
fi
if [ -s "$RESULTS" ]; then
printf '\nPeak RSS of the API server (VmHWM, after all points up to %s connections):' "$MAX_LEVEL"
for r in "${RSS[@]}"; do printf ' %s MB;' "$r"; done
fi
printf '\nMachine: %s cores, %s, %s GiB RAM; %s s per point.\n' "$(nproc)" \
  "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" \
  "$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" "$DURATION"
# Reports (issue 25): 366-day windows on a seeded database, as a ratio to their targets.
# Off unless BENCH_REPORTS=1 (seeding 2,000,000 orders takes a while; see bench/reports.sh).
if [ "${BENCH_REPORTS:-0}" = 1 ]; then
  printf '\nReports:\n'
  bash bench/reports.sh
fi
