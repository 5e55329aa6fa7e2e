"""Debounce's cost: inbound throughput with ``PAPO_DEBOUNCE_SECONDS=2`` against off, in one run.

Run from the repository root::

    .venv/bin/python -m bench.debounce              # measure; add/refresh docs/PERFORMANCE.md "Debounce"
    .venv/bin/python -m bench.debounce --no-write --rounds 1 --contacts 50 --no-postgres

In one process, no HTTP (the HTTP layer costs both modes the same, so leaving it out makes
the ratio stricter): ``Service.handle_inbound`` on channel ``web`` (a debounced channel) for
``--contacts`` contacts, each sending ``--bursts`` bursts of three messages ("oi", "tudo
bem?", "1") to the 5-block flow of ``bench/flows/chat.json``; the contacts' messages
interleave as real traffic does. On a fake clock the messages of a burst are 0.5 s apart and
bursts 10 s apart; between bursts the due timers are fired as ``papo worker`` does
(``Worker.run_once``), timed apart from the inbound messages.

- **off**: every message is read by the bot as it comes (three steps per burst);
- **on** (2 s): every message is stored at once, the burst's one timer row is inserted or
  moved, and the worker's firing reads the three lines as one message (one step per burst).

Each round measures off and on on fresh databases, alternating which goes first, so a
busy machine weighs on both alike; the figure is the median of the rounds' ratios. Also
checked: the ``debounce`` timer rows per burst (target: at most one) and the bot's answers.
SQLite files; PostgreSQL too when ``PAPO_BENCH_POSTGRES_URL`` or ``PAPO_TEST_POSTGRES_URL`` is
set (a database of its own, dropped afterwards).
"""
from __future__ import annotations

if not __package__:
    raise SystemExit("run it as a module from the repository root: python -m bench.debounce")

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOW = ROOT / "bench" / "flows" / "chat.json"
PG_DB = "papo_bench_debounce"
T0 = 1_800_000_000.0
BURST = ("oi", "tudo bem?", "1")
SECONDS = 2.0


def pg_url(base: str, create: bool) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
        if create:
            conn.execute(text(f'CREATE DATABASE "{PG_DB}"'))
    admin.dispose()
    return make_url(base).set(database=PG_DB).render_as_string(hide_password=False)


def run(url: str, seconds: float, contacts: int, bursts: int) -> dict:
    """One measurement on a fresh database at ``url``."""
    from sqlalchemy import func, select

    from engine.db import create_schema, make_engine
    from engine.flows import FlowRepository
    from engine.service import Service
    from engine.settings import Settings
    from engine.store import messages, timers
    from engine.worker import Worker

    db = make_engine(url)
    create_schema(db)
    repo = FlowRepository(db)
    flow = json.loads(FLOW.read_text(encoding="utf-8"))
    repo.create(flow)
    repo.publish(flow["id"])
    clock = [T0]
    service = Service(db, Settings(debounce_seconds=seconds), clock=lambda: clock[0])
    worker = Worker(service, batch=500)
    for i in range(20):  # warm-up (the flow's cache, the connection pool) on api: no timers
        service.handle_inbound("api", {"external_id": f"warm-{i}", "name": "Ana"}, {"id": f"w-{i}", "text": "oi"})
    inbound_wall = inbound_cpu = fire_wall = 0.0
    sent = 0
    for burst in range(bursts):
        for n, text in enumerate(BURST):
            clock[0] = T0 + 100 + burst * 10 + n * 0.5
            wall, cpu = time.perf_counter(), time.process_time()
            for c in range(contacts):
                service.handle_inbound("web", {"external_id": f"c-{c}", "name": "Ana"},
                                       {"id": f"c-{c}-{burst}-{n}", "text": text})
            inbound_wall += time.perf_counter() - wall
            inbound_cpu += time.process_time() - cpu
            sent += contacts
        clock[0] = T0 + 100 + burst * 10 + 9
        wall = time.perf_counter()
        while worker.run_once():
            pass
        fire_wall += time.perf_counter() - wall
    with db.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(timers).where(timers.c.kind == "debounce")).scalar()
        pending = conn.execute(select(func.count()).select_from(timers).where(
            timers.c.kind == "debounce", timers.c.status == "pending")).scalar()
        bot = conn.execute(select(func.count()).select_from(messages).where(
            messages.c.author == "bot", messages.c.external_id.is_(None))).scalar()
    db.dispose()
    return {"per_s": sent / inbound_wall, "cpu_ms": inbound_cpu / sent * 1000, "fire_s": fire_wall,
            "timer_rows": rows, "pending": pending, "bursts": contacts * bursts, "bot_messages": bot,
            "messages": sent}


