"""``decide(snapshot, event) -> Changes``: what one event does to one conversation. Pure.

No database, no clock (time comes in the event), no network: the engine's step
(:func:`engine.core.step`), the status table (:mod:`engine.conversation`) and trigger
matching (:mod:`engine.triggers`) applied to plain data, giving plain data back. An
``http_request`` block's call is only named (``Changes.pending_http``): the service makes
it after the write and feeds the answer back as a new event (:class:`HttpDone`).

When the snapshot lacks something deciding needs (who is assigned, which users exist,
whether an auto-conclude timer is pending), the result names it in ``needs`` and the
caller reads it and decides again; nothing of such a result is written.
"""
from __future__ import annotations

import json
import uuid

from blocks.text import normalize
from engine import conversation as machine
from engine import core, hours, triggers
from engine.graph import CompiledFlow
from engine.moments import aware, epoch, iso, utc
from engine.service import debounce
from engine.service.changes import (
    NEED_ASSIGNEES,
    NEED_AUTO_CONCLUDE,
    NEED_USERS,
    AgentAction,
    AgentMessage,
    AgentNote,
    Changes,
    Event,
    HttpDone,
    Inbound,
    Rename,
    Snapshot,
    TimerFired,
)
from engine.service.common import BOT_TIMER_KINDS, MAX_JUMPS, TEST_CHANNEL
from engine.whatsapp import PLACEHOLDERS


def decide(snapshot: Snapshot, event: Event) -> Changes:
    """The changes ``event`` makes to the conversation of ``snapshot``."""
    d = _Draft(snapshot)
    if isinstance(event, Inbound):
        if snapshot.processed is not None:  # a duplicate: the original answer, nothing written
            d.duplicate = True
            return d.changes(write=False, result=snapshot.processed)
        _inbound(d, event)
    elif isinstance(event, TimerFired):
        if not snapshot.timer_pending:
            return d.changes(write=False)  # cancelled, or fired by another worker
        if event.kind == debounce.KIND and debounce.waits(d.burst, event.at):
            return d.changes(write=False)  # a newer message moved it after it was claimed
        _timer(d, event)
    elif isinstance(event, HttpDone):
        if not _http_done(d, event):
            return d.changes(write=False)  # the run moved on while the request was in flight
    elif isinstance(event, AgentAction):
        moved = _transition(d, event.action, event.actor, event.at, user=event.user)
        if event.note:
            d.message("note", event.actor, event.note, [], event.at)
        elif not moved:
            return d.changes(write=False)  # a no-op (already open, already assigned…)
    elif isinstance(event, AgentNote):
        d.message("note", event.actor, event.text, [], event.at)
    elif isinstance(event, AgentMessage):
        _transition(d, "agent_message", event.actor, event.at)
        if d.queued():  # automatic assignment on: whoever answers a conversation nobody has takes it
            _transition(d, "assign", event.actor, event.at, user=event.actor)
        if event.media is None:
            d.message("out", event.actor, event.text, [], event.at, template=event.template,
                      template_only=event.template is not None)
        else:
            _attachment(d, event)
        if d.status == machine.OPEN:
            _schedule_auto_conclude(d, event.at)
    elif isinstance(event, Rename):
        if not d.rename(event.name):
            return d.changes(write=False)
    else:  # pragma: no cover - the Event union is closed
        raise TypeError(f"not an event: {event!r}")
    return d.changes(write=True)


def _attachment(d: _Draft, event: AgentMessage) -> None:
    """An agent's file: its text is the caption, or goes first as a message of its own when
    the file takes none (audio) or it is too long for one; the file's own text is its
    caption or a placeholder ("[imagem]"), as a customer's would be."""
    media = dict(event.media)
    text = event.text.strip() if event.text else ""
    if text and media.get("caption") is None:
        d.message("out", event.actor, event.text, [], event.at)
    d.message("out", event.actor, media.get("caption") or PLACEHOLDERS[media["type"]], [], event.at,
              details={"media": media})


