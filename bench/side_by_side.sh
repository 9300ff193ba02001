#!/usr/bin/env bash
# One short measurement of one server binary on the ledger bench/prepare.sh seeded, for
# comparing two builds or settings side by side (run them alternately; bench/compare.sh does):
# resident memory once the ledger is loaded, then requests/s, p99, and the CPU time per request
# of the server and of the load generator over a wrk window (bench/load.py), then memory.
#
#   bench/side_by_side.sh floor|sqlite|postgres [BINARY]     # DURATION=10 by default
#
# The server runs as it ships: fly.toml's environment (LOG_FORMAT=json, RUST_LOG unset, so
# info) and the Docker image's allocator setting. Anything in the environment overrides it,
# e.g. RUST_LOG=warn or USAGE_FLUSH_INTERVAL=60s. DELAY_MS paces each connection (a random
# wait of that mean; 0, flat out, by default). WORKERS=1 by default. LEDGER=NAME reads the copy
# of the ledger bench/compare.sh imported for build NAME (target/bench/bench-NAME.db and the
# database tollbooth_bench_NAME) instead of the one bench/prepare.sh seeded.
set -euo pipefail
cd "$(dirname "$0")/.."
# Every server runs with the allocator setting of the Docker image (Dockerfile).
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072
export LOG_FORMAT=${LOG_FORMAT-json}
# fly.toml serves metrics on their own listener; any free port here (not scraped).
export METRICS_ADDR=${METRICS_ADDR-127.0.0.1:0}

OUT=target/bench
TOKEN=benchmark-authorize-token-0123456789
BIN=${2:-target/release/tollbooth}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SQLITE_DB=$OUT/bench${LEDGER:+-$LEDGER}.db
PG_DB=tollbooth_bench${LEDGER:+_$LEDGER}
case "$1" in
  floor) CMD=(target/release/examples/floor) ;;
  sqlite) CMD=(env "DATABASE_URL=sqlite://$SQLITE_DB" "$BIN") ;;
  postgres) CMD=(env "DATABASE_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/$PG_DB?sslmode=disable}" "$BIN") ;;
  *) echo "usage: $0 floor|sqlite|postgres [BINARY]" >&2; exit 2 ;;
esac
env PORT="$PORT" HOST=127.0.0.1 WORKERS="${WORKERS:-1}" AUTHORIZE_TOKEN=$TOKEN FXN_OWNER=acme \
  USAGE_JOURNAL="$OUT/side_by_side.journal" "${CMD[@]}" > "$OUT/side_by_side.log" 2>&1 &
PID=$!
# Wait for the server to exit (its last flush): the next run must not share the machine with it.
trap 'kill $PID 2> /dev/null || true; wait $PID 2> /dev/null || true' EXIT
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)
  [ "$code" = 200 ] || [ "$code" = 404 ] && break
  sleep 0.1
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
export BENCH_KEYS=$OUT/keys.txt BENCH_PATH=/authorize/$TOKEN
rest=$(rss)
bench/load.py "http://127.0.0.1:$PORT" "$PID" 3 "${DELAY_MS:-0}" > /dev/null
result=$(bench/load.py "http://127.0.0.1:$PORT" "$PID" "${DURATION:-10}" "${DELAY_MS:-0}")
python3 -c '
import json, sys
r = json.loads(sys.argv[1])
r.update({"rss_kib_at_rest": int(sys.argv[2]), "rss_kib_after_load": int(sys.argv[3])})
print(json.dumps(r))
' "$result" "$rest" "$(rss)"
