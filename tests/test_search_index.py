"""engine/search_index.py: SQLite's text search index filled in batches — every message is
found by a search made after it was stored, edits and deletions included."""
from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from engine import queries
from engine.db import SqliteUpkeep, make_engine
from engine.migrate import alembic_config, upgrade
from engine.search_index import catch_up, index_pending
from engine.service import Service
from engine.settings import Settings

T0 = 1_800_000_000.0
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _say(service: Service, contact: str, n: int, words: str) -> None:
    service.handle_inbound("api", {"external_id": contact, "name": contact.title()},
                           {"id": f"{contact}-{n}", "text": words})


def _found(db, words: str) -> set[str]:
    return {item["contact"]["external_id"] for item in queries.list_conversations(db, text=words)["items"]}


def _upto(db) -> int:
    with db.connect() as conn:
        return conn.execute(text("SELECT upto FROM messages_fts_position")).scalar()


def test_a_message_is_found_by_the_next_search(db):
    service = Service(db, Settings(), clock=lambda: T0)
    _say(service, "ana", 1, "quero trocar o tênis azul")
    _say(service, "bia", 1, "meu pedido atrasou")
    assert _found(db, "tênis") == {"ana"}
    _say(service, "bia", 2, "e o tênis veio furado")
    assert _found(db, "tênis") == {"ana", "bia"}
    assert _found(db, "pedido") == {"bia"}


@SQLITE_ONLY
def test_messages_are_indexed_in_batches_not_one_by_one(db):
    service = Service(db, Settings(), clock=lambda: T0)
    for n in range(12):
        _say(service, f"cliente{n}", 1, f"palavra{n} comum")
    before = _upto(db)
    with db.begin() as conn:
        assert index_pending(conn, limit=5) == 5
    assert _upto(db) > before
    assert catch_up(db) > 0  # the rest (the customers' messages and the bot's replies)
    assert catch_up(db) == 0  # nothing left: one read, no write
    assert len(_found(db, "comum")) == 12


@SQLITE_ONLY
def test_the_upkeep_thread_indexes_without_a_search(db):
    service = Service(db, Settings(), clock=lambda: T0)
    _say(service, "ana", 1, "boleto vencido")
    with db.connect() as conn:
        last = conn.execute(text("SELECT max(id) FROM messages")).scalar()
    assert _upto(db) < last
    assert SqliteUpkeep.index_messages(db) > 0
    assert _upto(db) == last


@SQLITE_ONLY
def test_an_edited_message_is_found_by_its_new_words_only(db):
    service = Service(db, Settings(), clock=lambda: T0)
    _say(service, "ana", 1, "quero cancelar")
    _say(service, "bia", 1, "quero cancelar também")
    assert _found(db, "cancelar") == {"ana", "bia"}  # indexed now
    _say(service, "caio", 1, "quero cancelar hoje")  # not indexed yet when edited below
    with db.begin() as conn:
        for who, words in (("ana", "quero confirmar"), ("caio", "quero confirmar hoje")):
            conn.execute(text("UPDATE messages SET text = :t WHERE external_id = :m"),
                         {"t": words, "m": f"{who}-1"})
    assert _found(db, "cancelar") == {"bia"}
    assert _found(db, "confirmar") == {"ana", "caio"}


@SQLITE_ONLY
def test_deleting_the_newest_messages_lets_their_ids_be_indexed_again(db):
    service = Service(db, Settings(), clock=lambda: T0)
    _say(service, "ana", 1, "primeira mensagem")
    _say(service, "bia", 1, "segunda mensagem")
    assert _found(db, "segunda") == {"bia"}
    with db.begin() as conn:  # the newest rows go (by hand: papo never deletes messages)
        bia = conn.execute(text("SELECT conversation_id FROM messages WHERE external_id = 'bia-1'")).scalar()
        conn.execute(text("DELETE FROM messages WHERE conversation_id = :c"), {"c": bia})
    assert _found(db, "segunda") == set()
    _say(service, "caio", 1, "terceira mensagem")  # may take the deleted rows' ids
    assert _found(db, "terceira") == {"caio"}
    assert _found(db, "mensagem") == {"ana", "caio"}
    with db.begin() as conn:  # FTS5's own check: raises if the index and messages disagree
        conn.execute(text("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)"))


@SQLITE_ONLY
def test_the_migration_keeps_what_was_indexed_and_indexes_the_rest(db_url):
    cfg = alembic_config(db_url)
    command.upgrade(cfg, "0014")  # one trigger per insert, as before
    engine = make_engine(db_url)
    try:
        service = Service(engine, Settings(), clock=lambda: T0)
        _say(service, "ana", 1, "antes da mudança")
        upgrade(db_url)
        assert _found(engine, "mudanca") == {"ana"}
        _say(service, "bia", 1, "depois da mudança")
        assert _found(engine, "mudança") == {"ana", "bia"}
        _say(service, "caio", 1, "mudança pendente")  # not indexed when going back
        command.downgrade(cfg, "0014")
        with engine.connect() as conn:
            triggers = set(conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
        assert "messages_fts_insert" in triggers
        _say(service, "duda", 1, "mudança depois de voltar")
        with engine.connect() as conn:
            hits = conn.execute(text("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'mudanca'")).scalar()
        assert hits == 4
    finally:
        engine.dispose()
