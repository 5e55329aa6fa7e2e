"""The WhatsApp outbox as the customer's phone would see it (both databases).

Bot replies are queued by ``Service.handle_inbound`` and sent by ``engine.outbox.send_due``
to a fake Graph API on 127.0.0.1 (tests/fake_graph.py). The clock is moved by hand:
``send_due(service, now=...)``.
"""
from __future__ import annotations

import threading
from functools import partial

import pytest
from conftest import make_test_engine
from sqlalchemy import func, select, update

from engine import outbox as sender
from engine.flows import FlowRepository
from engine.service import Service
from engine.settings import Settings
from engine.store import outbox, run_log
from engine.whatsapp import message_body

T0 = 1_800_000_000.0
TOKEN = "EAAG-test-token"
PHONE_ID = "106540352242922"
WA_ID = "5511987654321"
GREETING = "Olá, Ana! 👋 Bem-vindo(a) à Loja da Ana."
MENU = "Como posso te ajudar hoje?"
MENU_OPTIONS = ["Ver produtos", "Status do pedido", "Falar com atendente"]


@pytest.fixture
def clock() -> list[float]:
    return [T0]


@pytest.fixture
def service(db, fake_graph, clock, sample_flow) -> Service:
    """The welcome flow published; WhatsApp configured to send to the fake Graph API."""
    repo = FlowRepository(db)
    repo.create(sample_flow("boas-vindas"))
    repo.publish("boas-vindas")
    return whatsapp_service(db, fake_graph.api_base, clock)


def whatsapp_service(db, api_base: str, clock: list[float], **overrides) -> Service:
    settings = Settings(**{"whatsapp_token": TOKEN, "whatsapp_phone_number_id": PHONE_ID,
                           "whatsapp_api_base": api_base, **overrides})
    return Service(db, settings, clock=lambda: clock[0])


def customer_says(service: Service, text: str, n: int = 1, wa_id: str = WA_ID,
                  name: str = "Ana") -> int:
    result = service.handle_inbound("whatsapp", {"external_id": wa_id, "name": name},
                                    {"id": f"wamid.IN-{wa_id}-{n}", "text": text})
    return result["conversation_id"]


def rows(db) -> list[dict]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(select(outbox).order_by(outbox.c.id)).mappings()]


def errors_logged(db, conversation_id: int) -> list[str]:
    with db.connect() as conn:
        return list(conn.execute(select(run_log.c.message).where(
            run_log.c.conversation_id == conversation_id, run_log.c.level == "error")
            .order_by(run_log.c.id)).scalars())


def epoch(value) -> float:
    from engine.service import epoch as to_epoch

    return to_epoch(value)


# -- the happy path -------------------------------------------------------------------------

def test_bot_replies_are_posted_to_the_graph_api_with_the_cloud_api_body(service, db, fake_graph):
    customer_says(service, "oi")
    assert [r["status"] for r in rows(db)] == ["pending", "pending"]

    assert sender.send_due(service, now=T0) == 2

    assert [r.path for r in fake_graph.delivered] == [f"/v21.0/{PHONE_ID}/messages"] * 2
    first, second = fake_graph.delivered
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["content-type"] == "application/json"
    assert first.json == {"messaging_product": "whatsapp", "recipient_type": "individual",
                          "to": WA_ID, "type": "text", "text": {"body": GREETING}}
    assert second.json == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID,
        "type": "interactive", "interactive": {
            "type": "button", "body": {"text": MENU},
            "action": {"buttons": [
                {"type": "reply", "reply": {"id": "b1", "title": "Ver produtos"}},
                {"type": "reply", "reply": {"id": "b2", "title": "Status do pedido"}},
                {"type": "reply", "reply": {"id": "b3", "title": "Falar com atendente"}}]}}}
    stored = rows(db)
    assert [r["status"] for r in stored] == ["sent", "sent"]
    assert [r.idempotency_key for r in fake_graph.delivered] == [r["idempotency_key"] for r in stored]
    assert all(r["sent_at"] is not None and r["attempts"] == 1 for r in stored)
    assert stored[0]["payload"]["wamid"] == "wamid.FAKE000001"


def test_a_second_run_sends_nothing_again(service, db, fake_graph):
    customer_says(service, "oi")
    assert sender.send_due(service, now=T0) == 2
    assert sender.send_due(service, now=T0 + 3600) == 0
    assert len(fake_graph.requests) == 2


