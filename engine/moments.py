"""Moments in time as papo stores and shows them: aware UTC datetimes in the database,
epoch seconds in the engine (events carry their time), ISO-8601 ``…Z`` strings in JSON."""
from __future__ import annotations

from datetime import UTC, datetime


def utc(ts: float) -> datetime:
    """Epoch seconds → an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def epoch(value: datetime) -> float:
    return aware(value).timestamp()


def iso(value: datetime | None) -> str | None:
    """``2026-11-25T14:03:00Z`` (DESIGN §6: every timestamp in the API)."""
    if value is None:
        return None
    return aware(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
