"""Metrics and JSON logs, measured in one process: ``POST /api/v1/inbound`` through Flask's
test client, off vs on, CPU time per request and (``--profile``) a by-function diff.

    .venv/bin/python -m bench.ops_inprocess                    # CPU per request, off vs on
    .venv/bin/python -m bench.ops_inprocess --profile 25       # + the 25 functions that differ most
    .venv/bin/python -m bench.ops_inprocess --toggle 5         # off/on blocks in one process
    .venv/bin/python -m bench.ops_inprocess --instructions 200 # instructions per request (callgrind)

Each mode runs in a fresh process of its own, set up as ``bench.http_inbound --ops`` sets up
its two servers: a fresh SQLite file (``papo db upgrade``, the bench flow published, an API
token), and

- **off**: no ``PAPO_METRICS_TOKEN``, text logs at WARNING;
- **on**: ``PAPO_METRICS_TOKEN``, ``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder),
  ``PAPO_LOG_FORMAT=json`` at INFO, stderr (where the log lines go) a file, as under gunicorn;
  one ``GET /metrics`` every ``--scrape-every`` requests (default 1,000: about once a second).

Contacts take turns as wrk's clients do ("oi", the answer, "oi" …). The measured figure is
``time.process_time()`` over ``--requests`` requests after ``--warmup`` ones, best of
``--rounds``; off and on alternate (off, on, on, off …) so that the machine's other work
falls on both alike. On a shared machine that CPU time moves by ±30 % from run to run:
``--toggle`` switches metrics and the INFO level off and on in alternate blocks of 100 requests
inside one process built "on" (same database, same heap), and ``--instructions`` counts the
instructions a request executes under valgrind's callgrind, which does not depend on the
machine's load at all (but leaves out what caches and memory cost).
"""
from __future__ import annotations

if not __package__:
    raise SystemExit("run it as a module from the repository root: python -m bench.ops_inprocess")

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.http_inbound import ANSWER, BIN, FLOW, ROOT, papo_env, run

CHILD = r"""
import cProfile, gc, json, os, sys, time
mode, requests, warmup, scrape_every, profile_path, token = sys.argv[1:7]
requests, warmup, scrape_every = int(requests), int(warmup), int(scrape_every)
if mode != "off":
    sys.stderr = open(os.environ["BENCH_LOG"], "a", encoding="utf-8", errors="backslashreplace")
import engine.db
engine.db.CHECKPOINT_EVERY_S = 3600  # the server's once-a-second upkeep is not per request
from editor import create_app
app = create_app()
client = app.test_client()
auth = {"Authorization": "Bearer " + token}
scrape_auth = {"Authorization": "Bearer bench-metrics-token"}
def metrics_on():
    from engine import metrics
    return metrics.enabled()
contacts = 8
turn = [1] * contacts
sent = 0
def one(i):
    global sent
    c = i % contacts
    n = turn[c]
    text = "oi" if n % 2 else os.environ["BENCH_ANSWER"]
    body = {"channel": "api", "contact": {"external_id": f"{mode}-{os.getpid()}-{c}", "name": f"Cliente {c}"},
            "message": {"id": f"{mode}-{os.getpid()}-{c}-{n}", "text": text}}
    answer = client.post("/api/v1/inbound", json=body, headers=auth)
    assert answer.status_code == 200, (answer.status_code, answer.data[:300])
    turn[c] = n + 1
    if mode == "off" or not metrics_on():
        return
    sent += 1
    if scrape_every and sent % scrape_every == 0:
        scraped = client.get("/metrics", headers=scrape_auth)
        assert scraped.status_code == 200, scraped.status_code
for i in range(warmup):
    one(i)
gc.collect()
if os.environ.get("BENCH_MARKS"):  # under callgrind: the parent dumps the counts at each mark
    # The warm-up's objects out of the collector's sight: a full collection of the whole heap
    # falling inside the window, or not, would otherwise decide the count.
    gc.freeze()
    def mark():
        sys.stdout.write("MARK\n")
        sys.stdout.flush()
        sys.stdin.readline()
    mark()
    for i in range(warmup, warmup + requests):
        one(i)
    mark()
    sys.exit(0)
if mode == "toggle":  # on and off in blocks, alternating, in this one process
    import logging
    from engine import metrics
    instruments, root = metrics._instruments, logging.getLogger()
    toggled = os.environ.get("BENCH_TOGGLE", "both")  # both, metrics or logs
    spent = {"on": 0.0, "off": 0.0}
    profilers = {k: cProfile.Profile() for k in spent} if profile_path != "-" else None
    i = warmup
    for block in range(2 * requests // 100):
        state = ("on", "off")[block % 2] if block // 2 % 2 == 0 else ("off", "on")[block % 2]
        if toggled != "logs":
            metrics._instruments = instruments if state == "on" else None
        if toggled != "metrics":
            root.setLevel(logging.INFO if state == "on" else logging.WARNING)
        began = time.process_time()
        if profilers:
            profilers[state].enable()
        for _ in range(100):
            one(i)
            i += 1
        if profilers:
            profilers[state].disable()
        spent[state] += time.process_time() - began
    if profilers:
        for k, profiler in profilers.items():
            profiler.dump_stats(profile_path.replace("MODE", k))
    print(json.dumps({k: v / requests * 1e6 for k, v in spent.items()}))
    sys.exit(0)
profiler = cProfile.Profile() if profile_path != "-" else None
began = time.process_time()
if profiler:
    profiler.enable()
for i in range(warmup, warmup + requests):
    one(i)
if profiler:
    profiler.disable()
    profiler.dump_stats(profile_path)
print(json.dumps({"cpu_us": (time.process_time() - began) / requests * 1e6}))
"""


