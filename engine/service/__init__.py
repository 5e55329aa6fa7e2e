"""The service: the only place that touches the database, the clock and the network.

Every entry point (the REST API, the WhatsApp webhook, the web chat, the inbox, the
simulator, ``papo chat`` and the worker) goes through :class:`Service`, so they all run
the very same engine and state machine.

Every write to a conversation is one unit of work (:mod:`.unit`): :mod:`.load` reads a
snapshot without a write lock, :mod:`.decide` (pure) turns it and the event into
:class:`~.changes.Changes`, :mod:`.write` stores them in one short transaction if the
conversation's ``version`` is still the one read, else the unit reads and decides again.
Entry points: :mod:`.inbound` (a customer's message), :mod:`.transitions` (agents'
actions), :mod:`.timers`, :mod:`.continuation` (HTTP blocks); :mod:`.flows` finds
compiled flows, :mod:`.reads` holds the read models; trigger matching is
:mod:`engine.triggers`.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from engine.moments import epoch, iso, utc
from engine.service.assignment import AssignmentMixin, Waiting
from engine.service.common import BOT_TIMER_KINDS, CHANNELS, MAX_JUMPS, MAX_TEXT, TEST_CHANNEL
from engine.service.continuation import ContinuationMixin
from engine.service.flows import FlowsMixin
from engine.service.inbound import InboundMixin
from engine.service.reads import ReadsMixin, funnel, iso_micro, report_summary
from engine.service.timers import TimersMixin
from engine.service.transitions import TransitionsMixin
from engine.settings import Settings

__all__ = ["BOT_TIMER_KINDS", "CHANNELS", "MAX_JUMPS", "MAX_TEXT", "TEST_CHANNEL",
           "Service", "Settings", "epoch", "funnel", "iso", "iso_micro", "report_summary", "utc"]


class Service(InboundMixin, TransitionsMixin, TimersMixin, ContinuationMixin, FlowsMixin, ReadsMixin,
              AssignmentMixin):
    """Conversations, messages, transitions and timers over one database."""

    def __init__(self, db: Engine, settings: Settings | None = None, *,
                 clock: Callable[[], float] | None = None,
                 http: Callable | None = None,
                 forced_flow_id: str | None = None):
        self.db = db
        self.settings = settings or Settings.from_env()
        self.clock = clock or time.time
        self._http = http
        # The simulator and ``papo chat`` run one flow's latest draft whatever its triggers.
        self.forced_flow_id = forced_flow_id
        self._docs: dict[tuple[str, int], dict] = {}
        self.is_postgres = db.dialect.name == "postgresql"
        self.waiting = Waiting()  # conversations to assign automatically (engine/service/assignment.py)
