"""Flow tests (DESIGN §10.2, §10.6): conversations saved in the flow document, replayed.

A flow document may carry ``"tests": [{"name", "steps": [...], "http_mocks": [...]}]``.
:func:`run_tests` plays every test against the document as a draft, through the very
same :class:`engine.service.Service` production uses (via :class:`engine.simulator.Simulation`):
an in-memory database, a frozen clock that only ``wait`` moves, each test a fresh
conversation whose first ``say`` starts the flow whatever its triggers, handoff keywords
as configured, and ``http_request`` blocks answered only by the test's ``http_mocks``
(an unmocked request fails the test and never reaches the network).

Bot messages are checked in order. ``say``, ``open`` and ``conclude`` (something a
person does) begin a new exchange: the bot messages it produces are the ones the next
``expect`` steps read; messages nobody expected from an earlier exchange are let go.
``wait`` adds what the fired timers sent to the current exchange. ``expect_end`` checks
that the current exchange has no message left unexpected. ``expect_buttons`` reads the
buttons of the last bot message (the newest one sent so far, DESIGN §10.2).

:func:`recorded_test` turns a simulated conversation (as the API shows it) into
a test: the editor's "Salvar como teste".
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from blocks import REGISTRY
from blocks.labels import block_title
from engine.errors import PapoError
from engine.http import HttpOutcome
from engine.i18n import t
from engine.settings import Settings

log = logging.getLogger(__name__)
# Tests start on a fixed clock: the same run gives the same timestamps every time.
START_AT = float(int(datetime(2026, 1, 5, 12, 0).timestamp()))
DEFAULT_CONTACT_NAME = "Visitante"  # as papo chat and the web chat
SHOWN = 200  # characters of a text quoted in a failure message
STATUSES = ("open", "concluded")


# ---------------------------------------------------------------------- results
@dataclass
class FlowTestResult:
    name: str
    passed: bool
    step: int | None = None  # the failing step, numbered from 1
    message: str | None = None  # "passo 3: esperado …, recebido …"
    # When an ``expect`` failed on another message: its full text (the editor offers to
    # take it as the new expected text). Not part of the API's answer.
    got: str | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {"name": self.name, "passed": self.passed, "step": self.step, "message": self.message}


def summary(results: list[FlowTestResult]) -> dict:
    """The API's answer: ``{"passed", "failed", "results": [{"name","passed","step","message"}]}``."""
    passed = sum(r.passed for r in results)
    return {"passed": passed, "failed": len(results) - passed,
            "results": [r.to_json() for r in results]}


def failure_details(results: list[FlowTestResult]) -> list[dict]:
    """``[{"path": "tests/<name>", "message"}]`` for each failing test (publish's 422)."""
    return [{"path": f"tests/{r.name}", "message": r.message or ""} for r in results if not r.passed]