class _Draft:
    """The conversation while an event is decided: its fields and the rows it adds."""

    def __init__(self, snap: Snapshot):
        conv = snap.conversation
        self.snap = snap
        self.settings = snap.settings
        self.id = conv["id"]
        self.channel = conv["channel"]
        self.status = conv["status"]
        self.name_norm = conv["name_norm"]
        self.updated_at = conv["updated_at"]
        self.opened_at = conv.get("opened_at")
        self.first_response_at = conv.get("first_response_at")
        self.waiting_since = conv.get("waiting_since")
        last_in = conv.get("last_inbound_at")
        self.last_inbound_at = aware(last_in) if last_in is not None else None
        state = conv["state"]
        self.state = {**state, "contact": dict(state.get("contact") or {}),
                      "run": dict(state["run"]) if state.get("run") else None}
        # the burst of messages waiting for one answer (engine/service/debounce.py), kept
        # apart from the engine's state, which core.step rebuilds
        self.burst: dict | None = self.state.pop("burst", None)
        self.contact_name: str | None = None
        self.assignees = list(snap.assignees) if snap.assignees is not None else None
        self.assigned_at: dict[str, object] = {}
        self.missing: set[str] = set()
        self.fire_timer_id: int | None = None
        self.fired_at = None
        self.cancel_bot = False
        self.cancel_auto = False
        self.cancel_debounce = False
        self.move_debounce = None
        self.messages: list[dict] = []
        self.outbox: list[dict] = []
        self.timers: list[dict] = []
        self.activity: list[dict] = []
        self.answers: list[dict] = []
        self.logs: list[dict] = []
        self.visits: list[dict] = []
        self.processed: dict | None = None
        self.replies: list[dict] = []
        self.pending_http: dict | None = None
        self.result: dict | None = None
        self.fired = False
        self.duplicate = False
        self.steps: list = []
        self.transitions: list[str] = []
        self.flow: tuple[str, int | None] | None = None

    # -- what the snapshot may lack --------------------------------------------------
    def attending(self) -> list[str]:
        if self.assignees is None:
            self.missing.add(NEED_ASSIGNEES)
            self.assignees = []  # decided again once they are read
        return self.assignees

    def user_exists(self, login: str) -> bool:
        if self.snap.users is None:
            self.missing.add(NEED_USERS)
            return False
        return login in self.snap.users

    def auto_conclude_pending(self) -> bool:
        if any(t["kind"] == "auto_conclude" for t in self.timers):
            return True
        if self.cancel_auto:
            return False
        if self.snap.auto_conclude_pending is None:
            self.missing.add(NEED_AUTO_CONCLUDE)
            return False
        return self.snap.auto_conclude_pending

    # -- changes ---------------------------------------------------------------------
    def touch(self, now: float) -> None:
        """The conversation saw activity: it moves to the top of the inbox."""
        self.updated_at = utc(now)

    def rename(self, name: str) -> bool:
        changed = False
        if name and self.snap.contact_name != name:
            self.contact_name = name
            changed = True
        if name and self.state["contact"].get("name") != name:
            self.state["contact"]["name"] = name
            self.name_norm = normalize(name)
            changed = True
        return changed

    def message(self, direction: str, author: str, text: str, buttons, now: float,
                external_id: str | None = None, details: dict | None = None,
                template: dict | None = None, template_only: bool = False) -> None:
        at = utc(now)
        buttons = list(buttons or [])
        if direction == "out" and self.channel == "whatsapp":
            # The outbox row's key is made here, so nothing waits for the message's row id;
            # the message keeps it (external_id) to be found from its outbox row.
            external_id = f"out-{uuid.uuid4().hex}"
            payload = {"to": self.state.get("contact", {}).get("external_id"), "text": text,
                       "buttons": buttons}
            if details and details.get("media"):  # an agent's file, sent by its media id
                payload["media"] = details["media"]
            if template is not None:
                # The sender picks text or template at send time (the 24-hour window,
                # engine/outbox.py); ``template_only``: an agent chose the template.
                payload["template"] = template
                if template_only:
                    payload["send"] = "template"
            self.outbox.append({
                "conversation_id": self.id, "channel": "whatsapp", "idempotency_key": external_id,
                "payload": payload,
                "status": "pending", "attempts": 0, "next_attempt_at": at, "created_at": at})
        self.messages.append({"conversation_id": self.id, "direction": direction, "author": author,
                              "text": text, "buttons": buttons, "at": at, "external_id": external_id,
                              "details": details or None})
        if direction == "in" and (self.last_inbound_at is None or at > self.last_inbound_at):
            self.last_inbound_at = at  # a late delivery of an older message leaves it
        if direction == "in" and self.waiting_since is None:
            self.waiting_since = at
        elif direction == "out":
            self.waiting_since = None  # answered, by a person or the bot
        if direction == "out" and author != "bot" and self.opened_at is not None \
                and self.first_response_at is None:
            self.first_response_at = at
        self.touch(now)

    def schedule(self, kind: str, due_at: float, payload: dict) -> None:
        self.timers.append({"conversation_id": self.id, "kind": kind, "due_at": utc(due_at),
                            "payload": payload, "status": "pending"})

    def cancel_bot_timers(self) -> None:
        self.cancel_bot = True
        self.timers = [t for t in self.timers if t["kind"] not in BOT_TIMER_KINDS]

    def cancel_auto_conclude(self) -> None:
        self.cancel_auto = True
        self.timers = [t for t in self.timers if t["kind"] != "auto_conclude"]

    def keep_burst(self, burst: dict) -> None:
        """The burst waits on: its timer row moves to the new due time."""
        self.burst = burst
        self.move_debounce = utc(burst["due_at"])

    def drop_burst(self) -> None:
        """The burst is answered now, or not at all (a person is in charge): no timer."""
        self.burst = None
        self.move_debounce = None
        self.cancel_debounce = True
        self.timers = [t for t in self.timers if t["kind"] != debounce.KIND]

    def log(self, level: str, block_id: str | None, message: str, now: float) -> None:
        self.logs.append({"conversation_id": self.id, "level": level, "block_id": block_id,
                          "message": message[:2000], "at": utc(now)})

    def changes(self, *, write: bool, result: dict | None = None) -> Changes:
        conv = self.snap.conversation
        needs = frozenset(self.missing)
        if needs:
            write = False
        added = [u for u in (self.assignees or []) if u not in (self.snap.assignees or ())]
        removed = [u for u in (self.snap.assignees or ()) if u not in (self.assignees or [])] \
            if self.snap.assignees is not None else []
        return Changes(
            conversation_id=self.id, contact_id=conv["contact_id"], version=conv["version"],
            write=write, state={**self.state, "burst": self.burst} if self.burst else self.state,
            status=self.status, name_norm=self.name_norm,
            updated_at=self.updated_at, opened_at=self.opened_at,
            first_response_at=self.first_response_at, waiting_since=self.waiting_since,
            last_inbound_at=self.last_inbound_at,
            contact_name=self.contact_name,
            fire_timer_id=self.fire_timer_id, fired_at=self.fired_at, cancel_bot_timers=self.cancel_bot,
            cancel_auto_conclude=self.cancel_auto, cancel_debounce=self.cancel_debounce,
            move_debounce=self.move_debounce, messages=self.messages, outbox=self.outbox,
            timers=self.timers, activity=self.activity,
            assignees_added=[{"conversation_id": self.id, "login": u, "assigned_at": self.assigned_at[u]}
                             for u in added],
            assignees_removed=removed, answers=self.answers, logs=self.logs, visits=self.visits,
            processed=self.processed, replies=self.replies, pending_http=self.pending_http,
            result=result if result is not None else self.result, fired=self.fired and write,
            duplicate=self.duplicate, steps=self.steps, transitions=self.transitions, flow=self.flow,
            needs=needs, queued=write and self.queued())

    def queued(self) -> bool:
        """Open with nobody assigned (as far as this event knows), under automatic assignment."""
        return self.settings.assignment != "manual" and self.channel != TEST_CHANNEL \
            and self.status == machine.OPEN and self.assignees == []


