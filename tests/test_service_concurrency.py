"""Work on one conversation is serialized: many senders at once lose and double nothing."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from engine.flows import FlowRepository
from engine.service import Service
from engine.settings import Settings
from engine.store import conversations, messages, processed_messages

ECHO = {
    "schema_version": 1, "id": "eco", "name": "Eco", "triggers": [{"type": "default"}],
    "start": "m1",
    "blocks": [{"id": "m1", "type": "message", "data": {"text": "Recebido!"}}],
    "edges": [],
}
THREADS = 20
PER_THREAD = 5


def test_twenty_threads_sending_to_one_conversation_lose_and_duplicate_nothing(db):
    flows = FlowRepository(db)
    flows.create(ECHO)
    flows.publish("eco")
    service = Service(db, Settings())
    contact = {"external_id": "5511999990000", "name": "Ana"}
    errors: list[BaseException] = []
    answers: dict[str, dict] = {}
    start = threading.Barrier(THREADS)

    def sender(n: int) -> None:
        start.wait()
        try:
            for i in range(PER_THREAD):
                message_id = f"t{n}-m{i}"
                first = service.handle_inbound("api", contact, {"id": message_id, "text": "oi"})
                again = service.handle_inbound("api", contact, {"id": message_id, "text": "oi"})
                assert again == first  # a duplicate gets the original answer
                answers[message_id] = first
        except BaseException as exc:  # noqa: BLE001 - reported below, with the thread's id
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    sent = THREADS * PER_THREAD
    assert len(answers) == sent
    assert {a["conversation_id"] for a in answers.values()} == {answers["t0-m0"]["conversation_id"]}
    assert all(a["replies"] == [{"text": "Recebido!", "buttons": []}] for a in answers.values())
    with db.connect() as conn:
        inbound = conn.execute(select(messages.c.external_id).where(messages.c.direction == "in")).scalars().all()
        outbound = conn.execute(select(func.count()).select_from(messages).where(
            messages.c.direction == "out")).scalar()
        processed = conn.execute(select(func.count()).select_from(processed_messages)).scalar()
    assert sorted(inbound) == sorted(answers)  # every message stored, each exactly once
    assert outbound == sent  # one bot reply per message, none doubled
    assert processed == sent
    assert service.get_conversation(answers["t0-m0"]["conversation_id"])["run"]["state"] == "ended"


def test_an_agent_acting_while_the_bot_thinks_wins_and_the_bot_stays_silent(db, monkeypatch):
    """The bot's step is decided before the write transaction; when the conversation
    changed meanwhile (here an agent opens it), the write is refused by the version check
    and the step decided again on what the conversation is now."""
    from engine.service import unit

    flows = FlowRepository(db)
    flows.create(ECHO)
    flows.publish("eco")
    service = Service(db, Settings())
    contact = {"external_id": "5511999990001", "name": "Bia"}
    conversation_id = service.handle_inbound("api", contact, {"id": "m0", "text": "oi"})["conversation_id"]
    real_decide = unit.decide
    interfered = []

    def agent_meanwhile(snapshot, event):
        changes = real_decide(snapshot, event)
        if not interfered:
            interfered.append(True)  # (the agent's own decision goes through here too)
            service.act(conversation_id, "open", "ana")
        return changes

    monkeypatch.setattr(unit, "decide", agent_meanwhile)
    answer = service.handle_inbound("api", contact, {"id": "m1", "text": "oi de novo"})

    assert answer["status"] == "open" and answer["replies"] == []
    assert service.handle_inbound("api", contact, {"id": "m1", "text": "oi de novo"}) == answer
    with db.connect() as conn:
        texts = conn.execute(select(messages.c.direction, messages.c.text).where(
            messages.c.conversation_id == conversation_id).order_by(messages.c.id)).all()
    assert [tuple(t) for t in texts] == [("in", "oi"), ("out", "Recebido!"), ("in", "oi de novo")]


def _answer_in_another_process(url: str, ready, message_id: str, answers) -> None:
    """A second papo process: decides on what it read, then waits for the other one
    before writing, so both write on the same version (tests the optimistic path)."""
    from engine.db import make_engine
    from engine.service import unit

    db = make_engine(url)
    real_start_writing, real_write = unit._start_writing, unit.write
    refused: list[int] = []
    waited: list[bool] = []

    def start_writing(service, conn):
        if not waited:  # the first attempt only: both read and decided by now
            waited.append(True)
            ready.wait(timeout=60)
        real_start_writing(service, conn)

    def write(conn, batch):
        ok = real_write(conn, batch)
        refused.extend([1] if not ok else [])
        return ok

    unit._start_writing, unit.write = start_writing, write
    try:
        result = Service(db, Settings()).handle_inbound(
            "api", {"external_id": "5511999990002", "name": "Caio"}, {"id": message_id, "text": "oi"})
        answers.put((message_id, result, len(refused)))
    finally:
        db.dispose()


def test_two_processes_answering_one_conversation_at_once_one_wins_the_other_redoes(db, db_url):
    import multiprocessing

    flows = FlowRepository(db)
    flows.create(ECHO)
    flows.publish("eco")
    service = Service(db, Settings())
    first = service.handle_inbound("api", {"external_id": "5511999990002", "name": "Caio"},
                                   {"id": "m0", "text": "oi"})
    spawn = multiprocessing.get_context("spawn")
    ready, answers = spawn.Barrier(2), spawn.Queue()
    processes = [spawn.Process(target=_answer_in_another_process, args=(db_url, ready, f"p{n}", answers))
                 for n in (1, 2)]
    for process in processes:
        process.start()
    got = [answers.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0, 0]

    refusals = sorted(refused for _, _, refused in got)
    assert refusals == [0, 1]  # one wrote on the version both read; the other was refused once
    for _, result, _ in got:  # … and redid its work on what the winner left: both answered
        assert result["conversation_id"] == first["conversation_id"]
        assert result["replies"] == [{"text": "Recebido!", "buttons": []}]
    with db.connect() as conn:
        rows = conn.execute(select(messages.c.direction, messages.c.external_id).where(
            messages.c.conversation_id == first["conversation_id"]).order_by(messages.c.id)).all()
        version = conn.execute(select(conversations.c.version).where(
            conversations.c.id == first["conversation_id"])).scalar()
    inbound = [external_id for direction, external_id in rows if direction == "in"]
    assert sorted(inbound) == ["m0", "p1", "p2"]  # nothing lost, nothing doubled
    assert [direction for direction, _ in rows].count("out") == 3
    # the conversation was written once per message (plus its creation's version 1)
    assert version == 1 + 3
