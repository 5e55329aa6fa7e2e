"""Timers benchmark: lateness and throughput of ``papo worker`` under a steady load.

Run from the repository root (a module, so ``engine`` is the package, not this file)::

    .venv/bin/python -m bench.timers             # measure; rewrite docs/PERFORMANCE.md "Timers"
    .venv/bin/python -m bench.timers --no-write  # measure only

For each database (SQLite file, PostgreSQL at ``--postgres-url``, default
``PAPO_BENCH_POSTGRES_URL`` or ``PAPO_TEST_POSTGRES_URL``) and each number of workers
(``--workers``, default 1 and 2), again with more than the workers can keep up with
(``--capacity-rate``, default 4,000 a second: their capacity), then once more with one
worker at a light ``--steady-rate`` (default 50 a second):

1. a fresh database gets ``--timers`` pending timers (default 100,000), inserted in bulk:
   ``--rate`` × ``--window`` of them (default 1,000 a second for 10 s) fall due during
   the run, each for its own conversation waiting at a ``wait`` block (copies of one
   conversation made through the service), the rest are due a day later and only fill
   the table and its index as a busy production database would;
2. real ``papo worker`` processes run (APScheduler, a claim every second, ``--batch``);
3. lateness = ``fired_at - due_at`` of every timer due in the window (one still pending at
   the end counts with the time waited so far: the figure is then a lower bound, "≥");
   throughput = timers fired / the time from the first to the last firing.

A run stops once every due timer has fired, or after ``--max-run`` seconds.
"""
from __future__ import annotations

if not __package__:  # run as a script, "engine" would be this file: refuse clearly
    raise SystemExit("run it as a module from the repository root: python -m bench.timers")

import argparse
import copy
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from engine.db import create_schema, make_engine
from engine.flows import FlowRepository
from engine.service import Service
from engine.settings import Settings
from engine.store import contacts, conversations, timers

ROOT = Path(__file__).resolve().parents[1]
BENCH_DATABASE = "papo_bench_timers"
FLOW_ID = "bench-timers"
AFTER = "Passou o tempo."
CHUNK = 5000


def block(block_id: str, kind: str, **data) -> dict:
    return {"id": block_id, "type": kind, "position": {"x": 0, "y": 0}, "data": data}


FLOW = {
    "schema_version": 1, "id": FLOW_ID, "name": "Bench timers", "triggers": [{"type": "default"}],
    "start": "m1",
    "blocks": [block("m1", "message", text="Um momento."), block("w", "wait", seconds=1),
               block("m2", "message", text=AFTER)],
    "edges": [{"from": "m1", "port": "next", "to": "w"}, {"from": "w", "port": "next", "to": "m2"}],
}


@dataclass
class Result:
    database: str
    workers: int
    due: int
    fired: int
    rate: float
    throughput: float
    p50: float
    p99: float
    worst: float
    censored: bool
    insert_s: float


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- databases ------------------------------------------------------------------------------