# ---------------------------------------------------------------------- events


def _inbound(d: _Draft, event: Inbound) -> None:
    d.rename(event.name)
    d.message("in", "customer", event.text, [], event.at if event.sent_at is None else event.sent_at,
              external_id=event.message_id, details=event.details)
    if event.answer:
        _customer_writes(d, event)
    d.touch(event.at)
    d.result = {"conversation_id": d.id, "status": d.status, "replies": d.replies}
    d.processed = {"channel": event.channel, "external_id": event.message_id, "conversation_id": d.id,
                   "result": d.result, "at": utc(event.at)}


def _customer_writes(d: _Draft, event: Inbound) -> None:
    """The bot reads the message now, or once its burst is over (debounce)."""
    seconds = d.settings.debounce_seconds
    burst = d.burst
    if burst is not None:
        if _must_not_wait(d, event.text):
            d.drop_burst()  # the earlier lines stay in the inbox for the person who takes it
        elif debounce.is_over(burst, event.at, seconds):  # its timer is late or gone
            d.drop_burst()
            _bot_reads(d, debounce.text_of(burst), event.at, burst["start_flow_id"])
        else:
            burst = debounce.add(burst, event.text, event.at, seconds)
            if not debounce.is_full(burst):
                d.keep_burst(burst)
                return
            d.drop_burst()
            _bot_reads(d, debounce.text_of(burst), event.at, burst["start_flow_id"])
            return
    if debounce.applies(d.settings, d.channel) and not _must_not_wait(d, event.text):
        d.burst = debounce.start(event.text, event.at, seconds, event.start_flow_id)
        d.schedule(debounce.KIND, d.burst["due_at"], {})
        return
    _bot_reads(d, event.text, event.at, event.start_flow_id)


