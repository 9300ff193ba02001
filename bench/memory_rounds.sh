#!/usr/bin/env bash
# Memory per key of one or more builds, alternately, round by round, with bench/memory.sh: each
# build on a fresh copy of the seeded ledger (target/bench) and on a fresh copy of a ledger of
# one customer (target/bench/one, seeded and imported here the first time); a key's share is
# the difference of the two over the number of keys, at rest and after 3 s of load. Prints one
# JSON line per build and round.
#
#   bench/memory_rounds.sh BINARY...     # ROUNDS=3
#
# Run bench/prepare.sh first. Runs with the Docker image's allocator setting (bench/memory.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
ONE=target/bench/one
KEYS=$(wc -l < target/bench/keys.txt)
if [ ! -f "$ONE/bench.db" ]; then
  target/release/examples/seed 1 "$ONE" > /dev/null
  DATABASE_URL="sqlite://$ONE/bench.db" "$1" import "$ONE/ledger.jsonl" > /dev/null
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fresh() { # fresh LEDGER_DIR NAME: a copy of the ledger's database, its WAL too if it has one
  rm -f "$WORK/$2.db"*
  for file in "$1"/bench.db*; do cp "$file" "$WORK/$2.db${file#"$1"/bench.db}"; done
}

for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    fresh target/bench full
    fresh "$ONE" one
    full=$(bench/memory.sh "$bin" "$WORK/full.db" target/bench/keys.txt)
    one=$(bench/memory.sh "$bin" "$WORK/one.db" "$ONE/keys.txt")
    python3 - "$bin" "$round" "$KEYS" "$full" "$one" <<'EOF'
import json, sys
binary, round_, keys, full, one = sys.argv[1:]
full, one = json.loads(full), json.loads(one)
share = lambda field: round((full[field] - one[field]) * 1024 / int(keys), 1)
print(json.dumps({"binary": binary, "round": int(round_), "keys": int(keys),
                  "bytes_a_key_at_rest": share("rss_kib_at_rest"),
                  "bytes_a_key_after_load": share("rss_kib_after_load"),
                  "full": full, "one": one}))
EOF
  done
done
