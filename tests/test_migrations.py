"""Alembic migrations build exactly the schema of engine/store.py (both databases)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from conftest import make_test_engine
from sqlalchemy import inspect, text

from editor.cli import main
from editor.commands.db import safe_url
from engine.db import create_schema
from engine.migrate import MigrationError, head, upgrade
from engine.store import FTS_TABLES, metadata


def snapshot(engine) -> dict:
    """Every table's columns, keys and indexes, as the database reports them."""
    inspector = inspect(engine)
    dialect = engine.dialect
    tables = {}
    # FTS_TABLES: SQLite's FTS5 index of messages (engine/store.py), not metadata tables;
    # compared on their own in test_the_sqlite_text_index_is_built_both_ways.
    for name in sorted(set(inspector.get_table_names()) - {"alembic_version", *FTS_TABLES}):
        tables[name] = {
            "columns": [(c["name"], c["type"].compile(dialect=dialect), c["nullable"])
                        for c in inspector.get_columns(name)],
            "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
            "foreign_keys": sorted(
                (fk["name"], tuple(fk["constrained_columns"]), fk["referred_table"],
                 tuple(fk["referred_columns"]), (fk.get("options") or {}).get("ondelete"))
                for fk in inspector.get_foreign_keys(name)),
            "indexes": sorted((ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                              for ix in inspector.get_indexes(name)),
            "unique": sorted((uq["name"], tuple(uq["column_names"]))
                             for uq in inspector.get_unique_constraints(name)),
        }
    return tables


def test_upgrade_builds_the_same_schema_as_create_all(db_url):
    upgrade(db_url)
    engine = make_test_engine(db_url)
    migrated = snapshot(engine)

    metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    create_schema(engine)
    created = snapshot(engine)

    assert set(migrated) == set(metadata.tables)
    assert migrated == created


def _sqlite_objects(engine) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(conn.execute(text(
            "SELECT type, name FROM sqlite_master WHERE name LIKE 'messages_fts%'")).all())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # FTS5 is SQLite's; PostgreSQL's trigram index is compared above
def test_the_sqlite_text_index_is_built_both_ways(db_url):
    upgrade(db_url)
    engine = make_test_engine(db_url)
    migrated = _sqlite_objects(engine)
    metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("DROP TABLE messages_fts"))
    create_schema(engine)
    assert _sqlite_objects(engine) == migrated
    assert ("table", "messages_fts") in migrated and ("table", "messages_fts_position") in migrated
    assert ("trigger", "messages_fts_delete") in migrated and ("trigger", "messages_fts_update") in migrated
    assert ("trigger", "messages_fts_insert") not in migrated  # indexed in batches (engine/search_index.py)


def test_upgraded_database_has_nothing_left_to_migrate(db_url):
    upgrade(db_url)

    with make_test_engine(db_url).connect() as conn:
        differences = compare_metadata(
            MigrationContext.configure(conn, opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parent: kind != "table" or name not in FTS_TABLES}),
            metadata)

    assert differences == []


def test_upgrade_twice_changes_nothing_the_second_time(db_url):
    assert upgrade(db_url) == head()
    before = snapshot(make_test_engine(db_url))

    assert upgrade(db_url) == head()

    assert snapshot(make_test_engine(db_url)) == before


def test_upgrade_takes_over_a_database_made_by_create_schema(db_url):
    engine = make_test_engine(db_url)
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO contacts (channel, external_id, name) VALUES ('api', 'x', 'Ana')"))

    assert upgrade(db_url) == head()

    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM contacts")).scalar() == "Ana"


def test_upgrade_refuses_a_database_whose_tables_differ(db_url):
    engine = make_test_engine(db_url)
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE run_log"))

    with pytest.raises(MigrationError):
        upgrade(db_url)


def test_papo_db_upgrade_migrates_the_configured_database(db_url):
    result = CliRunner().invoke(main, ["db", "upgrade"], env={"PAPO_DATABASE_URL": db_url})

    assert result.exit_code == 0, result.output
    assert head() in result.output
    assert set(metadata.tables) <= set(inspect(make_test_engine(db_url)).get_table_names())


def test_printed_database_url_leaves_out_the_password():
    shown = safe_url("postgresql+psycopg://papo:s3cr%40t@db.example:5432/papo")

    assert "s3cr" not in shown and "papo@db.example:5432/papo" in shown


def test_0014_sets_each_conversation_s_last_inbound_at_from_its_messages(db_url):
    from alembic import command

    from engine.migrate import alembic_config

    command.upgrade(alembic_config(db_url), "0013")
    engine = make_test_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO contacts (id, channel, external_id, name) VALUES "
                          "(1, 'whatsapp', 'a', 'Ana'), (2, 'whatsapp', 'b', 'Bia')"))
        for conversation_id in (1, 2):
            conn.execute(text(
                "INSERT INTO conversations (id, contact_id, channel, status, name_norm, state, version, "
                "created_at, updated_at) VALUES (:id, :id, 'whatsapp', 'concluded', '', '{}', 1, "
                ":at, :at)"), {"id": conversation_id, "at": "2027-01-15 08:00:00"})
        # conversation 1: two customer messages (the later one stored first) and a newer reply;
        # conversation 2: only a reply, no customer message
        for conversation_id, direction, at in ((1, "in", "2027-01-15 09:30:00"),
                                               (1, "in", "2027-01-15 08:10:00"),
                                               (1, "out", "2027-01-15 10:00:00"),
                                               (2, "out", "2027-01-15 10:00:00")):
            conn.execute(text(
                "INSERT INTO messages (conversation_id, direction, author, text, buttons, at) "
                "VALUES (:c, :d, 'x', 'oi', '[]', :at)"), {"c": conversation_id, "d": direction, "at": at})

    assert upgrade(db_url) == head()

    with engine.connect() as conn:
        found = dict(conn.execute(text("SELECT id, last_inbound_at FROM conversations")).all())
    from engine.moments import aware

    assert found[2] is None
    assert aware(found[1] if not isinstance(found[1], str) else datetime.fromisoformat(found[1])) \
        == datetime(2027, 1, 15, 9, 30, tzinfo=UTC)
