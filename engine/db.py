"""Database connection: SQLite (WAL) by default, PostgreSQL for scale-out."""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import StaticPool

from engine.store import metadata

log = logging.getLogger("papo.db")

PG_CONNECT_TIMEOUT_S = 10
# A pooled PostgreSQL connection idle longer than this is checked (one round trip) before
# use; a busy one is not (see _ping_if_idle).
PG_PING_IDLE_S = 2.0
SQLITE_WAIT_S = 30.0  # how long a writer waits for SQLite's write lock before giving up
# Between two tries at the write lock: short at first, never over 2 ms (see _begin_immediate).
_LOCK_POLL_S = (0.0, 0.0001, 0.0002, 0.0005, 0.001, 0.002)
CHECKPOINT_EVERY_S = 1.0  # the SQLite upkeep thread's pace (see SqliteUpkeep)
# With a background checkpointer, a commit still checkpoints by itself past this many WAL
# pages (about 40 MB): the checkpointer is late, or stopped. SQLite's default is 1,000.
BACKGROUND_AUTOCHECKPOINT_PAGES = 10_000


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


class SqliteUpkeep:
    """SQLite's upkeep, from a thread of its own: the text search index of new messages
    (engine/search_index.py), and the write-ahead log copied back into the database file.

    By default the commit that takes the WAL past 1,000 pages does that copy (and its
    fsyncs) itself, inside a request: about one inbound message in seventy paid for the
    others, and a hot page (the conversations' indexes, the outbox) written a hundred times
    between two checkpoints was copied each time. Here, once a second, a ``PASSIVE``
    checkpoint (it never waits for readers or writers, nor makes them wait) copies each page
    once; commits only append to the log. One thread per process that opens the database,
    started by its first connection (a forked gunicorn worker starts its own); it opens a
    connection for each checkpoint and closes it, and stops when its engine is gone.
    """

    def __init__(self, engine: Engine, path: str):
        self._engine = weakref.ref(engine)
        self._path = path
        self._pid: int | None = None
        self._lock = threading.Lock()

    def on_connect(self, dbapi_connection, _record) -> None:
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={BACKGROUND_AUTOCHECKPOINT_PAGES}")
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="papo-checkpoint", daemon=True).start()

    def _run(self) -> None:
        while self._pid == os.getpid():
            time.sleep(CHECKPOINT_EVERY_S)
            engine = self._engine()
            if engine is None:
                return
            self.index_messages(engine)
            del engine  # no strong reference kept while sleeping: the engine may go
            self.checkpoint()

    @staticmethod
    def index_messages(engine: Engine) -> int:
        """The messages stored since the last tick into the text search index (one short
        write transaction: engine/search_index.py); 0 when it could not run now."""
        from engine import search_index  # it imports this module

        try:
            return search_index.catch_up(engine)
        except Exception as exc:  # e.g. a database not upgraded yet: the next tick tries again
            log.debug("text search indexing skipped: %s", exc)
            return 0

    def checkpoint(self) -> tuple[int, int, int] | None:
        """One ``PASSIVE`` checkpoint: (busy, log pages, pages copied); None if it could not run."""
        if not os.path.exists(self._path):
            return None  # the database was removed (a test's folder): nothing to copy
        try:
            driver = sqlite3.connect(self._path, timeout=0, check_same_thread=False)
        except sqlite3.Error as exc:
            log.debug("checkpoint skipped: %s", exc)
            return None
        try:
            return driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # busy, or the file went away meanwhile: the next tick tries again
            log.debug("checkpoint skipped: %s", exc)
            return None
        finally:
            driver.close()


def read_only(engine: Engine):
    """A connection for reading only: on SQLite it does not queue behind writers."""
    return engine.connect().execution_options(papo_read_only=True)


def quick_reads(engine: Engine):
    """A connection for one or two independent queries, each its own snapshot, outside any
    transaction: no BEGIN, and no ROLLBACK round trip when it is returned (PostgreSQL:
    autocommit; SQLite: no BEGIN, never waits for the write lock). For reads whose
    consistency does not depend on each other (a lookup by key, a duplicate check)."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn.execution_options(papo_read_only=True, papo_autocommit=True)


def make_engine(url: str | None = None, *, echo: bool = False,
                sqlite_upkeep: bool = False) -> Engine:
    """An Engine for ``url`` (default: ``PAPO_DATABASE_URL`` or the instance SQLite file).

    ``sqlite_upkeep`` (a SQLite file; the web server and the worker): a :class:`SqliteUpkeep`
    thread indexes new messages for search and copies the WAL into the database, not the commits."""
    url = url or database_url()
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if in_memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, echo=echo, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        if sqlite_upkeep and not in_memory and engine.url.database:
            upkeep = SqliteUpkeep(engine, engine.url.database)
            event.listen(engine, "connect", upkeep.on_connect)
        return engine
    # libpq waits forever for a host that does not answer: /readyz and requests would hang.
    connect_args = {} if "connect_timeout" in url else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=20, connect_args=connect_args)
    event.listen(engine, "checkin", _mark_returned)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _mark_returned(_dbapi_connection, record) -> None:
    record.info["papo_returned_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
    """Check a pooled PostgreSQL connection before use, if it sat idle for a while.

    SQLAlchemy's ``pool_pre_ping`` checks every connection at every checkout: one more round
    trip per unit of work, per outbox move, per page. A connection in use a moment ago is
    alive; one idle past ``PG_PING_IDLE_S`` may have been cut (a server restart, a proxy's
    idle timeout) and is checked. ``DisconnectionError`` is SQLAlchemy's way, from this event,
    to have the pool drop it and hand out a fresh one."""
    returned = record.info.get("papo_returned_at")
    if returned is None or time.monotonic() - returned < PG_PING_IDLE_S:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not dbapi_connection.autocommit:
            dbapi_connection.rollback()  # psycopg began a transaction for the SELECT
    except Exception as exc:  # any failure: the connection is not usable
        raise DisconnectionError(f"idle connection lost: {exc}") from exc


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
