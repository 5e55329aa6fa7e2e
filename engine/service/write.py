"""``write(conn, batch)``: the changes of one or more conversations, in the caller's
transaction, one statement per kind of row (an ``executemany`` across a batch of timers).

The conversations go first, ``UPDATE … WHERE id = :id AND version = :v``: when fewer rows
than conversations are updated, someone else changed one of them since it was read, and
``write`` returns False before writing anything else (the caller rolls back, reads and
decides again). A timer flips ``pending → fired`` the same way, only if still pending.
Then cancellations, then inserts, in an order that keeps every conversation's own
writes in the order they were decided (the conversations of a batch touch different rows).
"""
from __future__ import annotations

from itertools import groupby

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from engine.service import statements as sql
from engine.service.changes import Changes
from engine.store import run_blocks


def write(conn: Connection, batch: list[Changes]) -> bool:
    """Store ``batch`` (changes with ``write`` set); False: a conversation or a timer
    changed since it was read, nothing usable was written (roll back)."""
    postgres = conn.dialect.name == "postgresql"
    rows = [c for c in batch if c.write]
    if not rows:
        return True
    statements = _statements(rows, postgres)
    fired = len(statements[1][1])
    if postgres:
        # One round trip for the lot (psycopg's pipeline): the checks are read afterwards,
        # and a refused write is rolled back by the caller like any other.
        counts = _pipeline(conn, statements)
        return counts[0] == len(rows) and counts[1] == fired
    run = _Runner(conn)
    for n, (statement, params) in enumerate(statements):
        done = run(statement, params)
        if n == 0 and done != len(rows):
            return False  # a conversation changed since it was read
        if n == 1 and done != fired:
            return False  # a timer was fired or cancelled meanwhile
    return True


_INSERT_IGNORE: dict[tuple, object] = {}


def _statements(rows: list[Changes], postgres: bool) -> list[tuple]:
    """``(statement, parameter rows)`` of ``rows``, in write order: the conversations'
    version-checked update first, then the timers' flips, then the rest."""
    return [
        (sql.SAVE_CONVERSATION, [{
            "_id": c.conversation_id, "_version": c.version, "_state": c.state, "_status": c.status,
            "_name_norm": c.name_norm, "_updated_at": c.updated_at, "_opened_at": c.opened_at,
            "_first_response_at": c.first_response_at, "_waiting_since": c.waiting_since,
            "_last_inbound_at": c.last_inbound_at} for c in rows]),
        (sql.FIRE_TIMER, [{"_id": c.fire_timer_id, "_at": c.fired_at} for c in rows
                          if c.fire_timer_id is not None]),
        (sql.RENAME_CONTACT, [{"_id": c.contact_id, "_name": c.contact_name} for c in rows
                              if c.contact_name is not None]),
        (sql.CANCEL_BOT_TIMERS, [{"_id": c.conversation_id} for c in rows if c.cancel_bot_timers]),
        (sql.CANCEL_AUTO_CONCLUDE, [{"_id": c.conversation_id} for c in rows if c.cancel_auto_conclude]),
        (sql.CANCEL_DEBOUNCE, [{"_id": c.conversation_id} for c in rows if c.cancel_debounce]),
        (sql.MOVE_DEBOUNCE, [{"_id": c.conversation_id, "_due": c.move_debounce} for c in rows
                             if c.move_debounce is not None]),
        (sql.INSERT_MESSAGE, [m for c in rows for m in c.messages]),
        (sql.INSERT_OUTBOX, [o for c in rows for o in c.outbox]),
        (sql.INSERT_TIMER, [t for c in rows for t in c.timers]),
        (sql.INSERT_ACTIVITY, [a for c in rows for a in c.activity]),
        (sql.DELETE_ASSIGNEE, [{"_id": c.conversation_id, "_login": login} for c in rows
                               for login in c.assignees_removed]),
        (sql.INSERT_ASSIGNEE, [a for c in rows for a in c.assignees_added]),
        (sql.INSERT_ANSWER, [a for c in rows for a in c.answers]),
        (sql.INSERT_LOG, [g for c in rows for g in c.logs]),
        (insert_ignore(postgres, run_blocks, ["run_id", "flow_id", "block_id"]),
         [v for c in rows for v in c.visits]),
        (sql.INSERT_PROCESSED, [c.processed for c in rows if c.processed is not None]),
        # Last, on what was just written: who has unread customer messages in an open
        # conversation, or in one this write concluded or reassigned (its activity says so).
        (sql.FORGET_UNREAD, [{"_id": c.conversation_id} for c in rows if _unread_may_change(c)]),
        (sql.REFRESH_UNREAD[postgres], [{"_id": c.conversation_id} for c in rows if _unread_may_change(c)]),
    ]


def _unread_may_change(changes: Changes) -> bool:
    """Whether a write can change anyone's unread conversations: it leaves the conversation
    open, or it moved its status or assignees (which writes activity). A bot's turn on a
    concluded conversation does not."""
    return changes.status == "open" or bool(changes.activity)


