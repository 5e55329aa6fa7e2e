"""Business hours (DESIGN §10.3): when the shop is open, and when it opens next. Pure.

A schedule is the setting ``{"timezone", "week": {"mon": [["09:00", "18:00"]], …},
"holidays": ["2026-12-25"], "closed_message"}``. :func:`parse` checks a body and
gives a :class:`BusinessHours` (or raises :class:`~engine.errors.Invalid` naming every
bad field); :func:`is_open` and :func:`next_open` answer for a moment given as epoch
seconds — nothing here reads the clock or the database. ``None`` stands for "no schedule
set": always open, no closed message ever.

Times are wall-clock times in the schedule's zone (``zoneinfo``, with the ``tzdata``
package where the system has no zone files): "09:00" is 09:00 in São Paulo all year and
09:00 in Lisbon in summer and in winter alike.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import Invalid
from engine.i18n import N_, gettext

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
LOOKAHEAD_DAYS = 14  # next_open is empty when nothing opens within this many days
MAX_RANGES_A_DAY = 12
MAX_HOLIDAYS = 366
MAX_CLOSED_MESSAGE = 4096
DEFAULT_TIMEZONE = "America/Sao_Paulo"
_TIME = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

WEEKDAY_NAMES = (N_("segunda-feira"), N_("terça-feira"), N_("quarta-feira"), N_("quinta-feira"),
                 N_("sexta-feira"), N_("sábado"), N_("domingo"))
MESSAGES = {
    "today": N_("hoje às %(time)s"),
    "tomorrow": N_("amanhã às %(time)s"),
    "weekday": N_("%(weekday)s às %(time)s"),
    "invalid": N_("O horário de atendimento tem %(count)s problema(s)."),
    "not_object": N_("Envie um objeto com timezone, week, holidays e closed_message."),
    "timezone": N_("Fuso horário desconhecido: \"%(value)s\". Use um nome como America/Sao_Paulo."),
    "weekday_unknown": N_("Dia da semana desconhecido: \"%(value)s\". Use mon, tue, wed, thu, fri, sat ou sun."),
    "ranges": N_("Use uma lista de faixas, ex.: [[\"09:00\", \"18:00\"]]."),
    "too_many_ranges": N_("No máximo %(limit)s faixas por dia."),
    "range_shape": N_("Cada faixa é um par [\"início\", \"fim\"], ex.: [\"09:00\", \"18:00\"]."),
    "time": N_("Horário inválido: \"%(value)s\". Use HH:MM, de 00:00 a 23:59 (24:00 só no fim de uma faixa)."),
    "order": N_("A faixa termina (%(end)s) antes de começar (%(start)s). Uma faixa que passa da meia-noite vira duas: até 24:00 e a partir de 00:00."),
    "overlap": N_("Esta faixa (%(start)s–%(end)s) se sobrepõe a outra do mesmo dia (%(other_start)s–%(other_end)s)."),
    "holidays": N_("Use uma lista de datas AAAA-MM-DD."),
    "holiday": N_("Data inválida: \"%(value)s\". Use AAAA-MM-DD, ex.: 2026-12-25."),
    "too_many_holidays": N_("No máximo %(limit)s feriados."),
    "closed_message": N_("A mensagem de fora do horário precisa ser um texto de até %(limit)s caracteres."),
    "template": N_("A mensagem de fora do horário tem um erro: %(problem)s"),
    "unknown_field": N_("Campo desconhecido: use timezone, week, holidays e closed_message."),
}


@dataclass(frozen=True)
class BusinessHours:
    """A checked schedule. ``week`` maps every weekday to its ranges as minutes since
    midnight, ``(start, end)`` with ``end`` up to 1440 ("24:00"), sorted, not overlapping."""

    timezone: str
    week: dict[str, tuple[tuple[int, int], ...]]
    holidays: frozenset[date]
    closed_message: str

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    def to_json(self) -> dict:
        """The setting as the API gives it back (every weekday present, holidays sorted)."""
        return {"timezone": self.timezone,
                "week": {day: [[_clock(a), _clock(b)] for a, b in self.week[day]] for day in WEEKDAYS},
                "holidays": sorted(d.isoformat() for d in self.holidays),
                "closed_message": self.closed_message}


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The time zone called ``name``; ``ZoneInfoNotFoundError`` (a ``KeyError``) if none."""
    return ZoneInfo(name)


