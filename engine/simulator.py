"""An in-process simulation of one customer talking to one flow: the one simulator.

Used by ``papo chat``, the editor's simulator pane (``editor/simulator.py``), the flow
tests and the engine's own tests. It drives the very same
:class:`engine.service.Service` production uses, with three differences:

- the clock is one the simulation controls, so waits and question timeouts can be
  fast-forwarded instead of slept through: either frozen (``now``, epoch seconds, moved
  only by :meth:`Simulation.wait` and :meth:`Simulation.advance`; ``papo chat``, tests) or
  running (``clock_offset``: the real time plus an offset that those two methods move
  forward; the editor pane, whose author expects time to pass between clicks);
- the service runs one flow's latest *draft* whatever its triggers (``forced_flow_id``);
- the conversation lives on the internal ``test`` channel, hidden from the inbox, the
  API lists and the reports, with a contact ``external_id`` unique to this simulation;
- its messages are not debounced (``papo chat``, flow tests) unless ``debounce=True``
  (the editor's pane, DESIGN §10.6): then ``PAPO_DEBOUNCE_SECONDS`` holds the bot back as
  on WhatsApp, and :meth:`advance` / :meth:`wait` fire the burst's timer.

Public API (kept stable for its users):

- ``Simulation(doc | None, *, db=None, settings=None, start_at=None, contact_name="Você",
  flow_id=None, actor="simulador", clock_offset=None, http=None, record_events=True,
  debounce=False)``
  (``http``: answers ``http_request`` blocks instead of the network, as flow tests'
  mocks do; ``record_events=False``: no ``last_events``, two reads fewer per action);
  attributes ``db``, ``service``,
  ``flow_id``, ``findings`` (lint of the stored draft), ``external_id``,
  ``conversation_id``, ``contact_name``, ``actor``, ``now``, ``clock_offset``,
  ``last_events``;
- reading: :meth:`conversation`, :meth:`status`, :meth:`variables`, :meth:`run`,
  :meth:`timers`;
- acting (each returns the bot's replies ``[{"text", "buttons"}]`` and sets
  ``last_events``): :meth:`send`, :meth:`open` (returns the status), :meth:`conclude`,
  :meth:`wait`, :meth:`advance`;
- across requests or processes: :meth:`snapshot`, :meth:`resume`; :meth:`restart`.

``last_events`` is the ordered list of what the customer lived through in the last
action: ``{"event": "bot", "text", "buttons"}`` and ``{"event": "status", "status"}``
(who changed it is in the conversation's ``activity``).
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlalchemy.engine import Engine

from engine import queries
from engine.db import create_schema, make_engine
from engine.errors import NotFound
from engine.flows import FlowRepository
from engine.service import TEST_CHANNEL, Service, epoch
from engine.settings import Settings

ACTOR = "simulador"  # the activity log's actor for /open and /conclude
# A runaway guard for wait(): a flow re-arming a timer forever inside the window.
MAX_TIMERS_PER_WAIT = 10_000


def _epoch(value: float | int | datetime | None) -> float:
    if value is None:
        return float(int(time.time()))
    if isinstance(value, datetime):
        return epoch(value)
    return float(value)


class Simulation:
    """One test contact and conversation running a flow on a controllable clock.

    ``flow_doc_or_none``: a flow document (dict, JSON text or bytes) to store as a draft
    and run (structural problems raise ``schemas.FlowDocumentError``); ``None`` runs
    ``flow_id``'s latest draft from ``db``, or with no ``flow_id`` lets the published
    flows' triggers decide, as in production. ``db``: an Engine with papo's tables
    (default: a private in-memory SQLite database). ``start_at``: the clock's start
    (epoch seconds or a datetime; default: the real time now, then frozen).
    """

    def __init__(self, flow_doc_or_none: dict | str | bytes | None, *, db: Engine | None = None,
                 settings: Settings | None = None, start_at: float | datetime | None = None,
                 contact_name: str = "Você", flow_id: str | None = None, actor: str = ACTOR,
                 clock_offset: float | None = None, http: Callable | None = None,
                 record_events: bool = True, debounce: bool = False):
        if db is None:
            db = make_engine("sqlite://")
            create_schema(db)
        self.db = db
        # None: a frozen clock at ``_frozen``; a number: the real time plus it (running).
        self.clock_offset = None if clock_offset is None else max(0.0, float(clock_offset))
        self._frozen = _epoch(start_at)
        self.contact_name = contact_name
        self.actor = actor
        self.findings: list[dict] = []
        if flow_doc_or_none is not None:
            stored = self._store(flow_doc_or_none)
            flow_id = stored["id"]
            self.findings = stored["findings"]
        self.flow_id = flow_id
        settings = settings or Settings.from_env()
        if debounce and TEST_CHANNEL not in settings.debounce_channels:
            settings = replace(settings, debounce_channels=(*settings.debounce_channels, TEST_CHANNEL))
        elif not debounce and TEST_CHANNEL in settings.debounce_channels:
            settings = replace(settings, debounce_channels=tuple(
                c for c in settings.debounce_channels if c != TEST_CHANNEL))
        # ``http``: answers ``http_request`` blocks instead of the network (flow tests' mocks).
        self.service = Service(db, settings, clock=lambda: self.now, forced_flow_id=flow_id, http=http)
        self.last_events: list[dict] = []
        # ``last_events`` costs two reads of the conversation per action; flow tests,
        # which only need the replies, turn it off.
        self.record_events = record_events
        self._new_contact()

    # ------------------------------------------------------------------ the clock
    @property
    def now(self) -> float:
        """The simulated time (epoch seconds)."""
        if self.clock_offset is None:
            return self._frozen
        return time.time() + self.clock_offset

    @now.setter
    def now(self, value: float) -> None:
        if self.clock_offset is None:
            self._frozen = float(value)
        else:  # a running clock only moves forward
            self.clock_offset += max(0.0, float(value) - self.now)

    # ------------------------------------------------------------------ set-up
    def _store(self, raw) -> dict:
        """Save the document as the flow's newest draft (created if it is new)."""
        from schemas import load_document

        doc = load_document(raw)
        repo = FlowRepository(self.db)
        try:
            _, revision = repo.get(doc["id"])
        except NotFound:
            return repo.create(doc, actor=ACTOR)
        return repo.update(doc["id"], doc, revision, actor=ACTOR)

    def _new_contact(self) -> None:
        self.external_id = f"sim-{uuid.uuid4().hex[:20]}"
        self.conversation_id: int | None = None

    def snapshot(self) -> dict:
        """What it takes to pick this simulation up again in another request or process."""
        return {"flow_id": self.flow_id, "external_id": self.external_id,
                "conversation_id": self.conversation_id, "now": self.now,
                "clock_offset": self.clock_offset, "contact_name": self.contact_name,
                "actor": self.actor}

    @classmethod
    def resume(cls, snapshot: dict, *, db: Engine, settings: Settings | None = None,
               debounce: bool = False) -> Simulation:
        """The simulation a :meth:`snapshot` describes, on the same database.

        The web simulator keeps no state in the process (DESIGN §4): it keeps what it
        needs of the snapshot (in the session) and resumes it on each request. Only
        ``external_id`` is required; without ``conversation_id`` the contact's test
        conversation is looked up.
        """
        sim = cls(None, db=db, settings=settings, start_at=snapshot.get("now"),
                  contact_name=snapshot.get("contact_name") or "Você", flow_id=snapshot.get("flow_id"),
                  actor=snapshot.get("actor") or ACTOR, clock_offset=snapshot.get("clock_offset"),
                  debounce=debounce)
        sim.external_id = snapshot["external_id"]
        sim.conversation_id = snapshot.get("conversation_id")
        if sim.conversation_id is None:
            found = queries.contact_conversation(db, TEST_CHANNEL, sim.external_id)
            sim.conversation_id = found["id"] if found else None
        return sim

    def restart(self) -> None:
        """A new test contact and conversation (the editor's "Reiniciar"); the clock goes on."""
        self._new_contact()
        self.last_events = []

    def _ensure_conversation(self) -> int:
        """The conversation, created (concluded, no run) if no message made it yet
        (``/open`` as the very first action needs one too)."""
        if self.conversation_id is None:
            self.conversation_id = self.service.ensure_conversation(
                TEST_CHANNEL, {"external_id": self.external_id, "name": self.contact_name})
        return self.conversation_id

    # ------------------------------------------------------------------ reading
    def conversation(self) -> dict | None:
        """The conversation as the API shows it (``None`` before the first action)."""
        if self.conversation_id is None:
            return None
        return self.service.get_conversation(self.conversation_id)

    def status(self) -> str:
        """``open`` or ``concluded`` (a conversation starts concluded: the bot in charge)."""
        conv = self.conversation()
        return conv["status"] if conv else "concluded"

    def variables(self) -> dict:
        conv = self.conversation()
        return dict(conv["variables"]) if conv else {}

    def run(self) -> dict | None:
        """The flow run: ``{"state", "flow_id", "flow_version", "block_id"}`` or ``None``."""
        conv = self.conversation()
        return conv["run"] if conv else None

    def timers(self) -> list[dict]:
        """Pending timers: ``[{"id", "kind", "due_at"}]`` (ISO-8601 UTC)."""
        conv = self.conversation()
        return conv["timers"] if conv else []

    # ------------------------------------------------------------------ acting
    def send(self, text: str) -> list[dict]:
        """A customer message; returns the bot's replies ``[{"text", "buttons"}]``."""
        # Unique per message, also across resumed copies: the service dedupes on it.
        message_id = f"{self.external_id}-{uuid.uuid4().hex[:12]}"
        before = self._activity_count()
        result = self.service.handle_inbound(
            TEST_CHANNEL, {"external_id": self.external_id, "name": self.contact_name},
            {"id": message_id, "text": text})
        self.conversation_id = result["conversation_id"]
        self.last_events = self._events(before, result["replies"])
        return result["replies"]

    def open(self) -> str:
        """An agent opens the conversation (the bot falls silent); returns the status."""
        self._act("open")
        return self.status()

    def conclude(self) -> list[dict]:
        """An agent concludes; returns the bot's replies (e.g. a CSAT question)."""
        return self._act("conclude")

    def _act(self, action: str) -> list[dict]:
        conversation_id = self._ensure_conversation()
        before = self._activity_count()
        replies = self.service.act(conversation_id, action, self.actor)["replies"]
        self.last_events = self._events(before, replies)
        return replies

    def wait(self, seconds: float) -> list[dict]:
        """Let ``seconds`` pass: fire every timer due in the window, in due order.

        Timers created while firing (a wait after a wait) fire too if they fall in the
        window. The clock stands at each timer's due time as it fires and ends at the
        start plus ``seconds``.
        """
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        end = self.now + seconds
        replies: list[dict] = []
        events: list[dict] = []
        for _ in range(MAX_TIMERS_PER_WAIT):
            fired = self._fire_next(until=end)
            if fired is None:
                break
            replies.extend(fired)
            events.extend(self.last_events)
        self.now = max(self.now, end)
        self.last_events = events
        return replies

    def advance(self) -> list[dict]:
        """Jump the clock to the next pending timer and fire it (the editor's "Avançar tempo").

        With no pending timer nothing happens and the clock stays.
        """
        fired = self._fire_next(until=None)
        if fired is None:
            self.last_events = []
            return []
        return fired

    def _fire_next(self, until: float | None) -> list[dict] | None:
        """Fire the earliest pending timer if it is due by ``until``; ``None``: none was."""
        if self.conversation_id is None:
            return None
        timer = self.service.next_timer(self.conversation_id)
        if timer is None:
            return None
        due = epoch(timer["due_at"])
        if until is not None and due > until:
            return None
        self.now = max(self.now, due)
        before = self._activity_count()
        replies = self.service.fire_timer(timer["id"], self.now)["replies"]
        self.last_events = self._events(before, replies)
        return replies

    # ------------------------------------------------------------------ events
    def _activity_count(self) -> int:
        if not self.record_events:
            return 0
        conv = self.conversation()
        return len(conv["activity"]) if conv else 0

    def _events(self, activity_before: int, replies: list[dict]) -> list[dict]:
        """The action's replies and status changes, in the order the customer lived them.

        One action may change the status more than once (a conclusion resumes the flow,
        which opens the conversation again). Changes by people, the customer or the
        system come before the bot's replies (the conclusion lets the bot speak, a request
        for a human silences it); changes by the flow itself come after what it said.
        """
        if not self.record_events:
            return []
        conv = self.conversation()
        entries = conv["activity"][activity_before:] if conv else []
        changes = [e for e in entries if e["from"] != e["to"]]
        before = [{"event": "status", "status": e["to"]} for e in changes if e["actor"] != "bot"]
        after = [{"event": "status", "status": e["to"]} for e in changes if e["actor"] == "bot"]
        bot = [{"event": "bot", "text": r["text"], "buttons": list(r.get("buttons") or [])}
               for r in replies]
        return before + bot + after
