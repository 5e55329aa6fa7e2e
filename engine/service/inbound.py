"""A customer's message: the contact, its conversation and the bot's answer."""
from __future__ import annotations

from engine import metrics
from engine.errors import Invalid
from engine.service import load, unit
from engine.service.changes import Inbound, Rename
from engine.service.common import MAX_TEXT, _check_channel, _clean
from engine.service.statements import UPDATE_PROCESSED


class InboundMixin:
    """Inbound messages of :class:`engine.service.Service` (a mixin)."""

    def handle_inbound(self, channel: str, contact: dict, message: dict,
                       start_flow_id: str | None = None, *, at: float | None = None,
                       answer: bool = True, details: dict | None = None) -> dict:
        """A customer message: store it, let the bot answer; idempotent on the message id.

        ``start_flow_id`` (the web chat's ``/c/<flow>``): a conversation that has never run a
        flow starts that published flow instead of matching triggers. ``at``: when the
        customer sent it (WhatsApp's timestamp; never later than now), else now.
        ``answer=False``: stored and shown, the bot does not read it (a message WhatsApp
        delivered more than 24 hours late). ``details``: what it carried besides its text
        (``messages.details``: media, location, quoted message…).
        Returns ``{"conversation_id", "status", "replies": [{"text", "buttons"}]}``.
        """
        channel = _check_channel(channel)
        external_id = _clean(contact.get("external_id"), "contact.external_id", 200)
        name = str(contact.get("name") or "").strip()[:200]
        message_id = _clean(message.get("id"), "message.id", 200)
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Invalid("A mensagem precisa de um texto.", details=[
                {"path": "$.message.text", "message": "Texto vazio ou ausente."}])
        now = self.clock()
        event = Inbound(channel, external_id, name, message_id, text[:MAX_TEXT], now, start_flow_id,
                        sent_at=now if at is None else min(at, now), answer=answer, details=details)

        def locate(conn, lock):
            return load.inbound(self, conn, event, lock)

        changes = unit.run(self, event, locate)
        if changes is None:  # a new contact: it and its conversation first, on their own
            self._create_conversation(channel, external_id, name, event.at)
            changes = unit.run(self, event, locate)
        result = changes.result
        if changes.duplicate:
            metrics.inbound_duplicate(channel)
            return result  # a message already answered: the same answer again
        if changes.pending_http:
            extra = self._perform_http(changes.conversation_id, changes.pending_http)
            result = {**result, "replies": result["replies"] + extra["replies"], "status": extra["status"]}
            with self.db.begin() as conn:  # a duplicate of this message gets the whole answer
                conn.execute(UPDATE_PROCESSED, {"_channel": channel, "_message_id": message_id,
                                                "_result": result})
        return result

    def ensure_conversation(self, channel: str, contact: dict) -> int:
        """The conversation of a contact, created (concluded, bot in charge) if new."""
        channel = _check_channel(channel)
        external_id = _clean(contact.get("external_id"), "contact.external_id", 200)
        name = str(contact.get("name") or "").strip()[:200]
        now = self.clock()
        conversation_id = self._create_conversation(channel, external_id, name, now)
        if name:
            event = Rename(name, now)
            unit.run(self, event, lambda conn, lock: load.by_id(self, conn, conversation_id, lock))
        return conversation_id

    def _create_conversation(self, channel: str, external_id: str, name: str, now: float) -> int:
        with self.db.begin() as conn:
            return load.create(self, conn, channel, external_id, name, now)
