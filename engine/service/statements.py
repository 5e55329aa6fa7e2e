"""The unit of work's statements, built once with bound parameters: on SQLite building and
cache-keying a Core statement costs more than running it (bench/http_inbound.py)."""
from __future__ import annotations

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, true, update

from engine.service.common import BOT_TIMER_KINDS
from engine.store import (
    activity,
    answers,
    business_hours,
    contacts,
    conversation_assignees,
    conversation_reads,
    conversations,
    flows,
    inbox_unread,
    messages,
    outbox,
    processed_messages,
    run_log,
    timers,
    users,
)

# ---------------------------------------------------------------------- load


def _published_list(postgres: bool):
    """The published flows' [id, version] pairs as one JSON array (a scalar subquery)."""
    pair = func.json_build_array if postgres else func.json_array
    agg = func.json_agg if postgres else func.json_group_array
    return select(agg(pair(flows.c.id, flows.c.published_version))).where(
        flows.c.deleted_at.is_(None), flows.c.published_version.is_not(None)).scalar_subquery()


def _hours():
    """The business hours setting's document (NULL: none set), as a scalar subquery."""
    return select(business_hours.c.document).where(business_hours.c.id == 1).scalar_subquery()


def _inbound(postgres: bool):
    """A known contact's conversation, that message's stored answer (a duplicate) and the
    published flows, in one query: what deciding about an inbound message needs, nearly always."""
    return select(
        conversations, contacts.c.name.label("contact_name_"), processed_messages.c.result.label("processed_"),
        _published_list(postgres).label("published_"), _hours().label("hours_")).select_from(
        conversations.join(contacts, contacts.c.id == conversations.c.contact_id).outerjoin(
            processed_messages, and_(processed_messages.c.channel == bindparam("_channel"),
                                     processed_messages.c.external_id == bindparam("_message_id")))).where(
        contacts.c.channel == bindparam("_channel"), contacts.c.external_id == bindparam("_external_id"))


def _by_id(postgres: bool):
    return select(conversations, contacts.c.name.label("contact_name_"),
                  _published_list(postgres).label("published_"), _hours().label("hours_")).join(
        contacts, contacts.c.id == conversations.c.contact_id).where(conversations.c.id == bindparam("_id"))


INBOUND = {False: _inbound(False), True: _inbound(True)}
BY_ID = {False: _by_id(False), True: _by_id(True)}
# PostgreSQL under the lock: the row first, then the rest, each statement on a snapshot taken
# after the lock was granted (a joined query would see the others as they were before the wait).
CONVERSATION_BY_CONTACT_FOR_UPDATE = select(conversations, contacts.c.name.label("contact_name_")).join(
    contacts, contacts.c.id == conversations.c.contact_id).where(
    contacts.c.channel == bindparam("_channel"), contacts.c.external_id == bindparam("_external_id")
).with_for_update(of=conversations)
CONVERSATION_BY_ID_FOR_UPDATE = select(conversations, contacts.c.name.label("contact_name_")).join(
    contacts, contacts.c.id == conversations.c.contact_id).where(
    conversations.c.id == bindparam("_id")).with_for_update(of=conversations)
PROCESSED = select(processed_messages.c.result).where(
    processed_messages.c.channel == bindparam("_channel"),
    processed_messages.c.external_id == bindparam("_message_id"))
HOURS = select(business_hours.c.document).where(business_hours.c.id == 1)
PUBLISHED = select(flows.c.id, flows.c.published_version).where(
    flows.c.deleted_at.is_(None), flows.c.published_version.is_not(None))
CONTACT = select(contacts.c.id, contacts.c.name).where(
    contacts.c.channel == bindparam("_channel"), contacts.c.external_id == bindparam("_external_id"))
CONVERSATION_OF = select(conversations.c.id).where(conversations.c.contact_id == bindparam("_contact_id"))
ASSIGNEES = select(conversation_assignees.c.conversation_id, conversation_assignees.c.login).where(
    conversation_assignees.c.conversation_id.in_(bindparam("_ids", expanding=True))).order_by(
    conversation_assignees.c.assigned_at, conversation_assignees.c.login)
USERS = select(users.c.login)
AUTO_CONCLUDE_PENDING = select(timers.c.conversation_id).where(
    timers.c.conversation_id.in_(bindparam("_ids", expanding=True)), timers.c.status == "pending",
    timers.c.kind == "auto_conclude")
PENDING_TIMERS = select(timers.c.id, timers.c.conversation_id, timers.c.kind, timers.c.payload).where(
    timers.c.id.in_(bindparam("_ids", expanding=True)), timers.c.status == "pending")