def _must_not_wait(d: _Draft, text: str) -> bool:
    """Messages the bot does not hold back: to an open conversation (people read them as
    they come; the bot is silent there) and a request for a human, unless it picks an
    option of the waiting choice question (rule 0 comes first)."""
    if d.status == machine.OPEN:
        return True
    return triggers.asks_for_human(text, d.settings.handoff_keywords) and _choice_pick(d, text) is None


def _burst_ends(d: _Draft, now: float) -> None:
    """A burst's quiet time is over: the bot reads its messages as one."""
    burst = d.burst
    if burst is None:
        return  # answered or dropped meanwhile
    d.burst = None  # its timer is the one firing
    _bot_reads(d, debounce.text_of(burst), now, burst["start_flow_id"])


def _timer(d: _Draft, event: TimerFired) -> None:
    d.fire_timer_id = event.timer_id
    d.fired_at = utc(event.at)
    d.fired = True
    if event.kind == "auto_conclude":
        _auto_conclude(d, event.at)
        return
    if event.kind == debounce.KIND:
        _burst_ends(d, event.at)
        return
    run = d.state.get("run") or {}
    if run.get("id") == event.payload.get("run_id") and d.status == machine.CONCLUDED:
        flow = d.snap.flow_of(run)
        if flow is not None:
            _feed(d, flow, core.Timer(event.at, event.kind, event.payload.get("token", -1)))


def _auto_conclude(d: _Draft, now: float) -> None:
    after = d.settings.auto_conclude_after
    if d.status != machine.OPEN or not after:
        return
    idle_since = epoch(d.snap.conversation["updated_at"])
    if now - idle_since + 1e-6 < after:  # activity since: try again later
        d.schedule("auto_conclude", idle_since + after, {})
        return
    _transition(d, "auto_conclude", "system", now)


def _http_done(d: _Draft, event: HttpDone) -> bool:
    call = event.call
    run = d.state.get("run") or {}
    if (run.get("id"), run.get("token"), run.get("pending")) != (call["run_id"], call["token"], "http"):
        return False
    if event.error:
        d.log("warning", call.get("block_id"), f"requisição HTTP falhou: {event.error}", event.at)
    flow = d.snap.flow_of(run)
    if flow is not None:
        _feed(d, flow, core.HttpResult(event.at, event.ok, event.status, event.body))
    return True


# ---------------------------------------------------------------------- the bot


