"""WhatsApp Cloud API: webhook checks, payload parsing and outbound message bodies.

Pure functions (no Flask, no network): ``editor/channels.py`` uses the webhook half
(:func:`parse_delivery` reads a body into a :class:`Delivery`, part by part, and never
raises; ``engine/whatsapp_inbound.py`` stores it), ``engine/outbox.py`` the outbound half.
The one database read here, :func:`full_reply_title`, recovers a button label WhatsApp
shortened. See docs/WHATSAPP.md for what is understood and why.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import Connection

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
UNSUPPORTED = PLACEHOLDERS["unsupported"]
DELETED_PLACEHOLDER = "[mensagem apagada]"
MEDIA_TYPES = ("image", "audio", "voice", "video", "document", "sticker")
# Types that are not a customer saying something: acknowledged and dropped.
IGNORED_TYPES = frozenset({"request_welcome", "ephemeral"})
NUMBER_CHANGES = frozenset({"user_changed_number", "customer_changed_number"})
REPLY_ID = re.compile(r"^b(\d{1,2})$")
# Unix times WhatsApp could send (2001 … 2286); anything else is not a time.
MIN_TIMESTAMP, MAX_TIMESTAMP = 1_000_000_000, 9_999_999_999
MAX_DIGITS = 32  # a phone number has at most 15 digits; longer "digits" are not a number
MAX_TEXT = 4096 * 4
MAX_FIELD = 1000  # names, addresses, titles: kept readable, never unbounded
MAX_LIST = 100  # order items, shared contacts, phones of a contact


@dataclass(frozen=True)
class InboundMessage:
    """One customer message from a webhook delivery, ready for ``Service.handle_inbound``.

    The sender is ``wa_id`` (the digits of the phone number WhatsApp gave), ``user_id``
    (the business-scoped user id), or both. ``details`` is what the message carried besides
    its text (``messages.details``); ``problem`` says why it is stored as a placeholder.
    """

    wa_id: str | None
    user_id: str | None
    name: str
    message_id: str
    text: str
    kind: str  # the Cloud API message type: text, interactive, button, image...
    at: float | None = None  # the WhatsApp timestamp (epoch seconds)
    reply_id: str | None = None  # the button/list row id we sent ("b2"), for interactive replies
    phone_number_id: str | None = None  # which business number it was sent to
    details: dict = field(default_factory=dict)
    problem: str | None = None


@dataclass(frozen=True)
class MessageChange:
    """Something a customer did that is not a new message to answer.

    ``action``: ``revoke`` (deleted ``target_id``), ``edit`` (``target_id`` now reads
    ``text``, with ``details`` such as a new caption's media), ``reaction`` (``emoji`` on
    ``target_id``; None removes it) or ``number_changed`` (the customer's number is now
    ``new_wa_id``).
    """

    action: str
    wa_id: str | None
    user_id: str | None
    name: str
    message_id: str  # this event's own WhatsApp id
    at: float | None = None
    target_id: str | None = None
    text: str | None = None
    details: dict = field(default_factory=dict)
    emoji: str | None = None
    new_wa_id: str | None = None


@dataclass(frozen=True)
class DeliveryStatus:
    """A status update about a message we sent (``statuses[]``)."""

    wamid: str
    status: str  # sent | delivered | read | failed | deleted
    recipient_id: str | None
    errors: list[dict] = field(default_factory=list)
    at: float | None = None

    def error_text(self) -> str:
        parts = []
        for error in self.errors:
            data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
            detail = data.get("details") or error.get("message") or error.get("title") or ""
            code = error.get("code")
            parts.append(f"{detail} (código {code})" if code is not None else str(detail))
        return "; ".join(p for p in parts if p) or "falha informada pelo WhatsApp"


@dataclass
class Delivery:
    """What one webhook POST carried, each part on its own.

    ``inbound``: messages and changes in the order Meta sent them; ``errors``: value-level
    errors Meta reported (``{"path", "code", "title", "details"}``); ``skipped``: parts
    that could not be read, as ``(path, reason)``; ``ignored``: parts that need nothing
    (other fields, other business numbers, welcome requests).
    """

    inbound: list[InboundMessage | MessageChange] = field(default_factory=list)
    statuses: list[DeliveryStatus] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0

    @property
    def messages(self) -> list[InboundMessage]:
        return [item for item in self.inbound if isinstance(item, InboundMessage)]

    @property
    def changes(self) -> list[MessageChange]:
        return [item for item in self.inbound if isinstance(item, MessageChange)]


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
    """Every customer message, change, status and error in a webhook payload.

    Never raises: each entry, change, message and status is read on its own, and one that
    cannot be read is recorded in ``skipped`` (with its JSON path and why) without
    touching its siblings. A message whose content cannot be read but whose sender and
    id can is kept, as "[mensagem não suportada]" with its ``problem``. Changes for another
    business number (``metadata.phone_number_id`` differs from the configured one) are
    ignored.
    """
    delivery = Delivery()
    if not isinstance(payload, dict):
        delivery.skipped.append(("$", "o corpo não é um objeto JSON"))
        return delivery
    entries = payload.get("entry")
    if not isinstance(entries, list):
        delivery.skipped.append(("$.entry", "ausente ou não é uma lista"))
        return delivery
    for e, entry in enumerate(entries):
        path = f"$.entry[{e}]"
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            delivery.skipped.append((path, "entrada sem lista changes"))
            continue
        for c, change in enumerate(changes):
            cpath = f"{path}.changes[{c}]"
            if not isinstance(change, dict):
                delivery.skipped.append((cpath, "mudança não é um objeto"))
                continue
            if change.get("field", "messages") != "messages":
                delivery.ignored += 1  # account, template and quality updates
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                delivery.skipped.append((f"{cpath}.value", "ausente ou não é um objeto"))
                continue
            _parse_value(value, f"{cpath}.value", phone_number_id, delivery)
    return delivery


def _parse_value(value: dict, path: str, phone_number_id: str | None, delivery: Delivery) -> None:
    metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
    to_number = _id(metadata.get("phone_number_id"))
    for i, error in enumerate(_items(value, "errors")):
        delivery.errors.append({"path": f"{path}.errors[{i}]", **_error(error)})
    if phone_number_id and to_number and to_number != phone_number_id:
        # Another business number of the same app: its replies would leave from the wrong number.
        delivery.ignored += len(_items(value, "messages")) + len(_items(value, "statuses"))
        return
    senders = [_sender(contact) for contact in _items(value, "contacts") if isinstance(contact, dict)]
    for i, message in enumerate(_items(value, "messages")):
        mpath = f"{path}.messages[{i}]"
        if not isinstance(message, dict):
            delivery.skipped.append((mpath, "mensagem não é um objeto"))
            continue
        item = _parse_message(message, mpath, senders, to_number, delivery)
        if item is not None:
            delivery.inbound.append(item)
    for i, status in enumerate(_items(value, "statuses")):
        spath = f"{path}.statuses[{i}]"
        parsed = _parse_status(status)
        if parsed is None:
            delivery.skipped.append((spath, "status sem id ou sem status"))
        else:
            delivery.statuses.append(parsed)


def _sender(contact: dict) -> dict:
    profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
    return {"wa_id": _digits(contact.get("wa_id")), "user_id": _id(contact.get("user_id")),
            "name": _text(profile.get("name"), 200) or _text(profile.get("username"), 200) or ""}


def _parse_message(message: dict, path: str, senders: list[dict], to_number: str | None,
                   delivery: Delivery) -> InboundMessage | MessageChange | None:
    wa_id = _digits(message.get("from"))
    user_id = _id(message.get("from_user_id"))
    sender = next((s for s in senders if wa_id and s["wa_id"] == wa_id), None) \
        or next((s for s in senders if user_id and s["user_id"] == user_id), None) \
        or (senders[0] if len(senders) == 1 else {})
    # The contact's wa_id is the key (DESIGN §10.7); "from" may be written "+1 650…".
    wa_id = sender.get("wa_id") or wa_id
    user_id = sender.get("user_id") or user_id
    if not wa_id and not user_id:
        delivery.skipped.append((path, "remetente ausente (sem from, from_user_id ou contacts)"))
        return None
    name = sender.get("name") or ""
    message_id = _message_id(message)
    at = _timestamp(message.get("timestamp"))
    kind = message.get("type") if isinstance(message.get("type"), str) else "unknown"
    who = {"wa_id": wa_id, "user_id": user_id, "name": name, "message_id": message_id, "at": at}

    if kind in IGNORED_TYPES:
        delivery.ignored += 1
        return None
    if kind == "reaction":
        reaction = _object(message, "reaction")
        target = _id(reaction.get("message_id"))
        if target is None:
            delivery.skipped.append((f"{path}.reaction", "reação sem message_id"))
            return None
        return MessageChange("reaction", target_id=target, emoji=_text(reaction.get("emoji"), 32), **who)
    if kind == "revoke":
        target = _id(_object(message, "revoke").get("original_message_id"))
        if target is None:
            delivery.skipped.append((f"{path}.revoke", "revoke sem original_message_id"))
            return None
        return MessageChange("revoke", target_id=target, **who)
    if kind == "edit":
        edit = _object(message, "edit")
        target = _id(edit.get("original_message_id"))
        if target is None:
            delivery.skipped.append((f"{path}.edit", "edit sem original_message_id"))
            return None
        inner = _object(edit, "message")
        text, details, _reply, problem = _content(inner, inner.get("type") if isinstance(
            inner.get("type"), str) else "unknown")
        if problem or not text.strip():  # the original keeps what it said
            delivery.skipped.append((f"{path}.edit.message", problem or "edição sem texto"))
            return None
        return MessageChange("edit", target_id=target, text=text, details=details, **who)
    if kind == "system":
        system = _object(message, "system")
        new_wa_id = _digits(system.get("wa_id"))
        if system.get("type") in NUMBER_CHANGES and new_wa_id:
            return MessageChange("number_changed", new_wa_id=new_wa_id, **who)
        delivery.skipped.append((f"{path}.system", f"aviso do sistema não tratado: {_text(system.get('type'), 60)}"))
        return None

    text, details, reply_id, problem = _content(message, kind)
    details.update(_context(message))
    if not text.strip():
        delivery.skipped.append((path, "mensagem sem texto"))
        return None
    return InboundMessage(text=text, kind=kind, reply_id=reply_id, phone_number_id=to_number,
                          details=details, problem=problem, **who)


def _content(message: dict, kind: str) -> tuple[str, dict, str | None, str | None]:
    """``(text, details, reply_id, problem)`` of a message's content, whatever its type."""
    details: dict = {}
    errors = [_error(e) for e in _items(message, "errors")]
    if errors:
        details["errors"] = errors
    if kind == "text":
        body = _text(_object(message, "text").get("body"), MAX_TEXT)
        if body is None:
            return UNSUPPORTED, details, None, "text.body ausente ou não é texto"
        return body, details, None, None
    if kind == "interactive":
        interactive = _object(message, "interactive")
        sub = interactive.get("type")
        if sub in ("button_reply", "list_reply"):
            reply = _object(interactive, sub)
            title = _text(reply.get("title"), MAX_FIELD)
            if title is None:
                return UNSUPPORTED, details, None, f"interactive.{sub}.title ausente"
            description = _text(reply.get("description"), MAX_FIELD)
            # A row whose label was too long for its title carries the label here too.
            if sub == "list_reply" and description and title and \
                    len(description) > len(title) and description.startswith(title):
                title = description
            return title, details, _id(reply.get("id")), None
        # WhatsApp Flows answers (nfm_reply) and kinds to come: nothing a flow can read.
        what = f"interactive do tipo {_text(sub, 40)}" if isinstance(sub, str) else "interactive sem conteúdo"
        return UNSUPPORTED, details, None, f"{what} não é suportado"
    if kind == "button":  # a quick-reply button of a template message
        button = _object(message, "button")
        text = _text(button.get("text"), MAX_FIELD) or _text(button.get("payload"), MAX_FIELD)
        if text is None:
            return UNSUPPORTED, details, None, "button sem text"
        return text, details, _id(button.get("payload")), None
    if kind in MEDIA_TYPES:
        media = _object(message, kind)
        caption = _text(media.get("caption"), MAX_TEXT)
        details["media"] = {"type": "audio" if kind == "voice" else kind,
                            "mime": _text(media.get("mime_type"), 200), "id": _id(media.get("id")),
                            "caption": caption}
        filename = _text(media.get("filename"), 255)
        if filename:
            details["media"]["filename"] = filename
        problem = None if media else f"objeto {kind} ausente"
        # A captioned media message's text is its caption exactly (DESIGN §10.6).
        return (caption if caption and caption.strip() else PLACEHOLDERS[kind]), details, None, problem
    if kind == "location":
        place = _object(message, "location")
        details["media"] = {"type": "location", "latitude": _coordinate(place.get("latitude"), 90),
                            "longitude": _coordinate(place.get("longitude"), 180),
                            "name": _text(place.get("name"), MAX_FIELD),
                            "address": _text(place.get("address"), MAX_FIELD)}
        url = _web_url(place.get("url"))
        if url:
            details["media"]["url"] = url
        problem = None if details["media"]["latitude"] is not None else "localização sem latitude/longitude"
        return PLACEHOLDERS["location"], details, None, problem
    if kind == "contacts":
        cards = [_contact_card(c) for c in _items(message, "contacts")[:MAX_LIST] if isinstance(c, dict)]
        details["contacts"] = cards
        return PLACEHOLDERS["contacts"], details, None, None if cards else "contacts vazio"
    if kind == "order":
        order = _object(message, "order")
        items = [_order_item(i) for i in _items(order, "product_items")[:MAX_LIST] if isinstance(i, dict)]
        note = _text(order.get("text"), MAX_TEXT)
        details["order"] = {"catalog_id": _id(order.get("catalog_id")), "text": note, "items": items}
        text = note if note and note.strip() else PLACEHOLDERS["order"]
        return text, details, None, None if items else "pedido sem product_items"
    if kind == "unsupported":
        unsupported = _object(message, "unsupported")
        what = _text(unsupported.get("type"), 60)
        if what:
            details["unsupported_type"] = what
        reason = "; ".join(f"{e['title'] or ''} ({e['code']})" for e in errors) or "tipo não suportado"
        return UNSUPPORTED, details, None, f"WhatsApp não entregou o conteúdo: {reason}"
    details["unsupported_type"] = _text(kind, 60)  # kept, so what came can be told later
    return UNSUPPORTED, details, None, f"tipo de mensagem desconhecido: {_text(kind, 60)}"


