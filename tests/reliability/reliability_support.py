"""Shared pieces of the reliability tests (tests/reliability/test_*.py).

Flows, a deterministic conversation script whose every bot reply is known in advance,
the checks run after a load ("every inbound message stored once, every expected reply
exactly once, no run stuck in ``running``"), and real processes: gunicorn serving
``editor:create_app()`` and ``papo worker``, started by id and killed by id.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from engine.store import conversations, messages, outbox, processed_messages, timers

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LONG = os.environ.get("PAPO_RELIABILITY_LONG", "").lower() in ("1", "true", "yes")


def report(line: str) -> None:
    """Print a count line (``-s``); also append it to ``PAPO_RELIABILITY_REPORT`` if set
    (pytest-xdist swallows a worker's output)."""
    print("\n" + line)
    target = os.environ.get("PAPO_RELIABILITY_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def block(block_id: str, kind: str, **data) -> dict:
    return {"id": block_id, "type": kind, "position": {"x": 0, "y": 0}, "data": data}


# "oi" → greeting + choice question; an option → confirmation + goodbye: the flow of
# bench/http_inbound.py, from the same file.
CHAT_FLOW = {**json.loads((ROOT / "bench" / "flows" / "chat.json").read_text(encoding="utf-8")),
             "id": "rel-chat", "name": "Reliability chat"}
# The answers cycle through the ways a customer picks an option.
ANSWERS = (("1", "Planos"), ("suporte", "Suporte"), ("PLANOS", "Planos"), ("2", "Suporte"))

# "oi" → a message, a 1-second wait, a message (timers + outbox).
WAIT_FLOW = {
    "schema_version": 1, "id": "rel-wait", "name": "Reliability wait",
    "triggers": [{"type": "keyword", "match": "exact", "value": "oi"}],
    "start": "m1",
    "blocks": [
        block("m1", "message", text="Um momento, {{ contact.name }}."),
        block("w1", "wait", seconds=1),
        block("m2", "message", text="Pronto, {{ contact.name }}."),
    ],
    "edges": [{"from": "m1", "port": "next", "to": "w1"}, {"from": "w1", "port": "next", "to": "m2"}],
}


def contact_name(k: int) -> str:
    return f"Cliente {k}"


def script_message(k: int, r: int, prefix: str) -> tuple[dict, dict, list[str]]:
    """Message ``r`` of conversation ``k``: (contact, message, the bot replies it must get)."""
    name = contact_name(k)
    contact = {"external_id": f"{prefix}-{k}", "name": name}
    message_id = f"{prefix}-{k}-{r}"
    if r % 2 == 0:
        return contact, {"id": message_id, "text": "oi"}, [f"Olá, {name}!", "Como posso ajudar?"]
    typed, label = ANSWERS[(r // 2) % len(ANSWERS)]
    return contact, {"id": message_id, "text": typed}, [f"Você escolheu {label}. Obrigado!",
                                                        f"Até logo, {name}!"]


def expected_replies(k: int, rounds: int, prefix: str) -> list[str]:
    out: list[str] = []
    for r in range(rounds):
        out += script_message(k, r, prefix)[2]
    return out


# ---------------------------------------------------------------------- checks
@dataclass
class Audit:
    """What the database holds after a load, against what was sent."""

    inbound: int = 0
    inbound_unique: int = 0
    duplicated_inbound: int = 0
    processed: int = 0
    replies: int = 0
    conversations_ok: int = 0
    conversations_bad: list = field(default_factory=list)
    running: int = 0
    lost: int = 0

    def as_dict(self) -> dict:
        return {k: (v if not isinstance(v, list) else v[:5]) for k, v in self.__dict__.items()}


def audit(engine, expected: dict[str, list[str]], sent_ids: set[str]) -> Audit:
    """``expected``: contact external id → its bot replies in order; ``sent_ids``: every
    inbound message id sent (duplicates counted once)."""
    from engine.store import contacts

    found = Audit()
    with engine.connect() as conn:
        rows = conn.execute(select(messages.c.conversation_id, messages.c.direction, messages.c.text,
                                   messages.c.external_id, messages.c.author, contacts.c.external_id
                                   .label("contact"))
                            .join(conversations, conversations.c.id == messages.c.conversation_id)
                            .join(contacts, contacts.c.id == conversations.c.contact_id)
                            .order_by(messages.c.id)).all()
        found.processed = conn.execute(select(func.count()).select_from(processed_messages)).scalar()
        states = conn.execute(select(conversations.c.state)).scalars().all()
    ids = Counter(r.external_id for r in rows if r.direction == "in")
    found.inbound = sum(ids.values())
    found.inbound_unique = len(ids)
    found.duplicated_inbound = sum(n - 1 for n in ids.values() if n > 1)
    found.lost = len(sent_ids - set(ids))
    replies = defaultdict(list)
    for r in rows:
        if r.direction == "out" and r.author == "bot":
            replies[r.contact].append(r.text)
    found.replies = sum(len(v) for v in replies.values())
    for contact, want in expected.items():
        if replies.get(contact, []) == want:
            found.conversations_ok += 1
        else:
            found.conversations_bad.append((contact, want, replies.get(contact, [])))
    found.running = sum(1 for s in states if ((s or {}).get("run") or {}).get("state") == "running")
    return found


def assert_clean(found: Audit, sent_ids: set[str], expected: dict) -> None:
    assert found.lost == 0, f"{found.lost} inbound messages lost: {found.as_dict()}"
    assert found.duplicated_inbound == 0, found.as_dict()
    assert found.inbound == len(sent_ids) == found.processed, found.as_dict()
    assert not found.conversations_bad, found.conversations_bad[:3]
    assert found.conversations_ok == len(expected)
    assert found.running == 0, found.as_dict()


def timer_counts(engine) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(select(timers.c.status, func.count()).group_by(timers.c.status)).all())


def outbox_counts(engine) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all())


# ---------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def papo_env(db_url: str, instance: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPO_") or k == "PAPO_TEST_POSTGRES_URL"}
    env.update(PAPO_DATABASE_URL=db_url, PAPO_INSTANCE_PATH=str(instance),
               PAPO_SECRET_KEY="reliability-secret")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (gunicorn's workers), from /proc."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


class Gunicorn:
    """``gunicorn -w 2 -k sync 'editor:create_app()'`` on 127.0.0.1, in its own process group."""

    def __init__(self, env: dict, log: Path, workers: int = 2, config: str | None = None,
                 preload: bool = False):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        handle = open(log, "w")  # noqa: SIM115 - the child's output
        options = (["-c", config] if config else []) + (["--preload"] if preload else [])
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), *options, "-w", str(workers), "-k", "sync", "-b", f"127.0.0.1:{self.port}",
             "--log-level", "warning", "--timeout", "60", "--graceful-timeout", "5", "editor:create_app()"],
            cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers = workers
        self.killed: list[int] = []
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(self.url + "/login", timeout=2):
                    pass
                if len(children(self.proc.pid)) >= self.workers:
                    return
            except (urllib.error.HTTPError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"gunicorn did not start: {self.log.read_text()[-3000:]}")

    def kill_worker(self) -> int | None:
        """SIGKILL one of this gunicorn's workers (by pid); the master starts another."""
        pids = [p for p in children(self.proc.pid) if p not in self.killed]
        if not pids:
            return None
        pid = pids[0]
        os.kill(pid, signal.SIGKILL)
        self.killed.append(pid)
        return pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)


class PapoWorker:
    """``papo worker`` as a real process; ``kill()`` is SIGKILL by its pid."""

    def __init__(self, env: dict, log: Path, lease_s: float = 2, extra: tuple[str, ...] = ()):
        handle = open(log, "a")  # noqa: SIM115
        self.log = log
        self.proc = subprocess.Popen([str(BIN / "papo"), "worker", "--lease", str(lease_s), *extra],
                                     cwd=ROOT,
                                     env=env, stdout=handle, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def post_json(url: str, body: dict | bytes, headers: dict | None = None,
              timeout: float = 30) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def wait_until(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
