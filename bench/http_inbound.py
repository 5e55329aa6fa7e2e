"""HTTP inbound benchmark: papo's ``POST /api/v1/inbound`` against a bare ceiling and Node-RED.

Run from the repository root::

    .venv/bin/python -m bench.http_inbound              # measure; rewrite docs/PERFORMANCE.md "HTTP inbound"
    .venv/bin/python -m bench.http_inbound --no-write   # measure only
    .venv/bin/python -m bench.http_inbound --duration 5 --clients 1,8 --no-postgres --no-nodered
    .venv/bin/python -m bench.http_inbound --wa-statuses   # statuses mixed in (bench/_wa_statuses.py)

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
- **papo-wa**: the same papo server through its WhatsApp webhook
  (``POST /channels/whatsapp/webhook``): Meta's delivery format, each body signed with the
  app secret (``X-Hub-Signature-256``, signed beforehand so the client does no crypto), the
  message time WhatsApp's ``timestamp``; a ``papo worker`` beside it sends the replies from
  the outbox to a fake Graph API on 127.0.0.1 (in the bench's own process).
  ``--channels api`` skips it.
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
WA_PATH = "/channels/whatsapp/webhook"
WA_SECRET = "bench-app-secret"
WA_PHONE_ID = "1055550001"
WA_TOKEN = "bench-graph-token"


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


# The WhatsApp webhook: bodies signed beforehand, one file per client (wrk's Lua has no
# HMAC). Line i of a client's file is its i-th message ("oi", "1", "oi"…); a request that
# got no answer is sent again with the same line (papo dedupes it by message id).
WRK_WA_SCRIPT = r"""
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  path = os.getenv("BENCH_PATH")
  local file = io.open(os.getenv("BENCH_FILE") .. "-" .. id, "r")
  bodies, signatures = {}, {}
  for line in file:lines() do
    local tab = line:find("\t")
    table.insert(signatures, line:sub(1, tab - 1))
    table.insert(bodies, line:sub(tab + 1))
  end
  file:close()
  n = 1
end

function request()
  local i = ((n - 1) % #bodies) + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json",
                                   ["X-Hub-Signature-256"] = signatures[i]}, bodies[i])
end

function response(status, headers, body)
  n = n + 1
end
""" + WRK_SCRIPT[WRK_SCRIPT.index("function done"):]


def wa_body(contact: str, n: int, text: str, at: float) -> bytes:
    """Meta's delivery of one text message from ``contact`` (compact JSON, as signed)."""
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550001111", "phone_number_id": WA_PHONE_ID},
             "contacts": [{"profile": {"name": f"Cliente {contact}"}, "wa_id": contact}],
             "messages": [{"from": contact, "id": f"wamid.{contact}-{n}", "timestamp": str(int(at)),
                           "type": "text", "text": {"body": text}}]}
    payload = {"object": "whatsapp_business_account",
               "entry": [{"id": "bench", "changes": [{"field": "messages", "value": value}]}]}
    return json.dumps(payload, separators=(",", ":")).encode()


def wa_signature(raw: bytes) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(WA_SECRET.encode(), raw, hashlib.sha256).hexdigest()


def wa_contact(prefix: str, index: int) -> str:
    """A WhatsApp id (digits) for client ``index`` of a point: unique across points."""
    return str(5500000000000 + (uuid.uuid5(uuid.NAMESPACE_URL, prefix).int % 10**7) * 1000 + index)


