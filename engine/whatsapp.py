"""WhatsApp Cloud API: webhook checks, payload parsing and outbound message bodies.

Pure functions (no Flask, no network): ``editor/channels.py`` uses the webhook half,
``engine/outbox.py`` the outbound half. The one database read here,
:func:`full_reply_title`, recovers a button label WhatsApp shortened.
See docs/WHATSAPP.md for what is understood and why.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import Engine

from engine.db import read_only
from engine.store import contacts, conversations, messages

# Cloud API limits (interactive messages).
BUTTON_TITLE_MAX = 20
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
INTERACTIVE_BODY_MAX = 1024
TEXT_BODY_MAX = 4096
MAX_REPLY_BUTTONS = 3
MAX_LIST_ROWS = 10
LIST_BUTTON_LABEL = "Opções"
EMPTY_CHOICE_BODY = "Escolha uma opção:"

# service.handle_inbound limits on ids (contacts.external_id, processed_messages.external_id).
MAX_ID = 200

# What the customer's text becomes for messages that carry no text of their own.
# Stored so agents see in the inbox that something arrived; the bot reads it as text.
PLACEHOLDERS = {
    "image": "[imagem]",
    "audio": "[áudio]",
    "voice": "[áudio]",
    "video": "[vídeo]",
    "document": "[documento]",
    "sticker": "[figurinha]",
    "location": "[localização]",
    "contacts": "[contato]",
    "order": "[pedido do catálogo]",
    "unsupported": "[mensagem não suportada]",
    "unknown": "[mensagem não suportada]",
}
# Types that are not a customer saying something: acknowledged and dropped.
IGNORED_TYPES = frozenset({"reaction", "system", "request_welcome", "ephemeral", "errors"})
REPLY_ID = re.compile(r"^b(\d{1,2})$")


class WebhookPayloadError(ValueError):
    """A signed delivery whose JSON is not a Cloud API webhook payload."""

    def __init__(self, message: str, path: str = "$"):
        super().__init__(message)
        self.message = message
        self.path = path


@dataclass(frozen=True)
class InboundMessage:
    """One customer message from a webhook delivery, ready for ``Service.handle_inbound``."""

    wa_id: str
    name: str
    message_id: str
    text: str
    kind: str  # the Cloud API message type: text, interactive, button, image...
    reply_id: str | None = None  # the button/list row id we sent ("b2"), for interactive replies
    phone_number_id: str | None = None  # which business number it was sent to

    def contact(self) -> dict:
        return {"external_id": self.wa_id, "name": self.name}

    def message(self) -> dict:
        return {"id": self.message_id, "text": self.text}


@dataclass(frozen=True)
class DeliveryStatus:
    """A status update about a message we sent (``statuses[]``)."""

    wamid: str
    status: str  # sent | delivered | read | failed | deleted
    recipient_id: str | None
    errors: list[dict] = field(default_factory=list)

    def error_text(self) -> str:
        parts = []
        for error in self.errors:
            detail = (error.get("error_data") or {}).get("details") or error.get("message") \
                or error.get("title") or ""
            code = error.get("code")
            parts.append(f"{detail} (código {code})" if code is not None else str(detail))
        return "; ".join(p for p in parts if p) or "falha informada pelo WhatsApp"


@dataclass
class Delivery:
    """What one webhook POST carried."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[DeliveryStatus] = field(default_factory=list)
    ignored: int = 0


# ---------------------------------------------------------------------- webhook checks
def verify_subscription(configured_token: str | None, mode: str | None, token: str | None) -> bool:
    """The ``GET`` handshake: mode ``subscribe`` and the configured verify token."""
    if not configured_token or mode != "subscribe" or token is None:
        return False
    return hmac.compare_digest(token.encode("utf-8", "surrogateescape"),
                               configured_token.encode("utf-8", "surrogateescape"))


