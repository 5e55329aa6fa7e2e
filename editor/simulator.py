"""The simulator pane: an admin chats with a flow's latest draft as if they were the customer.

Routes (admins only, like the editor)::

    GET  /flows/<flow_id>/simulator            the pane on a page of its own; an htmx
                                               request gets the pane's state fragment
    GET  /flows/<flow_id>/simulator/findings   the draft's lint errors (after the editor saves)
    POST /flows/<flow_id>/simulator/send       form field ``text``: a customer message
    POST /flows/<flow_id>/simulator/open       the current user takes the conversation over
    POST /flows/<flow_id>/simulator/conclude   the current user concludes it (the flow resumes)
    POST /flows/<flow_id>/simulator/advance    jump the clock to the next pending timer, fire it
    POST /flows/<flow_id>/simulator/restart    a new test conversation, the clock back to now

Every POST answers with the state fragment (``simulator/_state.html``) for htmx, or
redirects to the page without JavaScript.

The pane is the one simulator, :class:`engine.simulator.Simulation` (the one ``papo
chat`` and the flow tests use), with a running clock. No state lives in the process
(DESIGN §4): the conversation is a real one in the app's database on the hidden ``test``
channel, run by the very same service as production with the flow's latest draft forced
(it starts on the first message, whatever its triggers). What ties a browser to its
test conversation is kept in the Flask session, per flow: the contact's external id,
the simulated clock's offset from the real one (``Avançar tempo`` moves it forward) and
the notes the chat shows between messages (status changes, time skipped); each request
resumes the simulation from it. Two tabs of one session share a simulation; another
user never sees it.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _

from editor.app import get_engine, get_settings, render_page
from editor.auth import admin_required, current_user
from editor.i18n import current_lang
from engine import queries
from engine.errors import PapoError
from engine.flows import FlowRepository
from engine.moments import epoch
from engine.service import TEST_CHANNEL
from engine.simulator import Simulation

log = logging.getLogger(__name__)

bp = Blueprint("simulator", __name__)

SESSION_KEY = "simulator"
MAX_SIMULATIONS = 4  # flows remembered per session (the cookie must stay small)
MAX_NOTES = 20  # chat notes remembered per simulation
MAX_PROBLEMS = 10  # run-log entries shown


# ---------------------------------------------------------------------- the simulation

@dataclass
class SessionSimulation:
    """What a browser session remembers of its simulation of one flow.

    :meth:`simulation` resumes the engine's :class:`Simulation` from it; after acting,
    :meth:`keep` takes the clock back.
    """

    flow_id: str
    external_id: str
    offset: float = 0.0  # simulated clock = real clock + offset (seconds)
    # [after how many messages, kind, value]: kind "skip" (value: seconds) or
    # "open"/"concluded" (value: who changed the status).
    notes: list[list] = field(default_factory=list)

    def now(self) -> float:
        return time.time() + self.offset

    def simulation(self) -> Simulation:
        """The engine's simulation of this flow's draft, as the current user."""
        user = current_user()
        return Simulation.resume({"flow_id": self.flow_id, "external_id": self.external_id,
                                  "clock_offset": self.offset, "actor": user["login"],
                                  "contact_name": user.get("name") or user["login"]},
                                 db=get_engine(), settings=get_settings(), debounce=True)

    def conversation_id(self) -> int | None:
        """The test conversation, once a message or an action created it."""
        found = queries.contact_conversation(get_engine(), TEST_CHANNEL, self.external_id)
        return found["id"] if found else None

    def keep(self, sim: Simulation) -> None:
        self.offset = sim.clock_offset or 0.0

    def add_note(self, after: int, kind: str, value) -> None:
        self.notes.append([after, kind, value])
        del self.notes[:-MAX_NOTES]


@dataclass
class Outcome:
    """What an action on the pane tells besides the chat: a sentence for the author
    (nothing to advance, already open…) and the seconds the clock jumped."""

    note: str | None = None
    skipped: float | None = None


def _new_external_id() -> str:
    return f"sim-{uuid.uuid4().hex[:20]}"


def load_simulation(flow_id: str) -> SessionSimulation:
    """This session's simulation of ``flow_id`` (a fresh one if there is none yet)."""
    user = current_user()
    entry = (session.get(SESSION_KEY) or {}).get(flow_id)
    if isinstance(entry, dict) and entry.get("u") == user["id"] and isinstance(entry.get("x"), str):
        try:
            offset = max(0.0, float(entry.get("o") or 0))
        except (TypeError, ValueError):
            offset = 0.0
        notes = [n for n in entry.get("n") or [] if isinstance(n, list) and len(n) == 3]
        return SessionSimulation(flow_id, entry["x"], offset, notes)
    return SessionSimulation(flow_id, _new_external_id())


