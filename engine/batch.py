"""Many conversations' writes in a few statements: how the worker fires timers fast.

Firing a timer is mostly writing: the timer's run moves on, its messages, funnel rows and
state are stored. Run one by one that is ~10 statements a timer, and the statements, not
the engine, bound how many timers a worker fires per second (bench/timers.py). So the
service runs each timer's engine step against a :class:`Recorder` instead of the real
connection: writes are written down, not executed. Then :meth:`Recorder.replay` sends the
writes of every timer of the batch together, one ``executemany`` per statement.

That is only sound because, in one batch, every conversation appears once and the
statements of different conversations touch different rows: each conversation's own
writes keep their order (timers with the same sequence of statements are replayed
together, statement by statement), and nothing else can tell the order apart. A step
that needs to read, or the answer of a write (a new row's id), raises
:class:`NeedsConnection` and the service fires that timer the ordinary way instead.
"""
from __future__ import annotations

from itertools import groupby

from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase


class NeedsConnection(Exception):
    """This step reads, or needs the answer of a write: run it on the real connection."""


class _Unanswered:
    """What a recorded write returns: nothing has run yet, so there is nothing to read."""

    def __getattr__(self, name):
        raise NeedsConnection(f"the answer of a recorded write ({name})")


_UNANSWERED = _Unanswered()


class Recorder:
    """A stand-in connection: takes writes (with parameters) and keeps them for later.

    With a ``reader`` (a connection on a read snapshot), a step may read until its first
    write; a read after that would not see the step's own writes, so it is refused."""

    def __init__(self, reader=None) -> None:
        self.reader = reader
        self.steps: list[list[tuple]] = []  # one list of (statement, parameters) per step
        self._current: list[tuple] | None = None

    def begin_step(self) -> None:
        self._current = []

    def end_step(self, keep: bool) -> None:
        if keep and self._current:
            self.steps.append(self._current)
        self._current = None

    def execute(self, statement, parameters=None):
        if not isinstance(statement, UpdateBase) and self.reader is not None and not self._current:
            return self.reader.execute(statement, parameters)
        if not isinstance(statement, UpdateBase) or statement._returning or parameters is None:
            raise NeedsConnection(f"not a plain write: {type(statement).__name__}")
        self._current.append((statement, parameters))
        return _UNANSWERED

    def begin_nested(self):
        raise NeedsConnection("a savepoint")

    def replay(self, conn) -> int:
        """Run every recorded write on ``conn``; returns how many statements that took."""
        shapes: dict[tuple, list[list[tuple]]] = {}
        for step in self.steps:
            shapes.setdefault(tuple(id(statement) for statement, _ in step), []).append(step)
        run = _run_on_driver if conn.dialect.name == "sqlite" else _run
        sent = 0
        for steps in shapes.values():
            for k in range(len(steps[0])):
                statement = steps[0][k][0]
                rows: list[dict] = []
                for step in steps:
                    parameters = step[k][1]
                    if isinstance(parameters, list):
                        rows.extend(parameters)
                    else:
                        rows.append(parameters)
                if rows:
                    run(conn, statement, rows)
                    sent += 1
        self.steps.clear()
        return sent


def _run(conn, statement, rows: list[dict]) -> None:
    # one row: a plain execute, cheaper than an executemany of one
    conn.execute(statement, rows if len(rows) > 1 else rows[0])


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


def _run_on_driver(conn, statement, rows: list[dict]) -> None:
    dialect = conn.dialect
    cursor = conn.connection.driver_connection.cursor()
    try:  # rows with the same keys run together; the order of the rows is kept
        for keys, group in groupby(rows, key=tuple):
            same = list(group)
            found = _compiled.get((id(statement), keys))
            if found is None or found[0] is not statement:
                if len(_compiled) > 500:  # only a handful of statements are ever recorded
                    _compiled.clear()
                found = _compiled[(id(statement), keys)] = (statement, _DriverWrite(statement, dialect, keys))
            write = found[1]
            if write.sql is None:
                _run(conn, statement, same)
                continue
            values = [write.values(row) for row in same]
            try:
                if len(values) == 1:
                    cursor.execute(write.sql, values[0])
                else:
                    cursor.executemany(write.sql, values)
            except dialect.dbapi.Error as exc:  # as SQLAlchemy would raise it (IntegrityError…)
                raise DBAPIError.instance(write.sql, values, exc, dialect.dbapi.Error,
                                          dialect=dialect) from exc
    finally:
        cursor.close()
