"""Debounce (DESIGN §10.3): a burst of customer messages answered once, as one. Pure.

"oi" / "tudo bem?" / "quero pedir" typed in a few seconds get one answer, to the three
lines together. ``PAPO_DEBOUNCE_SECONDS`` (0 = off) is how long the bot waits after the
newest message, at most :data:`CAP` times that after the burst's first one.

The burst waiting for its answer is part of the conversation's state document
(``state["burst"]``: ``first_at``, ``due_at``, ``texts``, ``start_flow_id``), so it is
read and version-checked together with the conversation by the unit of work. Its one
timer row (kind :data:`KIND`) only wakes a worker at ``due_at``: each newer message moves
that row's due time (never a second row), and answering or dropping the burst cancels it.
"""
from __future__ import annotations

from engine.service.common import MAX_TEXT
from engine.settings import Settings

KIND = "debounce"
CAP = 3  # the bot answers at most CAP × the setting after the burst's first message
MAX_MESSAGES = 50  # a burst that reaches this (or MAX_TEXT characters) is answered at once
_EPSILON = 1e-3  # due times go through the database at microsecond precision


def applies(settings: Settings, channel: str) -> bool:
    """Whether messages on ``channel`` wait for the rest of their burst."""
    return settings.debounce_seconds > 0 and channel in settings.debounce_channels


def start(text: str, now: float, seconds: float, start_flow_id: str | None) -> dict:
    """A new burst of one message, answered ``seconds`` from now if nothing follows."""
    return {"first_at": now, "due_at": now + seconds, "texts": [text], "start_flow_id": start_flow_id}


def add(burst: dict, text: str, now: float, seconds: float) -> dict:
    """The burst with one more message: its answer moves to ``seconds`` from now, capped."""
    due = min(now + seconds, burst["first_at"] + CAP * seconds)
    return {**burst, "due_at": max(due, now), "texts": [*burst["texts"], text]}


def is_over(burst: dict, now: float, seconds: float) -> bool:
    """Its quiet time passed (its timer is late, or was cancelled by hand), or debounce was
    turned off since: whoever reads it next answers it."""
    return seconds <= 0 or now + _EPSILON >= burst["due_at"]


def is_full(burst: dict) -> bool:
    texts = burst["texts"]
    return len(texts) >= MAX_MESSAGES or sum(len(t) + 1 for t in texts) > MAX_TEXT


def waits(burst: dict | None, now: float) -> bool:
    """A debounce timer firing before its burst's due time: a newer message moved it after a
    worker claimed it; it stays pending for its new time."""
    return burst is not None and now + _EPSILON < burst["due_at"]


def text_of(burst: dict) -> str:
    """What the bot reads: the burst's messages, one per line."""
    return "\n".join(burst["texts"])[:MAX_TEXT]
