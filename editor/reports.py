"""Reports (DESIGN §8): figures of a period, charts as server-rendered SVG, CSV export.

Routes (blueprint ``reports``; agents and admins)::

    GET /reports?from=YYYY-MM-DD&to=YYYY-MM-DD&flow=<flow_id>
        cards, opened/concluded per day, resolution-time distribution, CSAT
        distribution, per-agent table, flow funnel (htmx: the ``content`` block)
    GET /reports.csv?from=&to=
        the per-day and per-agent figures as a CSV attachment

The cards and the agent table are ``engine.reports.summary`` itself, so the page
shows exactly what ``GET /api/v1/reports/summary`` answers for the same dates. The
other figures read the same rows (conclusion activity entries, CSAT answers) with the
same rules; see docs/REPORTS.md. Dates are days in ``PAPO_TIMEZONE``, both ends included; without
dates the period is the last 30 days up to today (as in the API).
"""
from __future__ import annotations

import csv
import io
import math
import re
from datetime import UTC, date, datetime, timedelta

from babel.dates import format_skeleton
from flask import Blueprint, make_response, request
from flask_babel import format_decimal, format_number, get_locale, ngettext
from flask_babel import gettext as _

from blocks.labels import block_title, kind_title
from editor.app import get_engine, get_service, get_settings, render_page
from editor.auth import login_required
from editor.i18n import current_lang
from engine import hours, queries
from engine import reports as figures
from engine.errors import PapoError
from engine.flows import FlowRepository

bp = Blueprint("reports", __name__)

REPORT_DAYS = 30  # the period when the dates are left out (the API's default too)
MAX_DAYS = 366  # one bar per day: longer periods would not be readable
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9999, 12, 30)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadPeriod(PapoError):
    status, code = 400, "bad_period"


# ---------------------------------------------------------------------------- period

