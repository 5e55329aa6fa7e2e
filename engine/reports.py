"""The figures of the reports page (DESIGN §6, docs/REPORTS.md), read from the rows the
service writes: conclusion activity entries (with their ``resolution_s`` and
``first_response_s``), CSAT answers and run visits.

Every function takes the database and a period of days in a time zone (``PAPO_TIMEZONE``
at the callers; UTC by default), both ends included, and
leaves the simulator's conversations out (as the API does). The wording and the charts
are the editor's (``editor/reports.py``); this module only counts. :func:`summary` is
``GET /api/v1/reports/summary`` and the page's cards; :func:`funnel` the flow funnel.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Integer, and_, case, cast, func, or_, select
from sqlalchemy.engine import Engine

from engine import conversation as machine
from engine import hours
from engine.db import read_only
from engine.errors import Invalid
from engine.i18n import N_
from engine.queries import TEST_CHANNEL
from engine.store import activity, answers, conversations, run_blocks

# Resolution-time buckets: (upper bound in seconds, key).
RESOLUTION_BUCKETS = ((5 * 60, "lt5m"), (15 * 60, "5_15m"), (60 * 60, "15_60m"),
                      (4 * 3600, "1_4h"), (24 * 3600, "4_24h"), (math.inf, "gt1d"))


def bounds(date_from: date, date_to: date, timezone: str = "UTC") -> tuple[datetime, datetime]:
    """The period as ``[start, end)`` aware UTC datetimes (``date_to`` included), its days
    being days in ``timezone`` (``PAPO_TIMEZONE``: a day in São Paulo ends at 03:00 UTC)."""
    zone = hours.zone(timezone)
    start = datetime.combine(date_from, time.min, zone).astimezone(UTC)
    end = datetime.combine(date_to + timedelta(days=1), time.min, zone).astimezone(UTC)
    return start, end


def _real(column):
    """Rows of real conversations only (the simulator's channel is left out, as in the API)."""
    return column.not_in(select(conversations.c.id).where(conversations.c.channel == TEST_CHANNEL))


def _day_columns(column, dialect: str, timezone: str) -> list:
    """What to group moments by to tell their day in ``timezone``: PostgreSQL says the
    day itself; SQLite (no time zones) gives the UTC quarter-hour, which :func:`_local_day`
    turns into the day (every zone's offset is a whole number of quarter-hours)."""
    if dialect == "postgresql":
        return [func.date(func.timezone(timezone, column)).label("day")]
    return [func.strftime("%Y-%m-%d %H", column).label("hour"),
            cast(func.strftime("%M", column), Integer).op("/")(15).label("quarter")]


def _local_day(key: tuple, zone) -> str:
    if len(key) == 1:
        day = key[0]
        return day if isinstance(day, str) else day.isoformat()
    hour, quarter = key
    moment = datetime.strptime(hour, "%Y-%m-%d %H").replace(tzinfo=UTC) + timedelta(minutes=15 * int(quarter))
    return moment.astimezone(zone).date().isoformat()


def daily(db: Engine, date_from: date, date_to: date, timezone: str = "UTC") -> list[dict]:
    """``[{"day", "opened", "concluded"}]`` for every day of the period (zeros included),
    days in ``timezone``.

    Opened = activity entries moving a conversation from concluded to open; concluded =
    from open to concluded (exactly the entries ``report_summary`` counts).
    """
    start, end = bounds(date_from, date_to, timezone)
    day = _day_columns(activity.c.at, db.dialect.name, timezone)
    opening = and_(activity.c.to_status == machine.OPEN,
                   or_(activity.c.from_status.is_(None), activity.c.from_status != machine.OPEN))
    closing = and_(activity.c.to_status == machine.CONCLUDED, activity.c.from_status == machine.OPEN)
    query = (select(*day, activity.c.to_status, func.count())
             .where(activity.c.at >= start, activity.c.at < end, or_(opening, closing),
                    _real(activity.c.conversation_id))
             .group_by(*day, activity.c.to_status))
    with read_only(db) as conn:
        rows = conn.execute(query).all()
    zone = hours.zone(timezone)
    counts: dict[tuple[str, str], int] = {}
    for *key, status, n in rows:
        local_day = _local_day(tuple(key), zone)
        counts[(local_day, status)] = counts.get((local_day, status), 0) + n
    days = []
    for offset in range((date_to - date_from).days + 1):
        current = date_from + timedelta(days=offset)
        iso_day = current.isoformat()
        days.append({"day": current, "opened": counts.get((iso_day, machine.OPEN), 0),
                     "concluded": counts.get((iso_day, machine.CONCLUDED), 0)})
    return days


def resolution_histogram(db: Engine, date_from: date, date_to: date, timezone: str = "UTC") -> list[dict]:
    """``[{"key", "count"}]``: conclusions of the period per resolution-time bucket
    (:data:`RESOLUTION_BUCKETS`, in order), the times the summary averages.

    Counted in SQL from the one number each entry needs: decoding 36,000 JSON details in
    Python took 400 ms on the 1,000,000-conversation benchmark.
    """
    start, end = bounds(date_from, date_to, timezone)
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


def csat_answers(variable: str):
    """Which answers are CSAT (DESIGN §10.1, §10.6): those to a ``csat: true`` question,
    and — only in flows without such a question — those saved as ``variable``
    (``PAPO_CSAT_VARIABLE``). ``answers.csat`` was set when each answer was saved."""
    return or_(answers.c.csat.is_(True), and_(answers.c.csat.is_(None), answers.c.name == variable))


def csat_distribution(db: Engine, variable: str, date_from: date, date_to: date,
                      timezone: str = "UTC") -> list[dict]:
    """``[{"score": 1..5, "count"}]`` of the CSAT answers (see :func:`csat_answers`)
    recorded in the period."""
    start, end = bounds(date_from, date_to, timezone)
    with read_only(db) as conn:
        values = conn.execute(select(answers.c.value, func.count()).where(
            csat_answers(variable), answers.c.at >= start, answers.c.at < end,
            _real(answers.c.conversation_id)).group_by(answers.c.value)).all()
    counts: Counter[int] = Counter()
    for value, n in values:
        score = csat_score(value)
        if score is not None:
            counts[score] += n
    return [{"score": score, "count": counts[score]} for score in range(1, 6)]


def stats(values: list[float]) -> dict:
    """``{"avg", "median", "p90"}`` (nearest-rank p90), rounded to ms; all None when empty."""
    if not values:
        return {"avg": None, "median": None, "p90": None}
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    p90 = ordered[min(n - 1, max(0, -(-9 * n // 10) - 1))]  # nearest-rank
    return {"avg": round(sum(ordered) / n, 3), "median": round(median, 3), "p90": round(p90, 3)}


def summary(db: Engine, csat_variable: str, date_from: date, date_to: date,
            timezone: str = "UTC") -> dict:
    """DESIGN §6 reports: open now; conclusions of the period with resolution and first
    response times, CSAT (answers saved as ``csat_variable``), per agent.

    ``Invalid`` when the period ends before it starts.
    """
    start, end = bounds(date_from, date_to, timezone)
    if end <= start:
        raise Invalid(N_("A data final precisa ser igual ou posterior à inicial."), details=[
            {"path": "to", "message": N_("Data final antes da inicial.")}])
    test_conversations = select(conversations.c.id).where(conversations.c.channel == TEST_CHANNEL)
    with read_only(db) as conn:
        open_now = conn.execute(select(func.count()).select_from(conversations).where(
            conversations.c.status == machine.OPEN, conversations.c.channel != TEST_CHANNEL)).scalar()
        # The two numbers each conclusion needs, extracted in SQL: decoding every JSON
        # detail in Python cost ~400 ms for 36,000 conclusions (bench/inbox.py).
        rows = conn.execute(select(activity.c.actor, activity.c.detail["resolution_s"].as_float(),
                                   activity.c.detail["first_response_s"].as_float()).where(
            activity.c.to_status == machine.CONCLUDED, activity.c.from_status == machine.OPEN,
            activity.c.at >= start, activity.c.at < end,
            activity.c.conversation_id.not_in(test_conversations))).all()
        csat_values = conn.execute(select(answers.c.value).where(
            csat_answers(csat_variable), answers.c.at >= start, answers.c.at < end,
            answers.c.conversation_id.not_in(test_conversations))).scalars().all()
    resolution, first_response, by_agent = [], [], {}
    for actor, resolution_s, first_response_s in rows:
        if resolution_s is not None:
            resolution.append(resolution_s)
        if first_response_s is not None:
            first_response.append(first_response_s)
        if actor not in ("bot", "system", "customer"):
            agent = by_agent.setdefault(actor, {"user": actor, "concluded": 0, "times": []})
            agent["concluded"] += 1
            if resolution_s is not None:
                agent["times"].append(resolution_s)
    scores = [score for score in map(csat_score, csat_values) if score is not None]
    agents = [{"user": a["user"], "concluded": a["concluded"],
               "resolution_s_avg": round(sum(a["times"]) / len(a["times"]), 3) if a["times"] else None}
              for a in sorted(by_agent.values(), key=lambda a: (-a["concluded"], a["user"]))]
    return {
        "open": open_now,
        "concluded": len(rows),
        "resolution_s": stats(resolution),
        "first_response_s": stats(first_response),
        "csat": {"avg": round(sum(scores) / len(scores), 3) if scores else None, "count": len(scores)},
        "by_agent": agents,
    }


def funnel(db: Engine, flow_id: str) -> list[dict]:
    """``[{"block_id", "runs"}]``: how many runs reached each block of a flow."""
    with read_only(db) as conn:
        rows = conn.execute(select(run_blocks.c.block_id, func.count()).where(
            run_blocks.c.flow_id == flow_id).group_by(run_blocks.c.block_id)).all()
    return [{"block_id": b, "runs": n} for b, n in rows]