def prepare(tmp: Path, mode: str) -> tuple[dict, str]:
    instance = tmp / mode
    instance.mkdir()
    env = papo_env(f"sqlite:///{instance / 'papo.db'}", instance)
    papo = str(BIN / "papo")
    run([papo, "db", "upgrade"], env)
    (instance / "flow.json").write_text(json.dumps(FLOW, ensure_ascii=False))
    run([papo, "import", str(instance / "flow.json"), "--publish"], env)
    run([papo, "user", "create", "bench", "--role", "admin", "--password", "bench-senha-123"], env)
    token = run([papo, "token", "create", "--user", "bench"], env).strip().splitlines()[-1].strip()
    env["BENCH_ANSWER"] = ANSWER
    if mode == "on":
        folder = instance / "metrics"
        folder.mkdir()
        env.update(PAPO_METRICS_TOKEN="bench-metrics-token", PAPO_LOG_FORMAT="json",
                   PAPO_LOG_LEVEL="INFO", PROMETHEUS_MULTIPROC_DIR=str(folder),
                   BENCH_LOG=str(instance / "papo.log"))
    return env, token


def measure(env: dict, token: str, mode: str, args, profile_path: str = "-") -> float:
    done = subprocess.run(
        [str(BIN / "python"), "-c", CHILD, mode, str(args.requests), str(args.warmup),
         str(args.scrape_every), profile_path, token],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return found if mode == "toggle" else found["cpu_us"]


def instructions(env: dict, token: str, mode: str, args, tmp: Path) -> float:
    """Instructions per request (valgrind's callgrind: deterministic, unlike CPU time on a
    shared machine): counts dumped after the warm-up and after the measured requests."""
    out = tmp / f"callgrind-{mode}.out"
    child = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", str(BIN / "python"),
         "-c", CHILD, mode, str(args.instructions), str(args.warmup), str(args.scrape_every), "-",
         token], cwd=ROOT, env={**env, "BENCH_MARKS": "1"}, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for _ in range(2):
        line = child.stdout.readline()
        if line.strip() != "MARK":
            child.kill()
            raise RuntimeError(f"callgrind run of {mode} failed: {line!r}")
        subprocess.run(["callgrind_control", "--dump", str(child.pid)], capture_output=True,
                       check=True)
        child.stdin.write("\n")
        child.stdin.flush()
    child.wait()
    measured = Path(f"{out}.{child.pid}.2").read_text().splitlines()  # the second dump
    total = next(int(line.split()[1]) for line in measured if line.startswith(("summary:", "totals:")))
    return total / args.instructions


