#!/usr/bin/env bash
# Instructions one server binary executes, counted by valgrind's callgrind: the same on a busy
# machine as on an idle one, so two builds can be compared where timings are too noisy. On a
# seeded ledger (CUSTOMERS, 2,000 by default, on SQLite) it counts:
#   - start:    from exec until /readyz answers 200 (migrations, the whole ledger read);
#   - requests: REQUESTS (20,000) authorizations in a fixed order (keys of the ledger, four
#               tags), sent on one keep-alive connection, per request: the hot path with HTTP;
#   - total:    the whole run, the final flush of the counted use included.
# The flush and poll intervals are set to a minute so no background round falls in a window.
#
#   bench/instructions.sh BINARY [BINARY…]     # prints one JSON line per binary
set -euo pipefail
cd "$(dirname "$0")/.."

CUSTOMERS=${CUSTOMERS:-2000}
OUT=target/bench/instructions-$CUSTOMERS
TOKEN=benchmark-authorize-token-0123456789
REQUESTS=${REQUESTS:-20000}
mkdir -p "$OUT"
# callgrind_control finds the server through pipes named after the user and the host, which
# valgrind reads from the environment: both sides must see the same (HOST is also where the
# server listens).
export USER=${USER:-$(id -un)} LOGNAME=${LOGNAME:-$(id -un)} HOST=127.0.0.1
cargo build --release --quiet --example seed
if [ ! -f "$OUT/ledger.jsonl" ]; then
  target/release/examples/seed "$CUSTOMERS" "$OUT" > /dev/null
fi

total_ir() { # the summary line of a callgrind output file
  awk '/^summary:/ {print $2}' "$1"
}

for BIN in "$@"; do
  rm -f "$OUT"/small.db* "$OUT"/callgrind.*
  DATABASE_URL="sqlite://$OUT/small.db" "$BIN" import "$OUT/ledger.jsonl" > /dev/null
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env PORT="$PORT" WORKERS=1 AUTHORIZE_TOKEN=$TOKEN FXN_OWNER=acme LOG_FORMAT="${LOG_FORMAT-json}" \
    METRICS_ADDR="${METRICS_ADDR-127.0.0.1:0}" \
    USAGE_FLUSH_INTERVAL=60s LEDGER_POLL_INTERVAL=60s DATABASE_URL="sqlite://$OUT/small.db" \
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.%p" \
    "$BIN" > "$OUT/server.log" 2>&1 &
  PID=$!
  python3 - "$PORT" "$TOKEN" "$OUT/keys.txt" "$REQUESTS" "$PID" <<'PY'
import http.client, json, subprocess, sys, time
port, token, keys_file, n, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
keys = [line.strip() for line in open(keys_file) if line.strip()]
tags = ["@acme/sdxl", "@acme/llama-3", "@acme/whisper", "@acme/upscale"]
deadline = time.time() + 600
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
        c.request("GET", "/readyz")
        if c.getresponse().status == 200:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("the server did not become ready")
    time.sleep(0.2)
ctl = lambda *args: subprocess.run(["callgrind_control", *args, pid], check=True, capture_output=True)
ctl("--dump=start")
ctl("--zero")
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
allowed = 0
for i in range(n):
    body = json.dumps({"tag": tags[i % len(tags)], "accessKey": keys[(i * 7919) % len(keys)]})
    c.request("POST", f"/authorize/{token}", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    allowed += r.status == 200
ctl("--dump=requests")
if allowed != n:
    sys.exit(f"only {allowed} of {n} allowed")
PY
  kill -TERM "$PID"
  wait "$PID" || true
  start=$(total_ir "$(grep -l '^desc: Trigger: dump start' "$OUT"/callgrind.* | head -n1)")
  requests=$(total_ir "$(grep -l '^desc: Trigger: dump requests' "$OUT"/callgrind.* | head -n1)")
  rest=$(cat "$OUT"/callgrind.* | awk '/^summary:/ {s += $2} END {print s}')
  python3 -c "
import json, sys
start, requests, total, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(json.dumps({'binary': sys.argv[1], 'customers': int(sys.argv[6]), 'start_instructions': start,
    'instructions_per_request': round(requests / n), 'total_instructions': total}))
" "$BIN" "$start" "$requests" "$rest" "$REQUESTS" "$CUSTOMERS"
done
