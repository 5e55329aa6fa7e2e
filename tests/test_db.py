"""engine/db.py: SQLite's background checkpoints; PostgreSQL's check of idle connections."""
from __future__ import annotations

import threading

from sqlalchemy import text

from engine import db as papo_db
from engine.db import BACKGROUND_AUTOCHECKPOINT_PAGES, SqliteUpkeep, make_engine


def _fill(engine, rows: int = 300) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS filler (x BLOB)"))
        for _ in range(rows):
            conn.execute(text("INSERT INTO filler VALUES (randomblob(4000))"))


def test_with_the_upkeep_thread_commits_leave_the_copy_to_it(tmp_path):
    path = tmp_path / "papo.db"
    engine = make_engine(f"sqlite:///{path}", sqlite_upkeep=True)
    try:
        _fill(engine)
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == BACKGROUND_AUTOCHECKPOINT_PAGES
        assert any(t.name == "papo-checkpoint" for t in threading.enumerate())
        busy, pages, copied = SqliteUpkeep(engine, str(path)).checkpoint()
        assert busy == 0 and pages >= 300 and copied == pages  # the log copied back, every page
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM filler")).scalar() == 300
    finally:
        engine.dispose()


def test_without_it_sqlite_checkpoints_in_the_commits_as_usual(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'papo.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000
    finally:
        engine.dispose()


def test_a_removed_database_is_skipped_not_an_error(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'papo.db'}", sqlite_upkeep=True)
    try:
        assert SqliteUpkeep(engine, str(tmp_path / "gone.db")).checkpoint() is None
    finally:
        engine.dispose()


def test_an_idle_postgresql_connection_cut_by_the_server_is_replaced(postgres_url, monkeypatch):
    engine = make_engine(postgres_url)
    admin = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as conn:  # in use a moment ago: the same connection, not checked
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() == first
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            conn.commit()
        monkeypatch.setattr(papo_db, "PG_PING_IDLE_S", 0.0)  # idle "long enough" now
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != first
    finally:
        engine.dispose()
        admin.dispose()

