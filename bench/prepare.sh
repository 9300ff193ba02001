#!/usr/bin/env bash
# Builds the benchmark programs and seeds the benchmark ledger, on SQLite
# (target/bench/bench.db) and PostgreSQL (database tollbooth_bench), with its keys in
# target/bench/keys.txt. bench/run.sh and bench/compare.sh start from here.
#
#   bench/prepare.sh                 # CUSTOMERS=100000 by default
set -euo pipefail
cd "$(dirname "$0")/.."

CUSTOMERS=${CUSTOMERS:-100000}
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
OUT=target/bench
mkdir -p "$OUT"

command -v wrk > /dev/null || { apt-get update -qq && apt-get install -y -qq wrk > /dev/null; }
cargo build --release --quiet --bin tollbooth --example floor --example seed
BIN=target/release/tollbooth

echo "Seeding $CUSTOMERS customers…"
target/release/examples/seed "$CUSTOMERS" "$OUT"
rm -f "$OUT"/bench.db*
DATABASE_URL="sqlite://$OUT/bench.db" $BIN import "$OUT/ledger.jsonl"
psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS tollbooth_bench WITH (FORCE)" -c "CREATE DATABASE tollbooth_bench"
DATABASE_URL="${PG_URL%/*}/tollbooth_bench?sslmode=disable" $BIN import "$OUT/ledger.jsonl"
