"""Timers as a customer sees them: waits, question timeouts, auto-conclude (both databases).

Each test drives the service with a fake clock and fires timers through the worker
(``Worker.run_once``), the way ``papo worker`` does.
"""
from __future__ import annotations

import logging

import pytest

from engine.flows import FlowRepository
from engine.service import Service, iso, utc
from engine.settings import Settings
from engine.worker import Worker
from schemas import FlowDocumentError

T0 = 1_800_000_000.0


def block(block_id: str, kind: str, **data) -> dict:
    return {"id": block_id, "type": kind, "position": {"x": 0, "y": 0}, "data": data}


def flow_doc(flow_id: str, blocks: list[dict], edges: list[tuple[str, str, str]]) -> dict:
    return {"schema_version": 1, "id": flow_id, "name": flow_id.title(),
            "triggers": [{"type": "default"}], "start": blocks[0]["id"], "blocks": blocks,
            "edges": [{"from": a, "port": port, "to": b} for a, port, b in edges]}


WAIT_FLOW = flow_doc("lembrete", [
    block("m1", "message", text="Vou te lembrar daqui a um minuto."),
    block("w", "wait", seconds=60),
    block("m2", "message", text="Lembrete: sua consulta é amanhã."),
], [("m1", "next", "w"), ("w", "next", "m2")])

QUESTION_FLOW = flow_doc("pesquisa", [
    block("q", "question", text="Qual é o seu e-mail?", input="email", save_as="email",
          timeout_s=300),
    block("ok", "message", text="Obrigado!"),
    block("late", "message", text="Ainda está aí? Responda quando puder."),
], [("q", "answered", "ok"), ("q", "timeout", "late")])


@pytest.fixture
def clock() -> list[float]:
    return [T0]


def make_service(db, clock, flow: dict | None = None, **settings) -> Service:
    if flow is not None:
        repo = FlowRepository(db)
        repo.create(flow)
        repo.publish(flow["id"])
    return Service(db, Settings(**settings), clock=lambda: clock[0])


def say(service: Service, text: str, n: int, who: str = "5511999990000") -> int:
    result = service.handle_inbound("api", {"external_id": who, "name": "Ana"},
                                    {"id": f"msg-{who}-{n}", "text": text})
    return result["conversation_id"]


def bot_texts(service: Service, conversation_id: int) -> list[str]:
    conv = service.get_conversation(conversation_id)
    return [m["text"] for m in conv["messages"] if m["author"] == "bot"]


def pending(service: Service, conversation_id: int) -> list[dict]:
    return service.list_timers(conversation_id)


# -- waits ----------------------------------------------------------------------------------

def test_wait_block_continues_after_the_time_passes(db, clock):
    service = make_service(db, clock, WAIT_FLOW)
    worker = Worker(service)
    conv = say(service, "oi", 1)
    assert bot_texts(service, conv) == ["Vou te lembrar daqui a um minuto."]
    assert [t["kind"] for t in pending(service, conv)] == ["wait"]

    clock[0] = T0 + 59
    assert worker.run_once() == 0
    assert bot_texts(service, conv) == ["Vou te lembrar daqui a um minuto."]

    clock[0] = T0 + 60
    assert worker.run_once() == 1
    assert bot_texts(service, conv) == ["Vou te lembrar daqui a um minuto.",
                                        "Lembrete: sua consulta é amanhã."]
    assert pending(service, conv) == []
    clock[0] = T0 + 3600
    assert worker.run_once() == 0  # fired once, never again


def test_a_cancelled_wait_never_fires(db, clock):
    service = make_service(db, clock, WAIT_FLOW)
    conv = say(service, "oi", 1)
    timer_id = pending(service, conv)[0]["id"]
    assert service.cancel_timer(timer_id) is True
    assert service.cancel_timer(timer_id) is False  # only a pending timer can be cancelled
    clock[0] = T0 + 120
    assert Worker(service).run_once() == 0
    assert bot_texts(service, conv) == ["Vou te lembrar daqui a um minuto."]


