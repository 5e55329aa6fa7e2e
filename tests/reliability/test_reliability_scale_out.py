"""Scale-out on PostgreSQL, with faults (issue 18; DESIGN §4).

Two gunicorn web servers on two ports and two ``papo worker`` processes share one
PostgreSQL database. 32 senders spread WhatsApp webhook deliveries over both servers
(every delivery is sent twice, once to each server, as Meta repeats itself). Mid-run one
whole web server (master and worker) and one ``papo worker`` are killed with SIGKILL; the
senders fail over to the surviving server with the same delivery, as a load balancer
would. Afterwards: every message stored once and answered once, every timer fired once,
every outbox message delivered to the Graph API once and in order, no run stuck.

Real processes on 127.0.0.1 only; bounded (a few hundred requests, one 20 s outbox lease).
"""
from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from collections import Counter, defaultdict

import pytest
from conftest import make_test_engine
from reliability_support import (
    Gunicorn,
    PapoWorker,
    assert_clean,
    audit,
    block,
    outbox_counts,
    papo_env,
    post_json,
    report,
    timer_counts,
    wait_until,
)
from test_reliability_faults import APP_SECRET, PHONE_ID, WA_TOKEN, signed, webhook_body

from engine import accounts
from engine.flows import FlowRepository
from engine.migrate import upgrade

SENDERS = 32
CONVERSATIONS = 128
OUTBOX_LEASE_S = 20  # a message the killed worker held goes out again after this

# "oi" → a message, a 1-second wait (a timer), a message: two outbox rows and one timer each.
FLOW = {
    "schema_version": 1, "id": "scale", "name": "Scale-out",
    "triggers": [{"type": "keyword", "match": "exact", "value": "oi"}],
    "start": "m1",
    "blocks": [
        block("m1", "message", text="Um momento, {{ contact.name }}."),
        block("w1", "wait", seconds=1),
        block("m2", "message", text="Pronto, {{ contact.name }}."),
    ],
    "edges": [{"from": "m1", "port": "next", "to": "w1"}, {"from": "w1", "port": "next", "to": "m2"}],
}


def kill_server(server: Gunicorn) -> None:
    """SIGKILL the whole web server: its master and its workers, by process group."""
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)