def _context(message: dict) -> dict:
    """The quoted message, forwarding and ad attribution of a message (``details`` keys)."""
    out: dict = {}
    context = _object(message, "context")
    reply_to = _id(context.get("id"))
    if reply_to:
        out["reply_to"] = reply_to
    if context.get("forwarded") is True or context.get("frequently_forwarded") is True:
        out["forwarded"] = True
    product = _object(context, "referred_product")
    if product:
        out["referred_product"] = {"catalog_id": _id(product.get("catalog_id")),
                                   "product_retailer_id": _id(product.get("product_retailer_id"))}
    referral = _object(message, "referral")
    if referral:
        out["referral"] = {
            "source_type": _text(referral.get("source_type"), 40),
            "source_id": _id(referral.get("source_id")),
            "source_url": _web_url(referral.get("source_url")),
            "headline": _text(referral.get("headline"), MAX_FIELD),
            "body": _text(referral.get("body"), MAX_FIELD),
            "media_type": _text(referral.get("media_type"), 40),
            "ctwa_clid": _id(referral.get("ctwa_clid")),
        }
    return out


def _contact_card(card: dict) -> dict:
    name = _object(card, "name")
    formatted = _text(name.get("formatted_name"), MAX_FIELD) or " ".join(
        part for part in (_text(name.get("first_name"), 200), _text(name.get("last_name"), 200)) if part)
    org = _object(card, "org")
    return {
        "name": formatted or "",
        "phones": [{"phone": _text(p.get("phone"), 60), "wa_id": _digits(p.get("wa_id")),
                    "type": _text(p.get("type"), 40)}
                   for p in _items(card, "phones")[:MAX_LIST] if isinstance(p, dict)],
        "emails": [e for e in (_text(x.get("email"), 200) for x in _items(card, "emails")[:MAX_LIST]
                               if isinstance(x, dict)) if e],
        "org": _text(org.get("company"), MAX_FIELD),
    }


