"""engine/service/driver.py: a read on the driver's cursor gives what SQLAlchemy gives."""
from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select

from engine.service import Service
from engine.service import statements as sql
from engine.service.driver import DriverRead, read_first
from engine.settings import Settings
from engine.store import timers

T0 = 1_800_000_000.0


def _key(message_id: str) -> dict:
    return {"_channel": "whatsapp", "_external_id": "5511999990000", "_message_id": message_id}


@pytest.mark.parametrize("message_id", ["m1", "never-seen"])
def test_the_inbound_snapshot_row_is_the_same_through_the_driver(db, message_id):
    service = Service(db, Settings(), clock=lambda: T0)
    service.handle_inbound("whatsapp", {"external_id": "5511999990000", "name": "Ana Luísa"},
                           {"id": "m1", "text": "oi"})
    postgres = db.dialect.name == "postgresql"
    with db.connect() as conn:
        expected = dict(conn.execute(sql.INBOUND[postgres], _key(message_id)).mappings().one())
        found = read_first(conn, sql.INBOUND[postgres], _key(message_id))
    assert found == expected
    assert list(found) == list(expected)
    assert {k: type(v) for k, v in found.items()} == {k: type(v) for k, v in expected.items()}
    assert found["contact_name_"] == "Ana Luísa"
    assert isinstance(found["state"], dict)  # JSON decoded, as SQLAlchemy does
    assert (found["processed_"] is None) == (message_id == "never-seen")


def test_no_row_is_none(db):
    postgres = db.dialect.name == "postgresql"
    with db.connect() as conn:
        assert read_first(conn, sql.INBOUND[postgres], _key("m1")) is None


def test_an_in_list_is_left_to_sqlalchemy(db):
    statement = select(timers.c.id).where(timers.c.id.in_(bindparam("_ids", expanding=True)))
    with pytest.raises(ValueError, match="IN list"):
        DriverRead(statement, db.dialect)
