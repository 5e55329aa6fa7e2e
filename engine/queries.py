"""Read models the web app shows: plain functions over the tables the service writes.

Every SQL statement the editor needs lives here (or in :mod:`engine.reports`), so the
route modules in ``editor/`` only call functions and render what they get back. Reads go
through :func:`engine.db.read_only` (on SQLite they never queue behind the bot's write
lock); the one write, :func:`mark_read`, moves an agent-facing read mark and nothing the
engine decides on.

Times come back as aware UTC datetimes unless a function says otherwise.

- conversations as the API, the inbox and the simulator show them:
  :func:`get_conversation`, :func:`list_conversations` (opaque cursors:
  :func:`encode_cursor`, :func:`decode_cursor`), :func:`count_by_status`;
- the inbox: :func:`list_marker`, :func:`conversation_marker` (the 2-second polls'
  change markers), :func:`previews`, :func:`status_counts`, :func:`timeline_rows`,
  :func:`mark_read`;
- the web chat: :func:`contact_conversation`, :func:`recent_messages`;
- the simulator pane: :func:`run_details`;
- the CLI: :func:`timer_status`.
"""
from __future__ import annotations

import base64
from datetime import UTC, datetime

from sqlalchemy import and_, func, literal, literal_column, or_, select, table, tuple_, update
from sqlalchemy.engine import Connection, Engine

from blocks.text import normalize
from engine import conversation as machine
from engine import search_index, timeline, whatsapp_window
from engine.db import read_only
from engine.errors import Invalid, NotFound
from engine.i18n import N_
from engine.moments import aware, iso
from engine.store import (
    activity,
    contacts,
    conversation_assignees,
    conversation_reads,
    conversations,
    inbox_unread,
    messages,
    run_log,
    timers,
    users,
)

TEST_CHANNEL = "test"  # the simulator's conversations: hidden from inbox, API lists and reports


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value).astimezone(UTC)


def _stamp(value: datetime | None) -> str:
    value = _aware(value)
    return str(int(value.timestamp() * 1_000_000)) if value else "0"


# ---------------------------------------------------------------------------- conversations

def get_conversation(db: Engine, conversation_id: int, *, include_test: bool = True) -> dict:
    """One conversation as the API shows it (DESIGN §6): its summary plus ``variables``,
    ``messages``, ``activity`` and pending ``timers``. ``NotFound`` when there is none (or
    it is a simulator conversation and ``include_test`` is false)."""
    with read_only(db) as conn:
        row = conn.execute(select(conversations, contacts.c.external_id, contacts.c.name)
                           .join(contacts, contacts.c.id == conversations.c.contact_id)
                           .where(conversations.c.id == conversation_id)).mappings().first()
        if row is None or (not include_test and row["channel"] == TEST_CHANNEL):
            raise NotFound(N_("Conversa não encontrada."))
        summary = _summary(row, _assignees(conn, [row["id"]])[row["id"]], _windows(conn, [row]))
        msgs = conn.execute(select(messages).where(messages.c.conversation_id == conversation_id)
                            .order_by(messages.c.at, messages.c.id)).mappings().all()
        acts = conn.execute(select(activity).where(activity.c.conversation_id == conversation_id)
                            .order_by(activity.c.id)).mappings()
        pending = conn.execute(select(timers).where(
            timers.c.conversation_id == conversation_id, timers.c.status == "pending")
            .order_by(timers.c.due_at)).mappings()
        summary.update(
            variables=row["state"].get("vars", {}),
            messages=timeline.message_views(msgs),
            activity=[{"actor": a["actor"], "action": a["action"], "from": a["from_status"],
                       "to": a["to_status"], "at": iso(a["at"]), "detail": a["detail"]} for a in acts],
            timers=[{"id": t["id"], "kind": t["kind"], "due_at": iso(t["due_at"])} for t in pending],
        )
        return summary


def _assignees(conn: Connection, conversation_ids: list[int]) -> dict[int, list[str]]:
    """Assignees of several conversations in one query, in assignment order."""
    found: dict[int, list[str]] = {i: [] for i in conversation_ids}
    if conversation_ids:
        for row in conn.execute(select(conversation_assignees.c.conversation_id,
                                       conversation_assignees.c.login)
                                .where(conversation_assignees.c.conversation_id.in_(conversation_ids))
                                .order_by(conversation_assignees.c.assigned_at,
                                          conversation_assignees.c.login)):
            found[row.conversation_id].append(row.login)
    return found


