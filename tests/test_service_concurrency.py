"""Work on one conversation is serialized: many senders at once lose and double nothing."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from engine.flows import FlowRepository
from engine.service import Service
from engine.settings import Settings
from engine.store import messages, processed_messages

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


def test_an_agent_acting_while_the_bot_thinks_wins_and_the_bot_stays_silent(sqlite_file_url, monkeypatch):
    """SQLite only (PostgreSQL locks the conversation's row first): the bot's step is
    computed before the write lock is taken; when the conversation changed meanwhile (here
    an agent opens it), the step is done again under the lock, on what it is now."""
    from conftest import make_test_engine

    from engine import batch
    from engine.db import create_schema

    db = make_test_engine(sqlite_file_url)
    create_schema(db)
    flows = FlowRepository(db)
    flows.create(ECHO)
    flows.publish("eco")
    service = Service(db, Settings())
    contact = {"external_id": "5511999990001", "name": "Bia"}
    conversation_id = service.handle_inbound("api", contact, {"id": "m0", "text": "oi"})["conversation_id"]
    real_end_step = batch.Recorder.end_step
    interfered = []

    def agent_first(self, keep: bool) -> None:
        if keep and not interfered:
            interfered.append(service.act(conversation_id, "open", "ana"))
        real_end_step(self, keep)

    monkeypatch.setattr(batch.Recorder, "end_step", agent_first)
    answer = service.handle_inbound("api", contact, {"id": "m1", "text": "oi de novo"})

    assert answer["status"] == "open" and answer["replies"] == []
    assert service.handle_inbound("api", contact, {"id": "m1", "text": "oi de novo"}) == answer
    with db.connect() as conn:
        texts = conn.execute(select(messages.c.direction, messages.c.text).where(
            messages.c.conversation_id == conversation_id).order_by(messages.c.id)).all()
    assert [tuple(t) for t in texts] == [("in", "oi"), ("out", "Recebido!"), ("in", "oi de novo")]
