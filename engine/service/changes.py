"""The plain data of one unit of work: the events, what is read, what is to be written.

Every write to a conversation goes the same way (:mod:`engine.service.unit`):
``load(conn, event) -> Snapshot`` reads without holding a write lock,
``decide(snapshot, event) -> Changes`` is pure (:mod:`engine.service.decide`), and
``write(conn, changes)`` stores them in one short transaction, provided the conversation's
``version`` is still the one read (:mod:`engine.service.write`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.graph import CompiledFlow
from engine.hours import BusinessHours
from engine.settings import Settings

# ---------------------------------------------------------------------- events


@dataclass(frozen=True)
class Inbound:
    """A customer's message (DESIGN §3 "Inbound message")."""

    channel: str
    external_id: str  # the contact's id on the channel
    name: str  # the contact's name as the channel gave it ("" = unknown)
    message_id: str  # the channel's id of the message: duplicates are answered from the record
    text: str
    at: float  # now: when papo got it (the bot's step and the conversation's activity)
    start_flow_id: str | None = None  # the web chat's /c/<flow>: a first run starts this flow
    sent_at: float | None = None  # when the customer sent it (WhatsApp's timestamp), else ``at``
    answer: bool = True  # False: stored and shown, the bot does not read it (delivered too late)
    details: dict | None = None  # what it carried besides its text (messages.details)


@dataclass(frozen=True)
class TimerFired:
    timer_id: int
    kind: str  # wait | question_timeout | auto_conclude | debounce
    payload: dict
    at: float


@dataclass(frozen=True)
class HttpDone:
    """The answer to an ``http_request`` block's call, made outside any transaction."""

    call: dict  # the block's request, with the run id and token it was made for
    ok: bool
    status: int | None
    body: Any
    error: str | None
    at: float


@dataclass(frozen=True)
class AgentAction:
    action: str  # one of engine.conversation.AGENT_ACTIONS but agent_message
    actor: str
    user: str | None
    at: float
    note: str | None = None  # transfer: a private note for the receiver


@dataclass(frozen=True)
class AgentNote:
    """A private note: a message with direction ``note``, shown to agents, never sent."""

    actor: str
    text: str
    at: float


@dataclass(frozen=True)
class AgentMessage:
    actor: str
    text: str
    at: float
    # An attached file already uploaded to WhatsApp: {"type", "mime", "id", "caption", "filename"?}
    media: dict | None = None
    # WhatsApp: an approved template sent as such (``{"name", "language", "params"}``);
    # ``text`` is then its body as the customer reads it.
    template: dict | None = None


@dataclass(frozen=True)
class Rename:
    """The contact's name as a channel gives it now (``Service.ensure_conversation``)."""

    name: str
    at: float


Event = Inbound | TimerFired | HttpDone | AgentAction | AgentMessage | AgentNote | Rename

# ---------------------------------------------------------------------- what is read

# What ``decide`` may ask for when the snapshot lacks it (``Changes.needs``).
NEED_ASSIGNEES = "assignees"
NEED_USERS = "users"
NEED_AUTO_CONCLUDE = "auto_conclude_pending"


@dataclass
class Snapshot:
    """One conversation as read, with what deciding about it may look at.

    Fields left ``None`` were not read: ``decide`` names them in ``Changes.needs`` when it
    gets to where they matter, and the unit of work reads them and decides again.
    """

    conversation: dict  # the conversations row (id, contact_id, channel, status, state, version…)
    contact_name: str
    settings: Settings
    flows: dict[tuple, CompiledFlow]  # (flow_id, version, draft_revision) → flow
    published: dict[str, CompiledFlow]  # flow id → its published version
    draft: tuple[CompiledFlow, int] | None = None  # the simulator's flow: latest draft, revision
    forced_flow_id: str | None = None  # the simulator: this flow's draft, whatever the triggers
    processed: dict | None = None  # Inbound: the stored answer to this message id, if any
    timer_pending: bool = True  # TimerFired: whether the timer is still pending
    assignees: tuple[str, ...] | None = None  # in assignment order
    users: frozenset[str] | None = None  # every user's login
    auto_conclude_pending: bool | None = None  # an auto_conclude timer is pending
    hours: BusinessHours | None = None  # the business hours (None: none set, always open)

    def flow_of(self, run: dict | None) -> CompiledFlow | None:
        """The compiled flow a run runs (None: not found, e.g. deleted)."""
        if not run:
            return None
        return self.flows.get(flow_key(run))


def flow_key(run: dict) -> tuple:
    draft = run.get("draft_revision")
    return (run["flow_id"], None, draft) if draft else (run["flow_id"], run.get("flow_version"), None)


# ---------------------------------------------------------------------- what is written


@dataclass
class Changes:
    """Everything one unit of work writes, as rows; and what its caller gets back.

    ``write`` False: nothing to store (a duplicate message, a no-op action, a timer that is
    no longer pending). Otherwise the conversation row is updated (state, status, …,
    ``version + 1``) only where ``version`` is still ``version``, and every other list is
    inserted with it, in the same transaction.
    """

    conversation_id: int
    contact_id: int
    version: int  # the version read
    write: bool = False
    # the conversation row after the change
    state: dict | None = None
    status: str = ""
    name_norm: str = ""
    updated_at: datetime | None = None
    opened_at: datetime | None = None
    first_response_at: datetime | None = None
    waiting_since: datetime | None = None  # the first customer message nobody answered yet
    last_inbound_at: datetime | None = None  # the newest customer message's at (WhatsApp's window)
    contact_name: str | None = None  # the contact renamed (None: unchanged)
    fire_timer_id: int | None = None  # pending → fired, only if still pending
    fired_at: datetime | None = None
    cancel_bot_timers: bool = False  # pending wait / question_timeout timers cancelled
    cancel_auto_conclude: bool = False  # pending auto_conclude timers cancelled
    cancel_debounce: bool = False  # the pending debounce timer cancelled (its burst answered or dropped)
    move_debounce: datetime | None = None  # the pending debounce timer's new due time
    messages: list[dict] = field(default_factory=list)
    outbox: list[dict] = field(default_factory=list)
    timers: list[dict] = field(default_factory=list)  # to add (after the cancellations)
    activity: list[dict] = field(default_factory=list)
    assignees_added: list[dict] = field(default_factory=list)
    assignees_removed: list[str] = field(default_factory=list)
    answers: list[dict] = field(default_factory=list)
    logs: list[dict] = field(default_factory=list)
    visits: list[dict] = field(default_factory=list)  # run_blocks rows (funnel)
    processed: dict | None = None  # the processed_messages row (Inbound)
    # for the caller
    replies: list[dict] = field(default_factory=list)
    pending_http: dict | None = None  # an http_request block's call, made after the write
    result: dict | None = None  # Inbound: {"conversation_id", "status", "replies"}
    fired: bool = False  # TimerFired: the timer fired
    duplicate: bool = False  # Inbound: a message answered before (``result`` is that answer)
    steps: list = field(default_factory=list)  # the engine events fed (for metrics)
    transitions: list[str] = field(default_factory=list)  # the actions applied (for metrics)
    flow: tuple[str, int | None] | None = None  # the last flow stepped: (id, version), for logs
    needs: frozenset[str] = frozenset()  # not decided: read these and decide again
    # open with nobody assigned under automatic assignment (PAPO_ASSIGNMENT): the service
    # assigns it right after the write (engine/service/assignment.py)
    queued: bool = False
