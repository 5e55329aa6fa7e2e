"""Database connection: SQLite (WAL) by default, PostgreSQL for scale-out."""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.pool import StaticPool

from engine.store import metadata

PG_CONNECT_TIMEOUT_S = 10
SQLITE_WAIT_S = 30.0  # how long a writer waits for SQLite's write lock before giving up
# Between two tries at the write lock: short at first, never over 2 ms (see _begin_immediate).
_LOCK_POLL_S = (0.0, 0.0001, 0.0002, 0.0005, 0.001, 0.002)


def default_url(instance_path: str | os.PathLike | None = None) -> str:
    folder = Path(instance_path or os.environ.get("PAPO_INSTANCE_PATH") or "instance")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder.resolve() / 'papo.db'}"


def database_url(instance_path: str | os.PathLike | None = None) -> str:
    return os.environ.get("PAPO_DATABASE_URL") or default_url(instance_path)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's BEGIN be the real start of the transaction (pysqlite otherwise
    # defers it), and take the write lock at BEGIN so one conversation's work is serialized.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn) -> None:
    # Writers take the lock at BEGIN (no read-then-upgrade deadlocks); connections opened
    # with read_only() take a plain deferred BEGIN, so in WAL mode they never wait for one.
    # papo_autocommit (with papo_read_only): no BEGIN at all, each query its own snapshot.
    options = conn.get_execution_options()
    if options.get("papo_autocommit") and options.get("papo_read_only"):
        return
    if options.get("papo_read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        _begin_immediate(conn.connection.driver_connection)


def _begin_immediate(driver: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, polling for the write lock every 2 ms at most.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 … 100 ms between tries. Our
    writers hold the lock for a fraction of a millisecond, many times a second (two web
    processes and the worker's outbox): a waiter that has slept past a few chances keeps
    sleeping longer and misses the next ones too, so a few requests waited hundreds of ms
    (bench/http_inbound.py, WhatsApp path). Here the wait is ours: the busy timeout is off
    for this one statement and the try is repeated at short, capped intervals; any other
    statement keeps the 30 s busy timeout."""
    driver.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + SQLITE_WAIT_S
        tries = 0
        while True:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:  # the driver's way of saying SQLITE_BUSY
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(_LOCK_POLL_S[min(tries, len(_LOCK_POLL_S) - 1)])
            tries += 1
    finally:
        driver.execute("PRAGMA busy_timeout=30000")


def read_only(engine: Engine):
    """A connection for reading only: on SQLite it does not queue behind writers."""
    return engine.connect().execution_options(papo_read_only=True)


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """An Engine for ``url`` (default: ``PAPO_DATABASE_URL`` or the instance SQLite file)."""
    url = url or database_url()
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if in_memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, echo=echo, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # libpq waits forever for a host that does not answer: /readyz and requests would hang.
    connect_args = {} if "connect_timeout" in url else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         connect_args=connect_args)


def create_schema(engine: Engine) -> None:
    """Create every table (tests, the in-memory simulator). Real databases use Alembic."""
    metadata.create_all(engine)


def ensure_schema(engine: Engine) -> bool:
    """Create the tables if the database has none; returns True when it did.

    A file or server database is created by Alembic (``engine.migrate.upgrade``), so it
    is stamped with its migration version; an in-memory SQLite one by ``create_schema``.
    A database that already has tables is left alone (``papo db upgrade`` applies new
    migrations).
    """
    if inspect(engine).get_table_names():
        return False
    in_memory = engine.url.get_backend_name() == "sqlite" and engine.url.database in (None, "", ":memory:")
    if in_memory:
        create_schema(engine)
    else:
        from engine.migrate import upgrade  # lazy: Alembic is only needed here

        upgrade(engine.url.render_as_string(hide_password=False))
    return True