def main(argv: list[str] | None = None) -> int:
    env_pg = os.environ.get("PAPO_BENCH_POSTGRES_URL") or os.environ.get("PAPO_TEST_POSTGRES_URL")
    parser = argparse.ArgumentParser(prog="python -m bench.debounce", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs per database (default 3)")
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--bursts", type=int, default=3, help="bursts of three messages per contact")
    parser.add_argument("--postgres-url", default=env_pg)
    parser.add_argument("--no-postgres", dest="postgres_url", action="store_const", const=None)
    parser.add_argument("--no-write", dest="write", action="store_false", default=True)
    args = parser.parse_args(argv)
    logging.getLogger("papo").setLevel(logging.ERROR)  # no per-timer lateness lines
    results: dict[tuple[str, str], list[dict]] = {}
    loads = [os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="papo-bench-debounce-") as folder:
        databases = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
        for database in databases:
            for round_ in range(args.rounds):
                modes = [("off", 0.0), ("on", SECONDS)]
                if round_ % 2:
                    modes.reverse()
                for mode, seconds in modes:
                    if database == "sqlite":
                        url = f"sqlite:///{folder}/{mode}-{round_}.db"
                    else:
                        url = pg_url(args.postgres_url, True)
                    print(f"{database} {mode} round {round_ + 1} …", file=sys.stderr, flush=True)
                    results.setdefault((database, mode), []).append(
                        run(url, seconds, args.contacts, args.bursts))
            if database == "postgresql":
                pg_url(args.postgres_url, False)
        loads.append(os.getloadavg())
    body = render(results, args, loads)
    print(body)
    if args.write:
        from bench._report import write_section

        command = ".venv/bin/python -m bench.debounce" + (" " + " ".join(argv) if argv else "")
        print(f"wrote {write_section('Debounce', body, command)}", file=sys.stderr)
    ok = all(r["timer_rows"] <= r["bursts"] and not r["pending"]
             for (_, mode), runs in results.items() if mode == "on" for r in runs)
    return 0 if ok else 1


def render(results: dict, args, loads: list[tuple]) -> str:
    lines = [
        f"Inbound messages with `PAPO_DEBOUNCE_SECONDS=2` against off, in one process (no HTTP), "
        f"{args.contacts} contacts × {args.bursts} bursts of three messages (\"oi\", \"tudo bem?\", "
        "\"1\", 0.5 s apart on a fake clock) on channel `web` to `bench/flows/chat.json`; the due "
        "timers fired between bursts as `papo worker` does, timed apart. "
        f"{args.rounds} rounds per database, off and on alternating which goes first; the ratio is "
        "the median of the rounds' own ratios.", "",
        "| database | off: messages/s | on: messages/s | on / off (target ≥ 90%) | CPU per message off / on "
        "| debounce timer rows per burst (target ≤ 1) | worker firing off / on | all the work (inbound + "
        "firing), on / off |",
        "|---|---:|---:|---:|---|---:|---|---:|"]
    for database in sorted({k[0] for k in results}, key=lambda d: d != "sqlite"):
        off, on = results[(database, "off")], results[(database, "on")]
        ratio = statistics.median(b["per_s"] / a["per_s"] for a, b in zip(off, on, strict=True))
        rows = max(r["timer_rows"] / r["bursts"] for r in on)
        total = statistics.median((b["messages"] / b["per_s"] + b["fire_s"]) / (a["messages"] / a["per_s"] + a["fire_s"])
                                  for a, b in zip(off, on, strict=True))
        verdict = "ok" if ratio >= 0.9 else "UNDER"
        lines.append(
            f"| {database} | {statistics.median(r['per_s'] for r in off):,.0f} "
            f"| {statistics.median(r['per_s'] for r in on):,.0f} | **{ratio:.0%}** ({verdict}) "
            f"| {statistics.median(r['cpu_ms'] for r in off):.2f} / {statistics.median(r['cpu_ms'] for r in on):.2f} ms "
            f"| {rows:.2f} | {statistics.median(r['fire_s'] for r in off):.2f} / "
            f"{statistics.median(r['fire_s'] for r in on):.2f} s | {total:.0%} |")
    lines.append("")
    for database in sorted({k[0] for k in results}, key=lambda d: d != "sqlite"):
        off, on = results[(database, "off")], results[(database, "on")]
        lines.append(f"- {database}, per round (off/on messages/s): "
                     + ", ".join(f"{a['per_s']:,.0f}/{b['per_s']:,.0f}" for a, b in zip(off, on, strict=True))
                     + f"; bot messages off / on: {off[0]['bot_messages']:,} / {on[0]['bot_messages']:,} "
                     f"for {on[0]['bursts']:,} bursts ({on[0]['messages']:,} messages); debounce timers "
                     f"left pending: {sum(r['pending'] for r in on)}.")
    lines += ["", "With debounce on, each message is stored and the burst's one timer row inserted or "
              "moved; the bot's step (templates, the flow) runs once per burst in the worker instead "
              "of once per message in the request, so the requests themselves get cheaper (on / off "
              "over 100%), while the worker now fires one timer per burst: \"all the work\" counts "
              "both (the bot also sends fewer messages: one answer per burst). Load average "
              f"(1, 5, 15 min) before / after: {', '.join(f'{x:.1f}' for x in loads[0])} / "
              f"{', '.join(f'{x:.1f}' for x in loads[-1])} on {os.cpu_count()} cores shared with "
              "other engineers' work: compare the ratio, measured side by side, not the absolute figures. "
              "The rounds' ratios scatter with that load; this process's CPU time per message "
              "(PostgreSQL's own work not included), which hardly depends on it, is the steadier figure."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