def save_simulation(sim: SessionSimulation) -> None:
    sims = dict(session.get(SESSION_KEY) or {})
    sims[sim.flow_id] = {"u": current_user()["id"], "x": sim.external_id, "o": sim.offset,
                         "n": sim.notes, "t": int(time.time())}
    # Keep the most recently used few: the session lives in a cookie.
    recent = sorted(sims.items(), key=lambda item: (item[1] or {}).get("t", 0), reverse=True)
    session[SESSION_KEY] = dict(recent[:MAX_SIMULATIONS])


# ---------------------------------------------------------------------- routes

@bp.get("/flows/<flow_id>/simulator")
@admin_required
def page(flow_id: str):
    draft = _draft(flow_id)
    sim = load_simulation(flow_id)
    return render_page("simulator/page.html", "simulator/_state.html",
                       **_state_context(sim, draft), flow=draft, flow_id=flow_id)


@bp.get("/flows/<flow_id>/simulator/findings")
@admin_required
def findings(flow_id: str):
    draft = _draft(flow_id)
    return render_template("simulator/_findings.html", flow_id=flow_id, findings=_lint_errors(draft))


@bp.post("/flows/<flow_id>/simulator/send")
@admin_required
def send(flow_id: str):
    text = (request.form.get("text") or "").strip()
    if not text:
        return _respond(flow_id, error=_("Escreva uma mensagem antes de enviar."))

    def customer_writes(sim: Simulation, outcome: Outcome) -> None:
        sim.send(text)

    return _act(flow_id, customer_writes, customer_message=True)


@bp.post("/flows/<flow_id>/simulator/open")
@admin_required
def open_conversation(flow_id: str):
    return _act(flow_id, _agent_action("open"))


@bp.post("/flows/<flow_id>/simulator/conclude")
@admin_required
def conclude(flow_id: str):
    return _act(flow_id, _agent_action("conclude"))


@bp.post("/flows/<flow_id>/simulator/advance")
@admin_required
def advance(flow_id: str):
    def time_passes(sim: Simulation, outcome: Outcome) -> None:
        if not sim.timers():
            outcome.note = _("Nada agendado: não há espera nem prazo pendente nesta conversa.")
            return
        before = sim.clock_offset
        sim.advance()
        outcome.skipped = sim.clock_offset - before

    return _act(flow_id, time_passes)


@bp.post("/flows/<flow_id>/simulator/restart")
@admin_required
def restart(flow_id: str):
    draft = _draft(flow_id)
    sim = SessionSimulation(flow_id, _new_external_id())
    save_simulation(sim)
    return _respond(flow_id, draft=draft, sim=sim)


# ---------------------------------------------------------------------- acting

def _agent_action(action: str):
    """The current user opens or concludes the test conversation (as in the inbox)."""
    def agent_acts(sim: Simulation, outcome: Outcome) -> None:
        status = sim.status()
        if action == "open":
            if status == "open":
                outcome.note = _("O atendimento já está aberto.")
            sim.open()
        else:
            if status == "concluded":
                outcome.note = _("Não há atendimento aberto para concluir: o bot já está no comando.")
            sim.conclude()
    return agent_acts


def _act(flow_id: str, action, *, customer_message: bool = False):
    """Run ``action(simulation, outcome)``, note the status changes it caused, answer the state.

    The action fills in its :class:`Outcome` (a note for the author, the time skipped).

    Problems never break the pane: the author sees them as a notice in it.
    """
    draft = _draft(flow_id)
    state = load_simulation(flow_id)
    sim = state.simulation()
    before = _conversation(sim)
    messages_before = len(before["messages"]) if before else 0
    activity_before = len(before["activity"]) if before else 0
    outcome = Outcome()
    error = None
    try:
        action(sim, outcome)
    except PapoError as exc:
        error = exc.message
    except Exception as exc:  # a bug or a broken draft must not take the page down
        log.exception("simulator action failed for flow %s", flow_id)
        error = _("O simulador encontrou um erro inesperado: %(error)s",
                  error=f"{type(exc).__name__}: {exc}"[:300])
    state.keep(sim)
    if outcome.skipped is not None:
        state.add_note(messages_before, "skip", round(outcome.skipped))
    after = _conversation(sim)
    if after:
        _note_status_changes(state, after, messages_before, activity_before, customer_message)
    save_simulation(state)
    return _respond(flow_id, draft=draft, sim=state, note=outcome.note, error=error)


