"""A WhatsApp webhook delivery, applied: who wrote, what they wrote, what they changed.

``engine/whatsapp.py`` reads a delivery (pure); this module stores it (DESIGN §7, §10.7):

- each message goes to ``Service.handle_inbound`` on its own, with its WhatsApp time and
  what it carried besides its text; one the service refuses is logged and its siblings
  still go through; a message sent more than 24 hours ago is stored without a bot answer;
- the contact is keyed on the digits of the WhatsApp id, else on the business-scoped user
  id (a customer with a username), and both are stored when both come (:func:`identify`);
- ``revoke``, ``edit`` and ``reaction`` change the message they name, a number change
  moves the contact (:func:`apply_change`); none of them runs the bot;
- statuses go to ``engine.outbox.record_status``; every part that could not be read, and
  every error Meta reported, is logged with its reason.

Database errors are not caught here: the webhook answers 503 and Meta delivers again
(what was stored is recognised by its WhatsApp id).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from engine.db import quick_reads, read_only
from engine.errors import PapoError
from engine.moments import iso, utc
from engine.observe import observed_inbound
from engine.service.driver import read_first
from engine.service.statements import FORGET_UNREAD, REFRESH_UNREAD
from engine.store import (
    activity,
    contacts,
    conversation_reads,
    conversations,
    messages,
    processed_messages,
)
from engine.whatsapp import (
    DELETED_PLACEHOLDER,
    Delivery,
    InboundMessage,
    MessageChange,
    full_reply_title,
)

log = logging.getLogger("papo.whatsapp")

CHANNEL = "whatsapp"
ANSWER_WITHIN_S = 24 * 3600  # older messages are stored and shown, never answered
LATE_S = 5.0  # a message arriving later than this after it was sent may be behind a read mark
NUMBER_CHANGED = "number_changed"  # activity action
# What "the database cannot be reached" looks like: refused or dropped connections,
# SQLite's lock timeout, an exhausted pool. The webhook answers 503 for these.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)


@dataclass
class Receipt:
    """What a delivery did, for the log line."""

    messages: int = 0
    changes: int = 0
    statuses: int = 0
    refused: int = 0
    skipped: int = 0
    errors: int = 0


def receive(service, delivery: Delivery, inbound=None) -> Receipt:
    """Apply a parsed delivery: every message, change and status on its own, in order.

    Each customer message goes through ``inbound`` (same signature as
    ``Service.handle_inbound``), by default ``engine.observe.observed_inbound`` (counted,
    timed and logged with its ids, like the API's and the web chat's)."""
    if inbound is None:
        inbound = partial(observed_inbound, service)
    receipt = Receipt(skipped=len(delivery.skipped), errors=len(delivery.errors))
    for path, reason in delivery.skipped:
        log.warning("WhatsApp delivery: %s skipped: %s", path, reason)
    for error in delivery.errors:
        log.warning("WhatsApp reported an error (%s): code %s, %s: %s", error["path"], error["code"],
                    error["title"] or "", error["details"] or "")
    # Meta delivers again whatever it did not see answered: one query finds what is done.
    # One message (the everyday delivery) needs no extra query: the unit of work finds
    # it among the processed ones and answers as it did the first time.
    ids = [m.message_id for m in delivery.messages]
    done = already_received(service, ids) if len(ids) > 1 else set()
    senders: dict[tuple, str] = {}  # who is who, for the rest of this delivery
    late: dict[int, float] = {}  # conversation id → the oldest late message's time
    for item in delivery.inbound:
        if isinstance(item, InboundMessage) and item.message_id in done:
            continue
        try:
            if isinstance(item, InboundMessage):
                if receive_message(service, item, inbound, senders, late):
                    receipt.messages += 1
                else:
                    receipt.refused += 1
            else:
                if item.action == NUMBER_CHANGED:
                    senders.clear()  # the contact moved
                if apply_change(service, item, inbound):
                    receipt.changes += 1
        except DATABASE_UNAVAILABLE:
            raise  # papo cannot work: the webhook answers 503 and Meta delivers again
        except Exception:  # fault isolation, see below
            # A bug met by one message must not hold the rest of the delivery hostage: Meta
            # would deliver the whole batch again for a week and then drop it. Its
            # transaction rolled back; the stack goes to the log.
            log.exception("WhatsApp %s %s not processed (a papo bug)", type(item).__name__,
                          item.message_id)
            receipt.refused += 1
    if late:
        unread_if_read_since(service, late)
    if delivery.statuses:
        from engine.outbox import record_status

        for status in delivery.statuses:
            record_status(service, status)
            receipt.statuses += 1
    return receipt


def already_received(service, message_ids: list[str]) -> set[str]:
    """Which of these WhatsApp message ids papo already stored (and answered)."""
    found: set[str] = set()
    with quick_reads(service.db) as conn:
        for start in range(0, len(message_ids), 500):
            found.update(conn.execute(select(processed_messages.c.external_id).where(
                processed_messages.c.channel == CHANNEL,
                processed_messages.c.external_id.in_(message_ids[start:start + 500]))).scalars())
    return found


def receive_message(service, message: InboundMessage, inbound=None, senders: dict | None = None,
                    late: dict | None = None) -> bool:
    """Store one customer message (the bot answers it unless it is over 24 hours old).

    False when the service refused it (logged: a retry would be refused the same way).
    ``inbound``: as for :func:`receive`; ``senders``: contacts already identified in this
    delivery; ``late``: where a late message's conversation is noted, for the caller to
    pass to :func:`unread_if_read_since` (without it, that is done at once)."""
    if message.problem:
        log.warning("WhatsApp message %s stored as unsupported: %s", message.message_id, message.problem)
    key = (message.wa_id, message.user_id)
    external_id = (senders or {}).get(key) or identify(service, message.wa_id, message.user_id)
    if senders is not None:
        senders[key] = external_id
    text = message.text
    if message.reply_id:
        with read_only(service.db) as conn:
            text = full_reply_title(conn, message, external_id)
    answer = message.at is None or service.clock() - message.at <= ANSWER_WITHIN_S
    if not answer:
        log.info("WhatsApp message %s was sent more than 24 hours ago: stored without an answer",
                 message.message_id)
    try:
        result = (inbound or service.handle_inbound)(
            CHANNEL, {"external_id": external_id, "name": message.name},
            {"id": message.message_id, "text": text}, at=message.at, answer=answer,
            details=message.details or None)
    except PapoError as exc:
        log.warning("WhatsApp message %s not stored: %s", message.message_id, exc.message)
        return False
    if message.at is not None and service.clock() - message.at > LATE_S:
        conversation_id = result["conversation_id"]
        if late is None:
            unread_if_read_since(service, {conversation_id: message.at})
        else:
            late[conversation_id] = min(late.get(conversation_id, message.at), message.at)
    return True


_UNREAD = update(conversations).where(
    conversations.c.id == bindparam("_id"), conversations.c.last_read_at > bindparam("_moment")
).values(last_read_at=bindparam("_moment"))
_UNREAD_FOR_AGENTS = update(conversation_reads).where(
    conversation_reads.c.conversation_id == bindparam("_id"),
    conversation_reads.c.read_at > bindparam("_moment")).values(read_at=bindparam("_moment"))


def unread_if_read_since(service, late: dict[int, float]) -> None:
    """Messages WhatsApp delivered late keep their own time, which may be before an agent
    last read the conversation: its read mark moves back to just before the oldest of them,
    so the conversation shows as unread (the one case where the mark moves back).
    ``late``: conversation id → that message's time; one transaction for all of them."""
    rows = [{"_id": conversation_id, "_moment": utc(at - 0.001)} for conversation_id, at in late.items()]
    with service.db.begin() as conn:
        conn.execute(_UNREAD, rows)
        conn.execute(_UNREAD_FOR_AGENTS, rows)  # each agent's own mark (DESIGN §10.8)
        # … and the agents' unread open conversations (the title count) follow the marks
        ids = [{"_id": row["_id"]} for row in rows]
        conn.execute(FORGET_UNREAD, ids)
        conn.execute(REFRESH_UNREAD[conn.dialect.name == "postgresql"], ids)


