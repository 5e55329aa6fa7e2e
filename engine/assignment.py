"""Automatic assignment (DESIGN §10.3): who is available, how many conversations each
person takes, and which of them gets the next one.

``choose`` is pure (the policies, tested on their own); the functions below it read and
change the people's availability and capacity. Assigning itself — locking the people,
counting, writing the assignment through the unit of work — is
:mod:`engine.service.assignment`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select, update

from engine.db import read_only
from engine.errors import Invalid, NotFound
from engine.i18n import N_, gettext
from engine.store import conversation_assignees, conversations, users

ONLINE, AWAY = "online", "away"
AVAILABILITIES = (ONLINE, AWAY)
DEFAULT_MAX_OPEN = 10
MAX_MAX_OPEN = 1000
# Two automatic assignments never carry the same stamp (see ``stamp_after``).
STAMP_STEP = timedelta(microseconds=1)

MESSAGES = {
    "bad_availability": N_("Disponibilidade inválida: use \"online\" (disponível) ou \"away\" (ausente)."),
    "bad_max_open": N_("Use um número inteiro de 0 a %(limit)s (0 = sem limite)."),
    "no_user": N_("Não existe usuário com o login \"%(login)s\"."),
}


def _msg(key: str, lang: str | None, **params) -> str:
    return gettext(MESSAGES[key], lang, **params)


@dataclass(frozen=True)
class Agent:
    """A person automatic assignment may give a conversation to, as counted now."""

    login: str
    max_open: int  # 0: no limit
    open: int  # open conversations assigned to them
    last_assigned_at: datetime | None  # their last automatic assignment

    def has_room(self) -> bool:
        return self.max_open == 0 or self.open < self.max_open


_NEVER = datetime.min.replace(tzinfo=UTC)


def choose(agents: list[Agent], policy: str) -> Agent | None:
    """The agent who takes the next conversation under ``policy``; None: nobody has room.

    ``round_robin``: the longest since their last automatic assignment (never first).
    ``balanced``: the fewest open conversations, then as round robin. Ties: by login.
    """
    candidates = [a for a in agents if a.has_room()]
    if not candidates:
        return None
    if policy == "balanced":
        return min(candidates, key=lambda a: (a.open, a.last_assigned_at or _NEVER, a.login))
    return min(candidates, key=lambda a: (a.last_assigned_at or _NEVER, a.login))


def stamp_after(now: datetime, agents: list[Agent]) -> datetime:
    """The ``last_assigned_at`` of a new assignment: now, but always after every stamp
    already given, so round robin keeps its order when many are assigned within one clock
    tick or machines' clocks differ a little."""
    latest = max((a.last_assigned_at for a in agents if a.last_assigned_at), default=None)
    return now if latest is None or now > latest else latest + STAMP_STEP


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored timestamp is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def check_availability(value, lang: str | None = None) -> str:
    if value not in AVAILABILITIES:
        raise Invalid(_msg("bad_availability", lang), code="invalid_availability",
                      details=[{"path": "$.availability", "message": _msg("bad_availability", lang)}])
    return value


def check_max_open(value, lang: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MAX_OPEN:
        message = _msg("bad_max_open", lang, limit=MAX_MAX_OPEN)
        raise Invalid(message, code="invalid_max_open", details=[{"path": "$.max_open", "message": message}])
    return value


def set_availability(engine: Engine, login: str, availability: str, *, lang: str | None = None) -> None:
    """``login`` is ``online`` (takes new conversations) or ``away`` from now on."""
    check_availability(availability, lang)
    with engine.begin() as conn:
        changed = conn.execute(update(users).where(users.c.login == login)
                               .values(availability=availability)).rowcount
    if not changed:
        raise NotFound(_msg("no_user", lang, login=login), code="user_not_found")


def set_max_open(engine: Engine, login: str, max_open: int, *, lang: str | None = None) -> None:
    """At most ``max_open`` open conversations are assigned to ``login`` automatically."""
    check_max_open(max_open, lang)
    with engine.begin() as conn:
        changed = conn.execute(update(users).where(users.c.login == login)
                               .values(max_open=max_open)).rowcount
    if not changed:
        raise NotFound(_msg("no_user", lang, login=login), code="user_not_found")


def open_counts(conn, logins: list[str] | None = None) -> dict[str, int]:
    """``{login: open conversations assigned to them}`` (only logins with some)."""
    query = (select(conversation_assignees.c.login, func.count())
             .select_from(conversation_assignees.join(
                 conversations, conversations.c.id == conversation_assignees.c.conversation_id))
             .where(conversations.c.status == "open")
             .group_by(conversation_assignees.c.login))
    if logins is not None:
        query = query.where(conversation_assignees.c.login.in_(logins))
    return dict(conn.execute(query).all())


def desk(engine: Engine) -> dict[str, dict]:
    """``{login: {"availability", "max_open", "open"}}`` for every user (the team page)."""
    with read_only(engine) as conn:
        rows = conn.execute(select(users.c.login, users.c.availability, users.c.max_open)).all()
        counts = open_counts(conn)
    return {row.login: {"availability": row.availability, "max_open": row.max_open,
                        "open": counts.get(row.login, 0)} for row in rows}