def _bot_reads(d: _Draft, text: str, now: float, start_flow_id: str | None) -> None:
    """DESIGN §3 "Inbound message when concluded", in order."""
    if d.status == machine.OPEN:
        return  # people are in charge; the message waits for them in the inbox
    run = d.state.get("run")
    flow = d.snap.flow_of(run)
    waiting = run and run["state"] == core.WAITING_INPUT and flow is not None
    block = flow.blocks.get(run["block_id"]) if waiting else None
    # 0. a choice question whose option this message picks takes it as the answer
    line = _choice_pick(d, text)
    if line is not None:
        _feed(d, flow, core.UserMessage(now, line))
        return
    # 1. a request for a human opens the conversation
    if triggers.asks_for_human(text, d.settings.handoff_keywords):
        if _transition(d, "handoff", "customer", now):
            _say_when_open(d, now)
        return
    # 1b. an interrupting keyword ("menu", "sair") ends the question's run and starts its
    # flow (DESIGN §10.3: after rule 0, before the answer is parsed)
    if block is not None:
        target = _interrupting_flow(d, text)
        if target is not None:
            _interrupt(d, run, target, text, now)
            return
    # 2. an answer to the waiting question
    if block is not None:
        _feed(d, flow, core.UserMessage(now, text))
        if not _let_go_by_csat(block, text):
            return
        # DESIGN §10.8: the csat question let go; the message goes on to the triggers
        run = d.state.get("run")
    # 3. triggers of published flows (or the forced flow of the simulator)
    if start_flow_id and run is None:
        flow = d.snap.published.get(start_flow_id)
        if flow is not None:
            _start(d, flow, now)
            return
    if d.snap.forced_flow_id:
        if run and run["state"] != core.ENDED:
            return  # the simulator's run is waiting for a timer or a person: no restart
        if d.snap.draft is not None:
            _start(d, d.snap.draft[0], now, draft_revision=d.snap.draft[1])
        return
    flow = triggers.match(d.snap.published.values(), text)
    if flow is not None:
        _start(d, flow, now)


def _choice_pick(d: _Draft, text: str) -> str | None:
    """The first line of ``text`` that picks an option of the choice question the run waits
    at (a burst's messages are its lines), or None."""
    run = d.state.get("run")
    if not run or run["state"] != core.WAITING_INPUT:
        return None
    flow = d.snap.flow_of(run)
    block = flow.blocks.get(run["block_id"]) if flow is not None else None
    if block is None or block["data"].get("input") != "choice":
        return None
    from blocks.question import match_option

    for line in text.split("\n"):
        if line.strip() and match_option(block["data"], line) is not None:
            return line
    return None


def _say_when_open(d: _Draft, now: float) -> None:
    """Outside business hours, a customer who asked for a person is told when someone
    will be there: the closed message, rendered (DESIGN §10.3)."""
    text = hours.closed_message(d.snap.hours, now, d.state["vars"], d.state["contact"])
    if text:
        d.message("out", "bot", text, [], now)
        d.replies.append({"text": text, "buttons": []})


def _interrupting_flow(d: _Draft, text: str) -> tuple[CompiledFlow, int | None] | None:
    """The flow an interrupting keyword trigger in ``text`` starts, with its draft revision
    (the simulator runs its flow's draft in place of the published one); None: no match."""
    candidates = dict(d.snap.published)
    forced = d.snap.forced_flow_id
    if forced and d.snap.draft is not None:
        candidates[forced] = d.snap.draft[0]
    flow = triggers.match_interrupting(candidates.values(), text)
    if flow is None:
        return None
    return flow, (d.snap.draft[1] if forced and flow.id == forced and d.snap.draft else None)


def _interrupt(d: _Draft, run: dict, target: tuple[CompiledFlow, int | None], text: str,
               now: float) -> None:
    """End the run waiting at a question (an activity entry says why) and start ``target``."""
    flow, draft_revision = target
    d.state["run"] = {**run, "state": core.ENDED, "suspended_by": None}
    d.state["run"]["token"] = run.get("token", 0) + 1  # its question timeout is void
    d.cancel_bot_timers()
    d.activity.append({
        "conversation_id": d.id, "actor": "customer", "action": "run_interrupted",
        "from_status": d.status, "to_status": d.status,
        "detail": {"flow_id": run.get("flow_id"), "block_id": run.get("block_id"),
                   "started": flow.id, "keyword": text[:100]},
        "at": utc(now)})
    d.touch(now)
    _start(d, flow, now, draft_revision=draft_revision)


