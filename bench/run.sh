#!/usr/bin/env bash
# The authorize benchmark, side by side in one run on this machine:
#   (a) the floor: a minimal actix-web server that parses the same body and answers 200;
#   (b) tollbooth's authorize route on SQLite;  (c) the same on PostgreSQL;
# same load generator (wrk, loopback, requests rendered once at its start), same server worker
# count, keys drawn at random from a seeded ledger, usage counting on; every server as it ships
# (fly.toml's LOG_FORMAT=json and default log level, the Docker image's allocator setting).
# Each window reports the server's and the generator's CPU time per request and how busy each
# was, so a generator that was the bottleneck shows. Also start-up to the first 200 and memory
# per key.
# Writes bench/results/<date>.md and prints it.
#
#   bench/run.sh                      # 100,000 customers, 60 s per measurement
#   CUSTOMERS=20000 DURATION=10 bench/run.sh  # quicker, but may miss the activity write
set -euo pipefail
cd "$(dirname "$0")/.."
# Every server runs with the allocator setting of the Docker image (Dockerfile).
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072
# As fly.toml runs it: JSON logs at the default level (override with e.g. RUST_LOG=warn).
export LOG_FORMAT=${LOG_FORMAT-json}
# fly.toml serves metrics on their own listener; any free port here (not scraped).
export METRICS_ADDR=${METRICS_ADDR-127.0.0.1:0}

CUSTOMERS=${CUSTOMERS:-100000}
# 60 s windows: each includes one of the once-a-minute activity writes.
DURATION=${DURATION:-60}
CONNECTIONS=${CONNECTIONS:-64}
WORKERS=${WORKERS:-1}
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# Without TLS, as on Fly's private network (`fly postgres attach` gives sslmode=disable); the
# start-up is also measured with TLS negotiated (the local server offers it) for comparison.
PG_BENCH_URL="${PG_URL%/*}/tollbooth_bench?sslmode=disable"
PG_TLS_URL="${PG_URL%/*}/tollbooth_bench"
TOKEN=benchmark-authorize-token-0123456789
OUT=target/bench
RESULTS=bench/results/$(date -u +%Y-%m-%d).md
mkdir -p "$OUT" bench/results

CUSTOMERS=$CUSTOMERS bench/prepare.sh
BIN=target/release/tollbooth

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SERVER_PID=
start() { # start NAME ENV... -- COMMAND...
  local port; port=$(free_port)
  env PORT="$port" HOST=127.0.0.1 WORKERS="$WORKERS" AUTHORIZE_TOKEN=$TOKEN FXN_OWNER=acme \
      USAGE_JOURNAL="$OUT/run.journal" "$@" > "$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  URL="http://127.0.0.1:$port"
  for _ in $(seq 1 300); do
    curl -fs "$URL/healthz" > /dev/null 2>&1 && break
    curl -fs -o /dev/null -X POST "$URL/authorize/$TOKEN" -H 'content-type: application/json' \
      -d '{"tag":"@acme/x","accessKey":"x"}' -w '' 2>/dev/null && break
    sleep 0.1
  done
  # Wait until the whole ledger is in memory (the floor has no /readyz).
  for _ in $(seq 1 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz")
    [ "$code" = 200 ] || [ "$code" = 404 ] && break
    sleep 0.1
  done
}
stop() { kill "$SERVER_PID" 2> /dev/null || true; wait "$SERVER_PID" 2> /dev/null || true; }
trap stop EXIT

load() { # load URL DELAY_MS SECONDS -> the RESULT json, with CPU times (bench/load.py)
  BENCH_KEYS="$OUT/keys.txt" BENCH_PATH="/authorize/$TOKEN" \
    bench/load.py "$1" "$SERVER_PID" "$3" "$2" "$CONNECTIONS"
}
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

declare -A FLAT PACED
targets=(floor sqlite postgres)
run_target() { # run_target NAME DELAY_MS -> RESULT json
  case "$1" in
    floor) start target/release/examples/floor ;;
    sqlite) start DATABASE_URL="sqlite://$OUT/bench.db" $BIN ;;
    postgres) start DATABASE_URL="$PG_BENCH_URL" $BIN ;;
  esac
  load "$URL" "$2" 3 > /dev/null   # warm-up
  load "$URL" "$2" "$DURATION"
  stop
}

for t in "${targets[@]}"; do
  echo "Flat out: $t…"
  FLAT[$t]=$(run_target "$t" 0)
done
floor_rps=$(field "${FLAT[floor]}" rps)
# Half the floor's throughput: each connection waits DELAY ms on average between requests
# (drawn at random, so connections do not fire together).
delay=$(python3 -c "print(round($CONNECTIONS * 1000 / ($floor_rps / 2), 2))")
for t in "${targets[@]}"; do
  echo "At half the floor's rate: $t…"
  PACED[$t]=$(run_target "$t" "$delay")
