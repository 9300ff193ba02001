#!/usr/bin/env bash
# Where the memory a load adds lives: bench/memory.sh on a fresh copy of the seeded ledger,
# with each mapping's resident size (/proc/PID/smaps) read at rest and after 3 s of load, and
# each mapping that grew by more than 64 KiB printed with its size. An `anon` mapping at a
# 64 MiB-aligned address is a thread's heap (glibc's arena); the others are allocations of at
# least the allocator's mmap threshold (128 KiB with the Docker image's setting), one each
# unless the kernel merged neighbours into one mapping: a size (`bytes`) such as 2,232,320 is
# one table (131,072 entries of 16 bytes and a control byte each).
#
#   bench/grown.sh [BINARY]     # target/release/tollbooth
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/tollbooth}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for file in target/bench/bench.db*; do cp "$file" "$WORK/bench.db${file#target/bench/bench.db}"; done
MAPPINGS=$WORK bench/memory.sh "$BIN" "$WORK/bench.db" > /dev/null
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
