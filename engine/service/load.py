"""``load``: the snapshot a decision is made on, read without taking a write lock.

With ``lock=True`` (after repeated conflicts, :mod:`engine.service.unit`) the same reads
run inside the write transaction: on SQLite it already holds the database's write lock
(``BEGIN IMMEDIATE``); on PostgreSQL the conversation's row is locked first
(``FOR UPDATE``) and the rest read after, so nothing is seen as it was before the wait.
"""
from __future__ import annotations

import json

from sqlalchemy.engine import Connection

from blocks.text import normalize
from engine import conversation as machine
from engine import core
from engine.hours import BusinessHours, from_stored
from engine.moments import utc
from engine.service import statements as sql
from engine.service.changes import (
    NEED_ASSIGNEES,
    NEED_AUTO_CONCLUDE,
    NEED_USERS,
    Inbound,
    Snapshot,
    TimerFired,
    flow_key,
)
from engine.service.common import TEST_CHANNEL
from engine.service.driver import read_first
from engine.store import contacts, conversations

_EXTRA_COLUMNS = frozenset({"contact_name_", "processed_", "published_", "hours_"})


def inbound(service, conn: Connection, event: Inbound, lock: bool) -> Snapshot | None:
    """The snapshot for an inbound message; None when the contact is new (see :func:`create`)."""
    key = {"_channel": event.channel, "_external_id": event.external_id, "_message_id": event.message_id}
    if lock and service.is_postgres:
        row = conn.execute(sql.CONVERSATION_BY_CONTACT_FOR_UPDATE, key).mappings().first()
        if row is None:
            return None
        processed = conn.execute(sql.PROCESSED, key).scalar()
        return _snapshot(service, conn, row, None, processed=processed)
    row = read_first(conn, sql.INBOUND[service.is_postgres], key)  # the one query, nearly always
    if row is None:
        return None
    return _snapshot(service, conn, row, _pairs(row["published_"]), processed=row["processed_"])


def by_id(service, conn: Connection, conversation_id: int, lock: bool) -> Snapshot | None:
    """The snapshot of a conversation by id, with its assignees and auto-conclude timer
    (agents' actions and HTTP answers: they usually need them)."""
    if lock and service.is_postgres:
        row = conn.execute(sql.CONVERSATION_BY_ID_FOR_UPDATE, {"_id": conversation_id}).mappings().first()
        pairs = None
    else:
        row = conn.execute(sql.BY_ID[service.is_postgres], {"_id": conversation_id}).mappings().first()
        pairs = _pairs(row["published_"]) if row is not None else None
    if row is None:
        return None
    snap = _snapshot(service, conn, row, pairs)
    fill(service, conn, [snap], {NEED_ASSIGNEES, NEED_AUTO_CONCLUDE})
    return snap


def timers(service, conn: Connection, timer_ids: list[int], at: float, lock: bool
           ) -> list[tuple[TimerFired, Snapshot]]:
    """The pending timers among ``timer_ids``, each with its conversation's snapshot;
    one timer per conversation (the first by id: the others wait for the next round)."""
    rows = conn.execute(sql.PENDING_TIMERS, {"_ids": list(timer_ids)}).mappings().all()
    first: dict[int, dict] = {}
    for row in sorted(rows, key=lambda r: (r["conversation_id"], r["id"])):
        first.setdefault(row["conversation_id"], row)
    if not first:
        return []
    ids = sorted(first)
    query = sql.CONVERSATIONS_FOR_UPDATE if lock and service.is_postgres else sql.CONVERSATIONS
    found = {r["id"]: r for r in conn.execute(query, {"_ids": ids}).mappings()}
    if lock and service.is_postgres:  # statuses as they are now the rows are ours
        still = set(conn.execute(sql.PENDING_TIMERS, {"_ids": [r["id"] for r in first.values()]}).scalars())
    else:
        still = {r["id"] for r in first.values()}
    names = dict(conn.execute(sql.CONTACT_NAMES, {"_ids": sorted({r["contact_id"] for r in found.values()})}).all())
    pairs = conn.execute(sql.PUBLISHED).all()
    hours_document = conn.execute(sql.HOURS).scalar()
    out = []
    for conversation_id in ids:
        row = found.get(conversation_id)
        if row is None:
            continue
        timer = first[conversation_id]
        event = TimerFired(timer["id"], timer["kind"], timer["payload"] or {}, at)
        snap = _snapshot(service, conn, {**row, "contact_name_": names.get(row["contact_id"], ""),
                                         "hours_": hours_document}, pairs)
        snap.timer_pending = timer["id"] in still
        out.append((event, snap))
    return out