def _order_item(item: dict) -> dict:
    return {"product_retailer_id": _id(item.get("product_retailer_id")),
            "quantity": _number(item.get("quantity")), "item_price": _number(item.get("item_price")),
            "currency": _text(item.get("currency"), 8)}


def _parse_status(status) -> DeliveryStatus | None:
    if not isinstance(status, dict):
        return None
    wamid, state = _id(status.get("id")), _text(status.get("status"), 40)
    if not wamid or not state:
        return None
    errors = [e for e in _items(status, "errors") if isinstance(e, dict)]
    # A message sent to a business-scoped user id names its recipient by that id alone.
    recipient = _id(status.get("recipient_id")) or _id(status.get("recipient_user_id"))
    return DeliveryStatus(wamid=wamid, status=state.strip(), recipient_id=recipient,
                          errors=errors, at=_timestamp(status.get("timestamp")))


def _error(error) -> dict:
    """A Cloud API error object as papo keeps and logs it."""
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    return {"code": code if isinstance(code, int) and not isinstance(code, bool) else _text(code, 40),
            "title": _text(error.get("title"), 200) or _text(error.get("message"), 200),
            "details": _text(_object(error, "error_data").get("details"), MAX_FIELD)}


# -- tolerant readers: a value of the wrong type reads as absent, text is made storable