def _let_go_by_csat(block: dict, text: str) -> bool:
    """Whether a ``csat: true`` question just let this message go (it is not a rating:
    the engine ended the run without ``invalid_text``, DESIGN §10.8 "CSAT never traps")."""
    from blocks.question import parse_rating

    return block["data"].get("csat") is True and parse_rating(text) is None


def _start(d: _Draft, flow: CompiledFlow, now: float, block_id: str | None = None,
           draft_revision: int | None = None, jumps: int = 0) -> None:
    event = core.Start(now, f"r-{uuid.uuid4().hex[:16]}", block_id)
    _feed(d, flow, event, draft_revision=draft_revision, jumps=jumps)


def _feed(d: _Draft, flow: CompiledFlow, event, draft_revision: int | None = None, jumps: int = 0) -> None:
    """One engine step and what it produced."""
    before = d.state.get("run") or {}
    state, outbound, effects = core.step(flow, d.state, event, d.snap.hours)
    d.steps.append(event)
    d.flow = (flow.id, flow.version)
    run = state.get("run")
    if run is not None and isinstance(event, core.Start) and draft_revision is not None:
        run["draft_revision"] = draft_revision
    elif run is not None and before.get("draft_revision") and run.get("id") == before.get("id"):
        run["draft_revision"] = before["draft_revision"]
    d.state = state
    now = event.at
    if run is not None and (run.get("id"), run.get("token")) != (before.get("id"), before.get("token")):
        # The run moved: its wait or question timeout is void. ``timers`` in the run says
        # whether one was scheduled (absent: not known, so cancel to be sure).
        if before.get("timers", True):
            d.cancel_bot_timers()
        run["timers"] = False
    for out in outbound:
        d.message("out", "bot", out["text"], out["buttons"], now, template=out.get("template"))
        d.replies.append({"text": out["text"], "buttons": out["buttons"]})
    jump = None
    for effect in effects:
        kind = effect["type"]
        if kind == "schedule_timer":
            d.schedule(effect["kind"], effect["due_at"],
                       {"token": effect["token"], "run_id": run["id"], "block_id": effect["block_id"]})
            run["timers"] = True
        elif kind == "open":
            _flow_opens(d, effect, now)
        elif kind == "conclude":
            _transition(d, "flow_conclude", "bot", now, detail={"reason": effect.get("reason") or None})
        elif kind == "http":
            d.pending_http = {**effect, "run_id": run["id"], "token": run["token"]}
        elif kind == "jump":
            jump = effect
        elif kind == "answer":
            value = effect["value"]
            d.answers.append({
                "conversation_id": d.id, "name": effect["name"], "at": utc(now),
                "value": value if isinstance(value, str) else json.dumps(value, ensure_ascii=False),
                "csat": effect.get("csat")})
        elif kind == "visit":
            if d.channel == TEST_CHANNEL:
                continue  # the simulator's runs stay out of the funnel
            d.visits.extend({"run_id": effect["run_id"], "flow_id": effect["flow_id"], "block_id": b,
                             "at": utc(now)} for b in effect["block_ids"])
        elif kind == "log":
            d.log(effect["level"], effect.get("block_id"), effect["message"], now)
    d.touch(now)
    if jump is not None:
        _jump(d, jump, now, jumps + 1)


def _jump(d: _Draft, jump: dict, now: float, jumps: int) -> None:
    if jumps > MAX_JUMPS:
        d.log("error", None, f"mais de {MAX_JUMPS} saltos entre fluxos: parado", now)
        return
    target: CompiledFlow | None = None
    draft_revision = None
    if d.snap.forced_flow_id and jump["flow_id"] == d.snap.forced_flow_id:
        if d.snap.draft is not None:
            target, draft_revision = d.snap.draft
    else:
        target = d.snap.published.get(jump["flow_id"])
    if target is None:
        d.log("error", None, f"salto para o fluxo {jump['flow_id']}, que não está publicado", now)
        return
    _start(d, target, now, block_id=jump.get("block_id"), draft_revision=draft_revision, jumps=jumps)