def test_outbox_status_lists_each_message_of_the_conversation(service, db, fake_graph):
    conversation_id = customer_says(service, "oi")
    fake_graph.reject(400, "(#131030) Recipient phone number not in allowed list", code=131030)
    sender.send_due(service, now=T0)

    status = sender.outbox_status(service, conversation_id)

    assert [(s["status"], s["attempts"]) for s in status] == [("failed", 1), ("sent", 1)]
    assert "131030" in status[0]["last_error"]
    assert status[1]["sent_at"] == "2027-01-15T08:00:00Z"
    assert all(isinstance(s["message_id"], int) for s in status)


# -- retries and failures -------------------------------------------------------------------

def test_a_server_error_is_retried_after_backoff_and_the_message_sent_once(service, db, fake_graph):
    customer_says(service, "oi")
    fake_graph.fail(1, status=500)

    assert sender.send_due(service, now=T0) == 0
    first = rows(db)[0]
    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert epoch(first["next_attempt_at"]) == T0 + 2
    assert first["last_error"].startswith("HTTP 500")
    assert rows(db)[1]["attempts"] == 0  # the next reply waits its turn: order is kept

    assert sender.send_due(service, now=T0 + 1) == 0
    assert len(fake_graph.requests) == 1
    assert sender.send_due(service, now=T0 + 2) == 2

    assert fake_graph.texts() == [GREETING, MENU]
    assert [r.idempotency_key for r in fake_graph.requests[:2]] == [first["idempotency_key"]] * 2
    assert [r["status"] for r in rows(db)] == ["sent", "sent"]
    assert rows(db)[0]["last_error"] is None


def test_too_many_requests_waits_for_retry_after(service, db, fake_graph):
    customer_says(service, "oi")
    fake_graph.fail(1, status=429, retry_after=30)

    assert sender.send_due(service, now=T0) == 0
    assert epoch(rows(db)[0]["next_attempt_at"]) == T0 + 30
    assert sender.send_due(service, now=T0 + 29) == 0
    assert sender.send_due(service, now=T0 + 30) == 2


def test_backoff_doubles_up_to_an_hour():
    assert [sender.backoff_s(n) for n in (1, 2, 3, 9)] == [2, 4, 8, 512]
    assert sender.backoff_s(12) == 3600
    assert sender.backoff_s(1, retry_after=120) == 120
    assert sender.backoff_s(1, retry_after=10**9) == 3600


def test_a_rejected_message_fails_and_the_conversation_says_why(service, db, fake_graph):
    conversation_id = customer_says(service, "oi")
    fake_graph.reject(400, "(#131030) Recipient phone number not in allowed list", code=131030)

    assert sender.send_due(service, now=T0) == 1  # the next reply still goes out

    failed = rows(db)[0]
    assert failed["status"] == "failed"
    assert failed["last_error"].startswith("HTTP 400: (#131030) Recipient phone number not in allowed list")
    logged = errors_logged(db, conversation_id)
    assert len(logged) == 1
    assert logged[0].startswith("WhatsApp não entregou a mensagem: HTTP 400")
    assert sender.send_due(service, now=T0 + 86400) == 0
    assert len(fake_graph.requests) == 2


def test_a_message_fails_after_ten_attempts(service, db, fake_graph):
    conversation_id = customer_says(service, "oi")
    fake_graph.fail(50, status=503)
    now = T0
    for _ in range(10):
        sender.send_due(service, now=now)
        now += 3600

    first = rows(db)[0]
    assert (first["status"], first["attempts"]) == ("failed", 10)
    assert sum(r.idempotency_key == first["idempotency_key"] for r in fake_graph.requests) == 10
    assert "10 tentativas" in errors_logged(db, conversation_id)[0]


def test_an_unreachable_api_is_retried(db, clock, fake_graph, sample_flow):
    repo = FlowRepository(db)
    repo.create(sample_flow("boas-vindas"))
    repo.publish("boas-vindas")
    from fake_graph import FakeGraph

    with FakeGraph() as closed:
        dead_base = closed.api_base  # nothing listens here once the block ends
    service = whatsapp_service(db, dead_base, clock)
    customer_says(service, "oi")

    assert sender.send_due(service, now=T0) == 0
    first = rows(db)[0]
    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert "sem resposta" in first["last_error"]

    healed = whatsapp_service(db, fake_graph.api_base, clock)
    assert sender.send_due(healed, now=T0 + 2) == 2