def _items(obj: dict, key: str) -> list:
    value = obj.get(key)
    return value if isinstance(value, list) else []


def _object(obj: dict, key: str) -> dict:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _text(value, limit: int) -> str | None:
    """A string fit to store: NUL removed (PostgreSQL refuses it), lone surrogates replaced."""
    if not isinstance(value, str):
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value)
    return value[:limit]


def _id(value) -> str | None:
    """An identifier: text (or an integer) of up to ``MAX_ID`` characters, trimmed."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _text(value, MAX_ID + 1)
    if not text or not text.strip() or len(text) > MAX_ID:
        return None
    return text.strip()


def _digits(value) -> str | None:
    """The digits of a phone number or WhatsApp id ("+1 650-555-1234" → "16505551234")."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    digits = "".join(ch for ch in value[:200] if ch.isascii() and ch.isdigit())
    return digits if 0 < len(digits) <= MAX_DIGITS else None


def _message_id(message: dict) -> str:
    """The message's WhatsApp id; without a usable one, a stable id made from its content
    (so Meta's retries of the same delivery are still recognised as one message)."""
    found = _id(message.get("id"))
    if found:
        return found
    raw = json.dumps(message, sort_keys=True, ensure_ascii=True, default=str)
    return "sem-id." + hashlib.sha256(raw.encode()).hexdigest()[:48]