def _windows(conn: Connection, rows) -> dict[int, datetime]:
    """Last customer message of the WhatsApp conversations among ``rows`` (their window):
    the conversations' own ``last_inbound_at``, already in the rows."""
    return {r["id"]: aware(r["last_inbound_at"]) for r in rows
            if r["channel"] == "whatsapp" and r["last_inbound_at"] is not None}


def _summary(row, assignees: list[str], last_inbound: dict[int, datetime] | None = None) -> dict:
    run = row["state"].get("run")
    # DESIGN §10.4: WhatsApp's 24-hour window; null on other channels and before any message.
    closes = whatsapp_window.closes_at((last_inbound or {}).get(row["id"]))
    return {
        "id": row["id"], "status": row["status"], "channel": row["channel"],
        "contact": {"external_id": row["external_id"], "name": row["name"]},
        "assignees": assignees,
        "run": {"state": run["state"], "flow_id": run["flow_id"], "flow_version": run.get("flow_version"),
                "block_id": run.get("block_id")} if run else None,
        "tags": row["state"].get("tags", []),
        "updated_at": iso(row["updated_at"]),
        "waiting_since": iso(row["waiting_since"]) if row["waiting_since"] is not None else None,
        "window_closes_at": iso(closes) if row["channel"] == "whatsapp" else None,
    }


SORTS = ("activity", "waiting")


def _words_in_messages(text: str, sqlite: bool):
    """Conversations with every word of ``text`` in some message: on PostgreSQL a part of
    the text (ILIKE, trigram index), on SQLite a word starting so (FTS5, ``messages_fts``,
    case- and accent-insensitive)."""
    found = None
    for word in text.split()[:8]:
        if sqlite:
            hits = select(literal_column("rowid")).select_from(table("messages_fts")).where(
                literal_column("messages_fts").op("MATCH")(_fts_phrase(word)))
            in_messages = select(messages.c.conversation_id).where(messages.c.id.in_(hits))
        else:
            in_messages = select(messages.c.conversation_id).where(
                messages.c.text.icontains(word, autoescape=True))
        match = conversations.c.id.in_(in_messages)
        found = match if found is None else and_(found, match)
    return found


def _searches(text: str | None, anywhere: str | None) -> bool:
    """Whether the filters look for words in the messages."""
    return bool((text and text.split()) or (anywhere and anywhere.split()))


def _fts_phrase(word: str) -> str:
    """One word as an FTS5 prefix phrase (quotes doubled: no FTS syntax gets through)."""
    return '"' + word.replace('"', '""') + '"*'


def _filters(query, *, q: str | None, assignee: str | None, unassigned: bool, text: str | None,
             anywhere: str | None = None, sqlite: bool = False):
    """The list's filters, shared by the list and the inbox's tab counts. ``anywhere``: the
    inbox's search box, a part of the contact's name or words in the messages."""
    if anywhere and anywhere.split():
        query = query.where(or_(conversations.c.name_norm.contains(normalize(anywhere), autoescape=True),
                                _words_in_messages(anywhere, sqlite)))
    if q:
        query = query.where(conversations.c.name_norm.contains(normalize(q), autoescape=True))
    if assignee:
        query = query.where(conversations.c.id.in_(select(conversation_assignees.c.conversation_id)
                                                   .where(conversation_assignees.c.login == assignee)))
    if unassigned:
        query = query.where(~conversations.c.id.in_(select(conversation_assignees.c.conversation_id)))
    if text and text.split():
        query = query.where(_words_in_messages(text, sqlite))
    return query