def profile_diff(off_path: str, on_path: str, requests: int, top: int) -> str:
    import pstats

    def by_function(path):
        stats = pstats.Stats(path).stats
        return {f"{Path(f).name}:{line}({name})": (tt, ct, nc)
                for (f, line, name), (_cc, nc, tt, ct, _callers) in stats.items()}

    off, on = by_function(off_path), by_function(on_path)
    rows = []
    for key in off.keys() | on.keys():
        a, b = off.get(key, (0.0, 0.0, 0)), on.get(key, (0.0, 0.0, 0))
        rows.append((b[0] - a[0], key, a, b))
    rows.sort(reverse=True)
    lines = [f"{'Δ own µs/req':>12} {'calls/req off':>13} {'on':>6} {'Δ cum µs/req':>12}  function"]
    for delta, key, a, b in rows[:top]:
        lines.append(f"{delta / requests * 1e6:12.1f} {a[2] / requests:13.2f} {b[2] / requests:6.2f} "
                     f"{(b[1] - a[1]) / requests * 1e6:12.1f}  {key}")
    total_off = sum(v[0] for v in off.values())
    total_on = sum(v[0] for v in on.values())
    lines.append(f"profiled total: off {total_off / requests * 1e6:,.0f} µs/req, "
                 f"on {total_on / requests * 1e6:,.0f} µs/req")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scrape-every", type=int, default=1000)
    parser.add_argument("--toggle", type=int, default=0, metavar="RUNS",
                        help="instead: RUNS processes built 'on', each switching metrics and the "
                             "INFO level off and on in alternate blocks of 100 requests")
    parser.add_argument("--instructions", type=int, default=0, metavar="N",
                        help="instead: instructions per request over N requests under valgrind's "
                             "callgrind, off and on (slow: about 2 minutes each)")
    parser.add_argument("--profile", type=int, default=0, metavar="TOP",
                        help="also profile one run each and print the TOP functions that differ")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="papo-ops-inprocess-") as folder:
        tmp = Path(folder)
        if args.instructions:
            setups = {mode: prepare(tmp, mode) for mode in ("off", "on")}
            counts = {mode: instructions(*setups[mode], mode, args, tmp) for mode in ("off", "on")}
            print(f"instructions per request (callgrind, {args.instructions:,} requests): "
                  f"off {counts['off'] / 1e6:,.3f} M, on {counts['on'] / 1e6:,.3f} M, "
                  f"on costs {counts['on'] / counts['off'] - 1:+.2%} "
                  f"({(counts['on'] - counts['off']) / 1e3:+,.0f} k)")
            return 0
        if args.toggle:
            env, token = prepare(tmp, "on")
            found = [measure(env, token, "toggle", args) for _ in range(args.toggle)]
            for run_no, got in enumerate(found, 1):
                print(f"run {run_no}: off {got['off']:,.0f} µs, on {got['on']:,.0f} µs, "
                      f"{got['on'] / got['off'] - 1:+.1%}")
            off = sum(g["off"] for g in found) / len(found)
            on = sum(g["on"] for g in found) / len(found)
            print(f"toggled in one process, mean of {args.toggle} runs of {args.requests:,} requests "
                  f"each way: off {off:,.0f} µs, on {on:,.0f} µs, on costs {on / off - 1:+.1%} "
                  f"({on - off:+,.0f} µs)")
            if args.profile:
                pattern = str(tmp / "MODE.prof")
                measure(env, token, "toggle", args, pattern)
                print(profile_diff(pattern.replace("MODE", "off"), pattern.replace("MODE", "on"),
                                   args.requests, args.profile))
                keep = os.environ.get("BENCH_KEEP_PROFILES")
                if keep:
                    for mode in ("off", "on"):
                        Path(pattern.replace("MODE", mode)).replace(Path(keep) / f"{mode}.prof")
            return 0
        setups = {mode: prepare(tmp, mode) for mode in ("off", "on")}
        cpu: dict[str, list[float]] = {"off": [], "on": []}
        for round_no in range(args.rounds):
            for mode in (("off", "on") if round_no % 2 == 0 else ("on", "off")):
                cpu[mode].append(measure(*setups[mode], mode, args))
                print(f"round {round_no + 1} {mode}: {cpu[mode][-1]:,.0f} µs", file=sys.stderr)
        off, on = min(cpu["off"]), min(cpu["on"])
        print(f"CPU per request (best of {args.rounds}, {args.requests:,} requests): "
              f"off {off:,.0f} µs, on {on:,.0f} µs, on costs {on / off - 1:+.1%} "
              f"({on - off:+,.0f} µs)")
        print("rounds off: " + ", ".join(f"{x:,.0f}" for x in cpu["off"])
              + "; on: " + ", ".join(f"{x:,.0f}" for x in cpu["on"]))
        if args.profile:
            paths = {mode: str(tmp / f"{mode}.prof") for mode in ("off", "on")}
            for mode in ("off", "on"):
                measure(*setups[mode], mode, args, paths[mode])
            print(profile_diff(paths["off"], paths["on"], args.requests, args.profile))
            keep = os.environ.get("BENCH_KEEP_PROFILES")
            if keep:
                for mode, path in paths.items():
                    Path(path).replace(Path(keep) / f"{mode}.prof")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