def _timestamp(value) -> float | None:
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 12:
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and MIN_TIMESTAMP <= value <= MAX_TIMESTAMP:
        return float(value)
    return None


def _number(value) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) and abs(value) < 1e15 else None


def _coordinate(value, limit: float) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    number = _number(value)
    return float(number) if number is not None and abs(number) <= limit else None


def _web_url(value) -> str | None:
    """An http(s) address (an ad's or a place's), else None: never a ``javascript:`` link."""
    url = _text(value, 2000)
    if url and url.strip().lower().startswith(("https://", "http://")) and " " not in url.strip():
        return url.strip()
    return None


def full_reply_title(conn: Connection, message: InboundMessage, external_id: str,
                     lookback: int = 20) -> str:
    """The whole label of the button the customer tapped.

    WhatsApp titles are cut at 20 (buttons) or 24 (list rows) characters, so a label longer
    than that would not match its choice option. Our buttons' ids are ``b<n>``: the n-th
    label of the latest bot message in this contact's conversation whose n-th label starts
    with the title. Anything else returns the title unchanged. ``external_id``: the
    contact the message came from (``contacts.external_id``).
    """
    found = REPLY_ID.match(message.reply_id or "")
    if found is None or message.kind != "interactive" or len(message.text) > ROW_DESCRIPTION_MAX:
        return message.text
    index = int(found.group(1)) - 1
    rows = conn.execute(
        select(messages.c.buttons)
        .join(conversations, conversations.c.id == messages.c.conversation_id)
        .join(contacts, contacts.c.id == conversations.c.contact_id)
        .where(contacts.c.channel == "whatsapp", contacts.c.external_id == external_id,
               messages.c.direction == "out")
        .order_by(messages.c.id.desc()).limit(lookback)).scalars()
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


