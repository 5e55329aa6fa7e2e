"""Readiness: can this process serve? (database reachable and migrated to this code's head)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from engine.db import read_only


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str  # "ok", "database_unreachable", "not_migrated", "migration_pending"
    message: str
    revision: str | None = None  # the database's migration revision
    head: str | None = None  # the revision this code expects
    detail: str | None = None  # for the log only (may name the database host)

    def to_json(self) -> dict:
        body = {"status": "ok" if self.ready else "unavailable", "reason": self.reason,
                "message": self.message, "revision": self.revision, "head": self.head}
        return body


@functools.cache
def expected_revision() -> str:
    """The newest migration this code ships (read once per process)."""
    from engine.migrate import head

    return head()


def readiness(db: Engine) -> Readiness:
    """One short read of ``alembic_version``; never raises for a database that is down."""
    head = expected_revision()
    try:
        with read_only(db) as conn:  # SQLite: a deferred read, never the write lock
            revision = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]
        # The public answer does not name hosts or ports; the log line has the driver's words.
        return Readiness(False, "database_unreachable",
                         "The database cannot be reached (the server log says why).", None, head,
                         detail=reason)
    if revision is None:
        return Readiness(False, "not_migrated",
                         "The database has no migration history: run `papo db upgrade`.", None, head)
    if revision != head:
        return Readiness(False, "migration_pending",
                         f"The database is at revision {revision}, this version of papo needs "
                         f"{head}: run `papo db upgrade`.", revision, head)
    return Readiness(True, "ok", "The database is reachable and up to date.", revision, head)
