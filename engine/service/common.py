"""What every part of the service shares: channels, limits, the unit of a step's output."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from engine.errors import Invalid

log = logging.getLogger("papo.service")

CHANNELS = ("api", "whatsapp", "web")
TEST_CHANNEL = "test"  # the simulator's conversations: hidden from inbox, API lists and reports
MAX_TEXT = 4096 * 4
MAX_JUMPS = 10
BOT_TIMER_KINDS = ("wait", "question_timeout")


class _Stale(Exception):
    """The conversation changed between reading it and taking the write lock."""


_INSERT_IGNORE: dict[tuple, object] = {}
_EXTRA_COLUMNS = frozenset({"contact_name_", "processed_", "published_"})
_UNKNOWN = object()


@dataclass(frozen=True)
class Sent:
    """An inbound message's own facts: when the customer sent it (epoch seconds), whether
    the bot reads it, and what it carried besides its text (``messages.details``)."""

    at: float
    answer: bool = True
    details: dict | None = None


@dataclass
class _Work:
    """What one transaction produced for the caller."""

    conversation_id: int
    replies: list[dict] = field(default_factory=list)
    pending_http: dict | None = None
    read_version: int | None = None  # the conversation's version when it was read



def _check_channel(channel: str) -> str:
    if channel not in CHANNELS and channel != TEST_CHANNEL:
        raise Invalid(f"Canal desconhecido: {channel}.", details=[
            {"path": "$.channel", "message": "Use api, whatsapp ou web."}])
    return channel


def _clean(value, path: str, limit: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"Campo obrigatório ausente: {path}.", details=[
            {"path": f"$.{path}", "message": "Campo obrigatório."}])
    if len(value) > limit:
        raise Invalid(f"Campo longo demais: {path}.", details=[
            {"path": f"$.{path}", "message": f"No máximo {limit} caracteres."}])
    return value.strip()