def test_a_request_that_times_out_is_retried_with_the_same_key_and_delivered_once(service, db, fake_graph):
    customer_says(service, "oi")
    fake_graph.hang(1, seconds=1.0)  # Meta accepts, but its answer comes too late
    quick = partial(sender.post_json, timeout=0.2)

    assert sender.send_due(service, now=T0, http=quick) == 0
    assert "timed out" in rows(db)[0]["last_error"]
    assert fake_graph.wait_for_requests(1)  # it did reach the server
    assert sender.send_due(service, now=T0 + 2, http=quick) == 2

    key = rows(db)[0]["idempotency_key"]
    assert [r.idempotency_key for r in fake_graph.requests].count(key) == 2
    assert fake_graph.texts() == [GREETING, MENU]  # the greeting exactly once


def test_a_failed_message_can_be_queued_again(service, db, fake_graph):
    customer_says(service, "oi")
    fake_graph.reject(401, "Invalid OAuth access token.", code=190)
    sender.send_due(service, now=T0)
    failed = rows(db)[0]
    assert failed["status"] == "failed"

    assert sender.retry(service, failed["id"], now=T0 + 60) is True
    assert sender.retry(service, failed["id"], now=T0 + 60) is False
    assert sender.send_due(service, now=T0 + 60) == 1
    assert fake_graph.texts() == [MENU, GREETING]


# -- crashes and several senders --------------------------------------------------------------

def test_a_sender_that_crashed_after_posting_is_replaced_with_the_same_key(service, db, fake_graph):
    customer_says(service, "oi")
    claims = sender.claim_due(service, now=T0)
    assert len(claims) == 1  # the conversation's oldest message only
    claim = sender.mark_sending(service, claims[0], now=T0)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
               "Idempotency-Key": claim.idempotency_key}
    import json

    sender.post_json(sender.messages_url(service.settings), headers,
                     json.dumps(message_body(claim.payload)).encode())
    # ...and the process dies before recording "sent".
    assert rows(db)[0]["status"] == "sending"

    assert sender.send_due(service, now=T0 + 30) == 0  # its lease is still running
    assert len(fake_graph.requests) == 1
    assert sender.send_due(service, now=T0 + sender.LEASE_S + 1) == 2

    assert [r.idempotency_key for r in fake_graph.requests[:2]] == [claim.idempotency_key] * 2
    assert fake_graph.texts() == [GREETING, MENU]
    assert [(r["status"], r["attempts"]) for r in rows(db)] == [("sent", 2), ("sent", 1)]


def test_a_sender_that_crashed_before_posting_is_replaced_and_the_message_sent_once(service, db, fake_graph):
    customer_says(service, "oi")
    sender.claim_due(service, now=T0)  # claimed, then the process died

    assert sender.send_due(service, now=T0 + sender.LEASE_S) == 2
    assert fake_graph.texts() == [GREETING, MENU]
    assert len(fake_graph.requests) == 2


def test_a_row_that_keeps_crashing_its_sender_fails_in_the_end(service, db, fake_graph):
    conversation_id = customer_says(service, "oi")
    with db.begin() as conn:
        conn.execute(update(outbox).values(attempts=sender.MAX_ATTEMPTS))
    assert sender.send_due(service, now=T0) == 0
    assert rows(db)[0]["status"] == "failed"
    assert errors_logged(db, conversation_id)


def test_each_conversation_gets_its_messages_in_order(service, db, fake_graph):
    for n in range(5):
        customer_says(service, "oi", wa_id=f"55119000000{n:02d}", name=f"Cliente {n}")

    assert sender.send_due(service, now=T0) == 10

    by_contact: dict[str, list[str]] = {}
    for request in fake_graph.delivered:
        body = request.json
        text = body["text"]["body"] if body["type"] == "text" else body["interactive"]["body"]["text"]
        by_contact.setdefault(body["to"], []).append(text)
    assert len(by_contact) == 5
    assert all(texts[0].startswith("Olá, Cliente") and texts[1] == MENU for texts in by_contact.values())


def test_send_due_respects_its_batch_size(service, db, fake_graph):
    for n in range(3):
        customer_says(service, "oi", wa_id=f"55119000000{n:02d}")
    assert sender.send_due(service, now=T0, batch=4) == 4
    assert sender.send_due(service, now=T0, batch=4) == 2


