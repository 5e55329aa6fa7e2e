"""Debounce (DESIGN §10.3, §10.6): one answer per burst of customer messages (both databases).

The service runs on a fake clock; timers fire through the worker (``Worker.run_once``), the
way ``papo worker`` does, or through two real worker processes for "exactly once".
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from click.testing import CliRunner
from conftest import ROOT, make_test_engine
from sqlalchemy import func, select

from editor.cli import main as papo
from engine.db import create_schema
from engine.flows import FlowRepository
from engine.service import Service
from engine.settings import Settings, SettingsError
from engine.store import messages, outbox, timers
from engine.worker import Worker

T0 = 1_800_000_000.0
WHO = "5511999990000"


def block(block_id: str, kind: str, **data) -> dict:
    return {"id": block_id, "type": kind, "position": {"x": 0, "y": 0}, "data": data}


def flow_doc(flow_id: str, blocks: list[dict], edges: list[tuple[str, str, str]]) -> dict:
    return {"schema_version": 1, "id": flow_id, "name": flow_id.title(),
            "triggers": [{"type": "default"}], "start": blocks[0]["id"], "blocks": blocks,
            "edges": [{"from": a, "port": port, "to": b} for a, port, b in edges]}


# Every burst that reaches it is answered with one greeting.
GREETING = flow_doc("saudacao", [block("m", "message", text="Oi! Como posso ajudar?")], [])

ORDER = flow_doc("pedido", [
    block("q", "question", text="O que você quer pedir?", input="text", save_as="pedido"),
    block("ok", "message", text="Anotado: {{ pedido }}"),
], [("q", "answered", "ok")])

MENU = flow_doc("menu", [
    block("q", "question", text="Pizza ou lanche?", input="choice", save_as="escolha",
          options=[{"id": "pizza", "label": "Pizza"}, {"id": "lanche", "label": "Lanche"}],
          invalid_text="Responda 1 ou 2."),
    block("pizza", "message", text="Uma pizza saindo!"),
    block("lanche", "message", text="Um lanche saindo!"),
], [("q", "pizza", "pizza"), ("q", "lanche", "lanche")])


@pytest.fixture
def clock() -> list[float]:
    return [T0]


def make_service(db, clock, flow: dict | None, seconds: float = 2) -> Service:
    if flow is not None:
        repo = FlowRepository(db)
        repo.create(flow)
        repo.publish(flow["id"])
    return Service(db, Settings(debounce_seconds=seconds), clock=lambda: clock[0])


class Customer:
    """A customer on a channel, with numbered message ids."""

    def __init__(self, service: Service, channel: str = "web", who: str = WHO):
        self.service, self.channel, self.who, self.sent = service, channel, who, 0

    def says(self, text: str) -> dict:
        self.sent += 1
        return self.service.handle_inbound(self.channel, {"external_id": self.who, "name": "Ana"},
                                           {"id": f"m-{self.who}-{self.sent}", "text": text})


def bot_texts(service: Service, conversation_id: int) -> list[str]:
    conv = service.get_conversation(conversation_id)
    return [m["text"] for m in conv["messages"] if m["author"] == "bot"]


def debounce_rows(db, conversation_id: int) -> list[str]:
    """Every debounce timer row the conversation ever had (statuses)."""
    with db.connect() as conn:
        return list(conn.execute(select(timers.c.status).where(
            timers.c.conversation_id == conversation_id, timers.c.kind == "debounce")
            .order_by(timers.c.id)).scalars())


# -- one answer per burst ------------------------------------------------------------------

def test_three_messages_in_a_burst_get_one_answer_to_their_joined_text(db, clock):
    service = make_service(db, clock, ORDER)
    worker = Worker(service)
    ana = Customer(service)
    conv = ana.says("oi")["conversation_id"]
    clock[0] = T0 + 1
    assert ana.says("tudo bem?")["replies"] == []
    clock[0] = T0 + 2.5
    assert ana.says("quero pedir")["replies"] == []

    # stored at once: the inbox shows the three messages while the bot waits
    shown = service.get_conversation(conv)
    assert [m["text"] for m in shown["messages"]] == ["oi", "tudo bem?", "quero pedir"]
    assert [(t["kind"], t["due_at"]) for t in shown["timers"]] == [("debounce", "2027-01-15T08:00:04Z")]

    clock[0] = T0 + 4.4
    assert worker.run_once() == 0  # still within the quiet time after the newest message
    clock[0] = T0 + 4.5
    assert worker.run_once() == 1
    assert bot_texts(service, conv) == ["O que você quer pedir?"]
    assert debounce_rows(db, conv) == ["fired"]  # one row for the burst, moved twice

    # the next burst answers the question: the variable holds the lines joined
    clock[0] = T0 + 10
    ana.says("uma pizza grande")
    clock[0] = T0 + 11
    ana.says("sem cebola")
    clock[0] = T0 + 13
    assert worker.run_once() == 1
    assert bot_texts(service, conv)[-1] == "Anotado: uma pizza grande\nsem cebola"
    assert service.get_conversation(conv)["variables"] == {"pedido": "uma pizza grande\nsem cebola"}
    assert debounce_rows(db, conv) == ["fired", "fired"]
    clock[0] = T0 + 60
    assert worker.run_once() == 0  # answered once, never again


def test_a_slow_sender_gets_an_answer_to_each_message(db, clock):
    service = make_service(db, clock, GREETING)
    worker = Worker(service)
    ana = Customer(service)
    conv = ana.says("oi")["conversation_id"]
    for n, text in enumerate(["tudo bem?", "quero pedir"], start=1):
        clock[0] = T0 + 5 * n
        assert worker.run_once() == 1  # the previous message's quiet time is over
        ana.says(text)
    clock[0] = T0 + 15
    assert worker.run_once() == 1
    assert bot_texts(service, conv) == ["Oi! Como posso ajudar?"] * 3
    assert debounce_rows(db, conv) == ["fired"] * 3


def test_a_message_after_a_late_timer_gets_the_earlier_burst_answered_first(db, clock):
    service = make_service(db, clock, GREETING)
    ana = Customer(service)
    conv = ana.says("oi")["conversation_id"]
    clock[0] = T0 + 30  # no worker ran: the burst is over but unanswered
    assert ana.says("alô?")["replies"] == [{"text": "Oi! Como posso ajudar?", "buttons": []}]
    assert bot_texts(service, conv) == ["Oi! Como posso ajudar?"]
    # the new message is a burst of its own, with a timer row of its own
    assert debounce_rows(db, conv) == ["cancelled", "pending"]
    clock[0] = T0 + 32
    assert Worker(service).run_once() == 1
    assert bot_texts(service, conv) == ["Oi! Como posso ajudar?"] * 2


def test_a_long_burst_is_answered_at_most_three_times_the_setting_after_its_first_message(db, clock):
    service = make_service(db, clock, GREETING)
    worker = Worker(service)
    ana = Customer(service)
    conv = ana.says("oi")["conversation_id"]
    for n in range(1, 4):  # a message every 1.5 s: never 2 s of quiet
        clock[0] = T0 + 1.5 * n
        assert worker.run_once() == 0
        ana.says(f"linha {n}")
    assert service.get_conversation(conv)["timers"][0]["due_at"] == "2027-01-15T08:00:06Z"  # T0 + 6
    clock[0] = T0 + 6
    assert worker.run_once() == 1
    assert bot_texts(service, conv) == ["Oi! Como posso ajudar?"]
    assert debounce_rows(db, conv) == ["fired"]
    clock[0] = T0 + 6.5  # the message after the cap starts a new burst
    ana.says("linha 6")
    assert [t["kind"] for t in service.get_conversation(conv)["timers"]] == ["debounce"]


def test_a_choice_question_takes_the_first_line_that_picks_an_option(db, clock):
    service = make_service(db, clock, MENU)
    worker = Worker(service)
    ana = Customer(service)
    conv = ana.says("oi")["conversation_id"]
    clock[0] = T0 + 3
    worker.run_once()
    assert bot_texts(service, conv) == ["Pizza ou lanche?"]
    for n, text in enumerate(["deixa eu ver", "2", "não, 1"], start=1):
        clock[0] = T0 + 3 + n * 0.5
        ana.says(text)
    clock[0] = T0 + 10
    assert worker.run_once() == 1
    assert bot_texts(service, conv) == ["Pizza ou lanche?", "Um lanche saindo!"]
    assert service.get_conversation(conv)["variables"]["escolha"] == "Lanche"


def test_a_burst_with_no_option_counts_as_one_invalid_answer(db, clock):
    service = make_service(db, clock, MENU)
    worker = Worker(service)
    ana = Customer(service)
    conv = ana.says("oi")["conversation_id"]
    clock[0] = T0 + 3
    worker.run_once()
    ana.says("hmm")
    clock[0] = T0 + 4
    ana.says("não sei")
    clock[0] = T0 + 6
    assert worker.run_once() == 1
    # one invalid answer (the invalid text, the question again), not one per message
    assert bot_texts(service, conv) == ["Pizza ou lanche?", "Responda 1 ou 2.", "Pizza ou lanche?"]


# -- what does not wait ----------------------------------------------------------------------

def test_a_request_for_a_human_does_not_wait_and_drops_the_burst(db, clock):
    service = make_service(db, clock, GREETING)
    ana = Customer(service)
    conv = ana.says("oi")["conversation_id"]
    clock[0] = T0 + 1
    ana.says("quero falar com atendente")
    shown = service.get_conversation(conv)
    assert shown["status"] == "open"  # at once, not after the quiet time
    assert shown["timers"] == []
    assert debounce_rows(db, conv) == ["cancelled"]
    clock[0] = T0 + 60
    assert Worker(service).run_once() == 0
    assert bot_texts(service, conv) == []  # the person who takes it reads "oi" in the inbox


def test_messages_to_an_open_conversation_are_stored_and_wait_for_no_timer(db, clock):
    service = make_service(db, clock, GREETING)
    ana = Customer(service)
    conv = ana.says("oi")["conversation_id"]
    clock[0] = T0 + 1
    service.act(conv, "open", "bruno")  # a person takes it before the burst is answered
    assert debounce_rows(db, conv) == ["cancelled"]
    clock[0] = T0 + 2
    ana.says("tudo bem?")
    ana.says("quero pedir")
    shown = service.get_conversation(conv)
    assert shown["timers"] == [] and debounce_rows(db, conv) == ["cancelled"]
    assert [m["text"] for m in shown["messages"]] == ["oi", "tudo bem?", "quero pedir"]
    clock[0] = T0 + 30
    service.act(conv, "conclude", "bruno")
    assert Worker(service).run_once() == 0
    assert bot_texts(service, conv) == []  # nothing said before the person came is answered late


def test_the_api_channel_is_not_debounced(db, clock):
    service = make_service(db, clock, GREETING)
    ana = Customer(service, channel="api")
    assert ana.says("oi")["replies"] == [{"text": "Oi! Como posso ajudar?", "buttons": []}]
    conv = ana.says("tudo bem?")["conversation_id"]
    assert bot_texts(service, conv) == ["Oi! Como posso ajudar?"] * 2
    assert debounce_rows(db, conv) == []


def test_whatsapp_is_debounced_and_the_answer_goes_to_the_outbox_once(db, clock):
    service = make_service(db, clock, GREETING)
    ana = Customer(service, channel="whatsapp")
    conv = ana.says("oi")["conversation_id"]
    ana.says("bom dia")
    assert outbox_texts(db, conv) == []  # nothing queued for WhatsApp while the bot waits
    clock[0] = T0 + 2
    assert Worker(service).run_once() == 1
    assert bot_texts(service, conv) == ["Oi! Como posso ajudar?"]
    assert outbox_texts(db, conv) == ["Oi! Como posso ajudar?"]


def outbox_texts(db, conversation_id: int) -> list[str]:
    with db.connect() as conn:
        return [p["text"] for p in conn.execute(select(outbox.c.payload).where(
            outbox.c.conversation_id == conversation_id).order_by(outbox.c.id)).scalars()]


def test_a_redelivered_message_joins_the_burst_once(db, clock):
    service = make_service(db, clock, ORDER)
    ana = Customer(service)
    conv = ana.says("oi")["conversation_id"]
    clock[0] = T0 + 3
    Worker(service).run_once()
    ana.says("pizza")
    ana.sent -= 1
    ana.says("pizza")  # the channel delivers the same message id again
    clock[0] = T0 + 6
    Worker(service).run_once()
    assert bot_texts(service, conv)[-1] == "Anotado: pizza"


def test_off_by_default_every_message_is_answered_at_once(db, clock):
    service = make_service(db, clock, GREETING, seconds=0)
    ana = Customer(service)
    assert ana.says("oi")["replies"] == [{"text": "Oi! Como posso ajudar?", "buttons": []}]


# -- exactly once ----------------------------------------------------------------------------

def test_a_timer_moved_after_a_worker_claimed_it_fires_once_at_its_new_time(db, clock):
    service = make_service(db, clock, GREETING)
    ana = Customer(service)
    conv = ana.says("oi")["conversation_id"]
    early = Worker(service, worker_id="a")
    claimed = early.claim(now=T0 + 2)  # the worker's clock is a little ahead of the web's
    assert len(claimed) == 1
    clock[0] = T0 + 1.99
    ana.says("tudo bem?")  # moves the timer to T0 + 3.99 and frees it from the claim
    assert service.fire_timers(claimed, T0 + 2)[0]["fired"] is False
    assert bot_texts(service, conv) == []
    clock[0] = T0 + 3.99
    assert Worker(service, worker_id="b").run_once() == 1  # not held by a's lease
    assert bot_texts(service, conv) == ["Oi! Como posso ajudar?"]
    assert debounce_rows(db, conv) == ["fired"]


def test_a_message_racing_the_firing_of_its_burst_is_answered_once(db_url, clock):
    """A worker fires a due burst while the next message arrives, from two connections:
    whoever writes first, the due burst is answered once and the new message once."""
    db = make_test_engine(db_url)
    create_schema(db)
    make_service(db, clock, GREETING)
    writer = Service(make_test_engine(db_url), Settings(debounce_seconds=2), clock=lambda: clock[0])
    firer = Service(make_test_engine(db_url), Settings(debounce_seconds=2), clock=lambda: clock[0])
    ana = Customer(writer)
    conv = ana.says("oi")["conversation_id"]
    rounds = 8
    for round_ in range(rounds):
        clock[0] += 2.0005  # the burst is due: the firing and the next message race
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def fire(barrier=barrier, errors=errors):
            try:
                barrier.wait()
                Worker(firer).run_once()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=fire)
        thread.start()
        barrier.wait()
        ana.says(f"mais {round_}")
        thread.join()
        assert not errors, errors
    clock[0] += 10
    Worker(firer).run_once()
    assert writer.get_conversation(conv)["timers"] == []
    assert bot_texts(writer, conv) == ["Oi! Como posso ajudar?"] * (rounds + 1)
    assert debounce_rows(db, conv).count("pending") == 0


WORKER_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from sqlalchemy import func, select
    from engine.db import make_engine
    from engine.service import Service
    from engine.settings import Settings
    from engine.store import timers
    from engine.worker import Worker

    db = make_engine(os.environ["URL"])
    worker = Worker(Service(db, Settings()), worker_id=sys.argv[1], batch=20)
    while True:
        fired = worker.run_once()
        with db.connect() as conn:
            left = conn.execute(select(func.count()).select_from(timers)
                                .where(timers.c.status == "pending")).scalar()
        if not left:
            break
        if not fired:
            time.sleep(0.05)
""")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_worker_processes_answer_each_burst_exactly_once(kind, tmp_path, request):
    if kind == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'papo.db'}"
    db = make_test_engine(url)
    create_schema(db)
    count = 100
    start = time.time() - 60  # the bursts are over: every timer is due
    now = [start]
    service = make_service(db, now, GREETING)
    for n in range(count):
        customer = Customer(service, who=f"55119{n:08d}")
        for text in ("oi", "tudo bem?", "quero pedir"):
            customer.says(text)
            now[0] += 0.01
    with db.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(timers)).scalar()
    assert rows == count  # one timer row per burst
    env = {**os.environ, "URL": url, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, name], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("worker-a", "worker-b")]
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
    with db.connect() as conn:
        per_conversation = conn.execute(
            select(messages.c.conversation_id, func.count()).where(messages.c.author == "bot")
            .group_by(messages.c.conversation_id)).all()
        statuses = dict(conn.execute(select(timers.c.status, func.count()).group_by(timers.c.status)).all())
    assert len(per_conversation) == count
    assert {n for _, n in per_conversation} == {1}  # one answer each, never two
    assert statuses == {"fired": count}


