#!/usr/bin/env bash
# The database's side of one paced window of load: the server (as it ships, SQLite, one
# worker) logs every statement with its time (RUST_LOG=warn,sqlx::query=debug), and the
# statements of the usage flush and fold are summed by kind. Logging every statement slows
# the server: the figures are the statements' own times, not the service's throughput.
#
#   bench/statements.sh BINARY [LEDGER]     # SECONDS=65 (one fold), DELAY_MS=2.01
#
# LEDGER=NAME reads target/bench/bench-NAME.db (bench/compare.sh imports one per build);
# without it a copy of target/bench/bench.db is made, so the seeded ledger is left as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072 LOG_FORMAT=json
OUT=target/bench
BIN=${1:?usage: $0 BINARY [LEDGER]}
if [ -n "${2:-}" ]; then
  DB=$OUT/bench-$2.db
else
  DB=$OUT/statements.db
  rm -f "$DB"*
  cp "$OUT/bench.db" "$DB"
fi
TOKEN=benchmark-authorize-token-0123456789
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env PORT="$PORT" HOST=127.0.0.1 WORKERS=1 AUTHORIZE_TOKEN=$TOKEN FXN_OWNER=acme \
  RUST_LOG=warn,sqlx::query=debug DATABASE_URL="sqlite://$DB" \
  USAGE_JOURNAL="$OUT/statements.journal" METRICS_ADDR=127.0.0.1:0 "$BIN" > "$OUT/statements.log" 2>&1 &
PID=$!
trap 'kill $PID 2> /dev/null || true; wait $PID 2> /dev/null || true' EXIT
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)
  [ "$code" = 200 ] && break
  sleep 0.1
done
BENCH_KEYS=$OUT/keys.txt BENCH_PATH=/authorize/$TOKEN \
  bench/load.py "http://127.0.0.1:$PORT" "$PID" "${SECONDS_OF_LOAD:-65}" "${DELAY_MS:-2.01}" |
  python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f req/s" % r["rps"])'
kill "$PID"; wait "$PID" 2> /dev/null || true
trap - EXIT
python3 - "$OUT/statements.log" <<'PY'
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