def signature(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` header value Meta sends for ``body``."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(app_secret: str | None, body: bytes, header: str | None) -> bool:
    """HMAC-SHA256 of the raw body with the app secret, compared in constant time."""
    if not app_secret or not header:
        return False
    prefix, _, provided = header.strip().partition("=")
    if prefix.lower() != "sha256" or not provided:
        return False
    expected = signature(app_secret, body).partition("=")[2]
    return hmac.compare_digest(expected.encode("ascii"),
                               provided.strip().lower().encode("utf-8", "replace"))


# ---------------------------------------------------------------------- webhook payloads
def parse_delivery(payload, phone_number_id: str | None = None) -> Delivery:
    """Every customer message and status update in a webhook payload.

    The whole payload is checked before anything is returned, so a malformed delivery
    stores nothing. Raises :class:`WebhookPayloadError` with a JSON path. Changes for
    another business number (``metadata.phone_number_id`` differs from the configured
    one) are skipped.
    """
    if not isinstance(payload, dict):
        raise WebhookPayloadError("O corpo precisa ser um objeto JSON.")
    entries = _list(payload, "entry", "$")
    delivery = Delivery()
    for e, entry in enumerate(entries):
        path = f"$.entry[{e}]"
        if not isinstance(entry, dict):
            raise WebhookPayloadError("Cada entrada precisa ser um objeto.", path)
        for c, change in enumerate(_list(entry, "changes", path, required=False)):
            cpath = f"{path}.changes[{c}]"
            if not isinstance(change, dict):
                raise WebhookPayloadError("Cada mudança precisa ser um objeto.", cpath)
            if change.get("field", "messages") != "messages":
                delivery.ignored += 1  # account, template and quality updates
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                raise WebhookPayloadError("O campo value precisa ser um objeto.", f"{cpath}.value")
            _parse_value(value, f"{cpath}.value", phone_number_id, delivery)
    return delivery


def _parse_value(value: dict, path: str, phone_number_id: str | None, delivery: Delivery) -> None:
    metadata = value.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise WebhookPayloadError("O campo metadata precisa ser um objeto.", f"{path}.metadata")
    to_number = _optional_str((metadata or {}).get("phone_number_id"), f"{path}.metadata.phone_number_id")
    names = {}
    for i, contact in enumerate(_list(value, "contacts", path, required=False)):
        cpath = f"{path}.contacts[{i}]"
        if not isinstance(contact, dict):
            raise WebhookPayloadError("Cada contato precisa ser um objeto.", cpath)
        wa_id = _optional_str(contact.get("wa_id"), f"{cpath}.wa_id")
        profile = contact.get("profile") or {}
        if not isinstance(profile, dict):
            raise WebhookPayloadError("O campo profile precisa ser um objeto.", f"{cpath}.profile")
        name = _optional_str(profile.get("name"), f"{cpath}.profile.name") or ""
        if wa_id:
            names[wa_id] = name
    found = []
    for i, message in enumerate(_list(value, "messages", path, required=False)):
        parsed = _parse_message(message, f"{path}.messages[{i}]", names, to_number)
        if parsed is None:
            delivery.ignored += 1
        else:
            found.append(parsed)
    statuses = []
    for i, status in enumerate(_list(value, "statuses", path, required=False)):
        spath = f"{path}.statuses[{i}]"
        if not isinstance(status, dict):
            raise WebhookPayloadError("Cada status precisa ser um objeto.", spath)
        errors = status.get("errors") or []
        if not isinstance(errors, list) or not all(isinstance(x, dict) for x in errors):
            raise WebhookPayloadError("O campo errors precisa ser uma lista de objetos.", f"{spath}.errors")
        statuses.append(DeliveryStatus(
            wamid=_str(status.get("id"), f"{spath}.id"),
            status=_str(status.get("status"), f"{spath}.status"),
            recipient_id=_optional_str(status.get("recipient_id"), f"{spath}.recipient_id"),
            errors=errors))
    if phone_number_id and to_number and to_number != phone_number_id:
        delivery.ignored += len(found) + len(statuses)  # another business number of the app
        return
    delivery.messages.extend(found)
    delivery.statuses.extend(statuses)


def _parse_message(message, path: str, names: dict, to_number: str | None) -> InboundMessage | None:
    if not isinstance(message, dict):
        raise WebhookPayloadError("Cada mensagem precisa ser um objeto.", path)
    message_id = _str(message.get("id"), f"{path}.id")
    wa_id = _str(message.get("from"), f"{path}.from")
    kind = _str(message.get("type"), f"{path}.type")
    reply_id = None
    if kind == "text":
        text = _str(_object(message, "text", path).get("body"), f"{path}.text.body", allow_blank=True)
    elif kind == "interactive":
        interactive = _object(message, "interactive", path)
        sub = interactive.get("type")
        if sub in ("button_reply", "list_reply"):
            reply = _object(interactive, sub, f"{path}.interactive")
            text = _str(reply.get("title"), f"{path}.interactive.{sub}.title", allow_blank=True)
            reply_id = _optional_str(reply.get("id"), f"{path}.interactive.{sub}.id")
            description = reply.get("description")
            # A row whose label was too long for its title carries the label here too.
            if sub == "list_reply" and isinstance(description, str) and text and \
                    len(description) > len(text) and description.startswith(text):
                text = description
        else:  # flow (nfm) replies and future kinds: not something a flow can read
            text = PLACEHOLDERS["unsupported"]
    elif kind == "button":  # a quick-reply button of a template message
        button = _object(message, "button", path)
        text = _str(button.get("text"), f"{path}.button.text", allow_blank=True)
        reply_id = _optional_str(button.get("payload"), f"{path}.button.payload")
    elif kind in IGNORED_TYPES:
        return None
    else:
        text = PLACEHOLDERS.get(kind, PLACEHOLDERS["unsupported"])
        media = message.get(kind)
        caption = media.get("caption") if isinstance(media, dict) else None
        if isinstance(caption, str) and caption.strip():
            text = f"{text} {caption.strip()}"
    if not text.strip():
        return None  # an empty body is nothing a person or a flow can answer
    if len(message_id) > MAX_ID or len(wa_id) > MAX_ID:
        raise WebhookPayloadError(f"Identificador com mais de {MAX_ID} caracteres.", path)
    # The profile is keyed by wa_id; a lone contact is the sender even if the keys differ.
    name = names.get(wa_id, next(iter(names.values())) if len(names) == 1 else "")
    return InboundMessage(wa_id=wa_id, name=name[:200], message_id=message_id,
                          text=text, kind=kind, reply_id=reply_id, phone_number_id=to_number)


def _list(obj: dict, key: str, path: str, required: bool = True) -> list:
    value = obj.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise WebhookPayloadError(f"O campo {key} precisa ser uma lista.", f"{path}.{key}")
    return value


def _object(obj: dict, key: str, path: str) -> dict:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise WebhookPayloadError(f"O campo {key} precisa ser um objeto.", f"{path}.{key}")
    return value


def _str(value, path: str, allow_blank: bool = False) -> str:
    if not isinstance(value, str) or (not allow_blank and not value.strip()):
        raise WebhookPayloadError("Texto obrigatório ausente ou inválido.", path)
    return value if allow_blank else value.strip()


def _optional_str(value, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise WebhookPayloadError("Esperado um texto.", path)
    return value.strip() or None


def full_reply_title(db: Engine, message: InboundMessage, lookback: int = 20) -> str:
    """The whole label of the button the customer tapped.

    WhatsApp titles are cut at 20 (buttons) or 24 (list rows) characters, so a label longer
    than that would not match its choice option. Our buttons' ids are ``b<n>``: the n-th
    label of the latest bot message in this contact's conversation whose n-th label starts
    with the title. Anything else returns the title unchanged.
    """
    found = REPLY_ID.match(message.reply_id or "")
    if found is None or message.kind != "interactive" or len(message.text) > ROW_DESCRIPTION_MAX:
        return message.text
    index = int(found.group(1)) - 1
    with read_only(db) as conn:
        rows = conn.execute(
            select(messages.c.buttons)
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .join(contacts, contacts.c.id == conversations.c.contact_id)
            .where(contacts.c.channel == "whatsapp", contacts.c.external_id == message.wa_id,
                   messages.c.direction == "out")
            .order_by(messages.c.id.desc()).limit(lookback)).scalars().all()
    for buttons in rows:
        label = buttons[index] if buttons and 0 <= index < len(buttons) else None
        # Only a title our builder made from this very label counts.
        if isinstance(label, str) and label.strip() != message.text and any(
                _title(label, cap) == message.text
                for cap in (BUTTON_TITLE_MAX, ROW_TITLE_MAX, ROW_DESCRIPTION_MAX)):
            return label.strip()
    return message.text


# ---------------------------------------------------------------------- outbound bodies
def _title(label: str, limit: int) -> str:
    return label.strip()[:limit].strip() or label[:limit]


def message_body(payload: dict) -> dict:
    """The Cloud API ``/messages`` body for one outbox row ``{"to", "text", "buttons"}``.

    1–3 buttons: reply buttons; 4–10: a list message (button "Opções"); anything an
    interactive message cannot carry (more than 10 choices, titles that collide once
    shortened, a text over 1,024 characters) becomes a text with numbered options, which
    customers answer by number.
    """
    to = str(payload["to"])
    text = str(payload.get("text") or "")
    labels = [str(b) for b in payload.get("buttons") or [] if str(b).strip()]
    envelope = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
    if labels:
        body_text = text if text.strip() else EMPTY_CHOICE_BODY
        if len(body_text) <= INTERACTIVE_BODY_MAX:
            if len(labels) <= MAX_REPLY_BUTTONS:
                titles = [_title(label, BUTTON_TITLE_MAX) for label in labels]
                if len(set(titles)) == len(titles):
                    return {**envelope, "type": "interactive", "interactive": {
                        "type": "button",
                        "body": {"text": body_text},
                        "action": {"buttons": [
                            {"type": "reply", "reply": {"id": f"b{n}", "title": title}}
                            for n, title in enumerate(titles, 1)]}}}
            elif len(labels) <= MAX_LIST_ROWS:
                titles = [_title(label, ROW_TITLE_MAX) for label in labels]
                if len(set(titles)) == len(titles):
                    rows = []
                    for n, (label, title) in enumerate(zip(labels, titles, strict=True), 1):
                        row = {"id": f"b{n}", "title": title}
                        if title != label.strip():
                            row["description"] = _title(label, ROW_DESCRIPTION_MAX)
                        rows.append(row)
                    return {**envelope, "type": "interactive", "interactive": {
                        "type": "list",
                        "body": {"text": body_text},
                        "action": {"button": LIST_BUTTON_LABEL, "sections": [{"rows": rows}]}}}
        numbered = "\n".join(f"{n}. {label}" for n, label in enumerate(labels, 1))
        text = f"{text}\n\n{numbered}" if text.strip() else numbered
    return {**envelope, "type": "text",
            "text": {"body": text[:TEXT_BODY_MAX]}}