def media_body(media: dict) -> dict:
    """``{"type": "image", "image": {"id", "caption"?}}`` for a file sent by its media id."""
    kind = str(media["type"])
    inner = {"id": str(media["id"])}
    if media.get("caption") and kind != "audio":
        inner["caption"] = str(media["caption"])[:1024]
    if kind == "document" and media.get("filename"):
        inner["filename"] = str(media["filename"])
    return {"type": kind, kind: inner}
def _with_full_labels(body: str, labels: list[str], titles: list[str]) -> str:
    """The body, with the options' whole labels below it when WhatsApp's title limit cut
    one of them (the customer reads them all; the reply still comes by id). Left as it
    is when that would pass the 1,024-character body limit (rows keep a description)."""
    if all(title == label.strip() for label, title in zip(labels, titles, strict=True)):
        return body
    numbered = "\n".join(f"{n}. {label.strip()}" for n, label in enumerate(labels, 1))
    whole = f"{body}\n\n{numbered}"
    return whole if len(whole) <= INTERACTIVE_BODY_MAX else body


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
    envelope = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    # A contact known only by a business-scoped user id (a username hides the number) is
    # addressed by ``recipient``; a phone number by ``to``.
    envelope["to" if to.isdigit() else "recipient"] = to
    if isinstance(payload.get("media"), dict):  # an agent's file, uploaded before (engine/whatsapp_media.py)
        return {**envelope, **media_body(payload["media"])}
    if labels:
        body_text = text if text.strip() else EMPTY_CHOICE_BODY
        if len(body_text) <= INTERACTIVE_BODY_MAX:
            if len(labels) <= MAX_REPLY_BUTTONS:
                titles = [_title(label, BUTTON_TITLE_MAX) for label in labels]
                if len(set(titles)) == len(titles):
                    return {**envelope, "type": "interactive", "interactive": {
                        "type": "button",
                        "body": {"text": _with_full_labels(body_text, labels, titles)},
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
                        "body": {"text": _with_full_labels(body_text, labels, titles)},
                        "action": {"button": LIST_BUTTON_LABEL, "sections": [{"rows": rows}]}}}
        numbered = "\n".join(f"{n}. {label}" for n, label in enumerate(labels, 1))
        text = f"{text}\n\n{numbered}" if text.strip() else numbered
    return {**envelope, "type": "text",
            "text": {"body": text[:TEXT_BODY_MAX]}}
