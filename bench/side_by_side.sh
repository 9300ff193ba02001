#!/usr/bin/env bash
# One short measurement of one server binary on the ledger bench/run.sh seeded, for comparing
# two builds side by side (run them alternately): resident memory once the ledger is loaded,
# then requests/s, p99 and the server's CPU time per request over a wrk window, then memory.
#
#   bench/side_by_side.sh floor|sqlite|postgres [BINARY]     # DURATION=10 by default
#
# DELAY_MS paces each connection (a random wait of that mean, as bench/run.sh's latency runs
# do; 0, flat out, by default). The server's settings come from the environment, e.g.
# USAGE_FLUSH_INTERVAL=60s.
set -euo pipefail
cd "$(dirname "$0")/.."
# Every server runs with the allocator setting of the Docker image (Dockerfile).
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072

OUT=target/bench
TOKEN=benchmark-authorize-token-0123456789
BIN=${2:-target/release/tollbooth}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
case "$1" in
  floor) CMD=(target/release/examples/floor) ;;
  sqlite) CMD=(env "DATABASE_URL=sqlite://$OUT/bench.db" "$BIN") ;;
  postgres) CMD=(env "DATABASE_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/tollbooth_bench?sslmode=disable}" "$BIN") ;;
  *) echo "usage: $0 floor|sqlite|postgres [BINARY]" >&2; exit 2 ;;
esac
env PORT="$PORT" HOST=127.0.0.1 WORKERS=1 AUTHORIZE_TOKEN=$TOKEN FXN_OWNER=acme RUST_LOG=warn \
  "${CMD[@]}" > "$OUT/side_by_side.log" 2>&1 &
PID=$!
# Wait for the server to exit (its last flush): the next run must not share the machine with it.
trap 'kill $PID 2> /dev/null || true; wait $PID 2> /dev/null || true' EXIT
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)
  [ "$code" = 200 ] || [ "$code" = 404 ] && break
  sleep 0.1
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
load() {
  BENCH_KEYS=$OUT/keys.txt BENCH_PATH=/authorize/$TOKEN BENCH_DELAY_MS=${DELAY_MS:-0} \
    wrk -t1 -c64 -d"$1s" -s bench/authorize.lua "http://127.0.0.1:$PORT" | sed -n 's/^RESULT //p'
}
rest=$(rss)
load 3 > /dev/null
before=$(cpu_ticks)
result=$(load "${DURATION:-10}")
after=$(cpu_ticks)
python3 -c '
import json, os, sys
r = json.loads(sys.argv[1])
ticks = (int(sys.argv[3]) - int(sys.argv[2])) / os.sysconf("SC_CLK_TCK")
print(json.dumps({"rps": r["rps"], "p99_us": r["p99_us"],
    "cpu_us_per_request": round(ticks * 1e6 / r["requests"], 2),
    "rss_kib_at_rest": int(sys.argv[4]), "rss_kib_after_load": int(sys.argv[5])}))
' "$result" "$before" "$after" "$rest" "$(rss)"