def known_zone(name: object) -> bool:
    """Whether ``name`` names a time zone zoneinfo knows (``America/Sao_Paulo``…); a folder
    of zones ("America"), a path or any other file is not one."""
    if not isinstance(name, str) or not name or len(name) > 64 or name != name.strip():
        return False
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" is a folder
        return False
    return True


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(value: object, *, end: bool) -> int | None:
    if not isinstance(value, str):
        return None
    found = _TIME.match(value)
    if not found:
        return None
    minutes = int(found[1]) * 60 + int(found[2])
    if minutes > 1440 or (minutes == 1440 and not end):
        return None
    return minutes


# ---------------------------------------------------------------------- checking a body


def parse(body: object, lang: str | None = None, *, default_timezone: str = DEFAULT_TIMEZONE
          ) -> BusinessHours:
    """The schedule in ``body`` (the whole setting); :class:`Invalid` (422) with one
    ``{"path", "message"}`` per problem, in ``lang``, when anything is wrong."""
    problems: list[dict] = []

    def problem(path: str, key: str, **params) -> None:
        problems.append({"path": path, "message": gettext(MESSAGES[key], lang, **params)})

    if not isinstance(body, dict):
        problem("$", "not_object")
        raise Invalid(gettext(MESSAGES["invalid"], lang, count=1), code="invalid_business_hours",
                      details=problems)
    for key in body:
        if key not in ("timezone", "week", "holidays", "closed_message"):
            problem(f"$.{key}", "unknown_field")
    timezone = body.get("timezone", default_timezone)
    if not known_zone(timezone):
        problem("$.timezone", "timezone", value=str(timezone)[:64])
    week = _parse_week(body.get("week") or {}, problem)
    holidays = _parse_holidays(body.get("holidays") or [], problem)
    closed_message = body.get("closed_message") or ""
    if not isinstance(closed_message, str) or len(closed_message) > MAX_CLOSED_MESSAGE:
        problem("$.closed_message", "closed_message", limit=MAX_CLOSED_MESSAGE)
        closed_message = ""
    elif closed_message:
        from engine.templates import syntax_error

        error = syntax_error(closed_message, lang)
        if error:
            problem("$.closed_message", "template", problem=error)
    if problems:
        raise Invalid(gettext(MESSAGES["invalid"], lang, count=len(problems)),
                      code="invalid_business_hours", details=problems)
    return BusinessHours(timezone, week, holidays, closed_message)


def _parse_week(week: object, problem) -> dict[str, tuple[tuple[int, int], ...]]:
    out: dict[str, tuple[tuple[int, int], ...]] = {day: () for day in WEEKDAYS}
    if not isinstance(week, dict):
        problem("$.week", "ranges")
        return out
    for day, ranges in week.items():
        path = f"$.week.{day}"
        if day not in WEEKDAYS:
            problem(path, "weekday_unknown", value=str(day)[:20])
            continue
        if ranges is None:
            continue
        if not isinstance(ranges, list):
            problem(path, "ranges")
            continue
        if len(ranges) > MAX_RANGES_A_DAY:
            problem(path, "too_many_ranges", limit=MAX_RANGES_A_DAY)
            continue
        found: list[tuple[int, int, int]] = []  # start, end, index
        for i, pair in enumerate(ranges):
            where = f"{path}[{i}]"
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                problem(where, "range_shape")
                continue
            start, end = _minutes(pair[0], end=False), _minutes(pair[1], end=True)
            if start is None:
                problem(f"{where}[0]", "time", value=str(pair[0])[:20])
            if end is None:
                problem(f"{where}[1]", "time", value=str(pair[1])[:20])
            if start is None or end is None:
                continue
            if end <= start:
                problem(where, "order", start=pair[0], end=pair[1])
                continue
            found.append((start, end, i))
        found.sort()
        for (a_start, a_end, _), (b_start, b_end, b_index) in zip(found, found[1:], strict=False):
            if b_start < a_end:
                problem(f"{path}[{b_index}]", "overlap", start=_clock(b_start), end=_clock(b_end),
                        other_start=_clock(a_start), other_end=_clock(a_end))
        out[day] = tuple((start, end) for start, end, _ in found)
    return out