TIMER_PENDING = select(timers.c.id).where(timers.c.id == bindparam("_id"), timers.c.status == "pending")
CONVERSATIONS = select(conversations).where(conversations.c.id.in_(bindparam("_ids", expanding=True)))
CONVERSATIONS_FOR_UPDATE = CONVERSATIONS.order_by(conversations.c.id).with_for_update()
CONTACT_NAMES = select(contacts.c.id, contacts.c.name).where(contacts.c.id.in_(bindparam("_ids", expanding=True)))
CONVERSATION_EXISTS = select(conversations.c.id).where(conversations.c.id == bindparam("_id"))
USER_EXISTS = select(exists().where(users.c.login == bindparam("_login")))

# ---------------------------------------------------------------------- write

SAVE_CONVERSATION = update(conversations).where(
    conversations.c.id == bindparam("_id"), conversations.c.version == bindparam("_version")).values(
    state=bindparam("_state"), status=bindparam("_status"), name_norm=bindparam("_name_norm"),
    version=conversations.c.version + 1, updated_at=bindparam("_updated_at"),
    opened_at=bindparam("_opened_at"), first_response_at=bindparam("_first_response_at"),
    waiting_since=bindparam("_waiting_since"), last_inbound_at=bindparam("_last_inbound_at"))
RENAME_CONTACT = update(contacts).where(contacts.c.id == bindparam("_id")).values(name=bindparam("_name"))
FIRE_TIMER = update(timers).where(timers.c.id == bindparam("_id"), timers.c.status == "pending").values(
    status="fired", fired_at=bindparam("_at"))
CANCEL_BOT_TIMERS = update(timers).where(
    timers.c.conversation_id == bindparam("_id"), timers.c.status == "pending",
    or_(*(timers.c.kind == kind for kind in BOT_TIMER_KINDS))).values(status="cancelled")
CANCEL_AUTO_CONCLUDE = update(timers).where(
    timers.c.conversation_id == bindparam("_id"), timers.c.status == "pending",
    timers.c.kind == "auto_conclude").values(status="cancelled")
# One debounce timer per burst (engine/service/debounce.py): a newer message moves it (and
# frees it from a worker's claim taken before the move), an answered burst cancels it.
MOVE_DEBOUNCE = update(timers).where(
    timers.c.conversation_id == bindparam("_id"), timers.c.status == "pending",
    timers.c.kind == "debounce").values(due_at=bindparam("_due"), claimed_by=None, claimed_until=None)
CANCEL_DEBOUNCE = update(timers).where(
    timers.c.conversation_id == bindparam("_id"), timers.c.status == "pending",
    timers.c.kind == "debounce").values(status="cancelled")
INSERT_MESSAGE = insert(messages)
INSERT_OUTBOX = insert(outbox)
INSERT_TIMER = insert(timers)
INSERT_ACTIVITY = insert(activity)
INSERT_ASSIGNEE = insert(conversation_assignees)
DELETE_ASSIGNEE = conversation_assignees.delete().where(
    conversation_assignees.c.conversation_id == bindparam("_id"),
    conversation_assignees.c.login == bindparam("_login"))
INSERT_ANSWER = insert(answers)
INSERT_LOG = insert(run_log)
INSERT_PROCESSED = insert(processed_messages)


def _unread_for_agents():
    """(login, conversation id) of every user for whom the open conversation ``_id``
    holds a customer message they have not seen, among those it concerns: its assignees,
    or everyone while nobody handles it (the inbox title's count, DESIGN §10.8)."""
    mine = conversation_assignees.alias("mine")
    anyone = conversation_assignees.alias("anyone")
    seen = exists().where(conversation_reads.c.conversation_id == conversations.c.id,
                          conversation_reads.c.login == users.c.login,
                          conversation_reads.c.read_at >= messages.c.at)
    # every user against the one conversation: a cross join on purpose, said so explicitly
    return select(users.c.login, conversations.c.id).select_from(
        conversations.join(users, true())).where(
        conversations.c.id == bindparam("_id"), conversations.c.status == "open",
        conversations.c.channel != "test",
        or_(exists().where(mine.c.conversation_id == conversations.c.id, mine.c.login == users.c.login),
            ~exists().where(anyone.c.conversation_id == conversations.c.id)),
        exists().where(messages.c.conversation_id == conversations.c.id, messages.c.direction == "in", ~seen))


def _refresh_unread(postgres: bool):
    """``INSERT … SELECT … ON CONFLICT DO NOTHING``: a write that did not lock the
    conversation (a late WhatsApp message's read marks) may refresh it at the same time."""
    if postgres:
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(inbox_unread).from_select(
        ["login", "conversation_id"], _unread_for_agents()).on_conflict_do_nothing()


# A written open conversation's unread rows are computed again from what is stored
# (keyed by "is this PostgreSQL").
FORGET_UNREAD = inbox_unread.delete().where(inbox_unread.c.conversation_id == bindparam("_id"))
REFRESH_UNREAD = {False: _refresh_unread(False), True: _refresh_unread(True)}
UPDATE_PROCESSED = update(processed_messages).where(
    processed_messages.c.channel == bindparam("_channel"),
    processed_messages.c.external_id == bindparam("_message_id")).values(result=bindparam("_result"))
