"""The service: the only place that touches the database, the clock and the network.

Every entry point (the REST API, the WhatsApp webhook, the web chat, the inbox, the
simulator, ``papo chat`` and the worker) goes through :class:`Service`, so they all run
the very same engine and state machine. Work on one conversation is serialized: a row
lock on PostgreSQL, the single write transaction (``BEGIN IMMEDIATE``) on SQLite.

One module per concern: :mod:`.inbound` (a customer's message), :mod:`.effects` (an engine
step's effects written down), :mod:`.transitions` (the status table applied),
:mod:`.timers`, :mod:`.flows` (which flow runs), :mod:`.reads` (read models);
trigger matching is :mod:`engine.triggers`.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from engine.moments import epoch, iso, utc
from engine.service.common import BOT_TIMER_KINDS, CHANNELS, MAX_JUMPS, MAX_TEXT, TEST_CHANNEL
from engine.service.effects import EffectsMixin
from engine.service.flows import FlowsMixin
from engine.service.inbound import InboundMixin
from engine.service.reads import CONCLUDING_ACTIONS, ReadsMixin, funnel, iso_micro, report_summary
from engine.service.timers import TimersMixin
from engine.service.transitions import TransitionsMixin
from engine.settings import Settings

__all__ = ["BOT_TIMER_KINDS", "CHANNELS", "CONCLUDING_ACTIONS", "MAX_JUMPS", "MAX_TEXT", "TEST_CHANNEL",
           "Service", "Settings", "epoch", "funnel", "iso", "iso_micro", "report_summary", "utc"]


class Service(InboundMixin, EffectsMixin, TransitionsMixin, TimersMixin, FlowsMixin, ReadsMixin):
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
        self._published: dict[str, int] = {}
        self._docs: dict[tuple[str, int], dict] = {}
        self.is_postgres = db.dialect.name == "postgresql"
