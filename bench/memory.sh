#!/usr/bin/env bash
# Resident memory of one server binary on a ledger, as bench/run.sh measures it: two seconds
# after the whole ledger is in memory (at rest), then after 3 s of load. Compare builds or
# settings by running it for each, alternately, each on a fresh copy of the same file: the
# load's use is written into it, and the next start loads those counters too. Reports the
# resident set (VmRSS) and the process's own part of it (RssAnon: without the pages of its
# binary and libraries, which vary with what else the machine has run).
#
#   bench/memory.sh [BINARY] [SQLITE FILE] [KEYS FILE]
#                   # target/release/tollbooth, target/bench/bench.db, target/bench/keys.txt
#
# Runs with the Docker image's allocator setting unless GLIBC_TUNABLES is already set (set it
# to an empty value to measure glibc's default).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/release/tollbooth}
DB=${2:-target/bench/bench.db}
KEYS=${3:-target/bench/keys.txt}
export GLIBC_TUNABLES=${GLIBC_TUNABLES-glibc.malloc.mmap_threshold=131072}
TOKEN=benchmark-authorize-token-0123456789
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env PORT="$PORT" HOST=127.0.0.1 WORKERS=1 AUTHORIZE_TOKEN=$TOKEN FXN_OWNER=acme \
  LOG_FORMAT="${LOG_FORMAT-json}" DATABASE_URL="sqlite://$DB" "$BIN" > target/bench/memory.log 2>&1 &
PID=$!
trap 'kill $PID 2> /dev/null || true; wait $PID 2> /dev/null || true' EXIT
for _ in $(seq 1 900); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)
  [ "$code" = 200 ] && break
  sleep 0.1
done
sleep 2
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
# The process's own memory, without the pages of its binary and libraries (which vary with
# what else the machine has been running).
anon() { awk '/RssAnon/ {print $2}' "/proc/$PID/status"; }
# With MAPPINGS=DIR, each mapping's resident KiB is written there too, at rest (`rest`) and
# after load (`load`), one line a mapping: its address range, what it maps or `anon`, its KiB.
mappings() {
  [ -z "${MAPPINGS:-}" ] && return
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = $1 " " ($6 == "" ? "anon" : $6) } /^Rss:/ { print name, $2 }' \
    "/proc/$PID/smaps" > "$MAPPINGS/$1"
}
rest=$(rss)
rest_anon=$(anon)
mappings rest
BENCH_KEYS=$KEYS BENCH_PATH=/authorize/$TOKEN BENCH_DELAY_MS=0 \
  wrk -t1 -c64 -d3s -s bench/authorize.lua "http://127.0.0.1:$PORT" > /dev/null
mappings load
echo "{\"rss_kib_at_rest\": $rest, \"rss_kib_after_load\": $(rss), \"anon_kib_at_rest\": $rest_anon, \"anon_kib_after_load\": $(anon)}"
