"""``python -m bench.http_inbound --ops``: what metrics and JSON logs cost an inbound message.

Two papo servers side by side, same code, same settings otherwise, each on a fresh SQLite
file under ``gunicorn -w 2 -k sync``:

- **off**: no ``PAPO_METRICS_TOKEN``, text logs at WARNING (nothing is written per message);
- **on**: ``PAPO_METRICS_TOKEN`` set (every counter and histogram recorded, multiprocess
  files under ``editor/gunicorn_conf.py``), ``PAPO_LOG_FORMAT=json`` at INFO (one JSON line
  per message, to a file), and ``GET /metrics`` scraped every second during the load
  (Prometheus usually scrapes every 15–60 s: this is the pessimistic case).

For each concurrency the two are measured ``--rounds`` times, interleaved (off, on, on,
off, …) so that the machine's other work falls on both alike. The cost is the servers' own
CPU time per answered request (from /proc: master and workers), which is what bounds
throughput on a saturated machine and, unlike requests per second, barely moves when other
work shares the cores. Target (issue 18): "on" costs at most 5% more than "off".
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import urllib.request
import uuid
from pathlib import Path

from bench.http_inbound import (
    WRK_SCRIPT,
    Point,
    Target,
    _measure,
    find_wrk,
    loadavg,
    papo_counts,
    smoke,
    start_papo,
    stop,
)

TITLE = "HTTP inbound: metrics and logs"
METRICS_TOKEN = "bench-metrics-token"
TARGET_COST = 0.05


class Scraper:
    """``GET /metrics`` every ``every`` seconds while running; counts the scrapes."""

    def __init__(self, target: Target, every: float = 1.0) -> None:
        self.target, self.every = target, every
        self.scrapes = self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last = ""

    def __enter__(self) -> Scraper:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.scrape()

    def scrape(self) -> str:
        request = urllib.request.Request(self.target.url + "/metrics",
                                         headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                self.last = answer.read().decode()
                self.scrapes += 1
        except OSError:
            self.failures += 1
        return self.last


_TICK = os.sysconf("SC_CLK_TCK")


def server_cpu(target: Target) -> float:
    """CPU seconds used so far by a gunicorn server: its master and its live workers."""
    pids = [target.proc.pid]
    try:
        children = Path(f"/proc/{target.proc.pid}/task/{target.proc.pid}/children").read_text()
        pids += [int(pid) for pid in children.split()]
    except OSError:
        pass
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / _TICK


COMPONENTS = r"""
import json, logging, os, sys, time
from engine import core, logs, metrics
from engine.db import make_engine
metrics.enable("web")
logs.configure("json", "INFO")
sys.stderr = open(os.devnull, "w")
log = logging.getLogger("papo.inbound")
event = core.UserMessage(at=0, text="x")
def message():
    with logs.context(channel="api"), metrics.inbound("api"):
        logs.bind(channel="api", message_id="m-1")
        metrics.bot_step(event)
        logs.bind(conversation_id=7, flow_id="bench-inbound", flow_version=1)
        logs.info(log, "inbound %s message %s: conversation %s %s, %d replies, %.1f ms", "api", "m-1",
                  7, "concluded", 2, 1.0, status="concluded", replies=2, duration_ms=1.0)
    metrics.http_response(200)
def best(work, n):
    times = []
    for _ in range(5):
        began = time.process_time()
        for _ in range(n):
            work()
        times.append((time.process_time() - began) / n)
    return min(times)
db = make_engine(sys.argv[1])
print(json.dumps({"message_us": best(message, 5000) * 1e6,
                  "scrape_ms": best(lambda: metrics.render(db), 50) * 1e3}))