def test_a_wait_never_reaches_a_customer_talking_to_a_person(db, clock):
    service = make_service(db, clock, WAIT_FLOW)
    worker = Worker(service)
    conv = say(service, "oi", 1)
    clock[0] = T0 + 10
    service.agent_message(conv, "bruno", "Oi Ana, aqui é o Bruno.")
    assert service.get_conversation(conv)["status"] == "open"
    assert pending(service, conv) == []  # the wait was cancelled when the person stepped in

    clock[0] = T0 + 120
    assert worker.run_once() == 0
    clock[0] = T0 + 130
    service.act(conv, "conclude", "bruno")  # the run was paused by the agent: it ends
    clock[0] = T0 + 3600
    worker.run_once()
    assert "Lembrete: sua consulta é amanhã." not in bot_texts(service, conv)


# -- question timeouts ----------------------------------------------------------------------

def test_question_timeout_takes_the_timeout_port(db, clock):
    service = make_service(db, clock, QUESTION_FLOW)
    worker = Worker(service)
    conv = say(service, "oi", 1)
    assert [t["kind"] for t in pending(service, conv)] == ["question_timeout"]
    clock[0] = T0 + 300
    assert worker.run_once() == 1
    assert bot_texts(service, conv) == ["Qual é o seu e-mail?", "Ainda está aí? Responda quando puder."]
    assert pending(service, conv) == []


def test_an_answer_before_the_timeout_makes_it_a_no_op(db, clock):
    service = make_service(db, clock, QUESTION_FLOW)
    worker = Worker(service)
    conv = say(service, "oi", 1)
    clock[0] = T0 + 100
    say(service, "ana@example.com", 2)
    assert pending(service, conv) == []  # the timeout was cancelled with the answer
    clock[0] = T0 + 400
    assert worker.run_once() == 0
    assert bot_texts(service, conv) == ["Qual é o seu e-mail?", "Obrigado!"]
    assert service.get_conversation(conv)["variables"] == {"email": "ana@example.com"}


def test_an_invalid_answer_keeps_the_same_timeout(db, clock):
    service = make_service(db, clock, QUESTION_FLOW)
    worker = Worker(service)
    conv = say(service, "oi", 1)
    clock[0] = T0 + 100
    say(service, "não sei", 2)
    assert [t["kind"] for t in pending(service, conv)] == ["question_timeout"]
    clock[0] = T0 + 300
    assert worker.run_once() == 1
    assert bot_texts(service, conv)[-1] == "Ainda está aí? Responda quando puder."


# -- auto-conclude --------------------------------------------------------------------------

def test_an_idle_open_conversation_is_concluded_automatically(db, clock):
    service = make_service(db, clock, auto_conclude_after=3600)
    worker = Worker(service)
    conv = say(service, "quero falar com um atendente", 1)
    assert service.get_conversation(conv)["status"] == "open"
    assert [t["kind"] for t in pending(service, conv)] == ["auto_conclude"]

    clock[0] = T0 + 3599
    assert worker.run_once() == 0
    clock[0] = T0 + 3600
    assert worker.run_once() == 1
    seen = service.get_conversation(conv)
    assert seen["status"] == "concluded"
    assert seen["activity"][-1]["action"] == "auto_concluded"
    assert seen["activity"][-1]["actor"] == "system"
    assert pending(service, conv) == []


