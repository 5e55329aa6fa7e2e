"""The business hours setting in the database: read it, replace it (DESIGN §10.3).

The conversations' unit of work reads the same row itself, inside the one query that
loads a conversation (:mod:`engine.service.statements`); this module serves the API, the
settings page and the simulator.
"""
from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine

from engine.db import read_only
from engine.hours import BusinessHours, from_stored
from engine.moments import utc
from engine.service.write import insert_ignore
from engine.store import business_hours

ROW_ID = 1


def load(db: Engine) -> BusinessHours | None:
    """The schedule as set; None: none set (always open)."""
    with read_only(db) as conn:
        document = conn.execute(select(business_hours.c.document).where(
            business_hours.c.id == ROW_ID)).scalar()
    return from_stored(document)


def save(db: Engine, hours: BusinessHours | None, actor: str, at: float) -> None:
    """Replace the whole setting with ``hours`` (checked by :func:`engine.hours.parse`);
    None removes it: always open again."""
    with db.begin() as conn:
        if hours is None:
            conn.execute(delete(business_hours).where(business_hours.c.id == ROW_ID))
            return
        values = {"document": hours.to_json(), "updated_at": utc(at), "updated_by": actor}
        # Two admins saving the first schedule at once: the row is made once, the later wins.
        conn.execute(insert_ignore(db.dialect.name == "postgresql", business_hours, ["id"]),
                     {"id": ROW_ID, **values})
        conn.execute(update(business_hours).where(business_hours.c.id == ROW_ID).values(**values))