def test_two_senders_at_once_send_every_message_exactly_once(db_url, db, clock, fake_graph, sample_flow):
    repo = FlowRepository(db)
    repo.create(sample_flow("boas-vindas"))
    repo.publish("boas-vindas")
    first = whatsapp_service(make_test_engine(db_url), fake_graph.api_base, clock)
    second = whatsapp_service(make_test_engine(db_url), fake_graph.api_base, clock)
    for n in range(12):
        customer_says(first, "oi", wa_id=f"55119000001{n:02d}")

    barrier = threading.Barrier(2)
    counts, problems = [], []

    def run(service):
        try:
            barrier.wait()
            counts.append(sender.send_due(service, now=T0, batch=100))
        except Exception as exc:  # pragma: no cover - reported below
            problems.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert problems == []
    assert sum(counts) == 24
    keys = [r.idempotency_key for r in fake_graph.requests]
    assert len(keys) == len(set(keys)) == 24  # no message was even attempted twice
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.status == "sent")).scalar() == 24


def test_nothing_is_claimed_while_whatsapp_is_not_configured(db, clock, fake_graph, sample_flow):
    repo = FlowRepository(db)
    repo.create(sample_flow("boas-vindas"))
    repo.publish("boas-vindas")
    service = whatsapp_service(db, fake_graph.api_base, clock, whatsapp_token=None)
    customer_says(service, "oi")

    assert sender.send_due(service, now=T0) == 0
    assert [(r["status"], r["attempts"]) for r in rows(db)] == [("pending", 0), ("pending", 0)]
    assert fake_graph.requests == []


# -- message bodies (no database) -------------------------------------------------------------

def body_of(text: str, buttons: list[str]) -> dict:
    return message_body({"to": WA_ID, "text": text, "buttons": buttons, "message_id": 1})


def test_plain_text_body():
    assert body_of("Oi!", []) == {"messaging_product": "whatsapp", "recipient_type": "individual",
                                  "to": WA_ID, "type": "text", "text": {"body": "Oi!"}}


def test_one_to_three_buttons_are_reply_buttons_with_titles_of_20_characters():
    body = body_of("Escolha", ["Sim", "Quero falar com a equipe de vendas"])
    assert body["type"] == "interactive"
    assert body["interactive"]["type"] == "button"
    assert body["interactive"]["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": "b1", "title": "Sim"}},
        {"type": "reply", "reply": {"id": "b2", "title": "Quero falar com a eq"}}]


