#!/usr/bin/env bash
# Two builds of tollbooth side by side, in one run on this machine: each round measures the
# floor, then each build on SQLite and on PostgreSQL (the builds' order alternating from round
# to round, so drift of the machine falls on both), with bench/side_by_side.sh: requests/s,
# p99, the server's CPU time per request and PostgreSQL's (its processes', over the window). Prints every measurement and, per engine, the
# after/before ratios of throughput and of CPU per request (median over the rounds).
#
#   bench/compare.sh BEFORE_BINARY AFTER_BINARY     # ROUNDS=3, DURATION=10 (seconds)
#
# Run bench/prepare.sh first (it seeds the ledger). Each build imports it into a database of
# its own (bench/side_by_side.sh's LEDGER), migrated by that build: a database another build
# migrated further would stop it from starting.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

BEFORE=${1:?usage: $0 BEFORE_BINARY AFTER_BINARY}
AFTER=${2:?usage: $0 BEFORE_BINARY AFTER_BINARY}
ROUNDS=${ROUNDS:-3}
export DURATION=${DURATION:-10}
LOG=target/bench/compare.jsonl
: > "$LOG"

ledger_for() { # ledger_for BUILD BINARY: the seeded ledger, imported by BINARY
  rm -f "target/bench/bench-$1.db"*
  DATABASE_URL="sqlite://target/bench/bench-$1.db" "$2" import target/bench/ledger.jsonl > /dev/null
  psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS tollbooth_bench_$1 WITH (FORCE)" \
    -c "CREATE DATABASE tollbooth_bench_$1"
  DATABASE_URL="${PG_URL%/*}/tollbooth_bench_$1?sslmode=disable" "$2" import target/bench/ledger.jsonl > /dev/null
}
ledger_for before "$BEFORE"
ledger_for after "$AFTER"

measure() { # measure ROUND TARGET BUILD BINARY
  local result
  result=$(LEDGER=$3 bench/side_by_side.sh "$2" "$4")
  echo "{\"round\": $1, \"target\": \"$2\", \"build\": \"$3\", \"result\": $result}" | tee -a "$LOG"
}

for round in $(seq 1 "$ROUNDS"); do
  measure "$round" floor floor target/release/examples/floor
  for engine in sqlite postgres; do
    if [ $((round % 2)) = 1 ]; then
      measure "$round" "$engine" before "$BEFORE"
      measure "$round" "$engine" after "$AFTER"
    else
      measure "$round" "$engine" after "$AFTER"
      measure "$round" "$engine" before "$BEFORE"
    fi
  done
done

python3 - "$LOG" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def pick(round_, target, build):
    return next(r["result"] for r in rows if r["round"] == round_ and r["target"] == target and r["build"] == build)
rounds = sorted({r["round"] for r in rows})
print()
print("| round | target | build | requests/s | ratio to floor | p99 | server CPU per request | PostgreSQL's CPU per request | generator busy |")
print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
for n in rounds:
    floor = pick(n, "floor", "floor")
    for target, build in [("floor", "floor"), ("sqlite", "before"), ("sqlite", "after"),
                          ("postgres", "before"), ("postgres", "after")]:
        r = pick(n, target, build)
        print(f"| {n} | {target} | {build} | {r['rps']:,.0f} | {r['rps'] / floor['rps']:.2f} "
              f"| {r['p99_us']} µs | {r['server_cpu_us_per_request']} µs "
              f"| {r.get('database_cpu_us_per_request', '')} µs | {r['generator_busy']} |")
print()
print("| engine | after/before throughput (median, per round) | after/before CPU per request (median, per round) |")
print("|---|---:|---:|")
for engine in ["sqlite", "postgres"]:
    rps = [pick(n, engine, "after")["rps"] / pick(n, engine, "before")["rps"] for n in rounds]
    cpu = [pick(n, engine, "after")["server_cpu_us_per_request"] / pick(n, engine, "before")["server_cpu_us_per_request"] for n in rounds]
    print(f"| {engine} | {statistics.median(rps):.3f} ({', '.join(f'{x:.3f}' for x in rps)}) "
          f"| {statistics.median(cpu):.3f} ({', '.join(f'{x:.3f}' for x in cpu)}) |")
PY
