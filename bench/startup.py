#!/usr/bin/env python3
"""Start-up and memory of the tollbooth binary on a seeded ledger.

Measures, over several starts: from process start to the first correct 200 of the authorize
route (polling as fast as a client can), then to /readyz answering 200 (the whole ledger in
memory) with the CPU time the process had used by then (all its threads), and resident
memory half a second after that. Prints one JSON line.
Usage: startup.py BINARY DATABASE_URL KEYS_FILE [RUNS]
"""
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time

binary, database_url, keys_file = sys.argv[1:4]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
token = "benchmark-authorize-token-0123456789"
# The Docker image's allocator setting, as bench/run.sh and bench/memory.sh run servers (set
# GLIBC_TUNABLES, even empty, to measure another).
ALLOCATOR = "glibc.malloc.mmap_threshold=131072"
keys = open(keys_file).read().split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ms(pid):
    """User and system CPU time the process has used so far (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def one_start(key):
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url, HOST="127.0.0.1", PORT=str(port),
               AUTHORIZE_TOKEN=token, FXN_OWNER="acme", WORKERS="1",
               LOG_FORMAT=os.environ.get("LOG_FORMAT", "json"),
               GLIBC_TUNABLES=os.environ.get("GLIBC_TUNABLES", ALLOCATOR))
    body = json.dumps({"tag": "@acme/sdxl", "accessKey": key})
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("POST", f"/authorize/{token}", body, {"Content-Type": "application/json"})
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    elapsed = time.perf_counter() - started
                    break
                raise RuntimeError(f"first answer was {status}, not 200")
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                if time.perf_counter() - started > 30:
                    raise RuntimeError("no answer within 30 s")
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                ready = time.perf_counter() - started
                cpu = cpu_ms(process.pid)
                break
            if time.perf_counter() - started > 60:
                raise RuntimeError("not ready within 60 s")
            time.sleep(0.005)
        time.sleep(0.5)
        return elapsed, ready, rss_kib(process.pid), cpu
    finally:
        process.terminate()
        process.wait()


results = [one_start(random.choice(keys)) for _ in range(runs)]
times = sorted(t for t, _, _, _ in results)
ready = sorted(r for _, r, _, _ in results)
print(json.dumps({
    "runs": runs,
    "first_200_ms_median": round(statistics.median(times) * 1000, 1),
    "first_200_ms_max": round(times[-1] * 1000, 1),
    "ready_ms_median": round(statistics.median(ready) * 1000, 1),
    "ready_ms_max": round(ready[-1] * 1000, 1),
    "ready_cpu_ms_median": statistics.median(c for _, _, _, c in results),
    "rss_kib": statistics.median(m for _, _, m, _ in results),
}))