class FakeGraph:
    """A fake Graph API on 127.0.0.1: every ``POST …/messages`` gets a wamid."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        fake = self
        self.sent = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as Meta's servers: the sender's persistent connections are measured
            # as a real client would use them (every answer has its Content-Length). The
            # headers and the body are two writes: without TCP_NODELAY the body would wait
            # for the client's delayed ACK (~40 ms) on a kept-alive connection.
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self):  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with fake.lock:
                    fake.sent += 1
                    number = fake.sent
                body = json.dumps({"messaging_product": "whatsapp",
                                   "messages": [{"id": f"wamid.FAKE{number:09d}"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.api_base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
    backlog: int = 0  # papo-wa: replies not yet sent when the load stopped
    drain_s: float = 0.0  # … and how long the worker took to send them

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
    channel: str = "api"  # api | whatsapp (papo's webhook)
    worker: subprocess.Popen | None = None  # papo-wa: the worker sending the outbox


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
    if target.worker is not None:
        _stop_process(target.worker)
    _stop_process(target.proc)


def _stop_process(proc: subprocess.Popen | None) -> None:
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
    if target.channel == "whatsapp":
        smoke_whatsapp(target)
        return
    contact = f"smoke-{uuid.uuid4().hex[:8]}"
    status, first = post(target.url + target.path, inbound_body(contact, 1, "oi"), target.token)
    if status != 200 or not first or len(first.get("replies", [])) != 2:
        raise RuntimeError(f"{target.name}: 'oi' got {status} {first}")
    status, second = post(target.url + target.path, inbound_body(contact, 2, ANSWER), target.token)
    if status != 200 or not second or len(second.get("replies", [])) != 2:
        raise RuntimeError(f"{target.name}: the answer got {status} {second}")
    target.check.setdefault("smoke", []).append([first["replies"], second["replies"]])


def smoke_whatsapp(target: Target) -> None:
    """A signed "oi" and "1" through the webhook: 200 each, and two bot replies stored each."""
    from sqlalchemy import func, select

    from engine.db import make_engine
    from engine.store import contacts, conversations, messages

    contact = wa_contact(f"smoke-{uuid.uuid4().hex}", 0)
    for n, text in ((1, "oi"), (2, ANSWER)):
        raw = wa_body(contact, n, text, time.time())
        request = urllib.request.Request(target.url + target.path, data=raw, method="POST", headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": wa_signature(raw)})
        with urllib.request.urlopen(request, timeout=10) as answer:
            if answer.status != 200:
                raise RuntimeError(f"{target.name}: {text!r} got {answer.status}")
    engine = make_engine(target.db_url)
    try:
        with engine.connect() as conn:
            out = conn.execute(select(func.count()).select_from(messages).join(
                conversations, conversations.c.id == messages.c.conversation_id).join(
                contacts, contacts.c.id == conversations.c.contact_id).where(
                contacts.c.external_id == contact, messages.c.author == "bot")).scalar()
    finally:
        engine.dispose()
    if out != 4:
        raise RuntimeError(f"{target.name}: {out} bot replies stored for 'oi' and '1' (4 expected)")


# ---------------------------------------------------------------------- targets
def papo_env(db_url: str, instance: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPO_")}
    env.update(PAPO_DATABASE_URL=db_url, PAPO_INSTANCE_PATH=str(instance),
               PAPO_SECRET_KEY="bench-secret", PAPO_LOG_LEVEL="WARNING")
    return env


def whatsapp_env(api_base: str) -> dict:
    return {"PAPO_WHATSAPP_APP_SECRET": WA_SECRET, "PAPO_WHATSAPP_VERIFY_TOKEN": "bench",
            "PAPO_WHATSAPP_TOKEN": WA_TOKEN, "PAPO_WHATSAPP_PHONE_NUMBER_ID": WA_PHONE_ID,
            "PAPO_WHATSAPP_API_BASE": api_base}


def start_whatsapp(papo: Target, tmp: Path, api_base: str) -> Target:
    """The WhatsApp webhook of a running papo, and a ``papo worker`` sending its outbox."""
    instance = tmp / f"{papo.name}-{papo.database}"
    env = {**papo_env(papo.db_url, instance), **whatsapp_env(api_base)}
    target = Target("papo-wa", papo.database, papo.url, WA_PATH, db_url=papo.db_url, channel="whatsapp",
                    log=tmp / f"worker-{papo.database}.log")
    target.worker = spawn([str(BIN / "papo"), "worker"], env, target.log)
    return target


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


def signed_files(folder: Path, clients: int, seconds: int, prefix: str) -> tuple[Path, int]:
    """One file of signed deliveries per client; (the files' prefix, lines per file)."""
    lines = int(3000 * seconds / clients) + 200  # more than a client can send in the time
    now = time.time() + seconds / 2
    base = folder / f"wa-{prefix}"
    for index in range(clients):
        contact = wa_contact(prefix, index)
        with open(f"{base}-{index}", "w") as out:
            for n in range(1, lines + 1):
                raw = wa_body(contact, n, "oi" if n % 2 else ANSWER, now)
                out.write(f"{wa_signature(raw)}\t{raw.decode()}\n")
    return base, lines


def load_wrk(wrk: str, script: Path, target: Target, clients: int, seconds: int, prefix: str) -> Point:
    env = {**os.environ, "BENCH_PREFIX": prefix, "BENCH_PATH": target.path,
           "BENCH_TOKEN": target.token, "BENCH_ANSWER": ANSWER}
    lines = 0
    if target.channel == "whatsapp":
        base, lines = signed_files(script.parent, clients, seconds, prefix)
        env["BENCH_FILE"] = str(base)
        script = script.parent / "whatsapp.lua"
    argv = [wrk, f"-t{clients}", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(script), target.url]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result ({done.returncode}): {done.stdout}\n{done.stderr}")
    data = json.loads(line[len("BENCH_JSON "):])
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    point = Point(target.name, target.database, clients, requests=data["requests"], errors=errors,
                  seconds=data["duration_us"] / 1e6, p50_ms=data["p50_us"] / 1000,
                  p99_ms=data["p99_us"] / 1000)
    if lines and data["requests"] > lines * clients:
        point.note = "signed bodies ran out: some requests were repeats (answered from the record)"
    return point


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
        wa_id = wa_contact(prefix, index)
        while time.perf_counter() < stop_at[0]:
            n += 1
            text = "oi" if n % 2 else ANSWER
            sent_headers = headers
            if target.channel == "whatsapp":
                body = wa_body(wa_id, n, text, time.time())
                sent_headers = {**headers, "X-Hub-Signature-256": wa_signature(body)}
            else:
                body = json.dumps(inbound_body(contact, n, text))
            began = time.perf_counter()
            try:
                conn.request("POST", target.path, body=body, headers=sent_headers)
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
    from engine.store import conversations, messages, outbox, processed_messages

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
            wa_out = conn.execute(select(func.count()).select_from(messages).join(
                conversations, conversations.c.id == messages.c.conversation_id).where(
                conversations.c.channel == "whatsapp", messages.c.direction == "out")).scalar()
            outbox_rows = dict(conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all())
    finally:
        engine.dispose()
    return {"in": by_direction.get("in", 0), "out": by_direction.get("out", 0),
            "processed": processed, "duplicates": duplicates, "running": running,
            "whatsapp_out": wa_out, "outbox": outbox_rows}


def drain_outbox(db_url: str, timeout: float = 120.0) -> tuple[int, float]:
    """Wait until the worker has sent every queued reply: (replies unsent at the start,
    seconds it took; the timeout if some were still unsent)."""
    from sqlalchemy import func, select

    from engine.db import make_engine
    from engine.store import outbox

    engine = make_engine(db_url)
    query = select(func.count()).select_from(outbox).where(outbox.c.status.in_(("pending", "sending")))
    began = time.monotonic()
    try:
        with engine.connect() as conn:
            backlog = left = conn.execute(query).scalar()
            conn.rollback()
            while left and time.monotonic() - began < timeout:
                time.sleep(0.2)
                left = conn.execute(query).scalar()
                conn.rollback()
    finally:
        engine.dispose()
    return backlog, time.monotonic() - began if backlog else 0.0


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
    graph = FakeGraph()  # unused here (no worker), but WhatsApp must be configured
    app = create_app({"PAPO_DATABASE_URL": db_url, "PAPO_INSTANCE_PATH": str(tmp / "profile"),
                      "SECRET_KEY": "bench", "PAPO_LOG_LEVEL": "WARNING", **whatsapp_env(graph.api_base)})
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

    def drive_wa(tag: str, count: int) -> float:
        bodies = []
        for i in range(count):
            raw = wa_body(wa_contact(tag, i % 32), i // 32 + 1, "oi" if (i // 32) % 2 == 0 else ANSWER, time.time())
            bodies.append((raw, {"Content-Type": "application/json", "X-Hub-Signature-256": wa_signature(raw)}))
        began = time.perf_counter()
        for raw, wa_headers in bodies:
            answer = client.post(WA_PATH, data=raw, headers=wa_headers)
            assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        return (time.perf_counter() - began) / count * 1000

    drive(client, "/api/v1/inbound", "warm", 64, headers)  # flow compiled, templates parsed
    papo_ms = drive(client, "/api/v1/inbound", "plain", requests, headers)
    papo_statements = count_statements(engine, lambda: drive(client, "/api/v1/inbound", "count", 320, headers))
    drive_wa(f"warm-{uuid.uuid4().hex}", 64)
    wa_ms = drive_wa(f"plain-{uuid.uuid4().hex}", requests)
    wa_statements = count_statements(engine, lambda: drive_wa(f"count-{uuid.uuid4().hex}", 320))
    graph.close()

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
    return {"per_channel": {"api": {"ms": papo_ms, "statements": papo_statements},
                            "whatsapp webhook": {"ms": wa_ms, "statements": wa_statements},
                            "bare": {"ms": bare_ms, "statements": bare_statements}},
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


TARGET_SHARE = {"sqlite": 0.80, "postgresql": 0.70}  # issue 12: papo ≥ this share of bare
TARGET_P99_MS = 50.0  # at 32 clients


def render(points: list[Point], notes: list[str], checks: list[str], profile: dict, client: str,
           args, loadavg: tuple[str, str]) -> str:
    by = {(p.target, p.database, p.clients): p for p in points}
    databases = [d for d in ("sqlite", "postgresql") if any(p.database == d for p in points)]
    papos = [name for name in ("papo", "papo-wa") if any(p.target == name for p in points)]
    lines = [
        "papo under load through `POST /api/v1/inbound` (**papo**) and through the WhatsApp "
        "webhook `POST /channels/whatsapp/webhook` (**papo-wa**: Meta's delivery format, signed "
        "bodies, a `papo worker` sending the replies from the outbox to a fake Graph API on "
        "127.0.0.1), one papo server (gunicorn, 2 sync workers) for both, against the bare "
        "ceiling (Flask + gunicorn, 2 sync workers, one read and one write per request with "
        "SQLAlchemy Core) and Node-RED 4 (notes below). Every client is its own contact sending "
        f"\"oi\" / \"1\" in turn, one request at a time; {args.duration} s per point after a warm-up; "
        f"client: {client}; 127.0.0.1 only.",
        "",
        "| database | clients | target | requests/s | p50 | p99 | errors | share of bare |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for database in databases:
        for clients in args.clients:
            bare = by.get(("bare", database, clients))
            for name in ("bare", *papos, "node-red"):
                point = by.get((name, database if name != "node-red" else "memory", clients))
                if point is None or (name == "node-red" and database != "sqlite"):
                    continue
                ratio = f"{point.rps / bare.rps:.0%}" if bare and bare.rps and name != "bare" else ""
                label = "Node-RED (memory)" if name == "node-red" else name
                lines.append(f"| {database if name != 'node-red' else '–'} | {clients} | {label} | "
                             f"{fmt(point.rps)} | {fmt(point.p50_ms, 1)} ms | {fmt(point.p99_ms, 1)} ms | "
                             f"{point.errors} | {ratio} |" + (f" {point.note}" if point.note else ""))
    lines += ["", "Against the targets of issue 12 (papo ≥ 80 % of bare on SQLite, ≥ 70 % on PostgreSQL, "
              f"p99 < {TARGET_P99_MS:.0f} ms at 32 clients), same run:", "",
              "| database | clients | entry point | papo / bare | target | p99 | papo / Node-RED |",
              "|---|---:|---|---:|---|---:|---:|"]
    for database in databases:
        for clients in args.clients:
            bare = by.get(("bare", database, clients))
            red = by.get(("node-red", "memory", clients))
            for name in papos:
                papo = by.get((name, database, clients))
                if not papo or not bare:
                    continue
                share = papo.rps / bare.rps if bare.rps else 0
                verdict = "ok" if share >= TARGET_SHARE[database] else "below"
                p99 = f"{fmt(papo.p99_ms, 1)} ms" + (
                    (" ok" if papo.p99_ms < TARGET_P99_MS else " over") if clients == 32 else "")
                lines.append(f"| {database} | {clients} | {'api' if name == 'papo' else 'whatsapp'} | "
                             f"{share:.0%} | {verdict} (≥ {TARGET_SHARE[database]:.0%}) | {p99} | "
                             f"{f'{papo.rps / red.rps:.0%}' if red and red.rps else '–'} |")
    lines += ["", "```", *chart(points, args.clients), "```", ""]
    if checks:
        lines += ["Checks after the load:", ""] + [f"- {c}" for c in checks] + [""]
    if profile:
        shares = ", ".join(f"{name} {share:.0%}" for name, share in profile["shares"][:9])
        per = profile["per_channel"]
        lines += [f"Where the time goes, in one process without HTTP ({args.profile:,} requests each, "
                  "SQLite):", "", "| entry point | ms per message | SQL statements per message |",
                  "|---|---:|---:|"]
        lines += [f"| {name} | {values['ms']:.2f} | {values['statements']:.1f} |" for name, values in per.items()]
        lines += [
            "",
            "Statements are those SQLite's trace hook sees (BEGIN, COMMIT and the pool's ROLLBACK "
            "included, each row of a multi-row insert counted). A message to the API: outside any "
            "transaction one query for the contact's conversation, the duplicate check and the "
            "published flows; then BEGIN IMMEDIATE, the conversation's update with its version "
            "check, one insert for the step's messages, the funnel rows, an answer when there is "
            "one, the duplicate record, COMMIT. Through the WhatsApp webhook the same, plus the "
            "outbox rows (one insert), the webhook's contact lookup (wa_id / user id) and the "
            "signature check. The API token's owner is remembered for 5 s. Self time under "
            f"cProfile by package (api): {shares}.", ""]
    below = [p for p in points if p.target in ("papo", "papo-wa") and by.get(("bare", p.database, p.clients))
             and p.rps < TARGET_SHARE[p.database] * by[("bare", p.database, p.clients)].rps]
    if below and profile:
        lines += [
            "Below the target at "
            + ", ".join(f"{p.target} {p.database} {p.clients} clients" for p in below) + ". What is left, "
            "largest first: Python's own work per request — Werkzeug/Flask request handling and "
            "papo's (the largest shares of self time above; the reads and writes already run on "
            "the driver's cursor), the webhook's own work (signature, parsing, contact identity), "
            "on SQLite the write lock itself (one writer at a time across all workers), on "
            "PostgreSQL the server's side: each message moves the conversation's `updated_at`, so "
            "every index of its row is written again (the name's trigram index included), and the "
            "messages' trigram index. For papo-wa at 1 client, the one conversation's replies go "
            "out one per sender round (a conversation's messages keep their order), so the worker "
            "falls behind (the backlog above).", ""]
    lines += [f"- {n}" for n in notes]
    lines.append(f"- Load average before / after: {loadavg[0]} / {loadavg[1]} (2 cores; other work "
                 "may share them: ratios measured side by side are the robust figure).")
    cores = os.cpu_count() or 1
    busiest = max(_one_minute(x) for x in loadavg)
    if busiest > 2 * cores:
        lines.append(
            f"- **This run shared the machine with other work** (1-minute load {busiest:.1f} on {cores} "
            "cores): every figure here, bare's included, is a fraction of what an idle machine gives, "
            "and the shares are unfair to whichever server holds a lock longer (a process holding "
            "SQLite's write lock, or a row lock, is descheduled mid-transaction and everyone queues "
            "behind it; bare holds its lock for one statement). Read the checks (nothing lost or "
            "doubled, no errors) and the statements per message; rerun on an idle machine for the "
            "shares and latencies.")
    return "\n".join(lines)


def _one_minute(load: str) -> float:
    try:
        return float(load.split(",")[0])
    except ValueError:  # "unknown"
        return 0.0


def chart(points: list[Point], clients_list: list[int]) -> list[str]:
    best = max((p.rps for p in points), default=0) or 1
    out = [f"requests/s (each # ≈ {best / 50:,.0f})"]
    for p in sorted(points, key=lambda p: (p.database != "sqlite", p.database, p.clients,
                                            ["bare", "papo", "papo-wa", "node-red"].index(p.target))):
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
    parser.add_argument("--channels", default="api,whatsapp",
                        help="papo's entry points measured: api (POST /api/v1/inbound), whatsapp "
                             "(the signed webhook, with a worker and a fake Graph API); default both")
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
    parser.add_argument("--wa-statuses", action="store_true",
                        help="instead: the WhatsApp webhook with status webhooks mixed in (1 per 2 "
                             "messages) against bare, same run, SQLite; appends the section "
                             "\"HTTP inbound: WhatsApp with delivery statuses\" (bench/_wa_statuses.py)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="--ops, --wa-statuses: measurements of each variant per concurrency, "
                             "interleaved (default 3)")
    args = parser.parse_args(argv)
    args.clients = [int(x) for x in str(args.clients).split(",") if x.strip()]
    args.channels = [x.strip() for x in str(args.channels).split(",") if x.strip()]
    if not set(args.channels) <= {"api", "whatsapp"} or not args.channels:
        parser.error("--channels: api, whatsapp or both")
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
    if args.wa_statuses:
        from bench._wa_statuses import measure_statuses

        return measure_statuses(args, argv)
    tmp = Path(tempfile.mkdtemp(prefix="papo-bench-http-"))
    notes: list[str] = []
    checks: list[str] = []
    points: list[Point] = []
    targets: list[Target] = []
    load_before = loadavg()
    graph: FakeGraph | None = None
    wa_env: dict = {}

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
        if "whatsapp" in args.channels:
            graph = FakeGraph()
            wa_env = whatsapp_env(graph.api_base)
            if wrk:
                (tmp / "whatsapp.lua").write_text(WRK_WA_SCRIPT)
        targets.append(start_bare("sqlite", f"sqlite:///{tmp / 'bare.db'}", tmp, args.workers))
        targets.append(start_papo("sqlite", f"sqlite:///{tmp / 'papo.db'}", tmp, args.workers,
                                  extra_env=wa_env))
        if args.postgres:
            if not args.postgres_url:
                notes.append("PostgreSQL variant skipped: no --postgres-url / PAPO_BENCH_POSTGRES_URL.")
            else:
                try:
                    targets.append(start_bare("postgresql", pg_database(args.postgres_url, PG_BARE_DB, True),
                                              tmp, args.workers))
                    targets.append(start_papo("postgresql", pg_database(args.postgres_url, PG_PAPO_DB, True),
                                              tmp, args.workers, extra_env=wa_env))
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
        if graph is not None:
            targets += [start_whatsapp(t, tmp, graph.api_base) for t in list(targets) if t.name == "papo"]
        measured = [t for t in targets if t.name != "papo" or "api" in args.channels]
        for target in measured:
            if target.name != "node-red":
                smoke(target)

        run_id = uuid.uuid4().hex[:6]
        for clients in args.clients:
            for target in measured:
                prefix = f"{target.name}-{target.database}-{clients}-{run_id}"
                print(f"{target.name:8} {target.database:10} {clients:>2} clients …", file=sys.stderr,
                      end="", flush=True)
                if args.warmup:
                    _measure(wrk, tmp, target, clients, args.warmup, prefix + "-warm")
                point = _measure(wrk, tmp, target, clients, args.duration, prefix)
                points.append(point)
                print(f" {point.rps:,.0f} req/s, p50 {point.p50_ms:.1f} ms, p99 {point.p99_ms:.1f} ms, "
                      f"{point.errors} errors", file=sys.stderr)
                if target.channel == "whatsapp":
                    # The next point must not share the cores with this one's worker still sending.
                    point.backlog, point.drain_s = drain_outbox(target.db_url)
                    print(f"{'':8} {'':10} {'':>2}          {point.backlog:,} replies left to send, "
                          f"sent within {point.drain_s:.1f} s", file=sys.stderr)
        if graph is not None:
            time.sleep(12)  # the workers' outbox job runs every 5 s: let them catch up
            drained = [p for p in points if p.target == "papo-wa"]
            checks.append(
                "papo-wa, replies still queued when a point's load stopped, and how long the worker "
                "took to send them (the next point waited for it): " + "; ".join(
                    f"{p.database} {p.clients} clients {p.backlog:,} ({p.drain_s:.1f} s)" for p in drained)
                + ". A backlog that grows with the load means the worker sends slower than customers write.")
        for target in targets:
            if target.name == "papo-wa":
                counts = papo_counts(target.db_url)
                rows = counts["outbox"]
                checks.append(
                    f"papo-wa on {target.database}: {counts['whatsapp_out']:,} WhatsApp bot replies, "
                    f"{sum(rows.values()):,} outbox rows (one each: "
                    f"{'yes' if sum(rows.values()) == counts['whatsapp_out'] else 'NO'}); by status "
                    + ", ".join(f"{k} {v:,}" for k, v in sorted(rows.items()))
                    + f"; the fake Graph API answered {graph.sent:,} sends in all.")
            if target.name == "papo" or (target.name == "papo-wa" and "api" not in args.channels):
                counts = papo_counts(target.db_url)
                ok = counts["out"] == 2 * counts["in"] and counts["in"] == counts["processed"] \
                    and counts["duplicates"] == 0 and counts["running"] == 0
                checks.append(
                    f"papo on {target.database}: {counts['in']:,} inbound messages stored (each once: "
                    f"{counts['duplicates']} duplicates; {counts['processed']:,} message ids recorded), "
                    f"{counts['out']:,} bot replies (2 per message expected: "
                    f"{'yes' if counts['out'] == 2 * counts['in'] else 'NO'}; api and WhatsApp together), "
                    f"{counts['running']} runs left "
                    f"`running` — {'consistent' if ok else 'INCONSISTENT'}.")
        errors = sum(p.errors for p in points)
        checks.append(f"{sum(p.requests for p in points):,} requests measured, {errors} errors "
                      "(non-2xx, connect, read, timeout).")
    finally:
        for target in targets:
            stop(target)
        if graph is not None:
            graph.close()
        if args.postgres and args.postgres_url:
            for name in (PG_BARE_DB, PG_PAPO_DB):
                try:
                    pg_database(args.postgres_url, name, False)
                except Exception:
                    pass
    profile = profile_papo(args.profile, tmp) if args.profile else {}
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
