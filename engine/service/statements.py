"""The write path's statements, built once with bound parameters."""
from __future__ import annotations

from sqlalchemy import and_, bindparam, func, insert, or_, select, update

from engine.service.common import BOT_TIMER_KINDS
from engine.store import (
    activity,
    answers,
    contacts,
    conversation_assignees,
    conversations,
    flows,
    messages,
    outbox,
    processed_messages,
    run_log,
    timers,
)

# The inbound hot path's statements, built once with bound parameters: on SQLite building
# and cache-keying a Core statement cost more than running it (bench/http_inbound.py).
_SAVE_STATE = update(conversations).where(conversations.c.id == bindparam("_id")).values(
    state=bindparam("_state"), status=bindparam("_status"), name_norm=bindparam("_name_norm"),
    version=conversations.c.version + 1, updated_at=bindparam("_updated_at"),
    opened_at=bindparam("_opened_at"))
_INSERT_MESSAGE = insert(messages)
_INSERT_ANSWER = insert(answers)
_INSERT_LOG = insert(run_log)
_INSERT_TIMER = insert(timers)
_INSERT_OUTBOX = insert(outbox)
_INSERT_ACTIVITY = insert(activity)
_PROCESSED = select(processed_messages.c.result).where(
    processed_messages.c.channel == bindparam("_channel"),
    processed_messages.c.external_id == bindparam("_external_id"))
_INSERT_PROCESSED = insert(processed_messages)
_CONTACT = select(contacts.c.id, contacts.c.name).where(
    contacts.c.channel == bindparam("_channel"), contacts.c.external_id == bindparam("_external_id"))
_CONVERSATION_OF = select(conversations.c.id).where(conversations.c.contact_id == bindparam("_contact_id"))
_CONVERSATION = select(conversations).where(conversations.c.id == bindparam("_id"))
_CONVERSATION_FOR_UPDATE = _CONVERSATION.with_for_update()
# A known contact's conversation in one query (the common case of an inbound message).
_CONVERSATION_BY_CONTACT = select(conversations, contacts.c.name.label("contact_name_")).join(
    contacts, contacts.c.id == conversations.c.contact_id).where(
    contacts.c.channel == bindparam("_channel"), contacts.c.external_id == bindparam("_external_id"))
_CONVERSATION_BY_CONTACT_FOR_UPDATE = _CONVERSATION_BY_CONTACT.with_for_update(of=conversations)
# On SQLite the write lock is already held (BEGIN IMMEDIATE), so the same query can also
# bring the duplicate check and the published flows (what trigger matching needs): three
# statements in one. PostgreSQL keeps them apart: a row lock's wait would leave the
# joined rows at the statement's older snapshot.
_PUBLISHED_LIST = select(func.json_group_array(func.json_array(flows.c.id, flows.c.published_version))).where(
    flows.c.deleted_at.is_(None), flows.c.published_version.is_not(None)).scalar_subquery()
_INBOUND_SQLITE = select(
    conversations, contacts.c.name.label("contact_name_"), processed_messages.c.result.label("processed_"),
    _PUBLISHED_LIST.label("published_")).select_from(
    conversations.join(contacts, contacts.c.id == conversations.c.contact_id).outerjoin(
        processed_messages, and_(processed_messages.c.channel == bindparam("_channel"),
                                 processed_messages.c.external_id == bindparam("_message_id")))).where(
    contacts.c.channel == bindparam("_channel"), contacts.c.external_id == bindparam("_external_id"))
_ASSIGNEES = select(conversation_assignees.c.login).where(
    conversation_assignees.c.conversation_id == bindparam("_id")).order_by(
    conversation_assignees.c.assigned_at, conversation_assignees.c.login)
_CANCEL_BOT_TIMERS = update(timers).where(
    timers.c.conversation_id == bindparam("_id"), timers.c.status == "pending",
    or_(*(timers.c.kind == kind for kind in BOT_TIMER_KINDS))).values(status="cancelled")
_PUBLISHED = select(flows.c.id, flows.c.published_version).where(
    flows.c.deleted_at.is_(None), flows.c.published_version.is_not(None))


_VERSION_SQL = "SELECT version FROM conversations WHERE id = ?"  # SQLite (qmark)