# ---------------------------------------------------------------------------- contacts
_BY_EXTERNAL_ID = select(contacts.c.id, contacts.c.external_id, contacts.c.user_id).where(
    contacts.c.channel == CHANNEL, contacts.c.external_id == bindparam("_key"))
_BY_USER_ID = select(contacts.c.id, contacts.c.external_id, contacts.c.user_id).where(
    contacts.c.channel == CHANNEL, contacts.c.user_id == bindparam("_user_id"))


class KnownContact(NamedTuple):
    id: int
    external_id: str
    user_id: str | None


def known_as(conn, wa_id: str | None, user_id: str | None) -> tuple[KnownContact | None, KnownContact | None]:
    """The contacts with this WhatsApp id and with this business-scoped user id (read on the
    driver's cursor: this runs for every message of every delivery)."""
    by_phone = _known(conn, _BY_EXTERNAL_ID, {"_key": wa_id}) if wa_id else None
    by_user = _known(conn, _BY_USER_ID, {"_user_id": user_id}) if user_id else None
    return by_phone, by_user


def _known(conn, statement, params: dict) -> KnownContact | None:
    row = read_first(conn, statement, params)
    return None if row is None else KnownContact(row["id"], row["external_id"], row["user_id"])


def identify(service, wa_id: str | None, user_id: str | None) -> str:
    """The ``contacts.external_id`` of a WhatsApp sender, stored so that both ids find it.

    Keyed on the WhatsApp id (its digits), else on the business-scoped user id. A new
    sender with a user id gets its contact row here (the service creates the rest); a known
    one learns the id it lacked; a contact known only by its user id whose number now comes
    along is keyed on the number from now on (``external_id`` is what replies are sent to).
    """
    with quick_reads(service.db) as conn:
        action, key = _identity(*known_as(conn, wa_id, user_id), wa_id, user_id)
    if action == "use":
        return key  # the everyday case: nothing to write
    with service.db.begin() as conn:
        by_phone, by_user = known_as(conn, wa_id, user_id)  # again, under the write lock
        action, key = _identity(by_phone, by_user, wa_id, user_id)
        if action == "create":
            conn.execute(_insert_ignore(service, contacts).values(
                channel=CHANNEL, external_id=key, name="", user_id=user_id))
        elif action == "link":
            conn.execute(update(contacts).where(contacts.c.id == by_phone.id).values(user_id=user_id))
        elif action == "rekey":
            _move_contact(service, conn, by_user.id, by_user.external_id, key)
        elif action == "clash":
            log.warning("WhatsApp user id %s belongs to contact %s, its number %s to contact %s: "
                        "kept apart", user_id, by_user.external_id, wa_id, by_phone.external_id)
    return key


