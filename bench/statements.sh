#!/usr/bin/env bash
# The database's side of one paced window of load: bench/side_by_side.sh runs the server (as
# it ships, SQLite, one worker) with every statement logged with its time
# (RUST_LOG=warn,sqlx::query=debug), and the statements are summed by kind. Logging every
# statement slows the server: the figures are the statements' own times, not the service's
# throughput. The window (65 s by default) holds one of the once-a-minute writes and folds,
# and the log ends with the stop's last flush.
#
#   bench/statements.sh BINARY [LEDGER]     # DURATION=65, DELAY_MS=2.01
#
# LEDGER=NAME reads target/bench/bench-NAME.db (bench/compare.sh imports one per build);
# without it a copy of target/bench/bench.db is used, so the seeded ledger is left as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/bench
BIN=${1:?usage: $0 BINARY [LEDGER]}
LEDGER=${2:-statements}
if [ -z "${2:-}" ]; then
  rm -f "$OUT/bench-statements.db"*
  cp "$OUT/bench.db" "$OUT/bench-statements.db"
fi
LEDGER=$LEDGER RUST_LOG=warn,sqlx::query=debug DURATION=${DURATION:-65} DELAY_MS=${DELAY_MS:-2.01} \
  bench/side_by_side.sh sqlite "$BIN" |
  python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f req/s" % r["rps"])'
python3 - "$OUT/side_by_side.log" <<'PY'
import collections, json, sys
kinds = collections.defaultdict(lambda: [0, 0.0, 0.0])
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    f = e.get("fields", e)
    sql = " ".join(str(f.get("db.statement") or f.get("summary") or "").split())
    if "elapsed_secs" not in f or not sql:
        continue
    words = sql.split()
    table = next((w for w in words[1:6] if w.islower() and w.isidentifier() and w not in
                  ("into", "from", "or", "table")), "")
    kind = " ".join(words[:2]).upper() + " " + table
    k = kinds[kind]
    k[0] += 1; k[1] += f["elapsed_secs"]; k[2] = max(k[2], f["elapsed_secs"])
print("| statement | count | total ms | longest ms |")
print("|---|---:|---:|---:|")
for kind, (n, total, longest) in sorted(kinds.items(), key=lambda kv: -kv[1][1])[:12]:
    print(f"| {kind} | {n} | {total * 1000:,.0f} | {longest * 1000:,.0f} |")
PY