def list_conversations(db: Engine, status: str | None = None, q: str | None = None,
                       assignee: str | None = None, cursor: str | None = None,
                       limit: int = 50, unassigned: bool = False, sort: str | None = None,
                       text: str | None = None, anywhere: str | None = None) -> dict:
    """``{"items": [summary], "next_cursor"}``: newest activity first (``sort="waiting"``:
    waiting customers first, longest waiting first, then the others by newest activity),
    simulator conversations left out, ``limit`` clamped to 1…200. ``text``: words found in
    the conversation's messages. ``Invalid`` for an unknown status or sort, or a
    malformed cursor."""
    limit = max(1, min(int(limit), 200))
    if sort not in (None, "", *SORTS):
        raise Invalid(N_("Ordem deve ser \"activity\" ou \"waiting\"."), details=[
            {"path": "sort", "message": N_("Use activity ou waiting.")}])
    query = (select(conversations, contacts.c.external_id, contacts.c.name)
             .join(contacts, contacts.c.id == conversations.c.contact_id)
             .where(conversations.c.channel != TEST_CHANNEL))
    if status:
        if status not in machine.STATUSES:
            raise Invalid(N_("Status deve ser \"open\" ou \"concluded\"."), details=[
                {"path": "status", "message": N_("Use open ou concluded.")}])
        query = query.where(conversations.c.status == status)
    if _searches(text, anywhere):
        search_index.catch_up(db)  # SQLite: the messages stored a moment ago are found too
    query = _filters(query, q=q, assignee=assignee, unassigned=unassigned, text=text, anywhere=anywhere,
                     sqlite=db.dialect.name == "sqlite")
    waiting_phase = sort == "waiting"
    after = _read_cursor(cursor) if cursor else None
    rows: list = []
    with read_only(db) as conn:
        if waiting_phase and (after is None or after[2]):
            waiting = query.where(conversations.c.waiting_since.is_not(None))
            if after is not None:
                at, last_id, _ = after
                # a row value: one range of ix_conversations_waiting, read in order
                waiting = waiting.where(tuple_(conversations.c.waiting_since, conversations.c.id)
                                        > tuple_(literal(at, conversations.c.waiting_since.type),
                                                 literal(last_id, conversations.c.id.type)))
            rows = list(conn.execute(waiting.order_by(conversations.c.waiting_since, conversations.c.id)
                                     .limit(limit + 1)).mappings().all())
            after = None
        if len(rows) <= limit:
            rest = query
            if waiting_phase:
                rest = rest.where(conversations.c.waiting_since.is_(None))
            if after is not None:
                at, last_id, _ = after
                rest = rest.where(or_(conversations.c.updated_at < at,
                                      and_(conversations.c.updated_at == at, conversations.c.id < last_id)))
            rows += conn.execute(rest.order_by(conversations.c.updated_at.desc(), conversations.c.id.desc())
                                 .limit(limit + 1 - len(rows))).mappings().all()
        page = rows[:limit]
        assignees = _assignees(conn, [r["id"] for r in page])
        windows = _windows(conn, page)
        items = [_summary(r, assignees[r["id"]], windows) for r in page]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        if waiting_phase and last["waiting_since"] is not None:
            next_cursor = encode_cursor(last["waiting_since"], last["id"], waiting=True)
        else:
            next_cursor = encode_cursor(last["updated_at"], last["id"])
    return {"items": items, "next_cursor": next_cursor}


def count_by_status(db: Engine) -> dict[str, int]:
    """Conversations per status (simulator conversations left out)."""
    with read_only(db) as conn:
        rows = conn.execute(select(conversations.c.status, func.count()).where(
            conversations.c.channel != TEST_CHANNEL).group_by(conversations.c.status)).all()
    counts = {s: 0 for s in machine.STATUSES}
    for status, n in rows:
        counts[status] = n
    return counts


def iso_micro(value: datetime) -> str:
    """An aware UTC ISO-8601 text with microseconds (a cursor's exact position)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def encode_cursor(at: datetime, conversation_id: int, *, waiting: bool = False) -> str:
    """The opaque cursor after the conversation last updated ``at`` with this id
    (``waiting``: after the one waiting since ``at``, in ``sort=waiting``)."""
    raw = f"{iso_micro(at)}|{conversation_id}" + ("|w" if waiting else "")
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """``(moment, id)`` of a cursor; ``Invalid`` when it is not one of ours."""
    return _read_cursor(cursor)[:2]


def _read_cursor(cursor: str) -> tuple[datetime, int, bool]:
    """``(moment, id, waiting)``: ``waiting``, a position among waiting customers."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, conversation_id, *mark = raw.split("|")
        if mark not in ([], ["w"]):
            raise ValueError(raw)
        return datetime.fromisoformat(at), int(conversation_id), bool(mark)
    except (ValueError, UnicodeDecodeError):
        raise Invalid(N_("Cursor inválido."), details=[{"path": "cursor", "message": N_("Cursor inválido.")}]) from None


