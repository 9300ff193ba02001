#!/usr/bin/env bash
# Tail latency at a paced rate, two builds side by side: the floor flat out (20 s) gives its
# rate; then the floor and each build on each engine paced so 64 connections ask for half of
# it (each waits a random delay of mean 64 / (rate / 2) - 0.3 ms), 60 s windows, two rounds,
# the builds' order alternating. Prints one JSON line per window. Each build reads the ledger
# bench/compare.sh imported for it (LEDGER before and after): run that first.
#
#   bench/half_rate.sh BEFORE_BINARY AFTER_BINARY > results.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${1:?usage: $0 BEFORE_BINARY AFTER_BINARY}
AFTER=${2:?usage: $0 BEFORE_BINARY AFTER_BINARY}
floor=$(DURATION=20 bench/side_by_side.sh floor)
rps=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['rps'])" "$floor")
delay=$(python3 -c "print(round(64 / ($rps / 2) * 1000 - 0.3, 2))")
echo "floor flat out: $rps req/s; DELAY_MS=$delay" >&2
echo "{\"calibration\": $floor, \"delay_ms\": $delay}"
for round in 1 2; do
  echo "{\"round\": $round, \"target\": \"floor\", \"build\": \"floor\", \"result\": $(DELAY_MS=$delay DURATION=60 bench/side_by_side.sh floor)}"
  for engine in sqlite postgres; do
    if [ $round = 1 ]; then order="before:$BEFORE after:$AFTER"; else order="after:$AFTER before:$BEFORE"; fi
    for pair in $order; do
      name=${pair%%:*}; bin=${pair#*:}
      echo "{\"round\": $round, \"target\": \"$engine\", \"build\": \"$name\", \"result\": $(LEDGER=$name DELAY_MS=$delay DURATION=60 bench/side_by_side.sh $engine $bin)}"
    done
  done
done
