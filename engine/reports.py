"""The figures of the reports page (DESIGN §6, docs/REPORTS.md), read from the rows the
service writes: conclusion activity entries (with their ``resolution_s`` and
``first_response_s``), CSAT answers and run visits.

Every function takes the database and a period of UTC days, both ends included, and
leaves the simulator's conversations out (as the API does). The wording and the charts
are the editor's (``editor/reports.py``); this module only counts.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Engine

from engine import conversation as machine
from engine.db import read_only
from engine.queries import TEST_CHANNEL
from engine.store import activity, answers, conversations

# Resolution-time buckets: (upper bound in seconds, key).
RESOLUTION_BUCKETS = ((5 * 60, "lt5m"), (15 * 60, "5_15m"), (60 * 60, "15_60m"),
                      (4 * 3600, "1_4h"), (24 * 3600, "4_24h"), (math.inf, "gt1d"))


def bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """The period as ``[start, end)`` aware UTC datetimes (``date_to`` included)."""
    start = datetime.combine(date_from, datetime.min.time(), UTC)
    return start, datetime.combine(date_to, datetime.min.time(), UTC) + timedelta(days=1)


def _real(column):
    """Rows of real conversations only (the simulator's channel is left out, as in the API)."""
    return column.not_in(select(conversations.c.id).where(conversations.c.channel == TEST_CHANNEL))


def _utc_day(column, dialect: str):
    if dialect == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite keeps UTC text: "YYYY-MM-DD HH:MM:SS"


def daily(db: Engine, date_from: date, date_to: date) -> list[dict]:
    """``[{"day", "opened", "concluded"}]`` for every day of the period (zeros included).

    Opened = activity entries moving a conversation from concluded to open; concluded =
    from open to concluded (exactly the entries ``report_summary`` counts).
    """
    start, end = bounds(date_from, date_to)
    day = _utc_day(activity.c.at, db.dialect.name).label("day")
    opening = and_(activity.c.to_status == machine.OPEN,
                   or_(activity.c.from_status.is_(None), activity.c.from_status != machine.OPEN))
    closing = and_(activity.c.to_status == machine.CONCLUDED, activity.c.from_status == machine.OPEN)
    query = (select(day, activity.c.to_status, func.count())
             .where(activity.c.at >= start, activity.c.at < end, or_(opening, closing),
                    _real(activity.c.conversation_id))
             .group_by(day, activity.c.to_status))
    with read_only(db) as conn:
        rows = conn.execute(query).all()
    counts: dict[tuple[str, str], int] = {}
    for found_day, status, n in rows:
        key = found_day if isinstance(found_day, str) else found_day.isoformat()
        counts[(key, status)] = counts.get((key, status), 0) + n
    days = []
    for offset in range((date_to - date_from).days + 1):
        current = date_from + timedelta(days=offset)
        iso_day = current.isoformat()
        days.append({"day": current, "opened": counts.get((iso_day, machine.OPEN), 0),
                     "concluded": counts.get((iso_day, machine.CONCLUDED), 0)})
    return days


def resolution_histogram(db: Engine, date_from: date, date_to: date) -> list[dict]:
    """``[{"key", "count"}]``: conclusions of the period per resolution-time bucket
    (:data:`RESOLUTION_BUCKETS`, in order), the times the summary averages.

    Counted in SQL from the one number each entry needs: decoding 36,000 JSON details in
    Python took 400 ms on the 1,000,000-conversation benchmark.
    """
    start, end = bounds(date_from, date_to)
    seconds = activity.c.detail["resolution_s"].as_float()
    bucket = case(*[(seconds < bound, key) for bound, key in RESOLUTION_BUCKETS[:-1]],
                  else_=RESOLUTION_BUCKETS[-1][1]).label("bucket")
    with read_only(db) as conn:
        counts = dict(conn.execute(select(bucket, func.count()).where(
            activity.c.to_status == machine.CONCLUDED, activity.c.from_status == machine.OPEN,
            activity.c.at >= start, activity.c.at < end, seconds.is_not(None),
            _real(activity.c.conversation_id)).group_by(bucket)).all())
    return [{"key": key, "count": counts.get(key, 0)} for _bound, key in RESOLUTION_BUCKETS]


def csat_score(value: str) -> int | None:
    """A 1–5 integer answer, else None (the rule ``report_summary`` applies)."""
    try:
        score = json.loads(value) if not value.strip().isdigit() else int(value)
    except ValueError:
        return None
    if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5:
        return score
    return None


def csat_distribution(db: Engine, variable: str, date_from: date, date_to: date) -> list[dict]:
    """``[{"score": 1..5, "count"}]`` of the CSAT answers (saved as ``variable``) recorded
    in the period."""
    start, end = bounds(date_from, date_to)
    with read_only(db) as conn:
        values = conn.execute(select(answers.c.value, func.count()).where(
            answers.c.name == variable, answers.c.at >= start, answers.c.at < end,
            _real(answers.c.conversation_id)).group_by(answers.c.value)).all()
    counts: Counter[int] = Counter()
    for value, n in values:
        score = csat_score(value)
        if score is not None:
            counts[score] += n
    return [{"score": score, "count": counts[score]} for score in range(1, 6)]
