"""engine/batch.py: writes recorded by many steps replayed together, in each step's order."""
from __future__ import annotations

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from engine.batch import NeedsConnection, Recorder
from engine.moments import epoch, utc
from engine.store import contacts, processed_messages

T0 = 1_790_000_000.0
_INSERT_CONTACT = insert(contacts)
_INSERT_PROCESSED = insert(processed_messages)


def _contact(n: int) -> dict:
    return {"channel": "api", "external_id": f"c{n}", "name": f"Cliente {n}"}


def test_replay_writes_every_step_in_its_order_with_types_converted(db):
    recorder = Recorder()
    for n in range(3):
        recorder.begin_step()
        recorder.execute(_INSERT_CONTACT, _contact(n))
        recorder.execute(_INSERT_PROCESSED, [
            {"channel": "api", "external_id": f"m{n}-{k}", "conversation_id": n + 1,
             "result": {"replies": [{"text": "Olá, ação!", "buttons": ["Sim"]}]}, "at": utc(T0 + k)}
            for k in range(2)])
        recorder.end_step(keep=True)
    with db.begin() as conn:
        assert recorder.replay(conn) == 2  # one statement per kind of write, for all 3 steps
    with db.connect() as conn:
        names = conn.execute(select(contacts.c.name).order_by(contacts.c.id)).scalars().all()
        rows = conn.execute(select(processed_messages.c.external_id, processed_messages.c.result,
                                   processed_messages.c.at)
                            .order_by(processed_messages.c.external_id)).all()
    assert names == ["Cliente 0", "Cliente 1", "Cliente 2"]
    assert [r.external_id for r in rows] == ["m0-0", "m0-1", "m1-0", "m1-1", "m2-0", "m2-1"]
    assert rows[0].result == {"replies": [{"text": "Olá, ação!", "buttons": ["Sim"]}]}
    assert epoch(rows[1].at) == T0 + 1


def test_a_step_that_reads_after_writing_is_refused(db):
    with db.connect() as reader:
        recorder = Recorder(reader=reader)
        recorder.begin_step()
        assert recorder.execute(select(contacts.c.id)).all() == []  # reading first is fine
        recorder.execute(_INSERT_CONTACT, _contact(1))
        with pytest.raises(NeedsConnection):
            recorder.execute(select(contacts.c.id))
        with pytest.raises(NeedsConnection):  # nothing ran yet: there is no new id to give
            _ = recorder.execute(_INSERT_CONTACT, _contact(2)).inserted_primary_key


def test_a_replayed_write_that_breaks_a_constraint_raises_integrity_error_and_stores_nothing(db):
    recorder = Recorder()
    recorder.begin_step()
    recorder.execute(_INSERT_CONTACT, [_contact(1), _contact(1)])
    recorder.end_step(keep=True)
    with pytest.raises(IntegrityError):
        with db.begin() as conn:
            recorder.replay(conn)
    with db.connect() as conn:
        assert conn.execute(select(contacts.c.id)).all() == []


def test_a_write_with_an_in_list_is_replayed_too(db):
    from sqlalchemy import delete

    with db.begin() as conn:
        conn.execute(_INSERT_CONTACT, [_contact(n) for n in range(3)])
    recorder = Recorder()
    recorder.begin_step()
    recorder.execute(delete(contacts).where(contacts.c.external_id.in_(["c0", "c2"])), {})
    recorder.end_step(keep=True)
    with db.begin() as conn:
        recorder.replay(conn)
    with db.connect() as conn:
        assert conn.execute(select(contacts.c.external_id)).scalars().all() == ["c1"]
