"""The WhatsApp sending path in one process: what draining the outbox costs per reply.

``python -m bench.outbox_send [--replies 2000] [--contacts 20] [--history 1000] [--no-keep-alive]``
(``PAPO_BENCH_POSTGRES_URL`` set: PostgreSQL too). Replies are queued by the unit of work
(``Service.handle_inbound`` on the 5-block bench flow, each customer message answered with
one or two WhatsApp messages), each conversation first given ``--history`` older customer
messages (the bench's contacts send thousands). Then ``engine.outbox.send_due`` drains
them the way ``papo worker`` does (batch after batch) to a fake Graph API running in a
*separate process* (its CPU is not counted). Reported per reply: CPU ms of this process
(``time.process_time``), SQL statements (SQLite: every statement SQLite ran, from its trace
hook, BEGIN/COMMIT included; PostgreSQL: every statement sent, an executemany counted per
row) and COMMITs (SQLAlchemy's ``commit`` event). The wall time is printed but noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, func, insert, select

from engine.db import create_schema, make_engine
from engine.flows import FlowRepository
from engine.service import Service
from engine.settings import Settings
from engine.store import conversations, messages, outbox

FLOW = json.loads((Path(__file__).resolve().parent / "flows" / "chat.json").read_text(encoding="utf-8"))
GRAPH = ("import sys; from bench.http_inbound import FakeGraph; g = FakeGraph(); "
         "print(g.api_base, flush=True); sys.stdin.read()")


def fake_graph() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", GRAPH], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parent.parent)
    return proc, proc.stdout.readline().strip()


def queue(service: Service, db, replies: int, contacts: int, history: int) -> int:
    """Customer messages until ``replies`` outbox rows wait; returns how many wait."""
    for c in range(contacts):
        service.handle_inbound("whatsapp", {"external_id": f"55119{c:08d}", "name": f"Cliente {c}"},
                               {"id": f"wamid.H{c}-0", "text": "olá"})
    if history:
        with db.begin() as conn:
            ids = list(conn.execute(select(conversations.c.id)).scalars())
            old = datetime.now(UTC) - timedelta(hours=1)
            conn.execute(insert(messages), [
                {"conversation_id": i, "direction": "in", "author": "customer", "text": "antiga",
                 "buttons": [], "at": old + timedelta(seconds=n), "external_id": f"wamid.old{i}-{n}"}
                for i in ids for n in range(history)])
    n = 0
    while _waiting(db) < replies:
        for c in range(contacts):
            text = "oi" if n % 2 == 0 else "Planos"
            service.handle_inbound("whatsapp", {"external_id": f"55119{c:08d}", "name": f"Cliente {c}"},
                                   {"id": f"wamid.IN{c}-{n}", "text": text})
        n += 1
    return _waiting(db)


def _waiting(db) -> int:
    with db.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "pending")).scalar()


def measure(db_url: str, args) -> dict:
    from engine import outbox as sender

    db = make_engine(db_url)
    create_schema(db)
    repo = FlowRepository(db)
    repo.create(FLOW)
    repo.publish(FLOW["id"])
    proc, api_base = fake_graph()
    try:
        settings = Settings(whatsapp_token="bench", whatsapp_phone_number_id="106540352242922",
                            whatsapp_api_base=api_base)
        service = Service(db, settings)
        waiting = queue(service, db, args.replies, args.contacts, args.history)
        counts = {"statements": 0, "commits": 0}
        sqlite = db.dialect.name == "sqlite"

        def count(n: int = 1) -> None:
            counts["statements"] += n

        def on_connect(dbapi_connection, _record) -> None:
            dbapi_connection.set_trace_callback(lambda _sql: count())

        def on_execute(_conn, _cursor, _statement, parameters, _context, executemany) -> None:
            count(len(parameters) if executemany else 1)

        def on_commit(_conn) -> None:
            counts["commits"] += 1

        db.dispose()
        if sqlite:
            event.listen(db, "connect", on_connect)
        else:
            event.listen(db, "before_cursor_execute", on_execute)
        event.listen(db, "commit", on_commit)
        transport = sender.post_json if args.no_keep_alive else None  # None: the default
        cpu, wall = time.process_time(), time.perf_counter()
        sent = 0
        while True:  # as papo worker's outbox job: batch after batch while any is sent
            done = sender.send_due(service, batch=args.batch, http=transport)
            sent += done
            if not done:
                break
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        assert sent == waiting, (sent, waiting)
        assert _waiting(db) == 0
        return {"replies": sent, "cpu_ms": 1000 * cpu / sent, "wall_ms": 1000 * wall / sent,
                "statements": counts["statements"] / sent, "commits": counts["commits"] / sent}
    finally:
        proc.stdin.close()
        proc.terminate()
        proc.wait(10)
        db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=2000)
    parser.add_argument("--contacts", type=int, default=20)
    parser.add_argument("--history", type=int, default=1000, help="older customer messages per conversation")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--no-keep-alive", action="store_true",
                        help="send with engine.outbox.post_json (a new connection per request)")
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="papo-outbox-bench-") as tmp:
        if args.database in ("sqlite", "both"):
            results["sqlite"] = measure(f"sqlite:///{tmp}/outbox.db", args)
        pg = os.environ.get("PAPO_BENCH_POSTGRES_URL")
        if pg and args.database in ("postgres", "both"):
            from bench.http_inbound import pg_database

            url = pg_database(pg, "papo_bench_outbox", create=True)
            try:
                results["postgresql"] = measure(url, args)
            finally:
                pg_database(pg, "papo_bench_outbox", create=False)
    print(f"{'database':<11} {'replies':>7} {'CPU ms/reply':>12} {'wall ms/reply':>13} "
          f"{'statements/reply':>16} {'commits/reply':>13}")
    for name, r in results.items():
        print(f"{name:<11} {r['replies']:>7} {r['cpu_ms']:>12.3f} {r['wall_ms']:>13.3f} "
              f"{r['statements']:>16.2f} {r['commits']:>13.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