# ---------------------------------------------------------------------- quoting
def _quote(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= SHOWN else value[:SHOWN] + "…"
        return json.dumps(text, ensure_ascii=False)
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


def _labels(labels: list) -> str:
    return "[" + ", ".join(_quote(str(label)) for label in labels) + "]"


# ---------------------------------------------------------------------- HTTP mocks
class _Mocks:
    """Answers ``http`` effects from a test's ``http_mocks``; remembers what it could not.

    A mock matches the rendered URL exactly (query string included) and the method
    case-insensitively. Several mocks for one request answer in turn, the last one
    repeating.
    """

    def __init__(self, mocks: list[dict]):
        self.mocks = mocks
        self.used: dict[int, int] = {}
        self.unmocked: list[dict] = []

    def __call__(self, call: dict, allow_hosts=()) -> HttpOutcome:
        method = str(call.get("method") or "GET").upper()
        url = call.get("url")
        matching = [i for i, m in enumerate(self.mocks)
                    if str(m.get("method", "")).upper() == method and m.get("url") == url]
        if not matching:
            self.unmocked.append({"method": method, "url": url})
            return HttpOutcome(False, None, None, "sem resposta simulada (teste do fluxo)")
        turn = sum(self.used.get(i, 0) for i in matching)
        index = matching[min(turn, len(matching) - 1)]
        self.used[index] = self.used.get(index, 0) + 1
        mock = self.mocks[index]
        status = int(mock["status"])
        body = mock["json"] if "json" in mock else mock.get("text", "")
        ok = 200 <= status < 300
        return HttpOutcome(ok, status, body, None if ok else f"o servidor respondeu com status {status}")


# ---------------------------------------------------------------------- one test
@dataclass
class _Exchange:
    """The bot messages since the last thing a person did, and how far the test read them."""

    messages: list[dict] = field(default_factory=list)
    read: int = 0
    newest: dict | None = None  # the last bot message so far (``expect_buttons`` reads it)
    got: str | None = None  # the text an ``expect`` found instead of its own

    def reset(self, replies: list[dict]) -> None:
        self.messages, self.read = list(replies), 0
        self.newest = replies[-1] if replies else self.newest

    def extend(self, replies: list[dict]) -> None:
        self.messages.extend(replies)
        self.newest = replies[-1] if replies else self.newest

    def next(self) -> dict | None:
        if self.read >= len(self.messages):
            return None
        message = self.messages[self.read]
        self.read += 1
        return message


def _run_one(db: Engine, flow_id: str, test: dict, settings: Settings | None, lang: str | None
             ) -> FlowTestResult:
    from engine.simulator import Simulation

    mocks = _Mocks(list(test.get("http_mocks") or []))
    name = (test.get("contact") or {}).get("name") or DEFAULT_CONTACT_NAME
    sim = Simulation(None, db=db, settings=settings, start_at=START_AT, flow_id=flow_id, http=mocks,
                     contact_name=name, record_events=False)
    exchange = _Exchange()
    for number, step in enumerate(test["steps"], start=1):
        try:
            problem = _play(sim, exchange, step, lang)
        except Exception as exc:  # a bug must fail this test, not the publish request
            log.exception("flow test %r of %s crashed at step %d", test["name"], flow_id, number)
            problem = t("flowtest.crashed", lang, error=type(exc).__name__)
        if problem is None and mocks.unmocked:
            call = mocks.unmocked[0]
            problem = t("flowtest.unmocked", lang, method=call["method"], url=call["url"])
        if problem is not None:
            return FlowTestResult(test["name"], False, number,
                                  t("flowtest.step", lang, step=number, message=problem),
                                  got=exchange.got)
    return FlowTestResult(test["name"], True)


def _expected_got(lang, expected: str, got: str) -> str:
    return t("flowtest.expected_got", lang, expected=expected, got=got)


def _play(sim, exchange: _Exchange, step: dict, lang: str | None) -> str | None:
    """Do or check one step; the failure message, or None when it holds."""
    (kind, value), = step.items()
    nothing = t("flowtest.no_message", lang)
    try:
        if kind == "say":
            exchange.reset(sim.send(value))
        elif kind == "open":
            sim.open()
            exchange.reset([])
        elif kind == "conclude":
            exchange.reset(sim.conclude())
        elif kind == "wait":
            exchange.extend(sim.wait(float(value)))
    except PapoError as exc:  # e.g. a message the service refuses: the test fails there
        return t("flowtest.refused", lang, error=exc.message)
    if kind in ("say", "open", "conclude", "wait"):
        return None
    if kind in ("expect", "expect_contains"):
        message = exchange.next()
        shown = _quote(value) if kind == "expect" else t("flowtest.containing", lang, text=_quote(value))
        if message is None:
            return _expected_got(lang, shown, nothing)
        matches = message["text"] == value if kind == "expect" else value in message["text"]
        if not matches:
            exchange.got = message["text"] if kind == "expect" else None
            return _expected_got(lang, shown, _quote(message["text"]))
        return None
    if kind == "expect_buttons":
        message = exchange.newest
        expected = t("flowtest.buttons", lang, labels=_labels(value)) if value else t("flowtest.no_buttons", lang)
        if message is None:
            return _expected_got(lang, expected, nothing)
        got = list(message.get("buttons") or [])
        if got != list(value):
            return _expected_got(lang, expected, _labels(got) if got else t("flowtest.no_buttons", lang))
        return None
    if kind == "expect_status":
        status = sim.status()
        if status != value:
            return _expected_got(lang, t("flowtest.status", lang, status=value), _quote(status))
        return None
    if kind == "expect_vars":
        variables = sim.variables()
        for name, expected in value.items():
            if name not in variables:
                return _expected_got(lang, t("flowtest.var", lang, name=name, value=_quote(expected)),
                                     t("flowtest.unset", lang, name=name))
            if not _same(variables[name], expected):
                return _expected_got(lang, t("flowtest.var", lang, name=name, value=_quote(expected)),
                                     t("flowtest.var", lang, name=name, value=_quote(variables[name])))
        return None
    if kind == "expect_end":
        left = exchange.messages[exchange.read:]
        if left:
            return _expected_got(lang, t("flowtest.end", lang), _quote(left[0]["text"]))
        return None
    return None  # the schema admits no other kind


def _same(actual: Any, expected: Any) -> bool:
    """Equal as JSON values (1 == 1.0, but True is not 1)."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    return actual == expected


# ---------------------------------------------------------------------- running
def run_tests(doc: dict, *, names: list[str] | None = None, settings: Settings | None = None,
              lang: str | None = None, others: list[dict] | None = None) -> list[FlowTestResult]:
    """Run the document's tests (or those named) on its content as a draft.

    ``doc``: a flow document already checked by ``schemas.load_document``. ``others``:
    documents of other flows it may jump into, published in the test database.
    Runs on a private in-memory SQLite database; nothing outside it changes.
    """
    tests = [test for test in doc.get("tests") or [] if names is None or test["name"] in names]
    if not tests:
        return []
    from engine.db import create_schema, make_engine
    from engine.flows import FlowRepository

    db = make_engine("sqlite://")
    try:
        create_schema(db)
        repo = FlowRepository(db)
        for other in others or []:
            if other.get("id") != doc["id"]:
                _publish_quietly(repo, other)
        # The service reads the draft at every step: store it without its (long) tests.
        repo.create({k: v for k, v in doc.items() if k != "tests"}, actor="teste")
        return [_run_one(db, doc["id"], test, settings, lang) for test in tests]
    finally:
        db.dispose()


def _publish_quietly(repo, doc: dict) -> None:
    """Make a jump target available; one that cannot be published is simply missing."""
    try:
        repo.create(doc, actor="teste")
        repo.publish(doc["id"], actor="teste", force=True)
    except PapoError:
        pass  # the test that jumps there fails on what the bot (does not) say


# ---------------------------------------------------------------------- lint
def _can_have_buttons(block: dict) -> bool:
    kind = REGISTRY.get(block.get("type"))
    return kind is not None and bool(kind.buttons(block.get("data") or {}))


def _pauses(block: dict) -> bool:
    kind = REGISTRY.get(block.get("type"))
    return kind is not None and kind.pauses_run


def lint_tests(doc: dict, lang: str | None = None) -> list[dict]:
    """Warnings about tests that cannot pass: ``expect_buttons`` where no buttons can come.

    ``expect_buttons`` reads the last bot message. When the ``expect`` before it names
    exactly the (untemplated) text of blocks that are surely the last message (a block
    where the run waits, like a question, or one whose exits lead nowhere) and none of them can have
    buttons, or when no block of the flow sends buttons at all, it is flagged.
    """
    findings: list[dict] = []
    blocks = [b for b in doc.get("blocks", []) if isinstance(b, dict)]
    any_buttons = any(_can_have_buttons(b) for b in blocks)
    leaving = {e.get("from") for e in doc.get("edges", []) if isinstance(e, dict)}
    by_text: dict[str, list[dict]] = {}
    for block in blocks:
        text = (block.get("data") or {}).get("text")
        if isinstance(text, str) and "{" not in text:
            by_text.setdefault(text, []).append(block)
    for test in doc.get("tests") or []:
        last_expect: str | None = None
        for number, step in enumerate(test.get("steps") or [], start=1):
            kind = next(iter(step), None)
            if kind in ("say", "open", "conclude"):
                last_expect = None
            elif kind == "expect":
                last_expect = step["expect"]
            elif kind == "expect_buttons" and step["expect_buttons"]:
                # Only a message nothing follows is surely the last one: a block where the
                # run waits (a question) or one whose exits lead nowhere.
                named = [b for b in by_text.get(last_expect or "", [])
                         if _pauses(b) or b["id"] not in leaving]
                if not any_buttons:
                    findings.append({"level": "warning", "code": "test_buttons_none", "block_id": None,
                                     "message": t("lint.test_buttons_flow", lang, test=test["name"],
                                                  step=number)})
                elif named and not any(_can_have_buttons(b) for b in named):
                    findings.append({"level": "warning", "code": "test_buttons_none",
                                     "block_id": named[0]["id"],
                                     "message": t("lint.test_buttons_none", lang, test=test["name"],
                                                  step=number, title=block_title(named[0], lang))})
    return findings


# ---------------------------------------------------------------------- recording
def _epoch(value: str | float) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def transcript(db: Engine, conversation_id: int) -> dict | None:
    """A conversation's contact, messages and activity with exact times (epoch seconds).

    The API's timestamps are whole seconds; a simulated conversation typed quickly has
    several actions in one second, so recording a test reads the stored times instead.
    Same shape as the API's conversation (``contact``, ``messages``, ``activity``).
    """
    from sqlalchemy import select

    from engine.moments import epoch
    from engine.store import activity, contacts, conversations, messages

    with db.connect() as conn:
        head = conn.execute(select(contacts.c.name).join(
            conversations, conversations.c.contact_id == contacts.c.id).where(
            conversations.c.id == conversation_id)).first()
        if head is None:
            return None
        said = conn.execute(select(messages.c.direction, messages.c.author, messages.c.text,
                                   messages.c.buttons, messages.c.at)
                            .where(messages.c.conversation_id == conversation_id)
                            .order_by(messages.c.id)).all()
        done = conn.execute(select(activity.c.actor, activity.c.from_status, activity.c.to_status,
                                   activity.c.at)
                            .where(activity.c.conversation_id == conversation_id)
                            .order_by(activity.c.id)).all()
    return {"contact": {"name": head.name},
            "messages": [{"direction": m.direction, "author": m.author, "text": m.text,
                          "buttons": list(m.buttons or []), "at": epoch(m.at)} for m in said],
            "activity": [{"actor": a.actor, "from": a.from_status, "to": a.to_status,
                          "at": epoch(a.at)} for a in done]}


def recorded_test(conversation: dict, name: str, people: set[str] | None = None) -> dict:
    """A test replaying a (simulated) conversation: the API's shape, or :func:`transcript`'s.

    Each customer message is a ``say``, each bot message an ``expect`` (with
    ``expect_buttons`` when it had buttons), a person opening or concluding it ``open`` /
    ``conclude``, simulated time that passed before the bot spoke on its own (a wait, a
    timeout: "Avançar tempo") a ``wait``, a status the flow changed by itself an
    ``expect_status``; the last step checks the final status. ``people``: logins whose
    activity entries are a person's action (default: any actor but the bot, the customer
    and the system).
    """
    events: list[tuple[float, int, dict]] = []
    for order, message in enumerate(conversation.get("messages") or []):
        author = message.get("author")
        if message.get("direction") == "in" and author == "customer":
            events.append((_epoch(message["at"]), order, {"kind": "say", "text": message["text"]}))
        elif message.get("direction") == "out" and author == "bot":
            events.append((_epoch(message["at"]), order, {
                "kind": "bot", "text": message["text"], "buttons": list(message.get("buttons") or [])}))
    base = len(events)
    for order, entry in enumerate(conversation.get("activity") or []):
        if entry.get("from") == entry.get("to") or entry.get("to") not in STATUSES:
            continue
        actor = entry.get("actor")
        by_person = actor not in ("bot", "customer", "system") if people is None else actor in people
        kind = ("open" if entry["to"] == "open" else "conclude") if by_person else "status"
        events.append((_epoch(entry["at"]), base + order, {"kind": kind, "status": entry["to"]}))
    # Same instant (one action): what a person did first, then what the bot said, then the
    # flow's own status changes.
    rank = {"say": 0, "open": 0, "conclude": 0, "bot": 1, "status": 2}
    events.sort(key=lambda e: (e[0], rank[e[2]["kind"]], e[1]))

    steps: list[dict] = []
    status = "concluded"
    last_at: float | None = None
    for index, (at, _order, event) in enumerate(events):
        kind = event["kind"]
        if kind in ("bot", "status") and last_at is not None and at - last_at >= 1:
            steps.append({"wait": int(at - last_at + 0.999)})
        if kind == "say":
            steps.append({"say": event["text"]})
        elif kind == "bot":
            steps.append({"expect": event["text"]})
            after = events[index + 1] if index + 1 < len(events) else None
            # expect_buttons reads the newest bot message: check them while this one is it.
            said_next = after is not None and after[2]["kind"] == "bot" and after[0] - at < 1
            if event["buttons"] and not said_next:
                steps.append({"expect_buttons": event["buttons"]})
        elif kind in ("open", "conclude"):
            steps.append({kind: True})
        if kind in ("open", "conclude", "status"):
            status = event["status"]
        if kind == "status":
            steps.append({"expect_status": status})
        last_at = at if last_at is None else max(last_at, at)
    if steps and steps[-1] != {"expect_status": status}:
        steps.append({"expect_status": status})
    test: dict = {"name": name, "steps": steps}
    contact = (conversation.get("contact") or {}).get("name")
    if contact and contact != DEFAULT_CONTACT_NAME:
        test["contact"] = {"name": contact}
    return test