# ---------------------------------------------------------------------------- inbox

def list_marker(db: Engine) -> str:
    """Changes whenever any conversation, message, transition or read mark changes.

    ``updated_at`` moves on every write the service makes (messages, transitions, bot
    steps); ``last_read_at`` on every read mark; the highest id on a new conversation.
    Three index probes: cheap enough to poll every 2 s at a million conversations.
    """
    with read_only(db) as conn:
        row = conn.execute(select(func.max(conversations.c.id), func.max(conversations.c.updated_at),
                                  func.max(conversations.c.last_read_at))).one()
    return f"{row[0]}.{_stamp(row[1])}.{_stamp(row[2])}"


def conversation_marker(db: Engine, conversation_id: int, now: float | None = None) -> str | None:
    """Changes whenever this conversation changes (the service bumps ``version`` on every
    write) or one of its timers is fired or cancelled. None: no such conversation.
    Given ``now``, a WhatsApp conversation's marker also moves each minute of its 24-hour
    window and when it closes, so the inbox's banner and composer follow the clock."""
    pending = (select(func.count()).select_from(timers)
               .where(timers.c.conversation_id == conversation_id, timers.c.status == "pending")
               .scalar_subquery())
    with read_only(db) as conn:
        row = conn.execute(select(conversations.c.version, pending, conversations.c.channel).where(
            conversations.c.id == conversation_id)).first()
        if row is None:
            return None
        marker = f"{row[0]}.{row[1]}"
        if now is None or row[2] != "whatsapp":
            return marker
        closes = whatsapp_window.window_of(conn, conversation_id)
    left = closes.timestamp() - now if closes is not None else 0
    return f"{marker}.{int(left // 60) if left > 0 else 'closed'}"


def previews(db: Engine, ids: list[int], login: str | None = None) -> dict[int, dict]:
    """The newest message of each conversation and whether it has unread customer text
    (for ``login``: by that agent's own read marks; without: by the shared one).

    ``{id: {"message": {"direction","author","text","at"} | None, "unread": bool}}``.
    """
    if not ids:
        return {}
    newest = (select(func.max(messages.c.id)).where(messages.c.conversation_id.in_(ids),
                                                    messages.c.direction != "note")
              .group_by(messages.c.conversation_id))  # a private note is no preview
    last_in = (select(messages.c.conversation_id, func.max(messages.c.at).label("at"))
               .where(messages.c.conversation_id.in_(ids), messages.c.direction == "in")
               .group_by(messages.c.conversation_id))
    with read_only(db) as conn:
        rows = conn.execute(select(messages.c.conversation_id, messages.c.direction,
                                   messages.c.author, messages.c.text, messages.c.at)
                            .where(messages.c.id.in_(newest))).mappings().all()
        inbound = {r.conversation_id: _aware(r.at) for r in conn.execute(last_in)}
        if login is None:
            read = {r.id: _aware(r.last_read_at) for r in conn.execute(
                select(conversations.c.id, conversations.c.last_read_at)
                .where(conversations.c.id.in_(ids)))}
        else:
            read = {r.conversation_id: _aware(r.read_at) for r in conn.execute(
                select(conversation_reads.c.conversation_id, conversation_reads.c.read_at)
                .where(conversation_reads.c.conversation_id.in_(ids),
                       conversation_reads.c.login == login))}
    out: dict[int, dict] = {cid: {"message": None, "unread": False} for cid in ids}
    for row in rows:
        out[row["conversation_id"]]["message"] = {
            "direction": row["direction"], "author": row["author"], "text": row["text"],
            "at": _aware(row["at"])}
    for cid, at in inbound.items():
        seen = read.get(cid)
        out[cid]["unread"] = seen is None or at > seen
    return out


