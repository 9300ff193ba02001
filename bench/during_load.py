#!/usr/bin/env python3
"""Authorizations while the ledger loads: one client asks, one request at a time, from the
process's start for WINDOW seconds (default 9), a key drawn at random each time, and prints
one JSON line: when the first 200 came, how many requests were answered, and every request
that took over 100 ms (when it was sent after the start, how long it took, its status).
bench/startup.py times only the first answer; this shows what the rest of the load costs
the requests that arrive during it. Runs the server as shipped (JSON logs at the default
level, the Docker image's allocator setting).

Usage: during_load.py BINARY DATABASE_URL KEYS_FILE [WINDOW]
"""
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import time

binary, database_url, keys_file = sys.argv[1:4]
window = float(sys.argv[4]) if len(sys.argv) > 4 else 9.0
token = "benchmark-authorize-token-0123456789"
keys = open(keys_file).read().split()
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
env = dict(os.environ, DATABASE_URL=database_url, HOST="127.0.0.1", PORT=str(port),
           AUTHORIZE_TOKEN=token, FXN_OWNER="acme", WORKERS="1",
           LOG_FORMAT=os.environ.get("LOG_FORMAT", "json"),
           GLIBC_TUNABLES=os.environ.get("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072"))
process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
started = time.perf_counter()
first, answered, slow = None, 0, []
try:
    while time.perf_counter() - started < window:
        body = json.dumps({"tag": "@acme/sdxl", "accessKey": random.choice(keys)})
        sent = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", f"/authorize/{token}", body, {"Content-Type": "application/json"})
            status = conn.getresponse().status
            conn.close()
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            time.sleep(0.002)
            continue
        took = time.perf_counter() - sent
        answered += 1
        if first is None:
            first = round((time.perf_counter() - started) * 1000, 1)
        if took > 0.1:
            slow.append([round((sent - started) * 1000), round(took * 1000), status])
finally:
    process.terminate()
    process.wait()
print(json.dumps({"first_answer_ms": first, "answered": answered,
                  "over_100_ms": slow}))