def _pipeline(conn: Connection, statements: list[tuple]) -> list[int]:
    """PostgreSQL: the statements, compiled once by SQLAlchemy, sent through psycopg's
    pipeline (one round trip); the rows each one affected, read at the end."""
    dialect = conn.dialect
    raw = conn.connection.driver_connection
    cursors = []
    try:
        with raw.pipeline():
            for statement, rows in statements:
                cursor = raw.cursor()
                cursors.append(cursor)
                if not rows:
                    continue
                prepared = _pg_compiled(statement, dialect, tuple(rows[0]))
                params = [prepared.params(row) for row in rows]
                if len(params) == 1:
                    cursor.execute(prepared.sql, params[0])
                else:
                    cursor.executemany(prepared.sql, params)
    except dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would raise it (IntegrityError…)
        raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
    counts = [max(cursor.rowcount, 0) if rows else 0 for cursor, (_, rows) in zip(cursors, statements, strict=True)]
    for cursor in cursors:
        cursor.close()
    return counts


class _PgWrite:
    def __init__(self, statement, dialect, keys: tuple[str, ...]):
        self.compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
        self.sql = self.compiled.string
        self.convert = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                        for name, bind in self.compiled.binds.items()}

    def params(self, row: dict) -> dict:
        out = self.compiled.construct_params(row)
        for name, value in out.items():
            convert = self.convert.get(name)
            if convert is not None:
                out[name] = convert(value)
        return out


_pg: dict[tuple, tuple] = {}


def _pg_compiled(statement, dialect, keys: tuple[str, ...]) -> _PgWrite:
    found = _pg.get((id(statement), keys))
    if found is None or found[0] is not statement:
        if len(_pg) > 500:
            _pg.clear()
        found = _pg[(id(statement), keys)] = (statement, _PgWrite(statement, dialect, keys))
    return found[1]


def insert_ignore(postgres: bool, table, keys: list[str]):
    """``INSERT … ON CONFLICT DO NOTHING`` for this database, built once per process
    (one statement object, so the rows of many conversations go in one executemany)."""
    key = (postgres, table.name, tuple(keys))
    found = _INSERT_IGNORE.get(key)
    if found is None:
        if postgres:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        found = _INSERT_IGNORE[key] = dialect_insert(table).on_conflict_do_nothing(index_elements=keys)
    return found


class _Runner:
    """Runs one statement over rows; returns the rows it affected (the sum, for many)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"

    def __call__(self, statement, rows: list[dict]) -> int:
        if not rows:
            return 0
        if self.sqlite:
            return _run_on_driver(self.conn, statement, rows)
        return _run(self.conn, statement, rows)


def _run(conn: Connection, statement, rows: list[dict]) -> int:
    # one row: a plain execute, cheaper than an executemany of one
    return conn.execute(statement, rows if len(rows) > 1 else rows[0]).rowcount


class _DriverWrite:
    """A write compiled once by SQLAlchemy for SQLite, then run on the sqlite3 cursor.

    SQLAlchemy's work per execution (~0.1 ms) costs more than SQLite's for these small
    writes, and they run under SQLite's one write lock. The SQL text, the parameter
    order and the type conversions (JSON, dates) are SQLAlchemy's own, from the same
    Core statement: only the per-call bookkeeping is skipped."""

    def __init__(self, statement, dialect, keys: tuple[str, ...]):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        # Left to SQLAlchemy (sql = None): an IN (…) of a list, expanded per execution, and
        # a column default computed in Python for a value the row leaves out.
        plain = "POSTCOMPILE" not in compiled.string and not compiled.insert_prefetch \
            and not compiled.update_prefetch
        self.sql = compiled.string if plain else None
        self.names = tuple(compiled.positiontup)
        self.fixed = {name: bind.value for name, bind in compiled.binds.items()}
        self.convert = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                        for name, bind in compiled.binds.items()}

    def values(self, row: dict) -> tuple:
        out = []
        for name in self.names:
            value = row[name] if name in row else self.fixed[name]
            convert = self.convert[name]
            out.append(convert(value) if convert is not None else value)  # None too: JSON null
        return tuple(out)


_compiled: dict[tuple, tuple] = {}


def _run_on_driver(conn: Connection, statement, rows: list[dict]) -> int:
    dialect = conn.dialect
    cursor = conn.connection.driver_connection.cursor()
    affected = 0
    try:  # rows with the same keys run together; the order of the rows is kept
        for keys, group in groupby(rows, key=tuple):
            same = list(group)
            found = _compiled.get((id(statement), keys))
            if found is None or found[0] is not statement:
                if len(_compiled) > 500:  # only a handful of statements are ever written
                    _compiled.clear()
                found = _compiled[(id(statement), keys)] = (statement, _DriverWrite(statement, dialect, keys))
            driver_write = found[1]
            if driver_write.sql is None:
                affected += _run(conn, statement, same)
                continue
            values = [driver_write.values(row) for row in same]
            try:
                if len(values) == 1:
                    cursor.execute(driver_write.sql, values[0])
                else:
                    cursor.executemany(driver_write.sql, values)
            except dialect.dbapi.Error as exc:  # as SQLAlchemy would raise it (IntegrityError…)
                raise DBAPIError.instance(driver_write.sql, values, exc, dialect.dbapi.Error,
                                          dialect=dialect) from exc
            affected += max(cursor.rowcount, 0)
    finally:
        cursor.close()
    return affected
