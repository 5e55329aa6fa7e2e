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
                if rows:  # one row: a plain execute, cheaper than executemany of one
                    conn.execute(statement, rows if len(rows) > 1 else rows[0])
                    sent += 1
        self.steps.clear()
        return sent