@pytest.mark.slow
def test_two_web_servers_and_two_workers_survive_losing_one_of_each(postgres_url, tmp_path, fake_graph):
    upgrade(postgres_url)  # `papo db upgrade`, as a deployment does
    db = make_test_engine(postgres_url)
    FlowRepository(db).create(FLOW, actor="test")
    FlowRepository(db).publish(FLOW["id"], actor="test")
    accounts.create_user(db, "admin", "admin", password="admin-senha-123")
    env = papo_env(postgres_url, tmp_path / "instance",
                   PAPO_WHATSAPP_APP_SECRET=APP_SECRET, PAPO_WHATSAPP_TOKEN=WA_TOKEN,
                   PAPO_WHATSAPP_PHONE_NUMBER_ID=PHONE_ID, PAPO_WHATSAPP_VERIFY_TOKEN="verify",
                   PAPO_WHATSAPP_API_BASE=fake_graph.api_base, PAPO_LOG_FORMAT="json")
    # Each accepted message is answered 20 ms late: the worker kill lands while sends are in flight.
    fake_graph.hang(times=4 * CONVERSATIONS, seconds=0.02)
    webs = [Gunicorn(env, tmp_path / f"web{n}.log", workers=1) for n in (1, 2)]
    extra = ("--outbox-lease", str(OUTBOX_LEASE_S))
    workers = [PapoWorker(env, tmp_path / f"worker{n}.log", extra=extra) for n in (1, 2)]
    alive = [True, True]
    lock = threading.Lock()
    stats = {"deliveries": 0, "failovers": 0}
    by_server = Counter()
    problems: list[str] = []
    faults: list[str] = []

    def deliver(raw: bytes, first: int) -> None:
        """POST to server ``first``; on a dead connection or a 5xx, the other one (40 tries)."""
        target = first
        for attempt in range(40):
            if not alive[target]:
                target = 1 - target
            try:
                status, answer = post_json(webs[target].url + "/channels/whatsapp/webhook", raw,
                                           signed(raw), timeout=30)
            except (OSError, http.client.HTTPException):
                status, answer = 0, b""
            if status == 200:
                with lock:
                    by_server[target] += 1
                return
            if 0 < status < 500:
                problems.append(f"{status} {answer[:200]!r}")
                return
            with lock:
                stats["failovers"] += 1
            target = 1 - target
            time.sleep(0.02 * min(attempt + 1, 10))
        problems.append("gave up after 40 tries")

    def sender(index: int) -> None:
        for k in range(index, CONVERSATIONS, SENDERS):
            raw = webhook_body(k)
            for repeat in range(2):  # the same delivery again, to the other server
                deliver(raw, (k + repeat) % 2)
                with lock:
                    stats["deliveries"] += 1

    try:
        threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
        for thread in threads:
            thread.start()
        assert wait_until(lambda: stats["deliveries"] >= CONVERSATIONS // 2, timeout=60, step=0.01)
        alive[0] = False
        kill_server(webs[0])
        faults.append(f"web server 1 killed after {stats['deliveries']} deliveries")
        assert wait_until(lambda: len(fake_graph.delivered) >= CONVERSATIONS // 4, timeout=60,
                          step=0.01), workers[0].log.read_text()[-3000:]
        workers[0].kill()
        faults.append(f"papo worker 1 killed after {len(fake_graph.delivered)} Graph API deliveries")
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads), "senders finished"
        assert not problems, problems[:5]

        def settled() -> bool:
            return (timer_counts(db).get("pending", 0) == 0 and
                    outbox_counts(db).get("sent", 0) == 2 * CONVERSATIONS)

        # A message worker 1 held when it died goes out after its lease (OUTBOX_LEASE_S).
        assert wait_until(settled, timeout=OUTBOX_LEASE_S + 70, step=0.5), (
            timer_counts(db), outbox_counts(db), workers[1].log.read_text()[-3000:])
        status, _ = post_json(webs[1].url + "/channels/whatsapp/webhook", b"{}", {})
        assert status == 403  # the survivor still answers (unsigned: refused, nothing stored)
    finally:
        for worker in workers:
            worker.stop()
        for web in webs:
            web.stop()

    assert by_server[0] > 0 and by_server[1] > 0, "both web servers took deliveries"
    texts = defaultdict(list)
    for request in fake_graph.delivered:
        texts[request.json["to"]].append(request.json["text"]["body"])
    expected = {f"55119{k:08d}": [f"Um momento, Cliente {k}.", f"Pronto, Cliente {k}."]
                for k in range(CONVERSATIONS)}
    assert dict(texts) == expected  # every outbox message once, in order per conversation
    assert len(fake_graph.delivered) == 2 * CONVERSATIONS
    assert timer_counts(db) == {"fired": CONVERSATIONS}  # every timer once
    assert outbox_counts(db) == {"sent": 2 * CONVERSATIONS}
    sent_ids = {f"wamid.REL{k:06d}" for k in range(CONVERSATIONS)}
    found = audit(db, expected, sent_ids)
    assert_clean(found, sent_ids, expected)  # stored once, answered once, nothing running
    resent = sum(n - 1 for n in Counter(r.idempotency_key for r in fake_graph.requests
                                        if r.status == 200).values())
    report(f"scale-out on postgresql: 2 web servers + 2 workers, {SENDERS} senders, "
           f"{CONVERSATIONS} conversations, {stats['deliveries']} webhook deliveries "
           f"({by_server[0]} to web 1, {by_server[1]} to web 2, {stats['failovers']} failed over); "
           f"{'; '.join(faults)}; stored {found.inbound} messages (lost {found.lost}, duplicated "
           f"{found.duplicated_inbound}), {found.replies} replies, {CONVERSATIONS} timers fired once, "
           f"{len(fake_graph.delivered)} outbox messages delivered once ({resent} re-sent with the "
           f"same idempotency key), {found.running} runs running")
