"""The service's write path, this tree against an older commit, side by side in one run.

Run from the repository root::

    .venv/bin/python -m bench.unit_of_work                       # against f0b85aa (before issue 12's unit of work)
    .venv/bin/python -m bench.unit_of_work --against <commit> --rounds 3 --no-write

The older commit's ``engine/``, ``blocks/`` and ``schemas/`` are taken with ``git archive``
into a temporary folder; each measurement runs in its own process (this tree's or that
one's ``PYTHONPATH``), alternating, ``--rounds`` times, so a busy machine weighs on both
alike. In one process, no HTTP, calling ``engine.service.Service`` directly:

- **inbound**: ``handle_inbound`` over 32 contacts sending "oi" / "1" to the 5-block flow
  of ``bench/flows/chat.json``, for channel ``api`` and for ``whatsapp`` (whose replies
  also go to the outbox); ms per message, and SQL statements per message as SQLite's trace
  hook counts them (BEGIN and COMMIT included, each row of a multi-row insert counted);
- **timers**: 1,500 conversations waiting at a ``wait`` block, their timers fired with
  ``fire_timers`` in chunks of 50 as the worker does; timers per second.

SQLite files; PostgreSQL too with ``--postgres-url`` (default ``PAPO_BENCH_POSTGRES_URL`` or
``PAPO_TEST_POSTGRES_URL``), in a database of its own, dropped afterwards.
"""
from __future__ import annotations

if not __package__:
    raise SystemExit("run it as a module from the repository root: python -m bench.unit_of_work")

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AGAINST = "f0b85aa"  # "Split engine/service.py": the old write path, split into modules
PG_DB = "papo_bench_unit_of_work"

# Runs in a child process with PYTHONPATH at one tree; prints one JSON line.
CHILD = r'''
import json, sys, tempfile, time
from pathlib import Path
from sqlalchemy import event
from engine.db import make_engine, create_schema
from engine.flows import FlowRepository
from engine.service import Service
from engine.settings import Settings

what, url, flow_file = sys.argv[1], sys.argv[2], sys.argv[3]
T0 = 1_800_000_000.0
db = make_engine(url)
create_schema(db)
clock = [T0]
service = Service(db, Settings(), clock=lambda: clock[0])
repo = FlowRepository(db)
out = {}
if what == "inbound":
    flow = json.loads(Path(flow_file).read_text(encoding="utf-8"))
    repo.create(flow)
    repo.publish(flow["id"])

    def drive(channel, tag, count):
        began = time.perf_counter()
        for i in range(count):
            clock[0] += 0.001
            service.handle_inbound(channel, {"external_id": f"{tag}-{i % 32}", "name": "Ana"},
                                   {"id": f"{tag}-{i}", "text": "oi" if (i // 32) % 2 == 0 else "1"})
        return (time.perf_counter() - began) / count * 1000

    for channel in ("api", "whatsapp"):
        drive(channel, channel + "-warm", 64)
        ms = drive(channel, channel + "-timed", 640)
        seen = [0]
        if db.dialect.name == "sqlite":
            def trace(dbapi_connection, _record):
                dbapi_connection.set_trace_callback(lambda _sql: seen.__setitem__(0, seen[0] + 1))
            db.dispose()
            event.listen(db, "connect", trace)
            drive(channel, channel + "-count", 320)
            event.remove(db, "connect", trace)
            db.dispose()
        out[channel] = {"ms": ms, "statements": seen[0] / 320 if seen[0] else None}
else:
    def block(block_id, kind, **data):
        return {"id": block_id, "type": kind, "position": {"x": 0, "y": 0}, "data": data}
    repo.create({"schema_version": 1, "id": "lembrete", "name": "Lembrete", "triggers": [{"type": "default"}],
                 "start": "m1", "blocks": [block("m1", "message", text="Vou te lembrar."),
                                           block("w", "wait", seconds=60),
                                           block("m2", "message", text="Lembrete!")],
                 "edges": [{"from": "m1", "port": "next", "to": "w"}, {"from": "w", "port": "next", "to": "m2"}]})
    repo.publish("lembrete")
    for i in range(1500):
        service.handle_inbound("api", {"external_id": f"c{i}", "name": "Ana"}, {"id": f"m{i}", "text": "oi"})
    ids = service.due_timers(T0 + 61, limit=1500)
    began = time.perf_counter()
    fired = sum(r["fired"] for k in range(0, len(ids), 50) for r in service.fire_timers(ids[k:k + 50], T0 + 61))
    out["timers"] = {"per_s": fired / (time.perf_counter() - began), "fired": fired}
db.dispose()
print("RESULT " + json.dumps(out))
'''