def _identity(by_phone, by_user, wa_id: str | None, user_id: str | None) -> tuple[str, str]:
    """What to do about a sender, given the contacts its two ids find: ``(action, key)``.

    ``use`` (nothing to write), ``create`` (a new contact with a user id), ``link`` (the
    number's contact learns its user id), ``rekey`` (the user id's contact is keyed on the
    number from now on) or ``clash`` (each id has its own contact: both kept)."""
    if by_phone is not None:
        if user_id is None or by_phone.user_id == user_id:
            return "use", wa_id
        return ("link" if by_user is None else "clash"), wa_id
    if by_user is not None:
        if wa_id is None or by_user.external_id == wa_id:
            return "use", by_user.external_id
        return "rekey", wa_id
    if user_id is None:
        return "use", wa_id  # a new customer: the service creates the contact
    return "create", wa_id or user_id


def _move_contact(service, conn, contact_id: int, old: str, new: str, *, at: float | None = None,
                  actor: str | None = None) -> None:
    """Key a contact on ``new``: its row, and the conversation state replies are sent from.
    With ``actor``, an activity entry says so (a number change)."""
    conn.execute(update(contacts).where(contacts.c.id == contact_id).values(external_id=new))
    query = select(conversations.c.id, conversations.c.state, conversations.c.status).where(
        conversations.c.contact_id == contact_id)
    conv = conn.execute(query.with_for_update() if service.is_postgres else query).first()
    if conv is None:
        return
    state = dict(conv.state)
    state["contact"] = {**(state.get("contact") or {}), "external_id": new}
    conn.execute(update(conversations).where(conversations.c.id == conv.id).values(
        state=state, version=conversations.c.version + 1))
    if actor is not None:
        conn.execute(insert(activity).values(
            conversation_id=conv.id, actor=actor, action=NUMBER_CHANGED, from_status=conv.status,
            to_status=conv.status, detail={"from": old, "to": new}, at=utc(at)))


def _insert_ignore(service, table):
    dialect = postgresql if service.is_postgres else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


