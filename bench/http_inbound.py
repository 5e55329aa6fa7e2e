"""HTTP inbound benchmark: papo's ``POST /api/v1/inbound`` against a bare ceiling and Node-RED.

Run from the repository root::

    .venv/bin/python -m bench.http_inbound              # measure; rewrite docs/PERFORMANCE.md "HTTP inbound"
    .venv/bin/python -m bench.http_inbound --no-write   # measure only
    .venv/bin/python -m bench.http_inbound --duration 5 --clients 1,8 --no-postgres --no-nodered

What runs, each on 127.0.0.1 only, all measured in the same run, point by point:

- **papo**: ``gunicorn -w 2 -k sync 'editor:create_app()'`` on a fresh SQLite file (schema by
  ``papo db upgrade``), a published 5-block flow (keyword ``oi`` → message → choice question
  → message → add_tag → message), an admin's API token (``papo token create``).
- **bare**: ``bench/bare_app.py`` under the same gunicorn settings: Flask, one SQLite read and
  one write per request with SQLAlchemy Core, WAL, ``synchronous=NORMAL``: the ceiling.
- **Node-RED 4** (``npm install node-red@4`` into a temporary folder; ``--no-nodered`` skips
  it): ``http in`` → ``function`` (the same conversation, per-contact state in the flow
  context) → ``http response`` (``bench/nodered/flows.json``, ``settings.js``). Its context
  lives in memory: nothing is durable, a restart forgets every conversation.
- with ``--postgres`` (default when ``PAPO_BENCH_POSTGRES_URL`` or ``PAPO_TEST_POSTGRES_URL``
  is set) papo and bare again on PostgreSQL, in databases of their own, dropped afterwards.

Load: for each number of clients (``--clients``, default 1, 8, 32) every client is its own
contact and sends "oi", then "1" (the answer), then "oi"… one request at a time, for
``--duration`` seconds (default 10) after a short warm-up with other contacts. The client is
``wrk`` (one thread and one connection per client, a Lua script makes the bodies); when
``wrk`` is missing the script tries ``apt-get install -y wrk`` (root only) and otherwise
falls back to a bounded Python client (threads, ``http.client``), which costs more CPU and
says so in the section. Afterwards papo's database is checked: one stored inbound message
per request answered and two bot replies for each.

Last, a short in-process cProfile of the same requests through papo's WSGI app (no HTTP)
says where a request's time goes.
"""
from __future__ import annotations

if not __package__:
    raise SystemExit("run it as a module from the repository root: python -m bench.http_inbound")

import argparse
import cProfile
import http.client
import io
import json
import os
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NODERED_DIR = Path(__file__).resolve().parent / "nodered"
FLOW_ID = "bench-inbound"
ANSWER = "1"
NODE_RED_SPEC = "node-red@4"
PG_PAPO_DB = "papo_bench_http_papo"
PG_BARE_DB = "papo_bench_http_bare"


# The 5-block flow (keyword "oi" → message → choice question → message → add_tag →
# message); tests/reliability uses the same file.
FLOW = json.loads((Path(__file__).resolve().parent / "flows" / "chat.json").read_text(encoding="utf-8"))

