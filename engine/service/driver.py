"""Reads compiled once by SQLAlchemy and run on the database driver's own cursor.

The unit of work's one query per inbound message (``load.inbound``) is small and runs on
every message: SQLAlchemy's work per execution (an execution context, a result object,
row mappings) costs more than the database's. Here the statement is compiled once per
database, with SQLAlchemy's SQL text, parameter order and type conversions (JSON and
dates, both ways); each call only runs it on the driver's cursor and converts the row.
The same trick as ``write._DriverWrite``, for reads.
"""
from __future__ import annotations

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError


class DriverRead:
    """One ``SELECT`` (no ``IN`` lists), compiled for one dialect."""

    def __init__(self, statement, dialect):
        compiled = statement.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("an expanding IN list is left to SQLAlchemy")
        self.sql = compiled.string
        self.compiled = compiled
        self.positional = compiled.positional
        self.names = tuple(compiled.positiontup or ()) if compiled.positional else ()
        self.binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                      for name, bind in compiled.binds.items()}
        columns = list(statement.selected_columns)
        self.keys = tuple(column.key for column in columns)
        self.results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                             for column in columns)

    def _params(self, params: dict):
        values = self.compiled.construct_params(params)
        for name, convert in self.binds.items():
            if convert is not None and name in values:
                values[name] = convert(values[name])
        if self.positional:
            return tuple(values[name] for name in self.names)
        return values

    def first(self, conn: Connection, params: dict) -> dict | None:
        """The first row as ``{column key: value}`` (None: no row), converted as SQLAlchemy would."""
        dialect = conn.dialect
        cursor = conn.connection.driver_connection.cursor()
        try:
            values = self._params(params)
            try:
                cursor.execute(self.sql, values)
                row = cursor.fetchone()
            except dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would raise it
                raise DBAPIError.instance(self.sql, values, exc, dialect.loaded_dbapi.Error,
                                          dialect=dialect) from exc
        finally:
            cursor.close()
        if row is None:
            return None
        return {key: (convert(value) if convert is not None and value is not None else value)
                for key, convert, value in zip(self.keys, self.results, row, strict=True)}


_compiled: dict[tuple[int, str], tuple[object, DriverRead]] = {}


def read_first(conn: Connection, statement, params: dict) -> dict | None:
    """``statement``'s first row through the driver (compiled once per statement and database)."""
    key = (id(statement), conn.dialect.name)
    found = _compiled.get(key)
    if found is None or found[0] is not statement:
        found = _compiled[key] = (statement, DriverRead(statement, conn.dialect))
    return found[1].first(conn, params)