def status_counts(db: Engine, *, q: str | None = None, assignee: str | None = None,
                  unassigned: bool = False, text: str | None = None,
                  anywhere: str | None = None, cap: int | None = None) -> dict[str, int]:
    """Conversations per status under the list's other filters (the inbox's tab counts).

    The same conditions as ``Service.list_conversations``: ``q`` a part of the contact's
    name (case- and accent-insensitive), ``assignee`` a login among the assignees,
    ``unassigned`` nobody assigned. Simulator conversations are left out. ``cap``: count
    each status only up to that number (a tab says "999+"; counting a million concluded
    conversations on every page would cost more than the rest of the page).
    """
    sqlite = db.dialect.name == "sqlite"
    if _searches(text, anywhere):
        search_index.catch_up(db)
    if cap is not None:
        counts = {}
        with read_only(db) as conn:
            for status in machine.STATUSES:
                some = _filters(select(conversations.c.id).where(
                    conversations.c.channel != TEST_CHANNEL, conversations.c.status == status),
                    q=q, assignee=assignee, unassigned=unassigned, text=text, anywhere=anywhere,
                    sqlite=sqlite).limit(cap).subquery()
                counts[status] = conn.execute(select(func.count()).select_from(some)).scalar() or 0
        return counts
    query = (select(conversations.c.status, func.count())
             .where(conversations.c.channel != TEST_CHANNEL))
    query = _filters(query, q=q, assignee=assignee, unassigned=unassigned, text=text, anywhere=anywhere,
                     sqlite=sqlite)
    with read_only(db) as conn:
        rows = conn.execute(query.group_by(conversations.c.status)).all()
    counts = {status: 0 for status in machine.STATUSES}
    for status, n in rows:
        if status in counts:
            counts[status] = n
    return counts


def timeline_rows(db: Engine, conversation_id: int) -> tuple[list[dict], list[dict], datetime | None]:
    """``(messages, activity, read_mark)`` of a conversation with exact timestamps (the API
    rounds to seconds), oldest first.

    Messages: ``{"id","direction","author","text","buttons","at","external_id","details"}``
    (``details``: what a WhatsApp message carried, read by ``engine.timeline``); activity:
    ``{"id","actor","action","from_status","to_status","detail","at"}``.
    """
    with read_only(db) as conn:
        msgs = [dict(r) for r in conn.execute(
            select(messages.c.id, messages.c.direction, messages.c.author, messages.c.text,
                   messages.c.buttons, messages.c.at, messages.c.external_id, messages.c.details)
            .where(messages.c.conversation_id == conversation_id)
            .order_by(messages.c.id)).mappings()]
        acts = [dict(r) for r in conn.execute(
            select(activity.c.id, activity.c.actor, activity.c.action, activity.c.from_status,
                   activity.c.to_status, activity.c.detail, activity.c.at)
            .where(activity.c.conversation_id == conversation_id)
            .order_by(activity.c.id)).mappings()]
        read_at = conn.execute(select(conversations.c.last_read_at).where(
            conversations.c.id == conversation_id)).scalar()
    for row in msgs + acts:
        row["at"] = _aware(row["at"])
    return msgs, acts, _aware(read_at)


def mark_read(db: Engine, conversation_id: int, now: float, login: str | None = None) -> bool:
    """Move the conversation's read marks forward to ``now``: the shared one (it moves the
    list's change marker) and, given ``login``, that agent's own (DESIGN §10.8).

    Never moves them back; returns whether the shared one moved.
    """
    moment = datetime.fromtimestamp(now, UTC)
    with db.begin() as conn:
        moved = conn.execute(update(conversations).where(
            conversations.c.id == conversation_id,
            (conversations.c.last_read_at.is_(None)) | (conversations.c.last_read_at < moment),
        ).values(last_read_at=moment)).rowcount
        if login is not None:
            mine = conn.execute(update(conversation_reads).where(
                conversation_reads.c.conversation_id == conversation_id,
                conversation_reads.c.login == login,
                conversation_reads.c.read_at < moment).values(read_at=moment)).rowcount
            if not mine and conn.execute(select(conversation_reads.c.read_at).where(
                    conversation_reads.c.conversation_id == conversation_id,
                    conversation_reads.c.login == login)).first() is None:
                conn.execute(insert_ignore_read(conn), {"conversation_id": conversation_id,
                                                        "login": login, "read_at": moment})
            # Read up to now: no longer among this agent's unread (the title count).
            conn.execute(inbox_unread.delete().where(inbox_unread.c.login == login,
                                                     inbox_unread.c.conversation_id == conversation_id))
    return moved > 0