def _note_status_changes(sim: SessionSimulation, conv: dict, messages_before: int, activity_before: int,
                         customer_message: bool) -> None:
    """Place each status change in the chat where the customer would have lived it.

    A person's change (or the customer's request for a human) comes before the bot's
    replies to it; the flow's own change comes after what it said.
    """
    person_at = messages_before + (1 if customer_message else 0)
    for entry in conv["activity"][activity_before:]:
        if entry["from"] == entry["to"]:
            continue
        at = len(conv["messages"]) if entry["actor"] == "bot" else min(person_at, len(conv["messages"]))
        sim.add_note(at, entry["to"], entry["actor"])


def _respond(flow_id: str, *, draft: dict | None = None, sim: SessionSimulation | None = None,
             note: str | None = None, error: str | None = None):
    draft = draft or _draft(flow_id)
    sim = sim or load_simulation(flow_id)
    if not getattr(request, "htmx", False):  # a plain form post (no JavaScript)
        for message, category in ((error, "error"), (note, "info")):
            if message:
                flash(message, category)
        return redirect(url_for("simulator.page", flow_id=flow_id))
    return render_template("simulator/_state.html", **_state_context(sim, draft, note=note, error=error),
                           flow=draft, flow_id=flow_id)


# ---------------------------------------------------------------------- reading

def _draft(flow_id: str) -> dict:
    """The flow's latest draft (404 page when the flow does not exist)."""
    return FlowRepository(get_engine()).draft(flow_id, lang=current_lang())


def _conversation(sim: Simulation) -> dict | None:
    try:
        return sim.conversation()
    except PapoError:
        return None


def _lint_errors(draft: dict) -> list[dict]:
    """The draft's errors in the interface language (warnings belong to the editor)."""
    try:
        found = FlowRepository(get_engine()).lint(draft["document"], current_lang())
    except Exception:  # lint trouble must not hide the simulator
        log.exception("lint failed for flow %s", draft["id"])
        found = draft.get("findings") or []
    return [f for f in found if f.get("level") == "error"]


def _run_details(conversation_id: int) -> tuple[dict, list[dict]]:
    """The run as the engine keeps it (draft revision included) and its run-log problems."""
    return queries.run_details(get_engine(), conversation_id, problems=MAX_PROBLEMS)


def _named(problems: list[dict], doc: dict) -> list[dict]:
    """Run-log problems with their block's title (``block``), as people read about blocks."""
    from blocks.labels import block_name

    blocks = {b.get("id"): b for b in doc.get("blocks", []) if isinstance(b, dict)}
    return [{**p, "block": block_name(blocks.get(p["block_id"]), p["block_id"], current_lang())
             if p.get("block_id") else None} for p in problems]


def _state_context(sim: SessionSimulation, draft: dict, note: str | None = None,
                   error: str | None = None) -> dict:
    conv = _conversation(sim.simulation())
    run, problems = _run_details(conv["id"]) if conv else ({}, [])
    now = sim.now()
    timer = conv["timers"][0] if conv and conv["timers"] else None
    stale_revision = None
    if run.get("draft_revision") and run.get("state") != "ended" and run["draft_revision"] != draft["revision"]:
        stale_revision = run["draft_revision"]
    block_id = run.get("block_id") if run and run.get("state") != "ended" else None
    return {
        "sim": sim,
        "conversation": conv,
        "chat": _chat(conv, sim.notes),
        "status": _status(conv, run, timer, now),
        "variables": _variables(conv),
        "timer": timer,
        "current_block": block_id or "",
        "problems": _named(problems, draft["document"]),
        "findings": _lint_errors(draft),
        "stale_revision": stale_revision,
        "draft_revision": draft["revision"],
        "clock": _when(now) if sim.offset >= 1 else None,
        "clock_ahead": human_duration(sim.offset) if sim.offset >= 1 else None,
        "note": note,
        "error": error,
    }


def _chat(conv: dict | None, notes: list[list]) -> list[dict]:
    """Messages and notes in order; only the newest bot message keeps clickable buttons."""
    messages = conv["messages"] if conv else []
    last_bot = max((i for i, m in enumerate(messages) if m["direction"] == "out" and m["author"] == "bot"),
                   default=None)
    items: list[dict] = []
    pending = sorted(enumerate(notes), key=lambda pair: (pair[1][0], pair[0]))
    position = 0
    for index, message in enumerate(messages + [None]):
        while position < len(pending) and pending[position][1][0] <= index:
            items.append(_note_item(pending[position][1]))
            position += 1
        if message is None:
            break
        if message["direction"] == "in":
            kind = "customer"
        elif message["author"] == "bot":
            kind = "bot"
        else:
            kind = "agent"
        items.append({"type": "message", "kind": kind, "author": message["author"],
                      "text": message["text"], "buttons": message["buttons"] or [],
                      "clickable": index == last_bot,
                      "at": message["at"]})
    while position < len(pending):
        items.append(_note_item(pending[position][1]))
        position += 1
    return items


