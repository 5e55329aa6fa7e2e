"""The "Configurações" (Settings) page: business hours (DESIGN §10.3).

Routes (blueprint ``settings``)::

    GET  /settings                 the schedule: week grid, holidays, closed message, and
                                   whether the shop is open now (agents read it too)
    POST /settings/business-hours  replace it (admins; CSRF), the same checks as
                                   ``PUT /api/v1/settings/business-hours``

The form is plain HTML (no script needed): three ranges a day as "HH:MM" texts
("24:00" may end one), holidays one per line (DD/MM/AAAA or AAAA-MM-DD). A refused form
comes back with every problem listed and its fields marked, nothing stored.
"""
from __future__ import annotations

import re
from datetime import date

from flask import Blueprint, make_response, render_template, request
from flask_babel import gettext as _

from editor.app import get_engine, get_service, get_settings
from editor.auth import admin_required, current_user, login_required
from editor.i18n import current_lang
from engine import hours, hours_store
from engine.errors import Invalid

bp = Blueprint("settings", __name__)

SLOTS = 3  # empty ranges offered a day (more appear once these are used)
ZONES = ("America/Sao_Paulo", "America/Manaus", "America/Cuiaba", "America/Belem",
         "America/Fortaleza", "America/Recife", "America/Bahia", "America/Rio_Branco",
         "America/Noronha", "Europe/Lisbon", "America/New_York", "UTC")
_SLOT_PATH = re.compile(r"^\$\.week\.(\w+)\[(\d+)\](?:\[(\d)\])?$")
_BR_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def _day_label(day: str) -> str:
    return {"mon": _("Segunda-feira"), "tue": _("Terça-feira"), "wed": _("Quarta-feira"),
            "thu": _("Quinta-feira"), "fri": _("Sexta-feira"), "sat": _("Sábado"),
            "sun": _("Domingo")}[day]


def _show_day(day: date) -> str:
    return day.isoformat() if current_lang() == "en" else day.strftime("%d/%m/%Y")


def _form_from(setting: hours.BusinessHours | None) -> dict:
    """The form's values for a stored schedule (or the empty form)."""
    week = {day: [] for day in hours.WEEKDAYS}
    if setting is not None:
        week = setting.to_json()["week"]
    return {
        "enabled": setting is not None,
        "timezone": setting.timezone if setting else get_settings().timezone,
        "week": {day: [list(r) for r in ranges] + [["", ""]] * max(SLOTS - len(ranges), 1)
                 for day, ranges in week.items()},
        "holidays": "\n".join(_show_day(d) for d in sorted(setting.holidays)) if setting else "",
        "closed_message": setting.closed_message if setting else _(
            "Olá! Nossa equipe está fora do horário de atendimento agora. "
            "Voltamos {{ next_open }} e respondemos assim que chegarmos."),
    }


def _form_posted() -> tuple[dict, dict, dict[tuple[str, int], int]]:
    """(the form as typed, the API body it stands for, {(day, range index): slot})."""
    form = request.form
    week_form: dict[str, list[list[str]]] = {}
    week: dict[str, list[list[str]]] = {}
    slots: dict[tuple[str, int], int] = {}
    for day in hours.WEEKDAYS:
        typed = []
        for slot in range(hours.MAX_RANGES_A_DAY):
            start = (form.get(f"{day}-{slot}-start") or "").strip()[:8]
            end = (form.get(f"{day}-{slot}-end") or "").strip()[:8]
            if f"{day}-{slot}-start" not in form and f"{day}-{slot}-end" not in form:
                break
            typed.append([start, end])
        week_form[day] = typed + [["", ""]] * max(SLOTS - len(typed), 0)
        week[day] = []
        for slot, (start, end) in enumerate(typed):
            if start or end:
                slots[(day, len(week[day]))] = slot
                week[day].append([_clock(start), _clock(end)])
    holidays_text = (form.get("holidays") or "")[:8000]
    holidays = [_iso_day(line.strip()) for line in holidays_text.splitlines() if line.strip()]
    typed = {"enabled": form.get("enabled") == "on", "timezone": (form.get("timezone") or "").strip()[:64],
             "week": week_form, "holidays": holidays_text,
             "closed_message": (form.get("closed_message") or "")[:hours.MAX_CLOSED_MESSAGE + 1]}
    body = {"timezone": typed["timezone"], "week": week, "holidays": holidays,
            "closed_message": typed["closed_message"]}
    return typed, body, slots