# -- settings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["31", "-1", "dois", "nan", "inf", "1e3"])
def test_a_bad_debounce_setting_is_refused_in_both_languages(value):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"PAPO_DEBOUNCE_SECONDS": value})
    message = str(raised.value)
    assert "PAPO_DEBOUNCE_SECONDS" in message
    assert "de 0 a 30 segundos" in message and "must be 0 to 30 seconds" in message


@pytest.mark.parametrize(("value", "seconds"), [("", 0), ("0", 0), ("2", 2), ("2,5", 2.5), ("30", 30)])
def test_good_debounce_settings_are_read(value, seconds):
    assert Settings.from_env({"PAPO_DEBOUNCE_SECONDS": value}).debounce_seconds == seconds


@pytest.mark.parametrize("command", [["worker", "--once"], ["serve"], ["timers", "list"]])
def test_a_bad_debounce_setting_stops_start_up(command, tmp_path):
    result = CliRunner().invoke(papo, command, env={
        "PAPO_DEBOUNCE_SECONDS": "45", "PAPO_DATABASE_URL": f"sqlite:///{tmp_path / 'papo.db'}",
        "PAPO_INSTANCE_PATH": str(tmp_path), "PAPO_AUTO_CONCLUDE_AFTER": None,
        "PAPO_DEDUP_RETENTION": None}, catch_exceptions=False)
    assert result.exit_code != 0
    assert "PAPO_DEBOUNCE_SECONDS" in result.output and "30" in result.output
    assert "Traceback" not in result.output and "started" not in result.output


