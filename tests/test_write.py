"""engine/service/write.py: Changes in, rows out — only on the version they were decided on."""
from __future__ import annotations

from sqlalchemy import func, select

from engine.moments import utc
from engine.service import Service, load
from engine.service.changes import Changes
from engine.service.write import write
from engine.settings import Settings
from engine.store import activity, conversations, messages, outbox, processed_messages, timers

T0 = 1_800_000_000.0


def new_conversation(db) -> dict:
    service = Service(db, Settings(), clock=lambda: T0)
    conversation_id = service.ensure_conversation("whatsapp", {"external_id": "5511999990000", "name": "Ana"})
    with db.connect() as conn:
        return dict(conn.execute(select(conversations).where(conversations.c.id == conversation_id))
                    .mappings().one())


def changes_for(conv: dict, version: int | None = None, **rows) -> Changes:
    at = utc(T0 + 5)
    return Changes(
        conversation_id=conv["id"], contact_id=conv["contact_id"],
        version=conv["version"] if version is None else version, write=True,
        state={**conv["state"], "vars": {"pedido": 42}}, status="open", name_norm="ana",
        updated_at=at, opened_at=at,
        messages=[{"conversation_id": conv["id"], "direction": "in", "author": "customer", "text": "oi",
                   "buttons": [], "at": at, "external_id": "m1", "details": None}],
        activity=[{"conversation_id": conv["id"], "actor": "ana", "action": "opened", "from_status": "concluded",
                   "to_status": "open", "detail": None, "at": at}],
        outbox=[{"conversation_id": conv["id"], "channel": "whatsapp", "idempotency_key": "out-1",
                 "payload": {"to": "5511999990000", "text": "Olá", "buttons": []}, "status": "pending",
                 "attempts": 0, "next_attempt_at": at, "created_at": at}],
        processed={"channel": "whatsapp", "external_id": "m1", "conversation_id": conv["id"],
                   "result": {"ok": True}, "at": at},
        **rows)


def counts(db) -> dict:
    with db.connect() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar()
                for table in (messages, activity, outbox, processed_messages, timers)}


def test_changes_on_the_version_read_are_written_and_the_version_moves(db):
    conv = new_conversation(db)
    with db.begin() as conn:
        assert write(conn, [changes_for(conv)]) is True
    with db.connect() as conn:
        row = conn.execute(select(conversations).where(conversations.c.id == conv["id"])).mappings().one()
    assert row["version"] == conv["version"] + 1 and row["status"] == "open"
    assert row["state"]["vars"] == {"pedido": 42}
    assert counts(db) == {"messages": 1, "activity": 1, "outbox": 1, "processed_messages": 1, "timers": 0}


def test_changes_decided_on_an_older_version_are_refused_before_anything_else(db):
    conv = new_conversation(db)
    with db.connect() as conn:
        with conn.begin():
            refused = write(conn, [changes_for(conv, version=conv["version"] - 1)])
            conn.rollback()
    assert refused is False
    assert counts(db) == {"messages": 0, "activity": 0, "outbox": 0, "processed_messages": 0, "timers": 0}
    with db.connect() as conn:
        assert conn.execute(select(conversations.c.status).where(conversations.c.id == conv["id"])).scalar() \
            == "concluded"


def test_a_timer_no_longer_pending_refuses_the_write(db):
    conv = new_conversation(db)
    with db.begin() as conn:
        timer_id = conn.execute(timers.insert().values(
            conversation_id=conv["id"], kind="wait", due_at=utc(T0), payload={}, status="cancelled")
        ).inserted_primary_key[0]
    with db.connect() as conn:
        with conn.begin():
            refused = write(conn, [changes_for(conv, fire_timer_id=timer_id, fired_at=utc(T0 + 5))])
            conn.rollback()
    assert refused is False and counts(db)["messages"] == 0


def test_a_batch_writes_each_kind_of_row_for_every_conversation(db):
    service = Service(db, Settings(), clock=lambda: T0)
    ids = [service.ensure_conversation("api", {"external_id": f"c{n}", "name": "Ana"}) for n in range(3)]
    with db.connect() as conn:
        snaps = [load.by_id(service, conn, i, False) for i in ids]
    batch = []
    for snap in snaps:
        conv = snap.conversation
        change = changes_for(conv)
        change.outbox, change.processed = [], None  # keys unique across the batch: left out
        change.timers = [{"conversation_id": conv["id"], "kind": "wait", "due_at": utc(T0 + 60),
                          "payload": {"token": 1}, "status": "pending"}]
        batch.append(change)
    with db.begin() as conn:
        assert write(conn, batch) is True
    found = counts(db)
    assert (found["messages"], found["activity"], found["timers"]) == (3, 3, 3)