def _clock(value: str) -> str:
    """"9:00" → "09:00", "9h" → "09:00", "930" stays as typed (and is refused)."""
    found = re.match(r"^(\d{1,2})(?:[:h](\d{2})?)?$", value)
    if not found:
        return value
    return f"{int(found[1]):02d}:{found[2] or '00'}"


def _iso_day(value: str) -> str:
    found = _BR_DATE.match(value)
    if found:
        return f"{found[3]}-{int(found[2]):02d}-{int(found[1]):02d}"
    return value


def _field_errors(details: list[dict], slots: dict[tuple[str, int], int]) -> dict[str, str]:
    """Which form field each problem belongs to: ``{field id: message}``."""
    out: dict[str, str] = {}
    for detail in details:
        path = detail["path"]
        found = _SLOT_PATH.match(path)
        if found:
            day, index, part = found[1], int(found[2]), found[3]
            slot = slots.get((day, index), index)
            key = f"{day}-{slot}-{'end' if part == '1' else 'start'}"
            out.setdefault(key, detail["message"])
        elif path == "$.timezone":
            out.setdefault("timezone", detail["message"])
        elif path.startswith("$.holidays"):
            out.setdefault("holidays", detail["message"])
        elif path == "$.closed_message":
            out.setdefault("closed_message", detail["message"])
    return out


def _where(path: str) -> str:
    """Where a problem is, in words: "Segunda-feira, faixa 2"."""
    found = _SLOT_PATH.match(path)
    if found and found[1] in hours.WEEKDAYS:
        return _("%(day)s, faixa %(n)s", day=_day_label(found[1]), n=int(found[2]) + 1)
    if path == "$.timezone":
        return _("Fuso horário")
    if path.startswith("$.holidays"):
        return _("Feriados")
    if path == "$.closed_message":
        return _("Mensagem fora do horário")
    return _("Horário")


def _page(form: dict, *, status: int = 200, notice: str | None = None,
          problems: list[dict] | None = None, errors: dict | None = None):
    setting = hours_store.load(get_engine())
    now = get_service().clock()
    state = {"configured": setting is not None, "open": hours.is_open(setting, now),
             "next_open": hours.next_open_text(setting, now, current_lang())}
    user = current_user()
    response = make_response(render_template(
        "settings/index.html", form=form, state=state, notice=notice, problems=problems or [],
        errors=errors or {}, days=[(d, _day_label(d)) for d in hours.WEEKDAYS], zones=ZONES,
        can_edit=bool(user and user["role"] == "admin"), where=_where), status)
    return response


@bp.get("/settings")
@login_required
def index():
    return _page(_form_from(hours_store.load(get_engine())))


@bp.post("/settings/business-hours")
@admin_required
def save_business_hours():
    typed, body, slots = _form_posted()
    user = current_user()
    try:
        setting = hours.parse(body, current_lang(), default_timezone=get_settings().timezone)
    except Invalid as exc:
        if typed["enabled"]:
            return _page(typed, status=422, problems=exc.details or [],
                         errors=_field_errors(exc.details or [], slots))
        setting = None  # switched off: what else the form says does not matter
    if not typed["enabled"]:
        setting = None
    hours_store.save(get_engine(), setting, user["login"], get_service().clock())
    if setting is None:  # what was typed stays on the page, so switching back on loses nothing
        return _page(typed, notice=_("Horário de atendimento desligado: o atendimento conta como sempre aberto."))
    return _page(_form_from(setting), notice=_("Horário de atendimento salvo."))