WRK_SCRIPT = r"""
-- One wrk thread = one connection = one client = one contact (bench/http_inbound.py).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = os.getenv("BENCH_PREFIX")
  path = os.getenv("BENCH_PATH")
  answer = os.getenv("BENCH_ANSWER")
  contact = prefix .. "-" .. id
  n = 1
  wrk.headers["Content-Type"] = "application/json"
  local token = os.getenv("BENCH_TOKEN") or ""
  if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
end

-- The conversation moves on when an answer arrives (response), not when a request is made:
-- wrk calls request() once more on thread 0 to check the script, and that call must not
-- count. A request that got no answer is sent again with the same id (papo dedupes it).
function request()
  local text = "oi"
  if n % 2 == 0 then text = answer end
  local body = string.format(
    '{"channel":"api","contact":{"external_id":"%s","name":"Cliente %d"},"message":{"id":"%s-%d","text":"%s"}}',
    contact, id, contact, n, text)
  return wrk.format("POST", path, nil, body)
end

function response(status, headers, body)
  n = n + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


# ---------------------------------------------------------------------- results
@dataclass
class Point:
    """One measured point: a target at a number of clients."""

    target: str
    database: str
    clients: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    note: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Target:
    """A server under test."""

    name: str
    database: str
    url: str
    path: str
    token: str = ""
    proc: subprocess.Popen | None = None
    log: Path | None = None
    check: dict = field(default_factory=dict)
    db_url: str | None = None


# ---------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(argv: list[str], env: dict, timeout: float = 300) -> str:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def wait_ready(target: Target, timeout: float = 60.0) -> None:
    """Until the server answers anything on its port (or its process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.proc is not None and target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited with {target.proc.returncode}; see {target.log}:\n"
                               + (target.log.read_text()[-3000:] if target.log else ""))
        try:
            with urllib.request.urlopen(target.url + "/", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an HTTP answer (404, 405...): it is up
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{target.name} did not answer on {target.url} within {timeout:.0f} s")


def stop(target: Target) -> None:
    proc = target.proc
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def spawn(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    handle = open(log, "w")  # noqa: SIM115 - kept open for the child's lifetime
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own group: stop() ends gunicorn's workers too


def gunicorn(app: str, port: int, workers: int, config: str | None = None) -> list[str]:
    options = ["-c", config] if config else []
    return [str(BIN / "gunicorn"), *options, "-w", str(workers), "-k", "sync", "-b", f"127.0.0.1:{port}",
            "--log-level", "warning", "--timeout", "60", app]


def post(url: str, body: dict, token: str = "") -> tuple[int, dict | None]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, None


def inbound_body(contact: str, n: int, text: str) -> dict:
    return {"channel": "api", "contact": {"external_id": contact, "name": f"Cliente {contact}"},
            "message": {"id": f"{contact}-{n}", "text": text}}


def smoke(target: Target) -> None:
    """One conversation by hand: the target answers like the flow (greeting, question, answer)."""
    contact = f"smoke-{uuid.uuid4().hex[:8]}"
    status, first = post(target.url + target.path, inbound_body(contact, 1, "oi"), target.token)
    if status != 200 or not first or len(first.get("replies", [])) != 2:
        raise RuntimeError(f"{target.name}: 'oi' got {status} {first}")
    status, second = post(target.url + target.path, inbound_body(contact, 2, ANSWER), target.token)
    if status != 200 or not second or len(second.get("replies", [])) != 2:
        raise RuntimeError(f"{target.name}: the answer got {status} {second}")
    target.check.setdefault("smoke", []).append([first["replies"], second["replies"]])


# ---------------------------------------------------------------------- targets
def papo_env(db_url: str, instance: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPO_")}
    env.update(PAPO_DATABASE_URL=db_url, PAPO_INSTANCE_PATH=str(instance),
               PAPO_SECRET_KEY="bench-secret", PAPO_LOG_LEVEL="WARNING")
    return env


def start_papo(database: str, db_url: str, tmp: Path, workers: int, *, name: str = "papo",
               extra_env: dict | None = None, config: str | None = None) -> Target:
    instance = tmp / f"{name}-{database}"
    instance.mkdir(parents=True, exist_ok=True)
    env = {**papo_env(db_url, instance), **(extra_env or {})}
    papo = str(BIN / "papo")
    run([papo, "db", "upgrade"], env)
    flow_file = instance / "bench-inbound.json"
    flow_file.write_text(json.dumps(FLOW, ensure_ascii=False))
    run([papo, "import", str(flow_file), "--publish"], env)
    run([papo, "user", "create", "bench", "--role", "admin", "--password", "bench-senha-123"], env)
    token = run([papo, "token", "create", "--user", "bench"], env).strip().splitlines()[-1].strip()
    port = free_port()
    target = Target(name, database, f"http://127.0.0.1:{port}", "/api/v1/inbound", token=token,
                    log=tmp / f"{name}-{database}.log", db_url=db_url)
    target.proc = spawn(gunicorn("editor:create_app()", port, workers, config), env, target.log)
    wait_ready(target)
    return target


def start_bare(database: str, db_url: str, tmp: Path, workers: int) -> Target:
    from bench import bare_app

    bare_app.create_schema(db_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPO_")}
    env["BARE_DATABASE_URL"] = db_url
    port = free_port()
    target = Target("bare", database, f"http://127.0.0.1:{port}", "/inbound",
                    log=tmp / f"bare-{database}.log", db_url=db_url)
    target.proc = spawn(gunicorn("bench.bare_app:create_app()", port, workers), env, target.log)
    wait_ready(target)
    return target


def install_node_red(tmp: Path) -> Path:
    """``npm install node-red@4`` into ``tmp/node-red``; the path of red.js."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are not installed (apt-get install nodejs npm)")
    folder = tmp / "node-red"
    folder.mkdir()
    (folder / "package.json").write_text('{"name": "papo-bench-node-red", "private": true}\n')
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                           "--omit=optional", NODE_RED_SPEC], cwd=folder, capture_output=True,
                          text=True, timeout=600)
    red = folder / "node_modules" / "node-red" / "red.js"
    if done.returncode != 0 or not red.exists():
        raise RuntimeError(f"npm install {NODE_RED_SPEC} failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-800:]}")
    return red


def start_node_red(tmp: Path) -> Target:
    red = install_node_red(tmp)
    user = tmp / "node-red-user"
    user.mkdir()
    for name in ("settings.js", "flows.json"):
        shutil.copy(NODERED_DIR / name, user / name)
    port = free_port()
    env = {**os.environ, "PORT": str(port), "NODE_ENV": "production"}
    version = json.loads((red.parent / "package.json").read_text())["version"]
    target = Target("node-red", "memory", f"http://127.0.0.1:{port}", "/inbound",
                    log=tmp / "node-red.log")
    target.check["version"] = version
    target.proc = spawn(["node", str(red), "-u", str(user), "-s", str(user / "settings.js"),
                         "-p", str(port)], env, target.log)
    deadline = time.monotonic() + 60
    while True:  # Node-RED answers 404 on "/" before the flow is started: wait for the flow
        if target.proc.poll() is not None:
            raise RuntimeError(f"Node-RED exited: {target.log.read_text()[-2000:]}")
        try:
            smoke(target)
            break
        except (RuntimeError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    return target


# ---------------------------------------------------------------------- load clients
def find_wrk(install: bool) -> str | None:
    found = shutil.which("wrk")
    if found or not install:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    for argv in (["apt-get", "install", "-y", "-q", "wrk"], ["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "wrk"]):
        try:
            subprocess.run(argv, capture_output=True, timeout=300,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = shutil.which("wrk")
        if found:
            return found
    return None


def load_wrk(wrk: str, script: Path, target: Target, clients: int, seconds: int, prefix: str) -> Point:
    env = {**os.environ, "BENCH_PREFIX": prefix, "BENCH_PATH": target.path,
           "BENCH_TOKEN": target.token, "BENCH_ANSWER": ANSWER}
    argv = [wrk, f"-t{clients}", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(script), target.url]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result ({done.returncode}): {done.stdout}\n{done.stderr}")
    data = json.loads(line[len("BENCH_JSON "):])
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Point(target.name, target.database, clients, requests=data["requests"], errors=errors,
                 seconds=data["duration_us"] / 1e6, p50_ms=data["p50_us"] / 1000,
                 p99_ms=data["p99_us"] / 1000)


def load_python(target: Target, clients: int, seconds: float, prefix: str) -> Point:
    """The fallback client: one thread per client, keep-alive when the server allows it."""
    host, port = target.url.split("//")[1].split(":")
    headers = {"Content-Type": "application/json"}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(index: int) -> None:
        contact = f"{prefix}-{index}"
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        n = 0
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            n += 1
            body = json.dumps(inbound_body(contact, n, "oi" if n % 2 else ANSWER))
            began = time.perf_counter()
            try:
                conn.request("POST", target.path, body=body, headers=headers)
                answer = conn.getresponse()
                answer.read()
                if answer.status != 200:
                    errors[index] += 1
                if answer.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                conn.close()
            latencies[index].append(time.perf_counter() - began)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start_gate.wait()
    for thread in threads:
        thread.join(seconds + 30)
    elapsed = time.perf_counter() - began
    every = sorted(x for per in latencies for x in per)
    point = Point(target.name, target.database, clients, requests=len(every), errors=sum(errors),
                  seconds=elapsed)
    if every:
        point.p50_ms = every[len(every) // 2] * 1000
        point.p99_ms = every[min(len(every) - 1, int(len(every) * 0.99))] * 1000
    return point


# ---------------------------------------------------------------------- checks
def papo_counts(db_url: str) -> dict:
    """Inbound messages stored, bot replies, runs left ``running``, in papo's database."""
    from sqlalchemy import func, select

    from engine.db import make_engine
    from engine.store import conversations, messages, processed_messages

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            by_direction = dict(conn.execute(select(messages.c.direction, func.count())
                                             .group_by(messages.c.direction)).all())
            processed = conn.execute(select(func.count()).select_from(processed_messages)).scalar()
            duplicates = conn.execute(select(func.count()).select_from(
                select(messages.c.conversation_id, messages.c.external_id)
                .where(messages.c.direction == "in")
                .group_by(messages.c.conversation_id, messages.c.external_id)
                .having(func.count() > 1).subquery())).scalar()
            running = sum(1 for (state,) in conn.execute(select(conversations.c.state))
                          if ((state or {}).get("run") or {}).get("state") == "running")
    finally:
        engine.dispose()
    return {"in": by_direction.get("in", 0), "out": by_direction.get("out", 0),
            "processed": processed, "duplicates": duplicates, "running": running}


# ---------------------------------------------------------------------- profile
def profile_papo(requests: int, tmp: Path) -> dict:
    """In one process, no HTTP: papo's and bare's wall time per request, papo's SQL
    statements per request, and papo's self time by package under cProfile."""

    from bench import bare_app
    from editor import create_app
    from editor.app import ensure_schema, get_engine
    from engine import accounts
    from engine.flows import FlowRepository

    db_url = f"sqlite:///{tmp / 'profile.db'}"
    app = create_app({"PAPO_DATABASE_URL": db_url, "PAPO_INSTANCE_PATH": str(tmp / "profile"),
                      "SECRET_KEY": "bench"})
    engine = get_engine(app)
    ensure_schema(engine)
    repo = FlowRepository(engine)
    repo.create(FLOW, actor="bench")
    repo.publish(FLOW_ID, actor="bench")
    accounts.create_user(engine, "bench", "admin", password="bench-senha-123")
    token = accounts.create_token(engine, "bench")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def drive(flask_client, path: str, tag: str, count: int, auth: dict) -> float:
        began = time.perf_counter()
        for i in range(count):
            text = "oi" if (i // 32) % 2 == 0 else ANSWER
            answer = flask_client.post(path, json=inbound_body(f"{tag}-{i % 32}", i // 32, text), headers=auth)
            assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        return (time.perf_counter() - began) / count * 1000

    drive(client, "/api/v1/inbound", "warm", 64, headers)  # flow compiled, templates parsed
    papo_ms = drive(client, "/api/v1/inbound", "plain", requests, headers)
    papo_statements = count_statements(engine, lambda: drive(client, "/api/v1/inbound", "count", 320, headers))

    bare_url = f"sqlite:///{tmp / 'profile-bare.db'}"
    bare_app.create_schema(bare_url)
    os.environ["BARE_DATABASE_URL"] = bare_url
    bare = bare_app.create_app()
    bare_client = bare.test_client()
    drive(bare_client, "/inbound", "warm", 64, {})
    bare_ms = drive(bare_client, "/inbound", "plain", requests, {})
    bare_statements = count_statements(bare.config["BARE_ENGINE"],
                                       lambda: drive(bare_client, "/inbound", "count", 320, {}))

    profiler = cProfile.Profile()
    profiler.enable()
    drive(client, "/api/v1/inbound", "prof", requests, headers)
    profiler.disable()
    engine.dispose()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = sum(row[2] for row in stats.stats.values())  # tottime
    groups: dict[str, float] = {}
    for (filename, _line, func_name), row in stats.stats.items():
        groups[_package(filename, func_name)] = groups.get(_package(filename, func_name), 0.0) + row[2]
    ordered = sorted(groups.items(), key=lambda kv: -kv[1])
    return {"papo_ms": papo_ms, "bare_ms": bare_ms, "statements": papo_statements,
            "bare_statements": bare_statements,
            "shares": [(name, secs / total) for name, secs in ordered]}


def count_statements(engine, work) -> float:
    """SQL statements SQLite itself ran per request during ``work()`` (320 requests),
    BEGIN and COMMIT included: its trace hook sees every one, whoever sent it."""
    from sqlalchemy import event

    seen = [0]

    def trace(dbapi_connection, _record) -> None:
        dbapi_connection.set_trace_callback(lambda _sql: seen.__setitem__(0, seen[0] + 1))

    engine.dispose()  # new connections, each with the hook
    event.listen(engine, "connect", trace)
    try:
        work()
    finally:
        event.remove(engine, "connect", trace)
        engine.dispose()
    return seen[0] / 320


def _package(filename: str, func_name: str) -> str:
    path = filename.replace("\\", "/")
    if path.startswith("~") or path == "<built-in>":
        if "sqlite3" in func_name or "execute" in func_name and "sqlite" in func_name:
            return "sqlite3 (C)"
        if "json" in func_name:
            return "json (C)"
        return "built-ins and C calls"
    for marker, name in (("/sqlalchemy/", "SQLAlchemy"), ("/werkzeug/", "Werkzeug"),
                         ("/flask/", "Flask"), ("/flask_wtf/", "Flask"), ("/flask_babel/", "Flask"),
                         ("/jinja2/", "Jinja2"), ("/networkx/", "networkx"), ("/json/", "json"),
                         ("/jsonschema", "jsonschema"), ("/sqlite3/", "sqlite3"),
                         ("/babel/", "Babel"), ("/regex/", "regex"), ("/datalogic", "JSONLogic")):
        if marker in path:
            return name
    for part in ("engine", "editor", "blocks", "schemas"):
        if f"/{part}/" in path and str(ROOT) in path:
            return f"papo {part}/"
    return "other Python (stdlib)"


# ---------------------------------------------------------------------- report
def fmt(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "–"
    return f"{value:,.{digits}f}"


def render(points: list[Point], notes: list[str], checks: list[str], profile: list, client: str,
           args, loadavg: tuple[str, str]) -> str:
    by = {(p.target, p.database, p.clients): p for p in points}
    databases = [d for d in ("sqlite", "postgresql") if any(p.database == d for p in points)]
    lines = [
        f"`POST /api/v1/inbound` under load: papo (gunicorn, 2 sync workers) against the bare "
        f"ceiling (Flask + gunicorn, 2 sync workers, one read and one write per request with "
        "SQLAlchemy Core) and Node-RED 4 (notes below). Every client is its own contact sending "
        f"\"oi\" / \"1\" in turn, one request at a time; {args.duration} s per point after a warm-up; "
        f"client: {client}; 127.0.0.1 only.",
        "",
        "| database | clients | target | requests/s | p50 | p99 | errors | papo / this |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for database in databases:
        for clients in args.clients:
            papo = by.get(("papo", database, clients))
            for name in ("papo", "bare", "node-red"):
                point = by.get((name, database if name != "node-red" else "memory", clients))
                if point is None or (name == "node-red" and database != "sqlite"):
                    continue
                ratio = f"{papo.rps / point.rps:.0%}" if papo and point.rps and name != "papo" else ""
                label = "Node-RED (memory)" if name == "node-red" else name
                lines.append(f"| {database if name != 'node-red' else '–'} | {clients} | {label} | "
                             f"{fmt(point.rps)} | {fmt(point.p50_ms, 1)} ms | {fmt(point.p99_ms, 1)} ms | "
                             f"{point.errors} | {ratio} |")
    lines += ["", "papo as a share of the others at each concurrency (same run):", "",
              "| database | clients | papo / bare | papo / Node-RED | target ≥ 50% of bare (SQLite) |",
              "|---|---:|---:|---:|---|"]
    for database in databases:
        for clients in args.clients:
            papo, bare = by.get(("papo", database, clients)), by.get(("bare", database, clients))
            red = by.get(("node-red", "memory", clients))
            if not papo or not bare:
                continue
            share = papo.rps / bare.rps if bare.rps else 0
            lines.append(f"| {database} | {clients} | {share:.0%} | "
                         f"{f'{papo.rps / red.rps:.0%}' if red and red.rps else '–'} | "
                         f"{('ok' if share >= 0.5 else 'below') if database == 'sqlite' else '–'} |")
    lines += ["", "```", *chart(points, args.clients), "```", ""]
    if checks:
        lines += ["Checks after the load:", ""] + [f"- {c}" for c in checks] + [""]
    if profile:
        shares = ", ".join(f"{name} {share:.0%}" for name, share in profile["shares"][:9])
        lines += [
            f"Where the time goes, in one process without HTTP ({args.profile:,} requests each, SQLite): "
            f"papo {profile['papo_ms']:.2f} ms per request against bare {profile['bare_ms']:.2f} ms "
            f"(×{profile['papo_ms'] / profile['bare_ms']:.1f}); papo runs "
            f"{profile['statements']:.1f} SQL statement runs per message as SQLite's trace hook counts "
            "them (BEGIN, COMMIT and the pool's ROLLBACK included, each row of a multi-row insert "
            f"counted; bare: {profile['bare_statements']:.1f}) — outside any transaction, one query "
            "for the contact's conversation, the duplicate check and the published flows; then "
            "under the write lock, BEGIN IMMEDIATE, the version check, one insert for "
            "the step's messages, the funnel rows, an answer when there is one, the state, the "
            "duplicate record. The API token's owner is remembered for 5 s. Self time under cProfile by "
            f"package: {shares}.", ""]
    below = [p for p in points if p.target == "papo" and p.database == "sqlite"
             and by.get(("bare", p.database, p.clients))
             and p.rps < 0.5 * by[("bare", p.database, p.clients)].rps]
    if below and profile:
        lines += [
            "Below the 50 % target at "
            + ", ".join(f"{p.database} {p.clients} clients" for p in below) + ". What is left, "
            "largest first: SQLAlchemy's per-execution overhead (the largest share of self time "
            "above; only raw driver calls would remove it), Werkzeug/Flask request handling, "
            "and the write lock itself on SQLite (one writer at a time across all workers). "
            "The flow engine (`engine/` above) is a small share.", ""]
    if "postgresql" in databases:
        lines += [
            "PostgreSQL (no target of its own): each statement is a round trip to the server, "
            "and papo locks the conversation's row and runs its step inside that transaction "
            "(about eight statements) where bare runs two; the SQLite path that computes the "
            "step before locking is not used there, since row locks already let different "
            "conversations proceed in parallel.", ""]
    lines += [f"- {n}" for n in notes]
    lines.append(f"- Load average before / after: {loadavg[0]} / {loadavg[1]} (2 cores; other work "
                 "may share them: ratios measured side by side are the robust figure).")
    return "\n".join(lines)


def chart(points: list[Point], clients_list: list[int]) -> list[str]:
    best = max((p.rps for p in points), default=0) or 1
    out = [f"requests/s (each # ≈ {best / 50:,.0f})"]
    for p in sorted(points, key=lambda p: (p.database != "sqlite", p.database, p.clients,
                                            ["bare", "papo", "node-red"].index(p.target))):
        label = f"{p.database[:6]:6} {p.clients:>2} clients {p.target:8}"
        out.append(f"{label} {'#' * max(1, round(p.rps / best * 50))} {p.rps:,.0f}")
    return out


def loadavg() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


# ---------------------------------------------------------------------- main
def parse_args(argv) -> argparse.Namespace:
    env_pg = os.environ.get("PAPO_BENCH_POSTGRES_URL") or os.environ.get("PAPO_TEST_POSTGRES_URL")
    parser = argparse.ArgumentParser(prog="python -m bench.http_inbound", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per point (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per point (default 2)")
    parser.add_argument("--clients", default="1,8,32", help="concurrencies (default 1,8,32)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--postgres", dest="postgres", action="store_true", default=bool(env_pg),
                        help="also papo and bare on PostgreSQL (default when a URL is set)")
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    parser.add_argument("--postgres-url", default=env_pg,
                        help="server to create the bench databases on (default PAPO_BENCH_POSTGRES_URL "
                             "or PAPO_TEST_POSTGRES_URL)")
    parser.add_argument("--no-nodered", dest="nodered", action="store_false", default=True)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator (auto: wrk, installed with apt-get if missing and root; "
                             "else Python)")
    parser.add_argument("--profile", type=int, default=2000,
                        help="requests profiled in-process afterwards (0: none)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (databases, server logs) and print its path")
    parser.add_argument("--no-write", dest="write", action="store_false", default=True,
                        help="print the section instead of rewriting docs/PERFORMANCE.md")
    parser.add_argument("--ops", action="store_true",
                        help="instead: papo with metrics and JSON logs on vs off, same run, SQLite "
                             "(section \"HTTP inbound: metrics and logs\")")
    parser.add_argument("--rounds", type=int, default=3,
                        help="--ops: measurements of each variant per concurrency, interleaved (default 3)")
    args = parser.parse_args(argv)
    args.clients = [int(x) for x in str(args.clients).split(",") if x.strip()]
    return args


def pg_database(base_url: str, name: str, create: bool) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    admin = create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if create:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ops:
        from bench._ops_overhead import measure_ops

        return measure_ops(args, argv)
    tmp = Path(tempfile.mkdtemp(prefix="papo-bench-http-"))
    notes: list[str] = []
    checks: list[str] = []
    points: list[Point] = []
    targets: list[Target] = []
    load_before = loadavg()

    wrk = find_wrk(install=args.client == "auto") if args.client != "python" else None
    if args.client == "wrk" and wrk is None:
        raise SystemExit("wrk not found (apt-get install wrk)")
    if wrk:
        script = tmp / "inbound.lua"
        script.write_text(WRK_SCRIPT)
        version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
        client = f"`{version or 'wrk'}`, one thread and one connection per client"
    else:
        client = ("the Python fallback client (threads + http.client; wrk was not available), which "
                  "shares the 2 cores with the servers and lowers every figure")
        print("wrk not available: using the Python client", file=sys.stderr)

    try:
        print(f"starting servers in {tmp} …", file=sys.stderr)
        targets.append(start_bare("sqlite", f"sqlite:///{tmp / 'bare.db'}", tmp, args.workers))
        targets.append(start_papo("sqlite", f"sqlite:///{tmp / 'papo.db'}", tmp, args.workers))
        if args.postgres:
            if not args.postgres_url:
                notes.append("PostgreSQL variant skipped: no --postgres-url / PAPO_BENCH_POSTGRES_URL.")
            else:
                try:
                    targets.append(start_bare("postgresql", pg_database(args.postgres_url, PG_BARE_DB, True),
                                              tmp, args.workers))
                    targets.append(start_papo("postgresql", pg_database(args.postgres_url, PG_PAPO_DB, True),
                                              tmp, args.workers))
                except Exception as exc:  # the SQLite comparison still stands
                    notes.append(f"PostgreSQL variant failed to start: {str(exc).splitlines()[0]}")
        if args.nodered:
            try:
                red = start_node_red(tmp)
                targets.append(red)
                notes.insert(0, f"Node-RED {red.check['version']} (Node {node_version()}), one process "
                                "(Node-RED is single-threaded), default in-memory context store: it keeps "
                                "no durable state — no message, conversation or reply is stored, and a "
                                "restart forgets every conversation; papo and bare commit each request "
                                "to the database.")
            except Exception as exc:
                notes.insert(0, f"Node-RED not measured: {exc}")
                print(f"Node-RED not measured: {exc}", file=sys.stderr)
        else:
            notes.append("Node-RED skipped (--no-nodered).")
        for target in targets:
            if target.name != "node-red":
                smoke(target)

        run_id = uuid.uuid4().hex[:6]
        for clients in args.clients:
            for target in targets:
                prefix = f"{target.name}-{target.database}-{clients}-{run_id}"
                print(f"{target.name:8} {target.database:10} {clients:>2} clients …", file=sys.stderr,
                      end="", flush=True)
                if args.warmup:
                    _measure(wrk, tmp, target, clients, args.warmup, prefix + "-warm")
                point = _measure(wrk, tmp, target, clients, args.duration, prefix)
                points.append(point)
                print(f" {point.rps:,.0f} req/s, p50 {point.p50_ms:.1f} ms, p99 {point.p99_ms:.1f} ms, "
                      f"{point.errors} errors", file=sys.stderr)
        for target in targets:
            if target.name == "papo":
                counts = papo_counts(target.db_url)
                ok = counts["out"] == 2 * counts["in"] and counts["in"] == counts["processed"] \
                    and counts["duplicates"] == 0 and counts["running"] == 0
                checks.append(
                    f"papo on {target.database}: {counts['in']:,} inbound messages stored (each once: "
                    f"{counts['duplicates']} duplicates; {counts['processed']:,} message ids recorded), "
                    f"{counts['out']:,} bot replies (2 per message expected: "
                    f"{'yes' if counts['out'] == 2 * counts['in'] else 'NO'}), {counts['running']} runs left "
                    f"`running` — {'consistent' if ok else 'INCONSISTENT'}.")
        errors = sum(p.errors for p in points)
        checks.append(f"{sum(p.requests for p in points):,} requests measured, {errors} errors "
                      "(non-2xx, connect, read, timeout).")
    finally:
        for target in targets:
            stop(target)
        if args.postgres and args.postgres_url:
            for name in (PG_BARE_DB, PG_PAPO_DB):
                try:
                    pg_database(args.postgres_url, name, False)
                except Exception:
                    pass
    profile = profile_papo(args.profile, tmp) if args.profile else []
    if args.keep:
        print(f"kept {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    body = render(points, notes, checks, profile, client, args, (load_before, loadavg()))
    command = ".venv/bin/python -m bench.http_inbound" + (" " + " ".join(argv) if argv else "")
    if args.write:
        from bench._report import write_section

        path = write_section("HTTP inbound", body, command)
        print(f"wrote section \"HTTP inbound\" of {path}", file=sys.stderr)
    print(body)
    return 0


def _measure(wrk, tmp: Path, target: Target, clients: int, seconds: int, prefix: str) -> Point:
    if wrk:
        return load_wrk(wrk, tmp / "inbound.lua", target, clients, seconds, prefix)
    return load_python(target, clients, seconds, prefix)


def node_version() -> str:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