def test_activity_in_between_postpones_auto_conclude(db, clock):
    service = make_service(db, clock, auto_conclude_after=3600)
    worker = Worker(service)
    conv = say(service, "quero falar com um atendente", 1)
    clock[0] = T0 + 1800
    service.agent_message(conv, "bruno", "Olá! Como posso ajudar?")

    clock[0] = T0 + 3600
    assert worker.run_once() == 1  # it fires, sees the activity and reschedules
    assert service.get_conversation(conv)["status"] == "open"
    [again] = pending(service, conv)
    assert again["kind"] == "auto_conclude"
    assert again["due_at"] == iso(utc(T0 + 1800 + 3600))  # an hour after the last activity

    clock[0] = T0 + 1800 + 3600 - 1
    assert worker.run_once() == 0
    assert service.get_conversation(conv)["status"] == "open"
    clock[0] = T0 + 1800 + 3600
    assert worker.run_once() == 1
    assert service.get_conversation(conv)["status"] == "concluded"


def test_a_customer_message_also_counts_as_activity(db, clock):
    service = make_service(db, clock, auto_conclude_after=600)
    worker = Worker(service)
    conv = say(service, "atendente", 1)
    clock[0] = T0 + 500
    say(service, "alguém aí?", 2)
    clock[0] = T0 + 600
    worker.run_once()
    assert service.get_conversation(conv)["status"] == "open"
    clock[0] = T0 + 1100
    worker.run_once()
    assert service.get_conversation(conv)["status"] == "concluded"


def test_auto_conclude_is_off_by_default(db, clock):
    service = make_service(db, clock)
    conv = say(service, "atendente", 1)
    assert service.get_conversation(conv)["status"] == "open"
    assert pending(service, conv) == []


# -- downtime and lateness ------------------------------------------------------------------

def test_timers_due_during_downtime_fire_on_start_and_lateness_is_logged(db, clock, caplog):
    service = make_service(db, clock, WAIT_FLOW)
    conversations = [say(service, "oi", 1, who=f"55119000{i}") for i in range(3)]
    clock[0] = T0 + 3600  # the worker was down for an hour
    with caplog.at_level(logging.INFO, logger="papo.worker"):
        assert Worker(service).run_once() == 3
    for conv in conversations:
        assert bot_texts(service, conv)[-1] == "Lembrete: sua consulta é amanhã."
    late = [r for r in caplog.records if r.levelno == logging.WARNING and "late" in r.getMessage()]
    assert len(late) == 3
    assert "fired 3540 s late: no worker was running" in late[0].getMessage()


def test_an_on_time_timer_logs_its_lateness_at_info(db, clock, caplog):
    service = make_service(db, clock, WAIT_FLOW)
    say(service, "oi", 1)
    clock[0] = T0 + 60.25
    with caplog.at_level(logging.INFO, logger="papo.worker"):
        Worker(service).run_once()
    [record] = [r for r in caplog.records if "late" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "fired 0.250 s late" in record.getMessage()


def test_a_long_outage_logs_a_few_warnings_and_a_summary(db, clock, caplog):
    service = make_service(db, clock, WAIT_FLOW)
    for i in range(8):
        say(service, "oi", 1, who=f"55119000{i}")
    clock[0] = T0 + 7200
    with caplog.at_level(logging.INFO, logger="papo.worker"):
        assert Worker(service).run_once() == 8
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 6
    assert warnings[-1].startswith("3 more timers fired over 60 s late")


# -- validation (block schemas) -------------------------------------------------------------

@pytest.mark.parametrize("data", [
    {"seconds": 0}, {"seconds": 365 * 86400 + 1}, {"seconds": -5}, {"seconds": 1.5},
])
def test_a_wait_outside_one_second_to_365_days_is_refused(db, data):
    doc = flow_doc("espera", [block("w", "wait", **data)], [])
    with pytest.raises(FlowDocumentError) as refused:
        FlowRepository(db).create(doc)
    assert refused.value.status == 422


@pytest.mark.parametrize("timeout", [0, -1])
def test_a_question_timeout_that_is_not_positive_is_refused(db, timeout):
    doc = flow_doc("pergunta", [block("q", "question", text="Nome?", input="text",
                                      save_as="nome", timeout_s=timeout)], [])
    with pytest.raises(FlowDocumentError):
        FlowRepository(db).create(doc)