"""


def components(db_url: str, tmp: Path) -> dict:
    """CPU of the instrumentation alone, in a process of its own (multiprocess mode): one
    message's counters, histogram and JSON log line; one scrape of /metrics' body."""
    import subprocess

    from bench.http_inbound import BIN, ROOT

    folder = tmp / "components-metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    done = subprocess.run([str(BIN / "python"), "-c", COMPONENTS, db_url], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _sum(points: list[Point]) -> Point:
    total = Point(points[0].target, points[0].database, points[0].clients)
    total.requests = sum(p.requests for p in points)
    total.errors = sum(p.errors for p in points)
    total.seconds = sum(p.seconds for p in points)
    total.p50_ms = sorted(p.p50_ms for p in points)[len(points) // 2]
    total.p99_ms = sorted(p.p99_ms for p in points)[len(points) // 2]
    return total


def _counter(text: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == name)


def measure_ops(args, argv) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="papo-bench-ops-"))
    load_before = loadavg()
    wrk = find_wrk(install=args.client == "auto") if args.client != "python" else None
    if args.client == "wrk" and wrk is None:
        raise SystemExit("wrk not found (apt-get install wrk)")
    if wrk:
        (tmp / "inbound.lua").write_text(WRK_SCRIPT)
    client = "wrk, one thread and one connection per client" if wrk else \
        "the Python fallback client (wrk was not available)"
    off = on = None
    results: dict[tuple[str, int], list[Point]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}  # server CPU seconds per measured point
    scrapes = failures = 0
    parts: dict = {}
    checks: list[str] = []
    try:
        print(f"starting servers in {tmp} …", file=sys.stderr)
        off = start_papo("sqlite", f"sqlite:///{tmp / 'off.db'}", tmp, args.workers, name="off")
        on = start_papo("sqlite", f"sqlite:///{tmp / 'on.db'}", tmp, args.workers, name="on",
                        extra_env={"PAPO_METRICS_TOKEN": METRICS_TOKEN, "PAPO_LOG_FORMAT": "json",
                                   "PAPO_LOG_LEVEL": "INFO"},
                        config="python:editor.gunicorn_conf")
        smoke(off)
        smoke(on)
        run_id = uuid.uuid4().hex[:6]
        for clients in args.clients:
            for round_no in range(args.rounds):
                order = (off, on) if round_no % 2 == 0 else (on, off)
                for target in order:
                    prefix = f"{target.name}-{clients}-{round_no}-{run_id}"
                    if args.warmup:
                        _measure(wrk, tmp, target, clients, args.warmup, prefix + "-warm")
                    cpu_before = server_cpu(target)
                    if target is on:
                        with Scraper(on) as scraper:
                            point = _measure(wrk, tmp, target, clients, args.duration, prefix)
                        scrapes += scraper.scrapes
                        failures += scraper.failures
                    else:
                        point = _measure(wrk, tmp, target, clients, args.duration, prefix)
                    cpu.setdefault((target.name, clients), []).append(server_cpu(target) - cpu_before)
                    results.setdefault((target.name, clients), []).append(point)
                    print(f"{target.name:3} {clients:>2} clients round {round_no + 1}: "
                          f"{point.rps:,.0f} req/s, p50 {point.p50_ms:.1f} ms", file=sys.stderr)
        parts = components(on.db_url, tmp)
        final = Scraper(on).scrape()
        counts = {t.name: papo_counts(t.db_url) for t in (off, on)}
        counted = _counter(final, "papo_inbound_messages_total")
        lines = [json.loads(line) for line in on.log.read_text().splitlines() if line.startswith("{")]
        inbound_lines = sum(1 for line in lines if line.get("logger") == "papo.inbound"
                            and line.get("message_id"))
        checks.append(f"`on`: {counts['on']['in']:,} inbound messages stored; "
                      f"`papo_inbound_messages_total` says {counted:,.0f}; {inbound_lines:,} JSON log "
                      f"lines with a message id (one per message); {scrapes} scrapes during the "
                      f"load ({failures} failed).")
        checks.append(f"`off`: {counts['off']['in']:,} inbound messages stored. Both databases "
                      f"consistent: {all(c['out'] == 2 * c['in'] and c['duplicates'] == 0 for c in counts.values())}.")
    finally:
        for target in (off, on):
            if target is not None:
                stop(target)
        shutil.rmtree(tmp, ignore_errors=True)

    rows = ["| clients | server CPU per request, off | on | CPU cost | target ≤ 5% | off req/s | "
            "on req/s | on / off | p50 off / on | p99 off / on |",
            "|---:|---:|---:|---:|---|---:|---:|---:|---|---|"]
    for clients in args.clients:
        a, b = _sum(results[("off", clients)]), _sum(results[("on", clients)])
        ratio = b.rps / a.rps if a.rps else 0.0
        cpu_a = sum(cpu[("off", clients)]) / max(1, a.requests) * 1e6
        cpu_b = sum(cpu[("on", clients)]) / max(1, b.requests) * 1e6
        cost = cpu_b / cpu_a - 1 if cpu_a else 0.0
        rows.append(f"| {clients} | {cpu_a:,.0f} µs | {cpu_b:,.0f} µs | {cost:+.1%} | "
                    f"{'ok' if cost <= TARGET_COST else 'OVER'} | {a.rps:,.0f} | {b.rps:,.0f} | "
                    f"{ratio:.1%} | {a.p50_ms:.1f} / {b.p50_ms:.1f} ms | "
                    f"{a.p99_ms:.1f} / {b.p99_ms:.1f} ms |")
    off_cpu = sum(sum(cpu[("off", c)]) for c in args.clients) / max(
        1, sum(_sum(results[("off", c)]).requests for c in args.clients)) * 1e6
    top_rps = max(_sum(results[("on", c)]).rps for c in args.clients)
    per_message = parts["message_us"] / off_cpu
    scrape_1s = parts["scrape_ms"] * 1000 / max(top_rps, 1) / off_cpu
    ratios = [(y / max(1, q.requests)) / (x / max(1, p.requests)) - 1
              for c in args.clients
              for x, p, y, q in zip(cpu[("off", c)], results[("off", c)], cpu[("on", c)],
                                    results[("on", c)], strict=True) if x > 0]
    component_lines = [
        f"Instrumentation alone (its own process, multiprocess mode, best of 5): one message's "
        f"counters, histogram and JSON log line cost **{parts['message_us']:.0f} µs** of CPU, "
        f"{per_message:.1%} of the {off_cpu:,.0f} µs a request costs `off`; one scrape "
        f"(`/metrics` body: every process's files and the database gauges) costs "
        f"**{parts['scrape_ms']:.1f} ms**: scraped every second at {top_rps:,.0f} req/s that is "
        f"{scrape_1s:.1%} more, every 15 s {scrape_1s / 15:.2%}. Together, scraped every second: "
        f"**{per_message + scrape_1s:.1%}** (target ≤ 5%: "
        f"{'ok' if per_message + scrape_1s <= TARGET_COST else 'OVER'}).",
        "",
        f"End to end (the table), round by round, `on` used between {min(ratios):+.0%} and "
        f"{max(ratios):+.0%} of `off`'s CPU per request on this shared machine; the whole "
        "difference is not only the instrumentation's own CPU (a larger working set, the log "
        "line's write to a file, SQLite reads for the gauges every second): read the table's "
        "\"CPU cost\" as the end-to-end figure and the line above as what the code itself costs.",
    ]
    per_round = []
    for clients in args.clients:
        pairs = zip(results[("off", clients)], results[("on", clients)], strict=True)
        per_round.append(f"{clients} clients: " + ", ".join(
            f"{p.rps:,.0f}/{q.rps:,.0f}" for p, q in pairs))
    body = "\n".join([
        "What metrics and JSON logs cost `POST /api/v1/inbound`: the same papo twice, side by side "
        f"(gunicorn, {args.workers} sync workers, SQLite), **off** (no `PAPO_METRICS_TOKEN`, text "
        "logs at WARNING: nothing written per message) and **on** (metrics recorded in "
        "multiprocess mode through `editor/gunicorn_conf.py`, `PAPO_LOG_FORMAT=json` at INFO: one "
        "line per message, `GET /metrics` scraped every second during the load). "
        f"{args.rounds} interleaved rounds of {args.duration} s per concurrency. Client: {client}; "
        "127.0.0.1 only.",
        "",
        "The cost is measured as the servers' own CPU time per answered request (gunicorn master "
        "and workers, user + system, from /proc, over the measured seconds only; the /metrics "
        "scrapes are served by the `on` workers and count against it). On a saturated 2-core "
        "machine throughput is the inverse of that CPU time, and unlike requests per second it "
        "hardly moves when other work shares the cores. Requests per second are shown too "
        "(all requests / all seconds).",
        "",
        *component_lines,
        "",
        *rows,
        "",
        "Per round (off/on req/s): " + "; ".join(per_round) + ".",
        "",
        "Per round (off/on server CPU µs per request): " + "; ".join(
            f"{c} clients: " + ", ".join(
                f"{x / max(1, p.requests) * 1e6:,.0f}/{y / max(1, q.requests) * 1e6:,.0f}"
                for x, p, y, q in zip(cpu[("off", c)], results[("off", c)], cpu[("on", c)],
                                      results[("on", c)], strict=True))
            for c in args.clients) + ".",
        "",
        *[f"- {line}" for line in checks],
        f"- Load average before / after: {load_before} / {loadavg()} (2 cores shared with other "
        "work: the interleaved ratio is the robust figure).",
    ])
    command = ".venv/bin/python -m bench.http_inbound" + (" " + " ".join(argv) if argv else "")
    if args.write:
        from bench._report import write_section

        path = write_section(TITLE, body, command)
        print(f"wrote section \"{TITLE}\" of {path}", file=sys.stderr)
    print(body)
    return 0