def fresh_database(kind: str, postgres_url: str | None, folder: str) -> str:
    if kind == "sqlite":
        path = Path(folder) / f"timers-{uuid.uuid4().hex[:6]}.db"
        return f"sqlite:///{path}"
    base = make_url(postgres_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
    admin.dispose()
    return base.set(database=BENCH_DATABASE).render_as_string(hide_password=False)


def drop_database(kind: str, url: str, postgres_url: str | None) -> None:
    if kind == "sqlite":
        path = Path(make_url(url).database)
        for extra in ("", "-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
        return
    admin = create_engine(make_url(postgres_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
    admin.dispose()


def observer(url: str):
    """A read-only view that never takes SQLite's write lock (no BEGIN IMMEDIATE)."""
    return create_engine(url, poolclass=NullPool)


# -- seeding --------------------------------------------------------------------------------

def seed_conversations(db, count: int) -> list[tuple[int, dict]]:
    """``count`` conversations waiting at the wait block: ``[(id, timer payload)]``."""
    repo = FlowRepository(db)
    repo.create(FLOW)
    repo.publish(FLOW_ID)
    service = Service(db, Settings(), clock=lambda: 1_000_000_000.0)
    first = service.handle_inbound("api", {"external_id": "c0", "name": "c0"},
                                   {"id": "m0", "text": "oi"})
    with db.begin() as conn:
        conv = conn.execute(select(conversations).where(
            conversations.c.id == first["conversation_id"])).mappings().one()
        template = conn.execute(select(timers.c.payload).where(
            timers.c.conversation_id == conv["id"])).scalar_one()
        conn.execute(timers.delete())  # the window's timers are inserted later, on time
    payloads = {conv["id"]: template}
    for start in range(1, count, CHUNK):
        names = [f"c{i}" for i in range(start, min(count, start + CHUNK))]
        with db.begin() as conn:
            conn.execute(insert(contacts), [{"channel": "api", "external_id": n, "name": n}
                                            for n in names])
            ids = dict(conn.execute(select(contacts.c.external_id, contacts.c.id).where(
                contacts.c.external_id.in_(names))).all())
            rows, runs = [], {}
            for name in names:
                state = copy.deepcopy(conv["state"])
                state["contact"] = {"name": name, "external_id": name}
                state["run"]["id"] = runs[name] = f"r-{uuid.uuid4().hex[:16]}"
                rows.append({"contact_id": ids[name], "channel": "api", "status": conv["status"],
                             "name_norm": name, "state": state, "version": 1,
                             "created_at": conv["created_at"], "updated_at": conv["updated_at"]})
            conn.execute(insert(conversations), rows)
            for name, conv_id in conn.execute(
                    select(contacts.c.external_id, conversations.c.id)
                    .join(conversations, conversations.c.contact_id == contacts.c.id)
                    .where(contacts.c.external_id.in_(names))).all():
                payloads[conv_id] = {**template, "run_id": runs[name]}
    return sorted(payloads.items())


def insert_timers(db, rows: list[dict]) -> None:
    for start in range(0, len(rows), CHUNK):
        with db.begin() as conn:
            conn.execute(insert(timers), rows[start:start + CHUNK])


# -- one run --------------------------------------------------------------------------------

def start_workers(url: str, count: int, batch: int) -> list[subprocess.Popen]:
    env = {**os.environ, "PAPO_DATABASE_URL": url, "PAPO_AUTO_CONCLUDE_AFTER": ""}
    procs = [subprocess.Popen(
        [sys.executable, "-c", "from editor.cli import main; main()", "worker",
         "--batch", str(batch), "--log-level", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(count)]
    for proc in procs:
        line = proc.stdout.readline()
        if "started" not in line:
            raise SystemExit(f"a worker did not start: {line!r}")
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(kind: str, workers: int, rate: float, args, folder: str) -> Result:
    url = fresh_database(kind, args.postgres_url, folder)
    try:
        db = make_engine(url)
        create_schema(db)
        due_count = int(rate * args.window)
        if due_count > args.timers:
            raise SystemExit("--rate × --window is more than --timers")
        print(f"[{kind}, {workers} worker(s), {rate:g}/s] seeding {due_count:,} conversations and "
              f"{args.timers - due_count:,} later timers …", flush=True)
        waiting = seed_conversations(db, due_count)
        later = time.time() + 86400
        insert_timers(db, [{"conversation_id": waiting[i % len(waiting)][0], "kind": "wait",
                            "due_at": utc(later + i / rate), "status": "pending",
                            "payload": {"token": -1, "run_id": "r-later", "block_id": "w"}}
                           for i in range(args.timers - due_count)])
        procs = start_workers(url, workers, args.batch)
        try:
            time.sleep(1.0)
            begin = time.time() + args.lead
            window = [{"conversation_id": conv_id, "kind": "wait", "status": "pending",
                       "due_at": utc(begin + i / rate), "payload": payload}
                      for i, (conv_id, payload) in enumerate(waiting)]
            started = time.perf_counter()
            insert_timers(db, window)
            insert_s = time.perf_counter() - started
            print(f"[{kind}, {workers} worker(s), {rate:g}/s] {due_count:,} timers due from now on "
                  f"({rate:,.0f}/s); inserted in {insert_s:.1f} s", flush=True)
            view = observer(url)
            deadline = begin + args.max_run
            due_window = (timers.c.due_at >= utc(begin)) & (timers.c.due_at < utc(later))
            while time.time() < deadline:
                time.sleep(0.5)
                with view.connect() as conn:
                    left = conn.execute(select(func.count()).select_from(timers).where(
                        due_window, timers.c.status == "pending")).scalar()
                if not left:
                    break
            end = time.time()
        finally:
            stop_workers(procs)
        with view.connect() as conn:
            rows = conn.execute(select(timers.c.due_at, timers.c.fired_at, timers.c.status)
                                .where(due_window)).all()
        view.dispose()
        db.dispose()
    finally:
        drop_database(kind, url, args.postgres_url)
    fired_at = [epoch(r.fired_at) for r in rows if r.status == "fired"]
    lateness = [(epoch(r.fired_at) if r.status == "fired" else end) - epoch(r.due_at)
                for r in rows]
    span = (max(fired_at) - min(fired_at)) if len(fired_at) > 1 else 0.0
    result = Result(kind, workers, len(rows), len(fired_at), rate,
                    len(fired_at) / span if span else 0.0,
                    statistics.median(lateness), percentile(lateness, 0.99), max(lateness),
                    len(fired_at) < len(rows), insert_s)
    print(f"[{kind}, {workers} worker(s), {rate:g}/s] fired {result.fired:,}/{result.due:,}, "
          f"{result.throughput:,.0f} timers/s, lateness p50 {result.p50:.2f} s, "
          f"p99 {result.p99:.2f} s", flush=True)
    return result


# -- report ---------------------------------------------------------------------------------

def seconds(value: float, censored: bool) -> str:
    return f"{'≥ ' if censored else ''}{value:,.2f} s"


def markdown(results: list[Result], args) -> str:
    lines = [
        f"{args.timers:,} pending timers in the table; for {args.window:g} s, timers fall due "
        f"at the offered rate ({args.rate:,.0f}/s: {int(args.rate * args.window):,} timers; "
        f"then a steady {args.steady_rate:,.0f}/s), one conversation each, waiting at a "
        "`wait` block; the rest are due a day later. Real `papo worker` processes "
        f"(`--batch {args.batch}`, a claim every second). Lateness = `fired_at - due_at`; "
        "\"≥\" = some timers were still pending when the run stopped "
        f"(after {args.max_run:g} s), counted with the time waited so far. "
        "Timers/s fired is the workers' capacity when they fall behind, else the offered rate.",
        "",
        "| database | offered | workers | fired | timers/s fired | lateness p50 | lateness p99 "
        "| worst |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r.database} | {r.rate:,.0f}/s | {r.workers} | {r.fired:,} / {r.due:,} | "
                     f"{r.throughput:,.0f} | {seconds(r.p50, r.censored)} | "
                     f"{seconds(r.p99, r.censored)} | {seconds(r.worst, r.censored)} |")
    scaling = []
    for kind in dict.fromkeys(r.database for r in results):
        # capacity, measured where the workers fall behind (else it is the offered rate)
        by_workers = {r.workers: r.throughput for r in results
                      if r.database == kind and r.rate == (args.capacity_rate or args.rate)}
        if 1 in by_workers and 2 in by_workers and by_workers[1]:
            scaling.append(f"{kind} ×{by_workers[2] / by_workers[1]:.2f}")
    lines += [
        "",
        "Reading it: a worker fires claimed timers in transactions of 50: the timers and "
        "their 50 conversations read in a few queries without a lock, each timer's step "
        "decided on its own, then everything written together, one `executemany` per kind of "
        "row — the conversations' version checks and the timers' `pending → fired` flips "
        "included (`engine/service/unit.py`); a conversation changed meanwhile makes the "
        "batch read and decide again. While the offered rate stays below the "
        "workers' capacity, lateness is the claim interval (≤ 1 s) plus queueing; above it "
        "(the capacity rows), a burst queues up and lateness grows until it is worked off."
        + (f" A second worker's capacity: {', '.join(scaling)} — on SQLite every write takes "
           "the one database lock; on PostgreSQL workers claim disjoint batches "
           "(`FOR UPDATE SKIP LOCKED`) and fire in parallel." if scaling else ""),
        f"Load average of the machine during the runs: {args.load_seen}.",
    ]
    return "\n".join(lines)


def _write_section_fallback(title: str, body: str, command: str) -> Path:
    """Replace (or append) only the ``## title`` section of docs/PERFORMANCE.md."""
    import re

    doc = ROOT / "docs" / "PERFORMANCE.md"
    current = doc.read_text(encoding="utf-8") if doc.exists() else "# papo performance\n"
    section = (f"## {title}\n\n{body.strip()}\n\n- Command: `{command}`\n"
               f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    pattern = re.compile(rf"^## {re.escape(title)}\s*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _m: section + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + section
    doc.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")
    return doc


def write(body: str, command: str) -> Path:
    try:
        from bench._report import write_section
    except ImportError:
        write_section = _write_section_fallback
    return write_section("Timers", body, command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timers", type=int, default=100_000, help="pending timers in the table")
    parser.add_argument("--rate", type=float, default=1000, help="timers falling due per second")
    parser.add_argument("--steady-rate", type=float, default=50,
                        help="a second, light load (one worker); 0: skip it")
    parser.add_argument("--capacity-rate", type=float, default=4000,
                        help="a rate above what the workers keep up with, to measure their "
                             "capacity (timers/s fired); 0 skips it")
    parser.add_argument("--window", type=float, default=10, help="seconds over which they fall due")
    parser.add_argument("--max-run", type=float, default=60, help="stop a run after this long")
    parser.add_argument("--lead", type=float, default=3, help="seconds before the first is due")
    parser.add_argument("--batch", type=int, default=200, help="papo worker --batch")
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts")
    parser.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get("PAPO_BENCH_POSTGRES_URL")
                        or os.environ.get("PAPO_TEST_POSTGRES_URL"),
                        help="a server where the database papo_bench_timers may be created")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    if "postgresql" in kinds and not args.postgres_url:
        print("no PostgreSQL URL (--postgres-url or PAPO_BENCH_POSTGRES_URL): SQLite only",
              file=sys.stderr)
        kinds.remove("postgresql")
    results = []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="papo-bench-") as folder:
        for kind in kinds:
            for workers in (int(w) for w in args.workers.split(",")):
                results.append(run(kind, workers, args.rate, args, folder))
                loads.append(os.getloadavg()[0])
            for workers in (int(w) for w in args.workers.split(",")) if args.capacity_rate else ():
                results.append(run(kind, workers, args.capacity_rate, args, folder))
                loads.append(os.getloadavg()[0])
            if args.steady_rate:
                results.append(run(kind, 1, args.steady_rate, args, folder))
                loads.append(os.getloadavg()[0])
    # Other processes on the machine take cores from the workers and the database.
    args.load_seen = f"{min(loads):.1f}–{max(loads):.1f} (1-minute, {os.cpu_count()} cores)"
    body = markdown(results, args)
    print("\n" + body)
    if not args.no_write:
        command = ".venv/bin/python -m bench.timers"
        defaults = parser.parse_args([])
        changed = [f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                   if k not in ("no_write", "postgres_url", "load_seen")
                   and v != getattr(defaults, k)]
        print(f"wrote {write(body, ' '.join([command, *changed]))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