done

echo "Start-up and memory…"
startup_sqlite=$(python3 bench/startup.py $BIN "sqlite://$OUT/bench.db" "$OUT/keys.txt" 5)
startup_pg=$(python3 bench/startup.py $BIN "$PG_BENCH_URL" "$OUT/keys.txt" 5)
startup_pg_tls=$(python3 bench/startup.py $BIN "$PG_TLS_URL" "$OUT/keys.txt" 5)
rm -f "$OUT"/empty.db*
DATABASE_URL="sqlite://$OUT/empty.db" $BIN migrate > /dev/null
head -n1 "$OUT/keys.txt" > "$OUT/one-key.txt"
# Resident memory two seconds after the ledger is in memory (at rest), then after 3 s of load
# (every key used, so each has its counters and a minute's per-hour activity).
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
start DATABASE_URL="sqlite://$OUT/empty.db" $BIN
sleep 2
rss_empty=$(rss)
load "$URL" 0 3 > /dev/null
rss_empty_load=$(rss)
stop
start DATABASE_URL="sqlite://$OUT/bench.db" $BIN
sleep 2
rss_rest=$(rss)
load "$URL" 0 3 > /dev/null
rss_full=$(rss)
stop
per_key() { python3 -c "print(round(($1 - $2) * 1024 / $CUSTOMERS))"; }

{
  echo "# Authorize benchmark, $(date -u +%Y-%m-%d)"
  echo
  echo "Command: \`CUSTOMERS=$CUSTOMERS DURATION=$DURATION CONNECTIONS=$CONNECTIONS WORKERS=$WORKERS bench/run.sh\`; servers with LOG_FORMAT=${LOG_FORMAT:-(unset)}, RUST_LOG=${RUST_LOG:-(unset: info)}, METRICS_ADDR=${METRICS_ADDR:-(unset)}"
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; wrk 1 thread, $CONNECTIONS connections; servers with $WORKERS worker; loopback."
  echo "Ledger: $CUSTOMERS customers with one key each (40% unlimited subscriptions, 20% subscriptions with a quota, 20% manual grants, 20% credit purchases, 5% also with a canceled subscription); keys drawn at random per request; the counts a quota, credits or a meter rests on written every second, the per-hour reports and unlimited plans' counts once a minute."
  echo
  echo "## Throughput, flat out ($DURATION s)"
  echo
  echo "| target | requests/s | ratio to floor | p50 | p99 | p99.9 | non-2xx | server CPU per request | server busy | generator CPU per request | generator busy |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for t in "${targets[@]}"; do
    r=${FLAT[$t]}
    echo "| $t | $(field "$r" rps) | $(python3 -c "print(f'{$(field "$r" rps)/$floor_rps:.2f}')") | $(field "$r" p50_us) µs | $(field "$r" p99_us) µs | $(field "$r" p999_us) µs | $(field "$r" non_2xx) | $(field "$r" server_cpu_us_per_request) µs | $(field "$r" server_busy) | $(field "$r" generator_cpu_us_per_request) µs | $(field "$r" generator_busy) |"
  done
  echo
  echo "## Latency at half the floor's throughput (each connection waits a random 0-$(python3 -c "print(2 * $delay)") ms between requests)"
  echo
  echo "| target | requests/s | p50 | p99 | p99.9 |"
  echo "|---|---:|---:|---:|---:|"
  for t in "${targets[@]}"; do
    r=${PACED[$t]}
    echo "| $t | $(field "$r" rps) | $(field "$r" p50_us) µs | $(field "$r" p99_us) µs | $(field "$r" p999_us) µs |"
  done
  echo
  echo "## Start-up and memory"
  echo
  echo "| measure | value |"
  echo "|---|---:|"
  echo "| process start to first correct 200, SQLite (median of 5, max) | $(field "$startup_sqlite" first_200_ms_median) ms, $(field "$startup_sqlite" first_200_ms_max) ms |"
  echo "| process start to first correct 200, PostgreSQL, sslmode=disable (median of 5, max) | $(field "$startup_pg" first_200_ms_median) ms, $(field "$startup_pg" first_200_ms_max) ms |"
  echo "| process start to first correct 200, PostgreSQL, TLS negotiated (median of 5, max) | $(field "$startup_pg_tls" first_200_ms_median) ms, $(field "$startup_pg_tls" first_200_ms_max) ms |"
  echo "| resident memory, empty ledger: at rest; after 3 s of load | $rss_empty KiB; $rss_empty_load KiB |"
  echo "| resident memory, $CUSTOMERS keys loaded: at rest; after 3 s of load | $rss_rest KiB; $rss_full KiB |"
  echo "| growth per key: at rest; under load | $(per_key "$rss_rest" "$rss_empty") bytes; $(per_key "$rss_full" "$rss_empty_load") bytes |"
} > "$RESULTS"
cat "$RESULTS"