def _flow_opens(d: _Draft, effect: dict, now: float) -> None:
    detail = {"note": effect.get("note") or None, "block_id": effect.get("block_id")}
    _transition(d, "flow_open", "bot", now, detail=detail)
    login = effect.get("assign_to")
    if login:
        if d.user_exists(login):
            _transition(d, "assign", "bot", now, user=login)
        else:
            d.log("warning", effect.get("block_id"), f"atribuição ignorada: o usuário {login} não existe", now)


# ---------------------------------------------------------------------- transitions


def _transition(d: _Draft, action: str, actor: str, now: float, user: str | None = None,
                detail: dict | None = None) -> bool:
    """Apply one row of the transition table to the conversation and its run."""
    assigned = d.attending()
    outcome = machine.plan(action, d.status, assigned, actor, user)
    if not outcome.changed:
        return False
    d.transitions.append(action)
    before = d.status
    for login in outcome.assignees:
        if login not in assigned:
            d.assigned_at[login] = utc(now)
    d.assignees = list(outcome.assignees)
    d.status = outcome.status
    entry_detail = dict(outcome.activity.get("detail") or {})
    entry_detail.update({k: v for k, v in (detail or {}).items() if v is not None})
    if before != machine.OPEN and outcome.status == machine.OPEN:
        if d.burst is not None:
            d.drop_burst()  # people read those messages now; the bot stays silent
        d.opened_at = utc(now)
        d.first_response_at = None
        _schedule_auto_conclude(d, now)
    if before == machine.OPEN and outcome.status == machine.CONCLUDED:
        entry_detail.update(_resolution(d, now))
        d.opened_at = None
        d.first_response_at = None
        d.cancel_auto_conclude()
    d.activity.append({
        "conversation_id": d.id, "actor": actor, "action": outcome.activity["action"],
        "from_status": before, "to_status": outcome.status, "detail": entry_detail or None,
        "at": utc(now)})
    d.touch(now)
    _bot_after(d, outcome.bot, now)
    return True


def _resolution(d: _Draft, now: float) -> dict:
    opened = d.opened_at
    if opened is None:
        return {}
    out = {"opened_at": iso(opened), "resolution_s": round(now - epoch(opened), 3)}
    if d.first_response_at is not None:
        out["first_response_s"] = round(epoch(d.first_response_at) - epoch(opened), 3)
    return out


def _schedule_auto_conclude(d: _Draft, now: float) -> None:
    after = d.settings.auto_conclude_after
    if after and not d.auto_conclude_pending():
        d.schedule("auto_conclude", now + after, {})


def _bot_after(d: _Draft, bot: str, now: float) -> None:
    run = d.state.get("run")
    if bot in ("suspend", "interrupt"):
        if run and run["state"] in core.WAITING:
            flow = d.snap.flow_of(run)
            if flow is not None:
                _feed(d, flow, core.Opened(now, interrupt=bot == "interrupt"))
            else:
                d.state["run"] = {**run, "state": core.ENDED}
                d.touch(now)
        d.cancel_bot_timers()
    elif bot == "conclude":
        resumed = False
        if run and run["state"] != core.ENDED:
            flow = d.snap.flow_of(run)
            if flow is not None:
                was_at = (run["id"], run["state"], run.get("suspended_by"))
                _feed(d, flow, core.Concluded(now))
                after = d.state.get("run") or {}
                resumed = was_at[1] == core.SUSPENDED and was_at[2] == "flow" and after.get("id") == was_at[0]
            else:
                d.state["run"] = {**run, "state": core.ENDED}
                d.touch(now)
        if not resumed:
            flow_id = d.settings.on_conclude_flow
            flow = d.snap.published.get(flow_id) if flow_id else None
            if flow is not None:
                _start(d, flow, now)