# ---------------------------------------------------------------------------- changes
def apply_change(service, change: MessageChange, inbound=None) -> bool:
    """A revoke, edit, reaction or number change; none of them runs the bot.

    True when something changed (a repeated delivery changes nothing the second time).
    ``inbound``: as for :func:`receive` (a change to a message papo never got stores it)."""
    now = service.clock()
    at = min(change.at, now) if change.at is not None else now
    if change.action == NUMBER_CHANGED:
        return change_number(service, change, at)
    with read_only(service.db) as conn:
        by_phone, by_user = known_as(conn, change.wa_id, change.user_id)
    contact = by_phone or by_user
    if contact is not None:
        with service.db.begin() as conn:
            found = _locked_message(service, conn, contact.id, change.target_id)
            if found is not None:
                return _change_message(conn, found, change, at)
    if change.action == "reaction":
        log.info("WhatsApp reaction %s to unknown message %s: ignored", change.message_id, change.target_id)
        return False
    # A revoke or an edit of a message papo never got (sent before papo was connected, or
    # still on its way): stored under the original's id, so the original, if it comes
    # later, is recognised as already there and its old content never shows.
    if already_received(service, [change.target_id]):
        log.info("WhatsApp %s %s names another customer's message %s: ignored", change.action,
                 change.message_id, change.target_id)
        return False
    external_id = identify(service, change.wa_id, change.user_id)
    if change.action == "revoke":
        text, details = DELETED_PLACEHOLDER, {"deleted_at": iso(utc(at))}
    else:
        text, details = change.text, {**change.details, "edited_at": iso(utc(at))}
    try:
        (inbound or service.handle_inbound)(
            CHANNEL, {"external_id": external_id, "name": change.name},
            {"id": change.target_id, "text": text}, at=at, answer=False, details=details)
    except PapoError as exc:
        log.warning("WhatsApp %s of %s not stored: %s", change.action, change.target_id, exc.message)
        return False
    return True


def _locked_message(service, conn, contact_id: int, external_id: str):
    """The contact's message with this WhatsApp id, its conversation locked (or None)."""
    query = select(conversations.c.id).where(conversations.c.contact_id == contact_id)
    conversation_id = conn.execute(query.with_for_update() if service.is_postgres else query).scalar()
    if conversation_id is None:
        return None
    return conn.execute(select(messages.c.id, messages.c.direction, messages.c.text, messages.c.at,
                               messages.c.details, messages.c.conversation_id).where(
        messages.c.conversation_id == conversation_id, messages.c.external_id == external_id)
        .order_by(messages.c.id).limit(1)).first()


def _change_message(conn, found, change: MessageChange, at: float) -> bool:
    details = dict(found.details) if isinstance(found.details, dict) else {}
    values: dict = {}
    if change.action == "reaction":
        reaction = {"emoji": change.emoji, "at": iso(utc(at))} if change.emoji else None
        if (details.get("reaction") or {}).get("emoji") == (reaction or {}).get("emoji"):
            return False
        details["reaction"] = reaction
    elif found.direction != "in" or details.get("deleted_at"):
        return False  # only the customer's own messages, and a deleted one stays deleted
    elif change.action == "revoke":
        # The content is gone, as on the customer's phone; where it stood stays visible.
        details = {"deleted_at": iso(utc(at)), **({"reaction": details["reaction"]}
                                                    if details.get("reaction") else {})}
        values["text"] = DELETED_PLACEHOLDER
    else:  # edit
        edits = list(details.get("edits") or [])
        if any(e.get("id") == change.message_id for e in edits) or change.text == found.text:
            return False
        edits.append({"id": change.message_id, "text": found.text,
                      "at": details.get("edited_at") or iso(found.at)})
        details.update(change.details)
        details["edits"] = edits
        details["edited_at"] = iso(utc(at))
        values["text"] = change.text
    conn.execute(update(messages).where(messages.c.id == found.id).values(details=details, **values))
    # The inbox redraws a conversation when its version moves.
    conn.execute(update(conversations).where(conversations.c.id == found.conversation_id)
                 .values(version=conversations.c.version + 1))
    return True


def change_number(service, change: MessageChange, at: float) -> bool:
    """``system`` customer-changed-number: the contact moves to the new WhatsApp id, with an
    activity entry, so the next message from the new number lands in the same conversation."""
    new = change.new_wa_id
    with service.db.begin() as conn:
        by_phone, by_user = known_as(conn, change.wa_id, change.user_id)
        contact = by_phone or by_user
        if contact is None:
            log.info("WhatsApp number change %s → %s: no contact with the old number", change.wa_id, new)
            return False
        if contact.external_id == new:
            return False  # already moved (a repeated delivery)
        taken = conn.execute(_BY_EXTERNAL_ID, {"_key": new}).first()
        if taken is not None:
            log.warning("WhatsApp number change %s → %s: the new number already has its own contact; "
                        "both kept", contact.external_id, new)
            return False
        _move_contact(service, conn, contact.id, contact.external_id, new, at=at, actor="customer")
    return True
