"""The pure flow engine.

``step(flow, state, event) -> (state, outbound, effects)`` runs blocks until the run
waits or ends. It does no I/O and never reads the clock: time arrives in the event.
Effects are plain dicts that ``engine.service`` applies in one transaction.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import datalogic_py

from blocks import REGISTRY
from blocks.base import Context, Result, message
from engine import hours
from engine.graph import CompiledFlow, compile_flow
from engine.hours import BusinessHours
from engine.templates import render as render_template

BLOCK_BUDGET = 200
STATE_VERSION = 1

# Run states (DESIGN §3)
RUNNING, WAITING_INPUT, WAITING_TIMER, SUSPENDED, ENDED = (
    "running", "waiting_input", "waiting_timer", "suspended", "ended")
WAITING = (RUNNING, WAITING_INPUT, WAITING_TIMER)


@dataclass(frozen=True)
class Start:
    at: float
    run_id: str
    block_id: str | None = None


@dataclass(frozen=True)
class UserMessage:
    at: float
    text: str


@dataclass(frozen=True)
class Timer:
    at: float
    kind: str
    token: int


@dataclass(frozen=True)
class Concluded:
    at: float


@dataclass(frozen=True)
class Opened:
    at: float
    interrupt: bool = False  # the customer asked for a human: the run ends instead of pausing


@dataclass(frozen=True)
class HttpResult:
    at: float
    ok: bool
    status: int | None
    body: Any


def new_state(contact: dict | None = None) -> dict:
    return {"v": STATE_VERSION, "vars": {}, "tags": [], "contact": dict(contact or {}), "run": None}


_logic_engine = datalogic_py.Engine()
_compiled_rules: dict[int, tuple[Any, Any]] = {}
_MAX_COMPILED = 20_000


def _compiled_rule(rule: Any):
    """Rules live in cached flow documents, so compile each rule object once (~20x faster)."""
    found = _compiled_rules.get(id(rule))
    if found is not None and found[0] is rule:  # the id is ours while we hold the object
        return found[1]
    if len(_compiled_rules) >= _MAX_COMPILED:
        _compiled_rules.clear()
    compiled = _logic_engine.compile(rule)
    _compiled_rules[id(rule)] = (rule, compiled)
    return compiled


_PHONE = re.compile(r"\+?\d{8,15}")


def rule_contact(contact: dict, tags: list[str] | tuple[str, ...] = ()) -> dict:
    """``contact`` as conditions see it: plus ``tags`` (the condition builder's "Etiquetas")
    and ``phone`` (the external id when it is a phone number, as on WhatsApp; else "")."""
    external = str(contact.get("external_id") or "")
    return {**contact, "phone": contact.get("phone") or (external if _PHONE.fullmatch(external) else ""),
            "tags": list(tags)}


def evaluate_logic(rule: Any, variables: dict, contact: dict,
                   tags: list[str] | tuple[str, ...] = ()) -> Any:
    """JSONLogic over the saved variables (at the root and under ``vars``) and ``contact``
    (with ``contact.phone`` and ``contact.tags``, see :func:`rule_contact`)."""
    if not isinstance(rule, dict | list):
        return rule  # a bare value is a literal in JSONLogic
    data = dict(variables)
    data["vars"] = variables
    data["contact"] = rule_contact(contact, tags)
    return _compiled_rule(rule).evaluate(data)


def run_is_waiting_for_input(state: dict) -> bool:
    run = state.get("run")
    return bool(run) and run["state"] == WAITING_INPUT


class _Step:
    """One call of :func:`step`: accumulates outbound messages and effects."""

    def __init__(self, flow: CompiledFlow, state: dict, at: float, schedule: BusinessHours | None = None):
        self.flow = flow
        self.at = at
        self.hours = schedule
        self.state = {
            "v": STATE_VERSION,
            "vars": dict(state.get("vars") or {}),
            "tags": list(state.get("tags") or []),
            "contact": dict(state.get("contact") or {}),
            "run": dict(state["run"]) if state.get("run") else None,
        }
        self.outbound: list[dict] = []
        self.effects: list[dict] = []
        self.visited: list[str] = []
        self._block_id: str | None = None

    # -- context for executors -------------------------------------------------
    def render(self, source: str) -> str:
        text, missing, error = render_template(source, self.state["vars"], self.state["contact"])
        for name in missing:
            self.log("warning", f"variável ausente no modelo: {name}")
        if error:
            self.log("error", f"erro no modelo: {error}")
        return text

    def evaluate(self, rule: Any) -> Any:
        try:
            return evaluate_logic(rule, self.state["vars"], self.state["contact"],
                                  self.state["tags"])
        except Exception as exc:  # a bad rule is the author's error, logged, never a crash
            self.log("error", f"erro na regra JSONLogic: {exc}")
            return None

    def log(self, level: str, text: str) -> None:
        self.effects.append({"type": "log", "level": level, "block_id": self._block_id, "message": text})

    def context(self) -> Context:
        return Context(now=self.at, vars=self.state["vars"], contact=self.state["contact"],
                       tags=self.state["tags"], render=self.render, evaluate=self.evaluate,
                       flow_id=self.flow.id, is_open=lambda: hours.is_open(self.hours, self.at),
                       closed_message=self.closed_message)

    def closed_message(self) -> str | None:
        return hours.closed_message(self.hours, self.at, self.state["vars"], self.state["contact"])

    # -- run bookkeeping ---------------------------------------------------------
    @property
    def run(self) -> dict:
        return self.state["run"]

    def end(self) -> None:
        self.run["state"] = ENDED
        self.run["suspended_by"] = None

    def wait_at(self, block_id: str, run_state: str) -> None:
        self.run["state"] = run_state
        self.run["block_id"] = block_id
        self.run["token"] = self.run.get("token", 0) + 1
        self.run["suspended_by"] = None

    def apply(self, result: Result) -> None:
        self.outbound.extend(result.outbound)
        if result.set_vars:
            self.state["vars"].update(result.set_vars)
        for effect in result.effects:
            kind = effect["type"]
            if kind == "add_tag" and effect["tag"] not in self.state["tags"]:
                self.state["tags"].append(effect["tag"])
            elif kind == "remove_tag" and effect["tag"] in self.state["tags"]:
                self.state["tags"].remove(effect["tag"])
            self.effects.append(effect)

    def follow(self, block_id: str, port: str) -> None:
        """Continue from ``port`` of ``block_id``; no edge there ends the run."""
        target = self.flow.next(block_id, port)
        if target is None:
            self.run["block_id"] = block_id
            self.end()
            return
        self.walk(target)

    def walk(self, block_id: str) -> None:
        """Run blocks from ``block_id`` until the run waits or ends (budget: 200 blocks)."""
        run = self.run
        run["state"] = RUNNING
        ctx = self.context()
        budget = BLOCK_BUDGET - len(self.visited)
        while True:
            block = self.flow.blocks.get(block_id)
            if block is None:
                self._block_id = block_id
                self.log("error", f"o bloco {block_id} não existe neste fluxo")
                self.end()
                return
            if budget <= 0:
                self._block_id = block_id
                self.log("error", f"limite de {BLOCK_BUDGET} blocos por evento atingido: execução encerrada")
                run["block_id"] = block_id
                self.end()
                return
            budget -= 1
            self._block_id = block_id
            self.visited.append(block_id)
            run["block_id"] = block_id
            kind = REGISTRY[block["type"]]
            result = kind.execute(block, ctx)
            if result.wait:
                self._wait(block, result)
                return
            self.apply(result)
            if result.port is None:
                self.end()
                return
            target = self.flow.next(block_id, result.port)
            if target is None:
                self.end()
                return
            block_id = target

    def _wait(self, block: dict, result: Result) -> None:
        block_id = block["id"]
        if result.wait == "input":
            self.wait_at(block_id, WAITING_INPUT)
            self.run["attempts"] = 0
        elif result.wait == "timer":
            self.wait_at(block_id, WAITING_TIMER)
        elif result.wait == "suspended":
            self.wait_at(block_id, SUSPENDED)
            self.run["suspended_by"] = "flow"
        elif result.wait == "http":
            self.wait_at(block_id, RUNNING)
            self.run["pending"] = "http"
        elif result.wait == "jump":
            self.end()
        for effect in result.effects:
            if effect["type"] == "schedule_timer":
                effect["token"] = self.run["token"]
        self.apply(result)

    def finish(self) -> tuple[dict, list[dict], list[dict]]:
        if self.visited:
            self.effects.append({"type": "visit", "run_id": self.run["id"], "flow_id": self.flow.id,
                                 "block_ids": list(dict.fromkeys(self.visited))})
        return self.state, self.outbound, self.effects


def _compiled(flow: CompiledFlow | dict) -> CompiledFlow:
    return flow if isinstance(flow, CompiledFlow) else compile_flow(flow, flow.get("version"))


def step(flow: CompiledFlow | dict, state: dict, event, business_hours: BusinessHours | None = None
         ) -> tuple[dict, list[dict], list[dict]]:
    """Feed one event to the run in ``state``; returns (new state, outbound, effects).

    ``business_hours`` is the schedule blocks see (None: none set, always open).
    ``state`` is never modified. Events that do not concern the run (a timer whose run
    moved on, a message while no question waits) return the state unchanged, no output.
    """
    flow = _compiled(flow)
    s = _Step(flow, state, event.at, business_hours)
    run = s.run

    if isinstance(event, Start):
        previous_token = run.get("token", 0) if run else 0
        s.state["run"] = {"id": event.run_id, "flow_id": flow.id, "flow_version": flow.version,
                          "state": RUNNING, "block_id": event.block_id or flow.start,
                          "attempts": 0, "token": previous_token + 1, "suspended_by": None}
        s.walk(event.block_id or flow.start)
        return s.finish()

    if run is None or run["state"] == ENDED:
        return s.finish()

    if isinstance(event, UserMessage):
        if run["state"] == WAITING_INPUT:
            _answer(s, event.text)
    elif isinstance(event, Timer):
        # The block the run waits at says which of its timers leads where.
        port = _timer_port(flow.blocks.get(run["block_id"]), event.kind)
        if event.token == run.get("token") and run["state"] in (WAITING_INPUT, WAITING_TIMER) and port:
            s.follow(run["block_id"], port)
    elif isinstance(event, Concluded):
        block = flow.blocks.get(run["block_id"])
        resume = REGISTRY[block["type"]].resume_on_conclude if block is not None else None
        if run["state"] == SUSPENDED and run.get("suspended_by") == "flow" and resume:
            s.follow(run["block_id"], resume)
        else:
            s.end()
    elif isinstance(event, Opened):
        if run["state"] in WAITING:
            if event.interrupt:
                s.end()
            else:
                run["state"] = SUSPENDED
                run["suspended_by"] = "agent"
                run["token"] = run.get("token", 0) + 1  # pending waits/timeouts become no-ops
                run.pop("pending", None)
    elif isinstance(event, HttpResult):
        if run["state"] == RUNNING and run.get("pending") == "http":
            run.pop("pending", None)
            block = flow.blocks[run["block_id"]]
            hook = REGISTRY[block["type"]].on_http_result
            if hook is None:  # not a kind that asks for HTTP: nothing to continue
                s.end()
            else:
                result = hook(block, event.ok, event.status, event.body)
                s.state["vars"].update(result.set_vars)
                s.follow(block["id"], result.port)
    return s.finish()


def _timer_port(block: dict | None, timer_kind: str) -> str | None:
    """The port a fired timer of ``timer_kind`` leads to from ``block`` (None: not its timer)."""
    kind = REGISTRY.get(block["type"]) if block is not None else None
    if kind is None:
        return None
    return next((t.port for t in kind.timers if t.name == timer_kind), None)


def _answer(s: _Step, text: str) -> None:
    run = s.run
    block = s.flow.blocks.get(run["block_id"])
    if block is None:
        s.end()
        return
    kind = REGISTRY[block["type"]]
    s._block_id = block["id"]
    ctx = s.context()
    reply = kind.parse_reply(block, text, ctx)
    data = block["data"]
    if reply.valid:
        s.state["vars"][data["save_as"]] = reply.value
        # ``csat``: True for a csat question's answer, False for any other answer in a
        # flow that has one, None in a flow without (PAPO_CSAT_VARIABLE decides).
        csat = True if data.get("csat") is True else (False if s.flow.has_csat_question else None)
        s.effects.append({"type": "answer", "name": data["save_as"], "value": reply.value,
                          "csat": csat})
        run["attempts"] = 0
        run["token"] = run.get("token", 0) + 1  # the question timeout no longer applies
        s.follow(block["id"], reply.port)
        return
    if data.get("csat"):
        # DESIGN §10.8 "CSAT never traps": a customer who writes something else after a
        # rating request has moved on; the run ends quietly (no invalid_text) and the
        # service handles the message as if no run were waiting.
        run["token"] = run.get("token", 0) + 1
        s.end()
        return
    run["attempts"] = run.get("attempts", 0) + 1
    if run["attempts"] >= data.get("max_attempts", kind.default_attempts):
        run["attempts"] = 0
        run["token"] = run.get("token", 0) + 1
        s.follow(block["id"], "invalid")
        return
    invalid = data.get("invalid_text")
    s.outbound.append(message(s.render(invalid) if invalid else kind.invalid_text(data),
                              None, block["id"]))
    asked = kind.execute(block, ctx)
    s.outbound.extend(asked.outbound)  # the question again, with its buttons; same timeout