def fill(service, conn: Connection, snaps: list[Snapshot], needs: set[str] | frozenset[str]) -> None:
    """Read what ``decide`` asked for (``Changes.needs``) into the snapshots."""
    ids = [s.conversation["id"] for s in snaps]
    if NEED_ASSIGNEES in needs:
        found: dict[int, list[str]] = {i: [] for i in ids}
        for conversation_id, login in conn.execute(sql.ASSIGNEES, {"_ids": ids}):
            found[conversation_id].append(login)
        for snap in snaps:
            snap.assignees = tuple(found[snap.conversation["id"]])
    if NEED_AUTO_CONCLUDE in needs:
        pending = set(conn.execute(sql.AUTO_CONCLUDE_PENDING, {"_ids": ids}).scalars())
        for snap in snaps:
            snap.auto_conclude_pending = snap.conversation["id"] in pending
    if NEED_USERS in needs:
        logins = frozenset(conn.execute(sql.USERS).scalars())
        for snap in snaps:
            snap.users = logins


def create(service, conn: Connection, channel: str, external_id: str, name: str, now: float) -> int:
    """A new contact and its conversation (concluded: the bot in charge), in their own small
    transaction before anything is decided; the existing one's id when someone was faster."""
    from engine.service.write import insert_ignore

    key = {"_channel": channel, "_external_id": external_id}
    row = conn.execute(sql.CONTACT, key).first()
    if row is None:
        conn.execute(insert_ignore(service.is_postgres, contacts, ["channel", "external_id"]),
                     {"channel": channel, "external_id": external_id, "name": name})
        row = conn.execute(sql.CONTACT, key).first()
    existing = conn.execute(sql.CONVERSATION_OF, {"_contact_id": row.id}).scalar()
    if existing is None:
        contact_name = name or row.name
        conn.execute(insert_ignore(service.is_postgres, conversations, ["contact_id"]), {
            "contact_id": row.id, "channel": channel, "status": machine.CONCLUDED,
            "name_norm": normalize(contact_name),
            "state": core.new_state({"name": contact_name, "external_id": external_id}),
            "version": 1, "created_at": utc(now), "updated_at": utc(now)})
        existing = conn.execute(sql.CONVERSATION_OF, {"_contact_id": row.id}).scalar()
    return existing


def _pairs(value) -> list[tuple[str, int]]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        value = json.loads(value)
    return [(flow_id, version) for flow_id, version in value]


def _snapshot(service, conn: Connection, row, pairs: list[tuple[str, int]] | None,
              processed: dict | None = None) -> Snapshot:
    conversation = {k: v for k, v in row.items() if k not in _EXTRA_COLUMNS}
    if pairs is None:
        pairs = conn.execute(sql.PUBLISHED).all()
    hours_document = row["hours_"] if "hours_" in row else conn.execute(sql.HOURS).scalar()
    flows: dict[tuple, object] = {}
    published = {}
    for flow_id, version in pairs:
        flow = service._flow(conn, flow_id, version)
        if flow is not None:
            published[flow_id] = flows[(flow_id, version, None)] = flow
    draft = None
    if service.forced_flow_id:
        draft = service._latest_draft(conn, service.forced_flow_id)
        if draft is not None:
            flows[(service.forced_flow_id, None, draft[1])] = draft[0]
    run = conversation["state"].get("run")
    if run:
        key = flow_key(run)
        if key not in flows:
            flow = service._flow(conn, *key)
            if flow is not None:
                flows[key] = flow
    # The simulator and flow tests count as always open (DESIGN §10.6).
    hours = None if conversation["channel"] == TEST_CHANNEL else _hours(hours_document)
    return Snapshot(conversation=conversation, contact_name=row["contact_name_"] or "",
                    settings=service.settings, flows=flows, published=published, draft=draft,
                    forced_flow_id=service.forced_flow_id, processed=processed, hours=hours)


def _hours(document) -> BusinessHours | None:
    if isinstance(document, str | bytes):
        document = json.loads(document)
    return from_stored(document)


def user_exists(conn: Connection, login: str) -> bool:
    return bool(conn.execute(sql.USER_EXISTS, {"_login": login}).scalar())

