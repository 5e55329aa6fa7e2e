"""WhatsApp's 24-hour customer service window (DESIGN §10.4, §10.6).

WhatsApp delivers free text (and interactive messages) only within 24 hours of the
customer's last message; after that, only an approved template. The window is counted
from the WhatsApp ``timestamp`` of the last inbound message, which is that message's
``at`` (its receive time when Meta sent none, ``engine/whatsapp_inbound.py``). The unit
of work keeps the newest one on the conversation's row (``conversations.last_inbound_at``,
written with the message itself), so the window is one row read by primary key, however
many messages the conversation has.

A conversation with no inbound message has no window (``closes_at`` None): it is closed.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from engine.moments import aware, utc
from engine.store import conversations

WINDOW = timedelta(hours=24)


def last_inbound(conn: Connection, conversation_ids: list[int]) -> dict[int, datetime]:
    """``{conversation id: its last customer message's at}`` (ids without one left out)."""
    if not conversation_ids:
        return {}
    rows = conn.execute(_LAST_INBOUND, {"_ids": list(conversation_ids)})
    return {row[0]: aware(row[1]) for row in rows if row[1] is not None}


_LAST_INBOUND = select(conversations.c.id, conversations.c.last_inbound_at).where(
    conversations.c.id.in_(bindparam("_ids", expanding=True)))


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
