#!/usr/bin/env python3
"""One measured window of load: wrk (one thread, bench/authorize.lua) against URL, with the CPU
time both sides used. Prints wrk's RESULT with, added, the server's and the generator's CPU
time per request and how busy each was (1.0: a whole core), so a run shows which side was the
bottleneck: a generator near 1.0 means the figure is the generator's, not the server's. The
server's CPU per request is also split by thread name (`server_threads`, digits dropped): the
HTTP workers' share against the background jobs' and the database driver's. The CPU time of
the machine's PostgreSQL processes over the window is reported too (`database_cpu_us_per_request`,
every `postgres` process: the backends serving the server and the ones writing WAL and
checkpoints), which on PostgreSQL does the work SQLite's threads do inside the server.

    bench/load.py URL SERVER_PID SECONDS [DELAY_MS] [CONNECTIONS]
"""
import json
import os
import resource
import subprocess
import sys

url, pid, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
delay = sys.argv[4] if len(sys.argv) > 4 else "0"
connections = sys.argv[5] if len(sys.argv) > 5 else "64"
tick = os.sysconf("SC_CLK_TCK")


def server_cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def thread_cpu():
    """CPU seconds of each of the server's threads so far, by thread id."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        name = text.split("(", 1)[1].rsplit(")", 1)[0]
        fields = text.rsplit(")", 1)[1].split()
        out[tid] = (name.rstrip("0123456789:-_ "), (int(fields[11]) + int(fields[12])) / tick)
    return out


def database_cpu():
    """CPU seconds of every PostgreSQL process so far (processes that ended are not counted)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if text.split("(", 1)[1].rsplit(")", 1)[0] != "postgres":
            continue
        fields = text.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


env = dict(os.environ, BENCH_KEYS=os.environ.get("BENCH_KEYS", "target/bench/keys.txt"),
           BENCH_DELAY_MS=delay)
before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
before = server_cpu()
threads_before = thread_cpu()
database_before = database_cpu()
out = subprocess.run(
    ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", "bench/authorize.lua", url],
    env=env, capture_output=True, text=True, check=True).stdout
after = server_cpu()
threads_after = thread_cpu()
database_after = database_cpu()
children = resource.getrusage(resource.RUSAGE_CHILDREN)
result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
wrk_cpu = (children.ru_utime - before_children.ru_utime) + (children.ru_stime - before_children.ru_stime)
n = max(result["requests"], 1)
result.update({
    "server_cpu_us_per_request": round((after - before) * 1e6 / n, 2),
    "server_busy": round((after - before) / result["seconds"], 2),
    "generator_cpu_us_per_request": round(wrk_cpu * 1e6 / n, 2),
    "generator_busy": round(wrk_cpu / result["seconds"], 2),
    "database_cpu_us_per_request": round((database_after - database_before) * 1e6 / n, 2),
})
by_name = {}
for tid, (name, cpu) in threads_after.items():
    by_name[name] = by_name.get(name, 0.0) + cpu - threads_before.get(tid, (name, 0.0))[1]
result["server_threads"] = {
    name: round(cpu * 1e6 / n, 2) for name, cpu in sorted(by_name.items()) if cpu > 0
}
print(json.dumps(result))