# -- papo chat and flow tests are not debounced ---------------------------------------------------

def test_papo_chat_answers_at_once_with_debounce_on(tmp_path):
    path = tmp_path / "saudacao.json"
    import json

    path.write_text(json.dumps(GREETING), encoding="utf-8")
    result = CliRunner().invoke(papo, ["chat", str(path), "--jsonl"], input="oi\ntudo bem?\n/quit\n",
                                env={"PAPO_DEBOUNCE_SECONDS": "5"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.count('"Oi! Como posso ajudar?"') == 2


def test_flow_tests_run_without_debounce(db, monkeypatch):
    from engine.flowtests import run_tests

    monkeypatch.setenv("PAPO_DEBOUNCE_SECONDS", "5")
    doc = {**GREETING, "tests": [{"name": "duas", "steps": [
        {"say": "oi"}, {"expect": "Oi! Como posso ajudar?"},
        {"say": "tudo bem?"}, {"expect": "Oi! Como posso ajudar?"}]}]}
    results = run_tests(doc)
    assert [r.passed for r in results] == [True], results


# -- the simulator pane (its "Avançar tempo" fires the burst) ----------------------------------

PASSWORD = "uma senha bem longa"


@pytest.fixture
def pane(db_url, tmp_path, sample_flow):
    """A logged-in admin's client on an app with PAPO_DEBOUNCE_SECONDS=30 (long enough
    that the pane's running clock never ends a burst between two requests)."""
    from editor import create_app
    from editor.app import get_engine
    from engine import accounts

    app = create_app({"PAPO_DATABASE_URL": db_url, "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
                      "PAPO_DEBOUNCE_SECONDS": "30", "TESTING": True, "SECRET_KEY": "test",
                      "WTF_CSRF_ENABLED": False})
    engine = get_engine(app)
    create_schema(engine)
    accounts.create_user(engine, "ana", "admin", password=PASSWORD, name="Ana")
    FlowRepository(engine).create(sample_flow("boas-vindas"), actor="ana")
    client = app.test_client()
    assert client.post("/login", data={"login": "ana", "password": PASSWORD}).status_code == 302
    yield client
    engine.dispose()


def pane_post(client, action: str, **data) -> str:
    response = client.post(f"/flows/boas-vindas/simulator/{action}", data=data,
                           headers={"HX-Request": "true"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def bubbles(html: str, kind: str) -> list[str]:
    from html import unescape

    found = re.findall(rf'<li class="sim-msg {kind}">.*?<div class="sim-text">(.*?)</div>', html, re.S)
    return [unescape(text).strip() for text in found]


def test_the_simulator_pane_holds_a_burst_until_advance_time(pane):
    pane_post(pane, "send", text="oi")
    html = pane_post(pane, "send", text="tudo bem?")
    assert bubbles(html, "sim-msg-customer") == ["oi", "tudo bem?"]
    assert bubbles(html, "sim-msg-bot") == []
    assert 'data-status="debounce"' in html
    assert "Juntando as mensagens do cliente" in html and "Avançar tempo" in html

    html = pane_post(pane, "advance")
    bot = bubbles(html, "sim-msg-bot")
    assert bot[0] == "Olá, Ana! 👋 Bem-vindo(a) à Loja da Ana."  # one answer to the burst
    assert len(bot) == 2 and bot[1].startswith("Como posso te ajudar hoje?")
    assert re.search(r"⏩ \d+ s depois", html)  # the quiet time skipped (the pane's clock runs)

    # a burst at the menu: the first line that picks an option answers it
    pane_post(pane, "send", text="hmm")
    pane_post(pane, "send", text="2")
    html = pane_post(pane, "advance")
    assert bubbles(html, "sim-msg-customer") == ["oi", "tudo bem?", "hmm", "2"]
    assert 'data-current-block="menu"' not in html
    assert "Não entendi" not in html


def test_the_simulator_pane_status_reads_in_english(pane):
    pane_post(pane, "send", text="oi")
    from html import unescape

    response = pane.get("/flows/boas-vindas/simulator?lang=en", headers={"HX-Request": "true"})
    assert "Gathering the customer's messages" in unescape(response.get_data(as_text=True))


def test_a_keyword_trigger_matches_one_line_of_a_burst(db, clock):
    keyword = {**GREETING, "id": "cardapio", "triggers": [{"type": "keyword", "match": "exact",
                                                           "value": "cardápio"}],
               "blocks": [block("m", "message", text="Nosso cardápio: pizza e lanche.")]}
    service = make_service(db, clock, keyword)
    ana = Customer(service)
    conv = ana.says("boa noite")["conversation_id"]
    clock[0] = T0 + 1
    ana.says("cardapio")
    clock[0] = T0 + 3
    assert Worker(service).run_once() == 1
    assert bot_texts(service, conv) == ["Nosso cardápio: pizza e lanche."]


def test_papo_timers_lists_the_burst_and_cancelling_it_strands_nothing(db, db_url, clock):
    service = make_service(db, clock, GREETING)
    ana = Customer(service)
    conv = ana.says("oi")["conversation_id"]
    ana.says("tudo bem?")
    env = {"PAPO_DATABASE_URL": db_url, "PAPO_AUTO_CONCLUDE_AFTER": None, "PAPO_DEDUP_RETENTION": None,
           "PAPO_DEBOUNCE_SECONDS": "2"}
    listed = CliRunner().invoke(papo, ["timers", "list"], env=env, catch_exceptions=False)
    [row] = listed.output.splitlines()[1:]
    assert row.split()[1:] == [str(conv), "debounce", "2027-01-15T08:00:02Z"]
    cancelled = CliRunner().invoke(papo, ["timers", "cancel", row.split()[0]], env=env, catch_exceptions=False)
    assert cancelled.exit_code == 0
    clock[0] = T0 + 60
    assert Worker(service).run_once() == 0
    # the customer's next message finds the burst's quiet time over: it is answered now,
    # and the new message waits in a burst of its own
    assert ana.says("alguém?")["replies"] == [{"text": "Oi! Como posso ajudar?", "buttons": []}]
    clock[0] = T0 + 62
    assert Worker(service).run_once() == 1
    assert bot_texts(service, conv) == ["Oi! Como posso ajudar?"] * 2
