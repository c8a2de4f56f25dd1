#!/usr/bin/env bash
# Report latency on a seeded database, against the targets of issue 25: any window up to
# 366 days within 50 ms on SQLite and 100 ms on PostgreSQL (reports read the coarsest
# whole rollup spans that fit: seven days, days, hours, 15-minute buckets at the edges;
# see docs/reports.md).
# Usage: bash bench/reports.sh   (bench/run.sh calls it when BENCH_REPORTS=1)
# Knobs (environment): BENCH_REPORT_ORDERS (default 2000000), BENCH_REPORT_WINDOWS (window
# lengths in days, default "1 30 366"; the seed spans 365 days and each window is exactly
# its days long), BENCH_REPORT_ITERATIONS (default 20), BENCH_BACKENDS (default
# "sqlite postgres"), BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432),
# BENCH_REPORT_DB_DIR (keep the seeded SQLite file there and reuse it on the next run),
# BENCH_REPORT_PG_DB (a PostgreSQL database name: kept after the run and reused when it
# already holds orders), BENCH_REPORT_ZONES (the panel's report zones, default "+05:30": a
# day series there reads that zone's local days; "+05:45" is measured unlisted),
# CARGO_TARGET_DIR. Each backend gets a fresh database unless reused.
# Not part of `cargo test` or `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ORDERS=${BENCH_REPORT_ORDERS:-2000000}
WINDOWS=${BENCH_REPORT_WINDOWS:-"1 30 366"}
ITERATIONS=${BENCH_REPORT_ITERATIONS:-20}
BACKENDS=${BENCH_BACKENDS:-"sqlite postgres"}
PG_BASE=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/reseller-api
say() { printf '==> %s\n' "$*" >&2; }
[ -x "$BIN" ] || { say "building the release binary"; cargo build --release --quiet; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
DB_DIR=${BENCH_REPORT_DB_DIR:-$WORK}
# The report zones: `seed` and `bench-reports` keep and fill their local days first (a
# database seeded without them is filled on reuse).
export RESELLER_API_REPORT_ZONES=${BENCH_REPORT_ZONES-+05:30}
export RESELLER_MASTER_KEY=${RESELLER_MASTER_KEY:-dGVzdC1tYXN0ZXIta2V5LW9mLTMyLWJ5dGVzLWxvbmc=}
printf '%-10s %-40s %9s %9s %8s\n' backend report "p95 ms" "target" ratio
for backend in $BACKENDS; do
  fresh=1
  case $backend in
    sqlite)
      file="$DB_DIR/reports-$ORDERS.db"; url="sqlite://$file"; target=50
      [ -s "$file" ] && fresh=0 ;;
    postgres)
      db=${BENCH_REPORT_PG_DB:-bench_reports_$$}; target=100; url="$PG_BASE/$db"
      if [ -n "${BENCH_REPORT_PG_DB:-}" ] &&
        [ "$(psql "$url" -tAc "SELECT to_regclass('orders') IS NOT NULL AND EXISTS (SELECT 1 FROM orders)" 2>/dev/null)" = t ]; then
        fresh=0
      else
        psql "$PG_BASE/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null
        psql "$PG_BASE/postgres" -qc "CREATE DATABASE $db" >/dev/null
      fi ;;
    *) say "unknown backend $backend"; exit 1 ;;
  esac
  if [ $fresh = 1 ]; then
    say "$backend: seeding $ORDERS orders (and rebuilding their rollups)"
    DATABASE_URL=$url "$BIN" seed --orders "$ORDERS" --refunds $((ORDERS / 20)) --days 365 >&2
  else
    say "$backend: reusing ${file:-$db}"
  fi
  for days in $WINDOWS; do
    say "$backend: measuring ${days}-day windows (load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)"
    DATABASE_URL=$url "$BIN" bench-reports --days "$days" --iterations "$ITERATIONS" | tail -n +2 |
      while read -r line; do
        name=$(printf '%s' "$line" | awk '{NF-=5; print}')
        p95=$(printf '%s' "$line" | awk '{print $(NF-1)}')
        ratio=$(awk -v a="$p95" -v b="$target" 'BEGIN { printf "%.2fx", a / b }')
        printf '%-10s %-40s %9s %9s %8s\n' "$backend" "$name" "$p95" "$target" "$ratio"
      done
  done
  if [ "$backend" = postgres ] && [ -z "${BENCH_REPORT_PG_DB:-}" ]; then
    psql "$PG_BASE/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null
  fi
done
