#!/usr/bin/env bash
# Where the memory a load adds lives: the server started on a fresh copy of the seeded ledger
# as bench/memory.sh starts it, its mappings' resident size read (/proc/PID/smaps) at rest and
# after 3 s of load, and each mapping that grew by more than 64 KiB printed with its size.
# An `anon` mapping at a 64 MiB-aligned address is a thread's heap (glibc's arena); the others
# are allocations of at least the allocator's mmap threshold (128 KiB with the Docker image's
# setting), one each unless the kernel merged neighbours into one mapping: a size (`bytes`)
# such as 2,232,320 is one table (131,072 entries of 16 bytes and a control byte each).
#
#   bench/grown.sh [BINARY]     # target/release/tollbooth
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/tollbooth}
export GLIBC_TUNABLES=${GLIBC_TUNABLES-glibc.malloc.mmap_threshold=131072}
TOKEN=benchmark-authorize-token-0123456789
WORK=$(mktemp -d)
for file in target/bench/bench.db*; do cp "$file" "$WORK/bench.db${file#target/bench/bench.db}"; done
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env PORT="$PORT" HOST=127.0.0.1 WORKERS=1 AUTHORIZE_TOKEN=$TOKEN FXN_OWNER=acme \
  LOG_FORMAT="${LOG_FORMAT-json}" DATABASE_URL="sqlite://$WORK/bench.db" "$BIN" > /dev/null 2>&1 &
PID=$!
trap 'kill $PID 2> /dev/null || true; wait $PID 2> /dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 900); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)
  [ "$code" = 200 ] && break
  sleep 0.1
done
sleep 2
# One line a mapping: its address range, what it maps (or `anon`), its resident KiB.
mappings() {
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = $1 " " ($6 == "" ? "anon" : $6) } /^Rss:/ { print name, $2 }' \
    "/proc/$PID/smaps"
}
mappings > "$WORK/rest"
BENCH_KEYS=target/bench/keys.txt BENCH_PATH=/authorize/$TOKEN BENCH_DELAY_MS=0 \
  wrk -t1 -c64 -d3s -s bench/authorize.lua "http://127.0.0.1:$PORT" > /dev/null
mappings > "$WORK/load"
python3 - "$WORK/rest" "$WORK/load" <<'EOF'
import sys
def read(path):
    return {(r, name): int(kib) for r, name, kib in (line.split() for line in open(path))}
rest, load = read(sys.argv[1]), read(sys.argv[2])
grown = sorted(((kib - rest.get(m, 0), m, kib) for m, kib in load.items()), reverse=True)
print(f"resident KiB at rest {sum(rest.values())}, after load {sum(load.values())}")
for delta, (span, name), kib in grown:
    if delta > 64:
        start, end = (int(x, 16) for x in span.split("-"))
        print(f"+{delta:6} KiB  {name:5} bytes {end - start:>10,}  at {span}")
EOF