def test_four_to_ten_buttons_are_a_list_message():
    labels = ["Segunda-feira", "Terça-feira", "Quarta-feira", "Quinta-feira de manhã cedinho"]
    body = body_of("Qual dia?", labels)
    interactive = body["interactive"]
    assert interactive["type"] == "list"
    # a label was cut to its title: the body lists every whole label (issue 16)
    assert interactive["body"] == {"text": "Qual dia?\n\n1. Segunda-feira\n2. Terça-feira\n"
                                           "3. Quarta-feira\n4. Quinta-feira de manhã cedinho"}
    assert interactive["action"]["button"] == "Opções"
    rows_ = interactive["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows_] == ["b1", "b2", "b3", "b4"]
    assert rows_[3]["title"] == "Quinta-feira de manhã ce"
    assert len(rows_[3]["title"]) == 24
    assert rows_[3]["description"] == "Quinta-feira de manhã cedinho"
    assert "description" not in rows_[0]


def test_more_choices_than_whatsapp_allows_become_a_numbered_text():
    labels = [f"Opção {n}" for n in range(1, 12)]
    body = body_of("Escolha:", labels)
    assert body["type"] == "text"
    assert body["text"]["body"].startswith("Escolha:\n\n1. Opção 1\n2. Opção 2")
    assert body["text"]["body"].endswith("11. Opção 11")


def test_titles_that_collide_once_shortened_become_a_numbered_text():
    body = body_of("Com quem?", ["Quero falar com a equipe A", "Quero falar com a equipe B"])
    assert body["type"] == "text"
    assert "1. Quero falar com a equipe A\n2. Quero falar com a equipe B" in body["text"]["body"]


def test_a_text_too_long_for_buttons_keeps_its_options_as_numbers():
    body = body_of("x" * 1500, ["Sim", "Não"])
    assert body["type"] == "text"
    assert body["text"]["body"].endswith("1. Sim\n2. Não")


def test_one_outbox_job_sends_every_due_reply_not_just_one_batch(db, fake_graph, clock, sample_flow):
    from engine.worker import Worker

    repo = FlowRepository(db)
    repo.create(sample_flow("boas-vindas"))
    repo.publish("boas-vindas")
    service = whatsapp_service(db, fake_graph.api_base, clock)
    for n in range(40):  # 40 customers, two replies each: more than one batch of 50
        customer_says(service, "oi", wa_id=f"55119876{n:05d}")

    assert Worker(service).send_outbox() == 80
    assert len(fake_graph.delivered) == 80
    assert {r["status"] for r in rows(db)} == {"sent"}


# -- rounds: a batch sent in parallel, settled in one transaction ------------------------------

def _texts_by_recipient(requests) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for request in requests:
        body = request.json
        text = body["text"]["body"] if body["type"] == "text" else body["interactive"]["body"]["text"]
        found.setdefault(body["to"], []).append(text)
    return found


def _queued_texts(db) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in rows(db):
        found.setdefault(row["payload"]["to"], []).append(row["payload"]["text"])
    return found


def test_a_burst_of_replies_costs_a_few_transactions_not_one_per_reply(service, db, fake_graph):
    from sqlalchemy import event

    for n in range(30):  # 30 conversations, three replies each
        customer_says(service, "oi", 1, wa_id=f"55119700{n:05d}", name=f"Cliente {n}")
        customer_says(service, "Ver produtos", 2, wa_id=f"55119700{n:05d}", name=f"Cliente {n}")
    queued = _queued_texts(db)
    assert len(queued) == 30 and {len(texts) for texts in queued.values()} == {3}
    commits = []

    def count(_conn):
        commits.append(1)

    event.listen(db, "commit", count)
    try:
        sent = 0
        while True:  # as the worker's outbox job does: batch after batch
            done = sender.send_due(service, now=T0)
            sent += done
            if not done:
                break
    finally:
        event.remove(db, "commit", count)
    assert sent == 90
    assert len(commits) <= 10, len(commits)  # a few per batch, not one or two per reply
    keys = [r.idempotency_key for r in fake_graph.requests]
    assert len(keys) == len(set(keys)) == 90  # each reply sent once
    assert _texts_by_recipient(fake_graph.delivered) == queued  # in order in each conversation
    assert {(r["status"], r["attempts"]) for r in rows(db)} == {("sent", 1)}
    with db.connect() as conn:  # each message knows its wamid
        from engine.store import messages

        wamids = list(conn.execute(select(messages.c.external_id).where(messages.c.direction == "out")).scalars())
    assert len(wamids) == 90 and all(w.startswith("wamid.FAKE") for w in wamids)


def test_a_failure_in_a_round_only_holds_back_its_own_conversation(service, db, fake_graph):
    for n in range(6):
        customer_says(service, "oi", 1, wa_id=f"55119800{n:05d}", name=f"Cliente {n}")
        customer_says(service, "Ver produtos", 2, wa_id=f"55119800{n:05d}", name=f"Cliente {n}")
    victim = "5511980000003"
    tries = []

    def flaky(url, headers, body):
        import json

        if json.loads(body)["to"] == victim:
            tries.append(headers["Idempotency-Key"])
            raise OSError("conexão recusada")
        return sender.post_json(url, headers, body)

    assert sender.send_due(service, now=T0, http=flaky) == 15  # the five others, in full
    assert len(tries) == 1  # the victim's first message, once; its next ones wait behind it
    victim_rows = [r for r in rows(db) if r["payload"]["to"] == victim]
    assert [(r["status"], r["attempts"]) for r in victim_rows] == [("pending", 1), ("pending", 0), ("pending", 0)]
    assert "conexão recusada" in victim_rows[0]["last_error"]
    assert all(r["status"] == "sent" for r in rows(db) if r["payload"]["to"] != victim)

    assert sender.send_due(service, now=T0 + 1) == 0  # not due before its backoff
    assert sender.send_due(service, now=T0 + 3) == 3
    queued = _queued_texts(db)
    assert _texts_by_recipient(fake_graph.delivered)[victim] == queued[victim]
    assert rows(db)[[r["payload"]["to"] for r in rows(db)].index(victim)]["idempotency_key"] == tries[0]


# -- the keep-alive transport ----------------------------------------------------------------------

class _CountingServer:
    """A local HTTP/1.1 server counting the TCP connections it accepts; ``drop_idle``: it
    closes each connection after answering, without saying so (as a server ending an idle
    keep-alive connection does)."""

    def __init__(self, drop_idle: bool = False):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        counter = self
        self.connections = 0
        self.requests = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes

            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                counter.requests.append((self.headers["Idempotency-Key"], body))
                answer = b'{"messages": [{"id": "wamid.K%d"}]}' % len(counter.requests)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                self.wfile.flush()
                self.close_connection = drop_idle

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                counter.connections += 1
                return super().get_request()

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v21.0/1/messages"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_keep_alive_transport_sends_every_request_on_one_connection():
    server = _CountingServer()
    transport = sender.KeepAlive(timeout=5)
    try:
        answers = [transport(server.url, {"Content-Type": "application/json", "Idempotency-Key": f"k{n}"},
                             b'{"n": %d}' % n) for n in range(5)]
    finally:
        transport.close()
        server.close()
    assert [a.status for a in answers] == [200] * 5
    assert [sender._wamid(a.body) for a in answers] == [f"wamid.K{n}" for n in range(1, 6)]
    assert [key for key, _ in server.requests] == [f"k{n}" for n in range(5)]
    assert server.connections == 1


def test_the_keep_alive_transport_reconnects_once_when_the_server_closed_the_connection():
    server = _CountingServer(drop_idle=True)
    transport = sender.KeepAlive(timeout=5)
    try:
        first = transport(server.url, {"Idempotency-Key": "k1"}, b"{}")
        second = transport(server.url, {"Idempotency-Key": "k2"}, b"{}")
    finally:
        transport.close()
        server.close()
    assert (first.status, second.status) == (200, 200)
    assert [key for key, _ in server.requests] == ["k1", "k2"]  # each answered once
    assert server.connections == 2


def test_send_due_reuses_the_connection_across_rounds(db, clock, sample_flow):
    repo = FlowRepository(db)
    repo.create(sample_flow("boas-vindas"))
    repo.publish("boas-vindas")
    server = _CountingServer()
    service = whatsapp_service(db, server.url.rsplit("/1/messages", 1)[0], clock)
    customer_says(service, "oi")  # two replies: two rounds of one request
    try:
        assert sender.send_due(service, now=T0, threads=1, http=sender.KeepAlive(timeout=5)) == 2
    finally:
        server.close()
    assert len(server.requests) == 2 and server.connections == 1


def test_a_round_that_runs_long_hands_back_what_it_has_not_started(service, db, fake_graph):
    import time

    for n in range(3):
        customer_says(service, "oi", wa_id=f"55119900{n:05d}", name=f"Cliente {n}")

    def slow(url, headers, body):
        time.sleep(1.2)  # longer than the part of a 2 s lease a request may start in (1 s)
        return sender.post_json(url, headers, body)

    assert sender.send_due(service, now=T0, http=slow, threads=1, lease_s=2.0) == 1
    firsts = [r for r in rows(db) if r["payload"]["text"].startswith("Olá")]
    # the two not started are due again at once, their attempt not counted
    assert sorted((r["status"], r["attempts"]) for r in firsts) == [("pending", 0), ("pending", 0), ("sent", 1)]
    assert len(fake_graph.requests) == 1

    assert sender.send_due(service, now=T0, lease_s=60) == 5
    assert len(fake_graph.requests) == 6 and {r["status"] for r in rows(db)} == {"sent"}


def test_marking_sent_can_claim_the_conversation_s_next_message(service, db, fake_graph):
    conversation_id = customer_says(service, "oi")
    customer_says(service, "oi", wa_id="5511900000077", name="Bia")  # another conversation

    assert sender.claim_due(service, now=T0, conversation_id=conversation_id + 999) == []
    first = sender.claim_due(service, now=T0, batch=1, conversation_id=conversation_id)
    assert len(first) == 1 and first[0].conversation_id == conversation_id
    assert first[0].last_inbound_at is not None  # the window comes with the claim
    following = sender.mark_sent(service, first[0], now=T0, wamid="wamid.X1", then_claim=True)

    assert following is not None and following.conversation_id == conversation_id
    assert following.counted and following.attempts == 1
    mine = [r for r in rows(db) if r["conversation_id"] == conversation_id]
    assert [(r["status"], r["payload"].get("wamid")) for r in mine] == [("sent", "wamid.X1"), ("sending", None)]
    assert sender.mark_sent(service, following, now=T0, then_claim=True) is None  # nothing after it