def _note_item(note: list) -> dict:
    _after, kind, value = note
    if kind == "skip":
        text = _("⏩ %(duration)s depois", duration=human_duration(float(value or 0)))
    elif kind == "open":
        if value == "bot":
            text = _("O fluxo abriu o atendimento: o bot fica em silêncio.")
        elif value == "customer":
            text = _("O cliente pediu um atendente: atendimento aberto, bot em silêncio.")
        else:
            text = _("%(user)s abriu o atendimento: o bot fica em silêncio.", user=value)
    elif kind == "concluded":
        if value == "bot":
            text = _("O fluxo concluiu o atendimento.")
        elif value == "system":
            text = _("Atendimento concluído por inatividade.")
        else:
            text = _("%(user)s concluiu o atendimento: o bot volta a responder.", user=value)
    else:
        text = str(kind)
    return {"type": "note", "kind": kind, "text": text}


def _status(conv: dict | None, run: dict, timer: dict | None, now: float) -> dict:
    """The status line: a key (for styling and tests) and the sentence people read."""
    if conv is None:
        return {"key": "idle", "text": _("Pronto. Escreva uma mensagem como se fosse o cliente.")}
    burst = next((t for t in conv["timers"] if t["kind"] == "debounce"), None)
    if burst and conv["status"] != "open":
        due = epoch(_parse_iso(burst["due_at"]))
        return {"key": "debounce",
                "text": _("Juntando as mensagens do cliente: o bot responde a todas de uma vez às "
                          "%(when)s (daqui a %(left)s). Use Avançar tempo para responder já.",
                          when=_when(due), left=human_duration(due - now))}
    if conv["status"] == "open":
        return {"key": "open", "text": _("Atendimento aberto: o bot está em silêncio. "
                                         "Clique em Concluir para devolver a conversa ao bot.")}
    state = run.get("state")
    if not run:
        return {"key": "idle", "text": _("Nenhum fluxo em execução. Escreva uma mensagem para começar.")}
    if state == "waiting_input":
        text = _("Aguardando a resposta do cliente.")
        if timer:
            text += " " + _("Prazo para responder: %(when)s (daqui a %(left)s).",
                            when=_when(epoch(_parse_iso(timer["due_at"]))),
                            left=human_duration(epoch(_parse_iso(timer["due_at"])) - now))
        return {"key": "waiting_input", "text": text}
    if state == "waiting_timer":
        if timer:
            due = epoch(_parse_iso(timer["due_at"]))
            return {"key": "waiting_timer",
                    "text": _("Aguardando o tempo passar: até %(when)s (daqui a %(left)s). "
                              "Use Avançar tempo para pular a espera.",
                              when=_when(due), left=human_duration(due - now))}
        return {"key": "waiting_timer", "text": _("Aguardando o tempo passar.")}
    if state == "running":
        return {"key": "running", "text": _("O bot está executando o fluxo…")}
    if state == "suspended":
        return {"key": "suspended", "text": _("O bot está pausado.")}
    return {"key": "ended", "text": _("Fluxo encerrado. Uma nova mensagem começa o fluxo de novo.")}


def _variables(conv: dict | None) -> list[tuple[str, str]]:
    if not conv:
        return []
    shown = []
    for name, value in conv["variables"].items():
        if not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False)
        shown.append((str(name), value))
    return shown


def _parse_iso(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _when(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC), "short")


def human_duration(seconds: float) -> str:
    """ "45 s", "30 min", "1 h 30 min", "2 dias 3 h": rounded the way people say it.

    The simulated clock keeps running between clicks, so an hour's wait skipped a few
    seconds later is still "1 h", not "59 min 57 s".
    """
    seconds = max(0, int(round(seconds)))
    if seconds < 120:
        return _("%(num)d s", num=seconds)
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return _("%(num)d min", num=minutes)
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        if rest and hours < 10:
            return _("%(hours)d h %(minutes)d min", hours=hours, minutes=rest)
        return _("%(num)d h", num=int(round(minutes / 60)))
    days, hours = divmod(int(round(minutes / 60)), 24)
    # Plain gettext, no ngettext: the catalog checks in tests/test_i18n.py expect single msgids.
    text = _("1 dia") if days == 1 else _("%(num)d dias", num=days)
    if hours and days < 7:
        text += " " + _("%(num)d h", num=hours)
    return text
