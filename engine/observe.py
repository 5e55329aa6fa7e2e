"""One customer message, observed: counted and timed (``engine.metrics``), the message's ids
on every log line written meanwhile, and one INFO line at the end (``engine.logs``): ids,
status, reply count and duration, never the text. Every channel goes through here: the
API and the web chat (``editor/ops.py``), WhatsApp (``engine/whatsapp_inbound.py``).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from engine import logs, metrics

log = logging.getLogger("papo.inbound")


@contextmanager
def inbound_request(channel: str) -> Iterator[None]:
    """Around one inbound message: counted and timed by outcome (an exception raised inside
    counts as ``invalid`` or ``error``), with the channel on every log line written inside."""
    with logs.context(channel=channel), metrics.inbound(channel):
        yield


def handle_inbound(service, channel: str, contact: dict, message: dict, **kwargs) -> dict:
    """``service.handle_inbound`` inside :func:`inbound_request`, logged with its ids."""
    message_id = message.get("id") if isinstance(message, dict) else None
    started = time.perf_counter()
    logs.bind(channel=channel, message_id=message_id)
    result = service.handle_inbound(channel, contact, message, **kwargs)
    logs.bind(conversation_id=result.get("conversation_id"))
    replies = len(result.get("replies") or ())
    elapsed_ms = (time.perf_counter() - started) * 1000
    logs.info(log, "inbound %s message %s: conversation %s %s, %d replies, %.1f ms", channel,
              message_id, result.get("conversation_id"), result.get("status"), replies, elapsed_ms,
              status=result.get("status"), replies=replies, duration_ms=round(elapsed_ms, 2))
    return result


def observed_inbound(service, channel: str, contact: dict, message: dict, **kwargs) -> dict:
    """:func:`handle_inbound` inside its own :func:`inbound_request`."""
    with inbound_request(channel):
        return handle_inbound(service, channel, contact, message, **kwargs)