def _parse_holidays(holidays: object, problem) -> frozenset[date]:
    if not isinstance(holidays, list):
        problem("$.holidays", "holidays")
        return frozenset()
    if len(holidays) > MAX_HOLIDAYS:
        problem("$.holidays", "too_many_holidays", limit=MAX_HOLIDAYS)
        return frozenset()
    days = set()
    for i, value in enumerate(holidays):
        try:
            if not isinstance(value, str) or not _DAY.match(value):
                raise ValueError(value)
            days.add(date.fromisoformat(value))
        except ValueError:
            problem(f"$.holidays[{i}]", "holiday", value=str(value)[:20])
    return frozenset(days)


def from_stored(document: dict | None) -> BusinessHours | None:
    """A stored setting (checked when it was saved) as a schedule; None: none set."""
    if not document or document.get("week") is None:
        return None
    return _from_stored(json.dumps(document, sort_keys=True))


@lru_cache(maxsize=32)
def _from_stored(document: str) -> BusinessHours:
    """Parsed once per distinct stored document (the inbound path reads it every time)."""
    return parse(json.loads(document))


# ---------------------------------------------------------------------- open or closed


def local(hours: BusinessHours, at: float) -> datetime:
    """``at`` (epoch seconds) as a wall-clock time in the schedule's zone."""
    return datetime.fromtimestamp(at, UTC).astimezone(hours.zone)


def is_open(hours: BusinessHours | None, at: float) -> bool:
    """Whether the shop is open at ``at``; no schedule set counts as always open."""
    if hours is None:
        return True
    now = local(hours, at)
    if now.date() in hours.holidays:
        return False
    minute = now.hour * 60 + now.minute + now.second / 60
    return any(start <= minute < end for start, end in hours.week[WEEKDAYS[now.weekday()]])


def next_open(hours: BusinessHours | None, at: float) -> datetime | None:
    """When the shop opens next after ``at`` (a wall-clock datetime in its zone), ``at``
    itself when it is open now; None when nothing opens in the next 14 days (or no schedule)."""
    if hours is None:
        return None
    if is_open(hours, at):
        return local(hours, at)
    now = local(hours, at)
    limit = at + LOOKAHEAD_DAYS * 86400
    for offset in range(LOOKAHEAD_DAYS + 1):
        day = now.date() + timedelta(days=offset)
        if day in hours.holidays:
            continue
        for start, _ in hours.week[WEEKDAYS[day.weekday()]]:
            if start >= 1440:
                continue
            opening = datetime.combine(day, time(start // 60, start % 60), hours.zone)
            # A time skipped by a DST change (02:30 on a spring-forward night) means the
            # moment the clocks reach it: the round trip through UTC moves it forward.
            opening = opening.astimezone(UTC).astimezone(hours.zone)
            moment = opening.timestamp()
            if moment > at and moment <= limit:
                return opening
            if moment > limit:
                return None
    return None


def next_open_text(hours: BusinessHours | None, at: float, lang: str | None = None) -> str:
    """"hoje às 14:00", "amanhã às 09:00", "segunda-feira às 09:00" (English under
    ``lang="en"``); "" when nothing opens in the next 14 days."""
    opening = next_open(hours, at)
    if opening is None or hours is None:
        return ""
    clock = opening.strftime("%H:%M")
    days = (opening.date() - local(hours, at).date()).days
    if days == 0:
        return gettext(MESSAGES["today"], lang, time=clock)
    if days == 1:
        return gettext(MESSAGES["tomorrow"], lang, time=clock)
    weekday = gettext(WEEKDAY_NAMES[opening.weekday()], lang)
    if days >= 7:  # the same weekday as today, a week on: the date makes it plain
        weekday += opening.strftime(", %m/%d" if (lang or "").startswith("en") else ", %d/%m")
    return gettext(MESSAGES["weekday"], lang, weekday=weekday, time=clock)


def closed_message(hours: BusinessHours | None, at: float, variables: dict, contact: dict,
                   lang: str | None = None) -> str | None:
    """What a customer who asks for a person gets when the shop is closed at ``at``: the
    schedule's ``closed_message`` rendered with ``next_open`` (None: open, no schedule, or
    no message set)."""
    if hours is None or not hours.closed_message or is_open(hours, at):
        return None
    from engine.templates import render

    text, _, _ = render(hours.closed_message,
                        {**variables, "next_open": next_open_text(hours, at, lang)}, contact)
    return text or None