def old_tree(commit: str, folder: Path) -> Path:
    target = folder / f"tree-{commit}"
    target.mkdir()
    archive = subprocess.run(["git", "archive", commit, "engine", "blocks", "schemas", "editor/translations"],
                             cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


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


def measure(tree: Path, what: str, url: str, flow: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPO_")}
    env["PYTHONPATH"] = str(tree)
    env["PAPO_LOG_LEVEL"] = "WARNING"
    done = subprocess.run([sys.executable, "-c", CHILD, what, url, str(flow)], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=900)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{tree.name} {what} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    env_pg = os.environ.get("PAPO_BENCH_POSTGRES_URL") or os.environ.get("PAPO_TEST_POSTGRES_URL")
    parser = argparse.ArgumentParser(prog="python -m bench.unit_of_work", description=__doc__.split("\n")[0])
    parser.add_argument("--against", default=DEFAULT_AGAINST, help=f"the older commit (default {DEFAULT_AGAINST})")
    parser.add_argument("--rounds", type=int, default=2, help="alternating measurements of each (default 2)")
    parser.add_argument("--postgres-url", default=env_pg)
    parser.add_argument("--no-write", dest="write", action="store_false", default=True)
    args = parser.parse_args(argv)
    flow = ROOT / "bench" / "flows" / "chat.json"
    results: dict[tuple, list[dict]] = {}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="papo-bench-uow-") as folder:
        trees = {"this tree": ROOT, args.against: old_tree(args.against, Path(folder))}
        databases = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
        for database in databases:
            for what in ("inbound", "timers"):
                for round_ in range(args.rounds):
                    for name, tree in trees.items():
                        if database == "sqlite":
                            url = f"sqlite:///{folder}/{name.replace(' ', '-')}-{what}-{round_}.db"
                        else:
                            url = pg_url(args.postgres_url, True)
                        print(f"{database} {what} {name} round {round_ + 1} …", file=sys.stderr, flush=True)
                        results.setdefault((database, what, name), []).append(measure(tree, what, url, flow))
                        loads.append(os.getloadavg()[0])
            if database == "postgresql":
                pg_url(args.postgres_url, False)
    body = render(results, args, [n for n in trees], loads)
    print(body)
    if args.write:
        from bench._report import write_section

        command = ".venv/bin/python -m bench.unit_of_work" + (" " + " ".join(argv) if argv else "")
        print(f"wrote {write_section('Unit of work: before and after', body, command)}", file=sys.stderr)
    return 0


def render(results: dict, args, names: list[str], loads: list[float]) -> str:
    def median(database, what, name, *path):
        values = []
        for found in results.get((database, what, name), []):
            value = found
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                values.append(value)
        return statistics.median(values) if values else None

    new, old = names
    lines = [
        f"The service's write path of this tree against `{old}` (before issue 12's unit of work), "
        "each measured in its own process, alternating, "
        f"{args.rounds} rounds (medians); in one process, no HTTP: `handle_inbound` for 32 contacts "
        "sending \"oi\" / \"1\" to `bench/flows/chat.json`, and 1,500 due `wait` timers fired by "
        "`fire_timers` in chunks of 50. Statements as SQLite's trace hook counts them (BEGIN and "
        "COMMIT included, each row of a multi-row insert counted).", "",
        "| database | what | this tree | before | this / before |", "|---|---|---:|---:|---:|"]
    databases = sorted({k[0] for k in results}, key=lambda d: d != "sqlite")
    for database in databases:
        for channel in ("api", "whatsapp"):
            a, b = median(database, "inbound", new, channel, "ms"), median(database, "inbound", old, channel, "ms")
            if a and b:
                lines.append(f"| {database} | {channel}: ms per message | {a:.2f} | {b:.2f} | {a / b:.0%} |")
            a = median(database, "inbound", new, channel, "statements")
            b = median(database, "inbound", old, channel, "statements")
            if a and b:
                lines.append(f"| {database} | {channel}: statements per message | {a:.1f} | {b:.1f} | {a / b:.0%} |")
        a, b = median(database, "timers", new, "timers", "per_s"), median(database, "timers", old, "timers", "per_s")
        if a and b:
            lines.append(f"| {database} | timers fired per second | {a:,.0f} | {b:,.0f} | {a / b:.0%} |")
    lines += ["", f"Load average during the runs: {min(loads):.1f}–{max(loads):.1f} (1-minute, "
              f"{os.cpu_count()} cores); both trees measured under the same load, in turn."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
