"""WhatsApp's 24-hour customer service window (DESIGN §10.4, §10.6).

WhatsApp delivers free text (and interactive messages) only within 24 hours of the
customer's last message; after that, only an approved template. The window is counted
from the WhatsApp ``timestamp`` of the last inbound message, which is that message's
``at`` (its receive time when Meta sent none, ``engine/whatsapp_inbound.py``), so it is
read from the messages themselves: nothing extra is written on the hot path.

A conversation with no inbound message has no window (``closes_at`` None): it is closed.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engine.moments import aware, utc
from engine.store import messages

WINDOW = timedelta(hours=24)


def last_inbound(conn: Connection, conversation_ids: list[int]) -> dict[int, datetime]:
    """``{conversation id: its last customer message's at}`` (ids without one left out)."""
    if not conversation_ids:
        return {}
    rows = conn.execute(select(messages.c.conversation_id, func.max(messages.c.at))
                        .where(messages.c.conversation_id.in_(conversation_ids),
                               messages.c.direction == "in")
                        .group_by(messages.c.conversation_id))
    return {row[0]: aware(row[1]) for row in rows if row[1] is not None}


def closes_at(last_in: datetime | None) -> datetime | None:
    """When the window closes (None: never opened)."""
    return None if last_in is None else aware(last_in) + WINDOW


def is_open(last_in: datetime | None, now: float) -> bool:
    """Whether free text may be sent at ``now`` (epoch seconds)."""
    closing = closes_at(last_in)
    return closing is not None and utc(now) < closing


def window_of(conn: Connection, conversation_id: int) -> datetime | None:
    """When this conversation's window closes (None: no customer message yet)."""
    return closes_at(last_inbound(conn, [conversation_id]).get(conversation_id))