def _day(args, name: str) -> date | None:
    value = (args.get(name) or "").strip()
    if not value:
        return None
    try:
        if not _DATE.match(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise BadPeriod(_("Data inválida: “%(value)s”. Use o formato AAAA-MM-DD.",
                          value=value[:40])) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadPeriod(_("Data inválida: “%(value)s”. Use o formato AAAA-MM-DD.", value=value))
    return day


def period(args, today: date) -> tuple[date, date]:
    """``(from, to)`` from the query string (both optional); ``BadPeriod`` when unusable."""
    date_from, date_to = _day(args, "from"), _day(args, "to")
    if date_to is None:
        date_to = max(today, date_from) if date_from else today
    if date_from is None:
        date_from = max(FIRST_DAY, date_to - timedelta(days=REPORT_DAYS - 1))
    if date_to < date_from:
        raise BadPeriod(_("A data final vem antes da inicial."))
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise BadPeriod(_("Escolha um período de até %(days)d dias.", days=MAX_DAYS))
    return date_from, date_to


def _today() -> date:
    """Today in the business's time zone (``PAPO_TIMEZONE``)."""
    return datetime.fromtimestamp(get_service().clock(), UTC).astimezone(_zone()).date()


def _zone():
    return hours.zone(get_settings().timezone)


# ---------------------------------------------------------------------------- figures

def daily(engine, date_from: date, date_to: date) -> list[dict]:
    """``[{"day", "opened", "concluded"}]`` for every day of the period (``engine.reports.daily``)."""
    return figures.daily(engine, date_from, date_to, get_settings().timezone)


def resolution_histogram(engine, date_from: date, date_to: date) -> list[dict]:
    """Conclusions per resolution-time bucket, labelled: ``[{"key", "label", "count"}]``."""
    labels = _bucket_labels()
    return [{**bucket, "label": labels[bucket["key"]]}
            for bucket in figures.resolution_histogram(engine, date_from, date_to,
                                                       get_settings().timezone)]


def _bucket_labels() -> dict[str, str]:
    return {"lt5m": _("< 5 min"), "5_15m": _("5–15 min"), "15_60m": _("15–60 min"),
            "1_4h": _("1–4 h"), "4_24h": _("4–24 h"), "gt1d": _("> 1 dia")}


# ---------------------------------------------------------------------------- funnel

def flow_order(doc: dict) -> list[str]:
    """Block ids from ``start`` along the edges (breadth first), then the unreachable ones."""
    blocks = [b["id"] for b in doc.get("blocks", [])]
    nexts: dict[str, list[str]] = {}
    for edge in doc.get("edges", []):
        nexts.setdefault(edge["from"], []).append(edge["to"])
    order, queue = [], [doc.get("start")] if doc.get("start") in blocks else []
    seen = set(queue)
    while queue:
        current = queue.pop(0)
        order.append(current)
        for target in nexts.get(current, []):
            if target in blocks and target not in seen:
                seen.add(target)
                queue.append(target)
    return order + [b for b in blocks if b not in seen]


def funnel_rows(service, repo: FlowRepository, flow_id: str) -> list[dict]:
    """Bars of one flow's funnel in flow order, named by block title (DESIGN §10.1):
    ``[{"block_id","title","type","runs","share"}]`` (``type``: the kind as people say it)."""
    found = repo.published(flow_id)
    doc = found[0] if found else repo.get(flow_id)[0]
    counts = {row["block_id"]: row["runs"] for row in figures.funnel(service.db, flow_id)}
    blocks = {b["id"]: b for b in doc.get("blocks", [])}
    ids = flow_order(doc)
    ids += sorted(b for b in counts if b not in blocks)  # blocks of older versions
    first = counts.get(doc.get("start")) or max(counts.values(), default=0)
    lang = current_lang()
    rows = []
    for block_id in ids:
        block = blocks.get(block_id, {})
        runs = counts.get(block_id, 0)
        rows.append({"block_id": block_id,
                     "title": block_title(block, lang) if block else _("(versão anterior)"),
                     "type": kind_title(block["type"], lang) if block else "",
                     "runs": runs, "share": runs / first if first else None})
    return rows


# ---------------------------------------------------------------------------- charts

def _nice_max(value: float) -> int:
    """The axis top: 1, 2, 5 × 10^n at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return int(step * power)
    return int(10 * power)


def column_chart(labels: list[str], series: list[dict], *, width: int = 720, height: int = 220,
                 label_every: int = 1) -> dict:
    """Geometry of a (grouped) column chart for ``reports/_charts.html``.

    ``series``: ``[{"name", "class", "values": [...]}]``, one value per label.
    """
    left, right, top, bottom = 40, 10, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max((v for s in series for v in s["values"]), default=0))
    slot = plot_w / max(1, len(labels))
    bar_w = max(1.0, slot * 0.8 / max(1, len(series)))
    bars, ticks = [], []
    for i, label in enumerate(labels):
        x0 = left + i * slot + slot * 0.1
        for j, serie in enumerate(series):
            value = serie["values"][i]
            h = plot_h * value / top_value
            bars.append({"x": round(x0 + j * bar_w, 2), "y": round(top + plot_h - h, 2),
                         "w": round(bar_w, 2), "h": round(h, 2), "class": serie["class"],
                         "title": f"{label}: {serie['name']} {value}"})
        if i % label_every == 0:
            ticks.append({"x": round(left + i * slot + slot / 2, 2), "label": label})
    grid = [{"y": round(top + plot_h - plot_h * f, 2), "label": format_number(round(top_value * f))}
            for f in (0, 0.5, 1) if f == 0 or top_value * f == int(top_value * f)]
    return {"width": width, "height": height, "bars": bars, "ticks": ticks, "grid": grid,
            "left": left, "right": width - right, "base": top + plot_h, "label_y": height - 8}


def bar_rows(rows: list[dict], *, width: int = 720, row_h: int = 30, label_w: int = 170) -> dict:
    """Geometry of a horizontal bar chart (the funnel): ``rows`` need ``label`` and ``value``."""
    top_value = max((r["value"] for r in rows), default=0) or 1
    plot_w = width - label_w - 60
    bars = []
    for i, row in enumerate(rows):
        w = plot_w * row["value"] / top_value
        bars.append({**row, "y": i * row_h + 4, "w": round(w, 2), "h": row_h - 10,
                     "text_y": i * row_h + row_h / 2 + 4, "value_x": round(label_w + w + 6, 2)})
    return {"width": width, "height": max(row_h, len(rows) * row_h + 4), "bars": bars,
            "label_w": label_w}


# ---------------------------------------------------------------------------- formatting

def duration(seconds: float | None) -> str:
    """A duration people read: "45 s", "2 min 30 s", "1 h 5 min", "2 d 3 h"; None → "—"."""
    if seconds is None:
        return "—"
    total = int(round(float(seconds)))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def short_day(day: date) -> str:
    """A chart's day in the interface language: "06/11" in pt-BR, "11/6" in English."""
    return format_skeleton("dM", day, locale=get_locale())


@bp.app_template_filter("duration")
def _duration_filter(seconds):
    return duration(seconds)


# ---------------------------------------------------------------------------- views

def _funnel_choice(repo: FlowRepository) -> tuple[list[dict], str | None]:
    flows_list = repo.list()
    wanted = (request.args.get("flow") or "").strip()
    ids = [f["id"] for f in flows_list]
    if wanted in ids:
        return flows_list, wanted
    published = [f["id"] for f in flows_list if f["published_version"] is not None]
    return flows_list, (published or ids or [None])[0]


def _context(date_from: date, date_to: date) -> dict:
    service, engine = get_service(), get_engine()
    summary = figures.summary(engine, get_settings().csat_variable, date_from, date_to,
                              get_settings().timezone)
    days = daily(engine, date_from, date_to)
    label_every = max(1, math.ceil(len(days) / 12))
    daily_chart = column_chart(
        [short_day(d["day"]) for d in days],
        [{"name": _("abertos"), "class": "bar-opened", "values": [d["opened"] for d in days]},
         {"name": _("concluídos"), "class": "bar-concluded", "values": [d["concluded"] for d in days]}],
        width=1000, height=220, label_every=label_every)
    histogram = resolution_histogram(engine, date_from, date_to)
    resolution_chart = column_chart([b["label"] for b in histogram],
                                    [{"name": _("conversas"), "class": "bar-resolution",
                                      "values": [b["count"] for b in histogram]}], width=420, height=220)
    csat = figures.csat_distribution(engine, get_settings().csat_variable, date_from, date_to,
                                     get_settings().timezone)
    csat_chart = column_chart([str(c["score"]) for c in csat],
                              [{"name": _("respostas"), "class": "bar-csat",
                                "values": [c["count"] for c in csat]}], width=420, height=220)
    names = queries.display_names(engine, [a["user"] for a in summary["by_agent"]])
    repo = FlowRepository(engine)
    flows_list, flow_id = _funnel_choice(repo)
    funnel_data = funnel_rows(service, repo, flow_id) if flow_id else []
    funnel_chart = bar_rows([{**row, "label": row["title"], "value": row["runs"]}
                             for row in funnel_data], width=820, label_w=300)  # titles: ≤ 41 chars
    return {
        "date_from": date_from, "date_to": date_to, "summary": summary, "days": days,
        "daily_chart": daily_chart, "histogram": histogram, "resolution_chart": resolution_chart,
        "csat": csat, "csat_chart": csat_chart, "agent_names": names, "flows": flows_list,
        "flow_id": flow_id, "funnel": funnel_data, "funnel_chart": funnel_chart,
        "totals": {"opened": sum(d["opened"] for d in days),
                   "concluded": sum(d["concluded"] for d in days)},
        "fmt_decimal": lambda v: format_decimal(v, format="#,##0.0"),
        "fmt_percent": lambda v: format_decimal(v * 100, format="#,##0") + "%",
        "quick_ranges": _quick_ranges(date_to),
        "csat_answers": lambda n: ngettext("%(num)d resposta", "%(num)d respostas", n),
        "resolution_parts": _parts((b["label"], b["count"]) for b in histogram),
        "csat_parts": _parts((str(c["score"]), c["count"]) for c in csat),
        "funnel_parts": _parts((row["title"], row["runs"]) for row in funnel_data),
    }


def _parts(pairs) -> str:
    """"a 1, b 2" for a chart's text alternative."""
    return ", ".join(f"{label}: {count}" for label, count in pairs)


def _quick_ranges(date_to: date) -> list[dict]:
    today = _today()
    return [{"label": _("Últimos %(days)d dias", days=days),
             "from": (today - timedelta(days=days - 1)).isoformat(), "to": today.isoformat()}
            for days in (7, 30, 90)]


@bp.get("/reports")
@login_required
def index():
    today = _today()
    try:
        date_from, date_to = period(request.args, today)
    except BadPeriod as error:
        fallback_from = today - timedelta(days=REPORT_DAYS - 1)
        response = render_page("reports/index.html", error=error.message,
                               form_from=request.args.get("from", ""), form_to=request.args.get("to", ""),
                               date_from=fallback_from, date_to=today,
                               quick_ranges=_quick_ranges(today))
        response.status_code = 400
        return response
    return render_page("reports/index.html", error=None, form_from=date_from.isoformat(),
                       form_to=date_to.isoformat(), **_context(date_from, date_to))


@bp.get("/reports.csv")
@login_required
def export_csv():
    date_from, date_to = period(request.args, _today())  # BadPeriod → the friendly 400 page
    summary = figures.summary(get_engine(), get_settings().csat_variable, date_from, date_to)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_("dia"), _("abertos"), _("concluídos")])
    for row in daily(get_engine(), date_from, date_to):
        writer.writerow([row["day"].isoformat(), row["opened"], row["concluded"]])
    writer.writerow([])
    writer.writerow([_("agente"), _("concluídos"), _("resolução média (s)")])
    for agent in summary["by_agent"]:
        writer.writerow([_cell(agent["user"]), agent["concluded"],
                         "" if agent["resolution_s_avg"] is None else agent["resolution_s_avg"]])
    # A BOM so spreadsheet programs read the accents as UTF-8.
    response = make_response("\ufeff" + out.getvalue())
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    name = f"papo-relatorio-{date_from.isoformat()}-{date_to.isoformat()}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _cell(value: str) -> str:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
