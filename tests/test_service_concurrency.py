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