def insert_ignore_read(conn: Connection):
    """``INSERT … ON CONFLICT DO NOTHING`` into conversation_reads (two tabs at once)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(conversation_reads).on_conflict_do_nothing(
        index_elements=["conversation_id", "login"])


def read_mark(db: Engine, conversation_id: int, login: str) -> datetime | None:
    """When ``login`` last saw this conversation (None: never)."""
    with read_only(db) as conn:
        return _aware(conn.execute(select(conversation_reads.c.read_at).where(
            conversation_reads.c.conversation_id == conversation_id,
            conversation_reads.c.login == login)).scalar())


def unread_count(db: Engine, login: str) -> int:
    """Open conversations this agent handles or nobody does, with a customer message the
    agent has not seen (the inbox's title count, DESIGN §10.8): one range of the
    ``inbox_unread`` primary key, which the unit of work and :func:`mark_read` keep."""
    with read_only(db) as conn:
        return conn.execute(select(func.count()).select_from(inbox_unread)
                            .where(inbox_unread.c.login == login)).scalar() or 0


def display_names(db: Engine, logins) -> dict[str, str]:
    """``{login: name}`` of the given users (the login when a user has no name); unknown
    logins are left out."""
    logins = sorted({login for login in logins if login})
    if not logins:
        return {}
    with read_only(db) as conn:
        return {login: name or login for login, name in conn.execute(
            select(users.c.login, users.c.name).where(users.c.login.in_(logins)))}


# ---------------------------------------------------------------------------- web chat, simulator

def contact_conversation(db: Engine, channel: str, external_id: str) -> dict | None:
    """``{"id","status","version","name"}`` of a contact's conversation on ``channel``, or
    None before its first message."""
    with read_only(db) as conn:
        row = conn.execute(
            select(conversations.c.id, conversations.c.status, conversations.c.version, contacts.c.name)
            .join(contacts, contacts.c.id == conversations.c.contact_id)
            .where(contacts.c.channel == channel, contacts.c.external_id == external_id)).first()
    return None if row is None else {"id": row.id, "status": row.status, "version": row.version,
                                     "name": row.name}


def recent_messages(db: Engine, conversation_id: int, after: int = 0, limit: int = 100) -> list[dict]:
    """Messages with an id above ``after`` (the newest ``limit`` of them), oldest first:
    ``{"id","direction","author","author_name","text","buttons","at"}``.

    ``author_name`` is a person's display name (their login if unnamed), None for the
    customer and the bot.
    """
    with read_only(db) as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.direction, messages.c.author, messages.c.text,
                   messages.c.buttons, messages.c.at)
            .where(messages.c.conversation_id == conversation_id, messages.c.id > after,
                   messages.c.direction != "note")  # private notes never reach the customer
            .order_by(messages.c.id.desc()).limit(limit)).all()[::-1]
    names = display_names(db, {r.author for r in rows if r.author not in ("customer", "bot")})
    return [{"id": r.id, "direction": r.direction, "author": r.author,
             "author_name": None if r.author in ("customer", "bot") else names.get(r.author, r.author),
             "text": r.text, "buttons": [str(b) for b in (r.buttons or [])], "at": _aware(r.at)}
            for r in rows]


def run_details(db: Engine, conversation_id: int, problems: int = 10) -> tuple[dict, list[dict]]:
    """The run as the engine keeps it (``draft_revision`` included; ``{}`` without one) and
    the newest ``problems`` run-log entries, oldest first: ``{"level","block_id","message"}``."""
    with read_only(db) as conn:
        state = conn.execute(select(conversations.c.state).where(
            conversations.c.id == conversation_id)).scalar() or {}
        rows = conn.execute(select(run_log.c.level, run_log.c.block_id, run_log.c.message)
                            .where(run_log.c.conversation_id == conversation_id)
                            .order_by(run_log.c.id.desc()).limit(problems)).all()
    found = [{"level": r.level, "block_id": r.block_id, "message": r.message} for r in reversed(rows)]
    return (state.get("run") or {}), found


# ---------------------------------------------------------------------------- timers

def timer_status(db: Engine, timer_id: int) -> str | None:
    """``pending``, ``fired`` or ``cancelled``; None when there is no such timer."""
    with read_only(db) as conn:
        return conn.execute(select(timers.c.status).where(timers.c.id == timer_id)).scalar()

