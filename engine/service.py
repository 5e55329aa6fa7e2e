"""The service: the only place that touches the database, the clock and the network.

Every entry point (the REST API, the WhatsApp webhook, the web chat, the inbox, the
simulator, ``papo chat`` and the worker) goes through :class:`Service`, so they all run
the very same engine and state machine. Work on one conversation is serialized: a row
lock on PostgreSQL, the single write transaction (``BEGIN IMMEDIATE``) on SQLite.
"""
from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import regex
from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from blocks.text import contains_words, normalize
from engine import conversation as machine
from engine import core, logs, metrics
from engine.batch import NeedsConnection, Recorder
from engine.db import read_only
from engine.errors import Invalid, NotFound
from engine.graph import CompiledFlow, compile_flow, flow_cache
from engine.moments import epoch, iso, utc
from engine.settings import Settings
from engine.store import (
    activity,
    answers,
    contacts,
    conversation_assignees,
    conversations,
    flow_revisions,
    flow_versions,
    flows,
    messages,
    outbox,
    processed_messages,
    run_blocks,
    run_log,
    timers,
    users,
)

log = logging.getLogger("papo.service")

CHANNELS = ("api", "whatsapp", "web")
TEST_CHANNEL = "test"  # the simulator's conversations: hidden from inbox, API lists and reports
MAX_TEXT = 4096 * 4
MAX_JUMPS = 10
BOT_TIMER_KINDS = ("wait", "question_timeout")

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


class _Stale(Exception):
    """The conversation changed between reading it and taking the write lock."""


_INSERT_IGNORE: dict[tuple, object] = {}
_EXTRA_COLUMNS = frozenset({"contact_name_", "processed_", "published_"})
_UNKNOWN = object()


@dataclass
class _Work:
    """What one transaction produced for the caller."""

    conversation_id: int
    replies: list[dict] = field(default_factory=list)
    pending_http: dict | None = None
    read_version: int | None = None  # the conversation's version when it was read


class Service:
    """Conversations, messages, transitions and timers over one database."""

    def __init__(self, db: Engine, settings: Settings | None = None, *,
                 clock: Callable[[], float] | None = None,
                 http: Callable | None = None,
                 forced_flow_id: str | None = None):
        self.db = db
        self.settings = settings or Settings.from_env()
        self.clock = clock or time.time
        self._http = http
        # The simulator and ``papo chat`` run one flow's latest draft whatever its triggers.
        self.forced_flow_id = forced_flow_id
        self._published: dict[str, int] = {}
        self._docs: dict[tuple[str, int], dict] = {}
        self.is_postgres = db.dialect.name == "postgresql"

    # ------------------------------------------------------------------ flows
    def _flow(self, conn: Connection, flow_id: str, version: int | None,
              draft_revision: int | None = None) -> CompiledFlow | None:
        """A published version (cached forever) or a draft revision of a flow."""
        if draft_revision is not None:
            row = conn.execute(select(flow_revisions.c.document).where(
                flow_revisions.c.flow_id == flow_id, flow_revisions.c.revision == draft_revision)).first()
            return compile_flow(row.document, None) if row else None
        if version is None:
            return None
        key = (flow_id, version)
        doc = self._docs.get(key)
        if doc is None:
            row = conn.execute(select(flow_versions.c.document).where(
                flow_versions.c.flow_id == flow_id, flow_versions.c.version == version)).first()
            if row is None:
                return None
            doc = self._docs[key] = row.document
        return flow_cache.get(doc, version)

    def _published_flows(self, conn: Connection, listed: list[tuple[str, int]] | None = None
                         ) -> list[CompiledFlow]:
        """Every published flow; ``listed``: their (id, version) pairs, when already read."""
        rows = conn.execute(_PUBLISHED).all() if listed is None else listed
        found = []
        for flow_id, version in rows:
            flow = self._flow(conn, flow_id, version)
            if flow is not None:
                found.append(flow)
        return found

    def _published_flow(self, conn: Connection, flow_id: str) -> CompiledFlow | None:
        row = conn.execute(select(flows.c.published_version).where(
            flows.c.id == flow_id, flows.c.deleted_at.is_(None))).first()
        if row is None or row.published_version is None:
            return None
        return self._flow(conn, flow_id, row.published_version)

    def _latest_draft(self, conn: Connection, flow_id: str) -> tuple[CompiledFlow, int] | None:
        row = conn.execute(select(flows.c.revision).where(
            flows.c.id == flow_id, flows.c.deleted_at.is_(None))).first()
        if row is None:
            return None
        flow = self._flow(conn, flow_id, None, row.revision)
        return (flow, row.revision) if flow else None

    def _run_flow(self, conn: Connection, run: dict | None) -> CompiledFlow | None:
        if not run:
            return None
        return self._flow(conn, run["flow_id"], run.get("flow_version"), run.get("draft_revision"))

    def match_trigger(self, conn: Connection, text: str, published: list[tuple[str, int]] | None = None
                      ) -> tuple[CompiledFlow, int | None] | None:
        """The flow an unsolicited message starts: keyword triggers by priority, then default."""
        if self.forced_flow_id:
            draft = self._latest_draft(conn, self.forced_flow_id)
            return (draft[0], draft[1]) if draft else None
        candidates = self._published_flows(conn, published)
        ordered = sorted(candidates, key=lambda f: (-int(f.doc.get("priority", 0)), f.id))
        norm = normalize(text)
        for flow in ordered:
            for trigger in flow.doc.get("triggers", []):
                if trigger["type"] == "keyword" and _keyword_matches(trigger, text, norm):
                    return flow, None
        for flow in ordered:
            if any(t["type"] == "default" for t in flow.doc.get("triggers", [])):
                return flow, None
        return None

    # ------------------------------------------------------------------ inbound
    def handle_inbound(self, channel: str, contact: dict, message: dict,
                       start_flow_id: str | None = None) -> dict:
        """A customer message: store it, let the bot answer; idempotent on the message id.

        ``start_flow_id`` (the web chat's ``/c/<flow>``): a conversation that has never run a
        flow starts that published flow instead of matching triggers.
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
        text = text[:MAX_TEXT]
        now = self.clock()
        args = (channel, external_id, name, message_id, text, now, start_flow_id)
        found = None if self.is_postgres else self._inbound_before_locking(*args)
        if found is None:
            with self.db.begin() as conn:
                found = self._inbound(conn, *args)
        result, work = found
        if work is None:
            metrics.inbound_duplicate(channel)
            return result  # a message already answered: the same answer again
        if work.pending_http:
            extra = self._perform_http(work.conversation_id, work.pending_http)
            result = {**result, "replies": result["replies"] + extra["replies"], "status": extra["status"]}
            with self.db.begin() as conn:
                conn.execute(update(processed_messages).where(
                    processed_messages.c.channel == channel,
                    processed_messages.c.external_id == message_id).values(result=result))
        return result

    def _inbound(self, conn, channel, external_id, name, message_id, text, now, start_flow_id
                 ) -> tuple[dict, _Work | None]:
        conv = self._conversation_for(conn, channel, external_id, name, now, message_id)
        done = conv.pop("_processed", _UNKNOWN)
        if done is _UNKNOWN:
            row = conn.execute(_PROCESSED, {"_channel": channel, "_external_id": message_id}).first()
            done = row.result if row is not None else None
        if done is not None:
            return done, None
        work = _Work(conv["id"])
        self._store_message(conn, conv, "in", "customer", text, [], now, external_id=message_id,
                            save=False)
        self._bot_reads(conn, conv, text, now, work, start_flow_id)
        if conv.get("_unsaved", True):  # the bot's step saved it already, most of the time
            self._save_state(conn, conv, now)
        result = {"conversation_id": conv["id"], "status": conv["status"], "replies": work.replies}
        conn.execute(_INSERT_PROCESSED, {
            "channel": channel, "external_id": message_id, "conversation_id": conv["id"],
            "result": result, "at": utc(now)})
        work.read_version = conv["version"]
        return result, work

    def _inbound_before_locking(self, *args) -> tuple[dict, _Work | None] | None:
        """SQLite: the bot's step computed on a read snapshot, outside the write lock.

        SQLite has one write lock for the whole database, so how long a message holds it
        is what bounds throughput with several gunicorn workers. Here the conversation is
        read without it, the step runs against a :class:`~engine.batch.Recorder`, and only
        then is the lock taken: if the conversation's ``version`` is still the one read,
        the recorded writes are replayed and committed; else (another message or an agent
        got there first), or when the step needs to read after writing (a new contact, a
        handoff, a jump), None: the caller does it all again under the lock.
        """
        # Autocommit reads: no BEGIN/COMMIT for what is one query most of the time (the
        # version check below is what makes the reads safe to act on).
        conn = read_only(self.db).execution_options(papo_autocommit=True)
        try:
            recorder = Recorder(reader=conn)
            recorder.begin_step()
            try:
                result, work = self._inbound(recorder, *args)
            except NeedsConnection:
                return None
            conn.commit()  # nothing to commit: ends SQLAlchemy's idea of a transaction
            if work is None:
                return result, None
            recorder.end_step(keep=True)
            conn.execution_options(papo_read_only=False, papo_autocommit=False)
            try:
                with conn.begin():  # BEGIN IMMEDIATE: the write lock, from here to the commit
                    cursor = conn.connection.driver_connection.cursor()  # as cheap as it gets
                    version = cursor.execute(_VERSION_SQL, (work.conversation_id,)).fetchone()
                    cursor.close()
                    if version is None or version[0] != work.read_version:
                        raise _Stale
                    recorder.replay(conn)
            except (_Stale, IntegrityError):  # e.g. the same message id, answered meanwhile
                return None
            return result, work
        finally:
            conn.close()

    def _bot_reads(self, conn: Connection, conv: dict, text: str, now: float, work: _Work,
                   start_flow_id: str | None = None) -> None:
        """DESIGN §3 "Inbound message when concluded", in order."""
        if conv["status"] == machine.OPEN:
            return  # people are in charge; the message waits for them in the inbox
        state = conv["state"]
        run = state.get("run")
        flow = self._run_flow(conn, run)
        waiting = run and run["state"] == core.WAITING_INPUT and flow is not None
        block = flow.blocks.get(run["block_id"]) if waiting else None
        # 0. a choice question whose option this message picks takes it as the answer
        if block is not None and block["data"].get("input") == "choice":
            from blocks.question import match_option

            if match_option(block["data"], text) is not None:
                self._feed(conn, conv, flow, core.UserMessage(now, text), work)
                return
        # 1. a request for a human opens the conversation
        if self._asks_for_human(text):
            self._transition(conn, conv, "handoff", "customer", now, work)
            return
        # 2. an answer to the waiting question
        if block is not None:
            self._feed(conn, conv, flow, core.UserMessage(now, text), work)
            return
        # 3. triggers of published flows (or the forced flow of the simulator)
        if start_flow_id and run is None:
            flow = self._published_flow(conn, start_flow_id)
            if flow is not None:
                self._start(conn, conv, flow, now, work)
                return
        self._start_triggered(conn, conv, text, now, work)

    def _start_triggered(self, conn, conv, text, now, work) -> None:
        if self.forced_flow_id and conv["state"].get("run") and \
                conv["state"]["run"]["state"] != core.ENDED:
            return  # the simulator's run is waiting for a timer or a person: no restart
        found = self.match_trigger(conn, text, conv.pop("_published", None))
        if found is None:
            return
        flow, draft_revision = found
        self._start(conn, conv, flow, now, work, draft_revision=draft_revision)

    def _start(self, conn, conv, flow: CompiledFlow, now: float, work: _Work,
               block_id: str | None = None, draft_revision: int | None = None, jumps: int = 0) -> None:
        event = core.Start(now, f"r-{uuid.uuid4().hex[:16]}", block_id)
        self._feed(conn, conv, flow, event, work, draft_revision=draft_revision, jumps=jumps)

    def _asks_for_human(self, text: str) -> bool:
        norm = normalize(text)
        for keyword in self.settings.handoff_keywords:
            if normalize(keyword) == norm or contains_words(text, keyword):
                return True
        return False

    # ------------------------------------------------------------------ engine glue
    def _feed(self, conn: Connection, conv: dict, flow: CompiledFlow, event, work: _Work,
              draft_revision: int | None = None, jumps: int = 0) -> None:
        """Run one engine step and apply what it produced, in this transaction."""
        before = conv["state"].get("run") or {}
        state, outbound, effects = core.step(flow, conv["state"], event)
        metrics.bot_step(event)
        logs.bind(conversation_id=conv["id"], flow_id=flow.id, flow_version=flow.version)
        run = state.get("run")
        if run is not None and isinstance(event, core.Start) and draft_revision is not None:
            run["draft_revision"] = draft_revision
        elif run is not None and before.get("draft_revision") and run.get("id") == before.get("id"):
            run["draft_revision"] = before["draft_revision"]
        conv["state"] = state
        now = event.at
        if run is not None and (run.get("id"), run.get("token")) != (before.get("id"), before.get("token")):
            # The run moved: its wait or question timeout is void. ``timers`` in the run
            # says whether one was scheduled (absent: not known, so cancel to be sure).
            if before.get("timers", True):
                self._cancel_bot_timers(conn, conv["id"])
            run["timers"] = False
        for out in outbound:  # the state is saved once, at the end of this step
            self._store_message(conn, conv, "out", "bot", out["text"], out["buttons"], now, save=False)
            work.replies.append({"text": out["text"], "buttons": out["buttons"]})
        jump = None
        for effect in effects:
            kind = effect["type"]
            if kind == "schedule_timer":
                self._schedule(conn, conv["id"], effect["kind"], effect["due_at"],
                               {"token": effect["token"], "run_id": run["id"], "block_id": effect["block_id"]})
                run["timers"] = True
            elif kind == "open":
                self._flow_opens(conn, conv, effect, now, work)
            elif kind == "conclude":
                self._transition(conn, conv, "flow_conclude", "bot", now, work,
                                 detail={"reason": effect.get("reason") or None})
            elif kind == "http":
                work.pending_http = {**effect, "run_id": run["id"], "token": run["token"]}
            elif kind == "jump":
                jump = effect
            elif kind == "answer":
                value = effect["value"]
                conn.execute(_INSERT_ANSWER, {
                    "conversation_id": conv["id"], "name": effect["name"], "at": utc(now),
                    "value": value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)})
            elif kind == "visit":
                self._record_visits(conn, effect, now)
            elif kind == "log":
                self._log(conn, conv["id"], effect["level"], effect.get("block_id"),
                          effect["message"][:2000], now)
        self._save_state(conn, conv, now)
        if jump is not None:
            self._jump(conn, conv, jump, now, work, jumps + 1)

    def _jump(self, conn, conv, jump: dict, now: float, work: _Work, jumps: int) -> None:
        if jumps > MAX_JUMPS:
            self._log(conn, conv["id"], "error", None, f"mais de {MAX_JUMPS} saltos entre fluxos: parado", now)
            return
        target: CompiledFlow | None = None
        draft_revision = None
        if self.forced_flow_id and jump["flow_id"] == self.forced_flow_id:
            found = self._latest_draft(conn, jump["flow_id"])
            if found:
                target, draft_revision = found
        else:
            target = self._published_flow(conn, jump["flow_id"])
        if target is None:
            self._log(conn, conv["id"], "error", None,
                      f"salto para o fluxo {jump['flow_id']}, que não está publicado", now)
            return
        self._start(conn, conv, target, now, work, block_id=jump.get("block_id"),
                    draft_revision=draft_revision, jumps=jumps)

    def _flow_opens(self, conn, conv, effect: dict, now: float, work: _Work) -> None:
        detail = {"note": effect.get("note") or None, "block_id": effect.get("block_id")}
        self._transition(conn, conv, "flow_open", "bot", now, work, detail=detail)
        login = effect.get("assign_to")
        if login:
            if self._user_exists(conn, login):
                self._transition(conn, conv, "assign", "bot", now, work, user=login)
            else:
                self._log(conn, conv["id"], "warning", effect.get("block_id"),
                          f"atribuição ignorada: o usuário {login} não existe", now)

    def _record_visits(self, conn, effect: dict, now: float) -> None:
        rows = [{"run_id": effect["run_id"], "flow_id": effect["flow_id"], "block_id": b, "at": utc(now)}
                for b in effect["block_ids"]]
        conn.execute(self._insert_ignore(run_blocks, ["run_id", "flow_id", "block_id"]), rows)

    def _insert_ignore(self, table, keys):
        """``INSERT … ON CONFLICT DO NOTHING`` for this database, built once per process
        (one statement object, so batched writes of many steps group together)."""
        key = (self.is_postgres, table.name, tuple(keys))
        found = _INSERT_IGNORE.get(key)
        if found is None:
            if self.is_postgres:
                from sqlalchemy.dialects.postgresql import insert as dialect_insert
            else:
                from sqlalchemy.dialects.sqlite import insert as dialect_insert
            found = _INSERT_IGNORE[key] = dialect_insert(table).on_conflict_do_nothing(index_elements=keys)
        return found

    def _log(self, conn, conversation_id, level, block_id, message, now) -> None:
        conn.execute(_INSERT_LOG, {"conversation_id": conversation_id, "level": level,
                                   "block_id": block_id, "message": message, "at": utc(now)})

    # ------------------------------------------------------------------ HTTP blocks
    def _perform_http(self, conversation_id: int, call: dict) -> dict:
        """Make the block's request outside any transaction, then feed the answer back."""
        if self._http is not None:
            outcome = self._http(call, self.settings.http_allow_hosts)
        else:
            from engine.http import perform

            outcome = perform(call, self.settings.http_allow_hosts)
        replies: list[dict] = []
        status = None
        while True:
            now = self.clock()
            with self.db.begin() as conn:
                conv = self._lock(conn, conversation_id)
                status = conv["status"]
                run = conv["state"].get("run") or {}
                if (run.get("id"), run.get("token"), run.get("pending")) != (call["run_id"], call["token"], "http"):
                    break  # the run moved on while the request was in flight
                if getattr(outcome, "error", None):
                    self._log(conn, conversation_id, "warning", call.get("block_id"),
                              f"requisição HTTP falhou: {outcome.error}", now)
                work = _Work(conversation_id)
                flow = self._run_flow(conn, run)
                if flow is None:
                    break
                self._feed(conn, conv, flow, core.HttpResult(now, outcome.ok, outcome.status, outcome.body), work)
                replies.extend(work.replies)
                status = conv["status"]
            if not work.pending_http:
                break
            call = work.pending_http
            from engine.http import perform

            outcome = (self._http or perform)(call, self.settings.http_allow_hosts)
        return {"replies": replies, "status": status}

    def ensure_conversation(self, channel: str, contact: dict) -> int:
        """The conversation of a contact, created (concluded, bot in charge) if new."""
        channel = _check_channel(channel)
        external_id = _clean(contact.get("external_id"), "contact.external_id", 200)
        name = str(contact.get("name") or "").strip()[:200]
        with self.db.begin() as conn:
            conv = self._conversation_for(conn, channel, external_id, name, self.clock())
            self._save_state(conn, conv, epoch(conv["updated_at"]))
            return conv["id"]

    # ------------------------------------------------------------------ storage helpers
    def _conversation_for(self, conn, channel, external_id, name, now, message_id=None) -> dict:
        """The contact's conversation, locked (created if new). With ``message_id`` on
        SQLite, also ``conv["_processed"]`` (that message's stored answer, or None) and
        ``conv["_published"]`` (the published flows' ids and versions)."""
        key = {"_channel": channel, "_external_id": external_id}
        if message_id is not None and not self.is_postgres:
            found = conn.execute(_INBOUND_SQLITE, {**key, "_message_id": message_id}).mappings().first()
        else:
            query = _CONVERSATION_BY_CONTACT_FOR_UPDATE if self.is_postgres else _CONVERSATION_BY_CONTACT
            found = conn.execute(query, key).mappings().first()
        if found is not None:  # a known contact: its conversation, locked, in one query
            if name and found["contact_name_"] != name:
                conn.execute(update(contacts).where(contacts.c.id == found["contact_id"]).values(name=name))
            conv = self._renamed(self._locked(conn, found), name)
            if "processed_" in found:
                conv["_processed"] = found["processed_"]
                conv["_published"] = [tuple(pair) for pair in json.loads(found["published_"])]
            return conv
        row = conn.execute(_CONTACT, key).first()
        if row is None:
            conn.execute(self._insert_ignore(contacts, ["channel", "external_id"]).values(
                channel=channel, external_id=external_id, name=name))
            row = conn.execute(_CONTACT, key).first()
        contact_id = row.id
        if name and row.name != name:
            conn.execute(update(contacts).where(contacts.c.id == contact_id).values(name=name))
        existing = conn.execute(_CONVERSATION_OF, {"_contact_id": contact_id}).first()
        if existing is None:
            state = core.new_state({"name": name or row.name, "external_id": external_id})
            conn.execute(self._insert_ignore(conversations, ["contact_id"]).values(
                contact_id=contact_id, channel=channel, status=machine.CONCLUDED,
                name_norm=normalize(name or row.name), state=state, version=1,
                created_at=utc(now), updated_at=utc(now)))
            existing = conn.execute(_CONVERSATION_OF, {"_contact_id": contact_id}).first()
        return self._renamed(self._lock(conn, existing.id), name)

    @staticmethod
    def _renamed(conv: dict, name: str) -> dict:
        if name and conv["state"]["contact"].get("name") != name:
            conv["state"]["contact"]["name"] = name
            conv["name_norm"] = normalize(name)
            conv["_unsaved"] = True
        return conv

    def _lock(self, conn: Connection, conversation_id: int) -> dict:
        query = _CONVERSATION_FOR_UPDATE if self.is_postgres else _CONVERSATION
        row = conn.execute(query, {"_id": conversation_id}).mappings().first()
        if row is None:
            raise NotFound("Conversa não encontrada.")
        return self._locked(conn, row)

    def _locked(self, conn: Connection, row) -> dict:
        """The conversation dict of a row read under the lock, ours to mutate: the JSON
        ``state`` was decoded for this row alone, so no copy is needed (use a row once).

        ``_unsaved`` (absent = unknown) tells whether it changed since it was last saved."""
        return {k: v for k, v in row.items() if k not in _EXTRA_COLUMNS}

    @staticmethod
    def _attending(conn: Connection, conv: dict) -> list[str]:
        """Who attends ``conv`` (read when a transition needs it, not on every message)."""
        if "assignees" not in conv:
            conv["assignees"] = [r.login for r in conn.execute(_ASSIGNEES, {"_id": conv["id"]})]
        return conv["assignees"]

    def _save_state(self, conn, conv: dict, now: float) -> None:
        self._flush_messages(conn, conv)
        conn.execute(_SAVE_STATE, {
            "_id": conv["id"], "_state": conv["state"], "_status": conv["status"],
            "_name_norm": conv["name_norm"], "_updated_at": utc(now),
            "_opened_at": conv.get("opened_at")})
        conv["_unsaved"] = False

    def _store_message(self, conn, conv, direction, author, text, buttons, now, external_id=None,
                       save: bool = True) -> None:
        """Store one message (and its WhatsApp outbox row) with the conversation's next save;
        ``save=False`` when the caller saves the conversation itself later in the same
        transaction (then one statement stores every message of the step)."""
        conv.setdefault("_messages", []).append({
            "conversation_id": conv["id"], "direction": direction, "author": author, "text": text,
            "buttons": list(buttons or []), "at": utc(now), "external_id": external_id})
        if save:
            self._save_state(conn, conv, now)
        else:
            conv["_unsaved"] = True

    def _flush_messages(self, conn, conv: dict) -> None:
        rows = conv.pop("_messages", None)
        if not rows:
            return
        if conv["channel"] != "whatsapp":
            conn.execute(_INSERT_MESSAGE, rows)
            return
        to = conv["state"].get("contact", {}).get("external_id")
        for row in rows:
            message_id = conn.execute(_INSERT_MESSAGE, row).inserted_primary_key[0]
            if row["direction"] == "out":
                conn.execute(_INSERT_OUTBOX, {
                    "conversation_id": conv["id"], "channel": "whatsapp",
                    "idempotency_key": f"msg-{message_id}",
                    "payload": {"to": to, "text": row["text"], "buttons": row["buttons"],
                                "message_id": message_id},
                    "status": "pending", "attempts": 0, "next_attempt_at": row["at"], "created_at": row["at"]})

    def _user_exists(self, conn, login: str) -> bool:
        return conn.execute(select(users.c.id).where(users.c.login == login)).first() is not None

    # ------------------------------------------------------------------ timers
    def _schedule(self, conn, conversation_id: int, kind: str, due_at: float, payload: dict) -> None:
        conn.execute(_INSERT_TIMER, {"conversation_id": conversation_id, "kind": kind,
                                     "due_at": utc(due_at), "payload": payload, "status": "pending"})

    def _cancel_bot_timers(self, conn, conversation_id: int) -> None:
        conn.execute(_CANCEL_BOT_TIMERS, {"_id": conversation_id})

    def _schedule_auto_conclude(self, conn, conv: dict, now: float) -> None:
        after = self.settings.auto_conclude_after
        if not after:
            return
        pending = conn.execute(select(timers.c.id).where(
            timers.c.conversation_id == conv["id"], timers.c.status == "pending",
            timers.c.kind == "auto_conclude")).first()
        if pending is None:
            self._schedule(conn, conv["id"], "auto_conclude", now + after, {})

    def fire_timer(self, timer_id: int, now: float | None = None) -> dict:
        """Fire one timer: feed it to the engine or auto-conclude. Returns its replies."""
        return self.fire_timers([timer_id], now)[0]

    def fire_timers(self, timer_ids: list[int], now: float | None = None) -> list[dict]:
        """Fire several timers in ONE transaction (one commit for the batch, which is what
        bounds throughput).

        Conversations are locked in id order, so two workers never deadlock. A timer fires
        exactly once: its status flips pending → fired under the conversation lock, in the
        same transaction as everything it caused; a crash rolls the whole batch back.
        The engine steps run first and their writes go to the database together
        (:mod:`engine.batch`); a timer whose step must read, or that fails, is fired on its
        own in a savepoint, so one failing timer cannot spoil the others.
        Returns one ``{"timer_id", "fired", "replies", "conversation_id"?, "error"?}`` per id.
        """
        now = self.clock() if now is None else now
        results: dict[int, dict] = {i: {"timer_id": i, "fired": False, "replies": []} for i in timer_ids}
        works: list[_Work] = []
        with self.db.begin() as conn:
            rows = conn.execute(select(timers).where(
                timers.c.id.in_(timer_ids), timers.c.status == "pending")).mappings().all()
            rows = sorted(rows, key=lambda r: (r["conversation_id"], r["id"]))
            if rows:
                works = self._fire_rows(conn, rows, now, results)
        for work in works:  # HTTP blocks reached by a timer run outside the transaction
            if work.pending_http:
                work.replies.extend(self._perform_http(work.conversation_id, work.pending_http)["replies"])
        return [results[i] for i in timer_ids]

    def _fire_rows(self, conn, rows: list, now: float, results: dict[int, dict]) -> list[_Work]:
        ids = sorted({r["conversation_id"] for r in rows})
        query = select(conversations).where(conversations.c.id.in_(ids)).order_by(conversations.c.id)
        locked = {r["id"]: r for r in conn.execute(
            query.with_for_update() if self.is_postgres else query).mappings()}
        first: dict[int, dict] = {}  # conversation id → its first due timer: fired together
        later = []  # a second timer of a conversation: on its own, after the first one
        for row in rows:
            conversation_id = row["conversation_id"]
            if conversation_id not in locked:
                continue
            if conversation_id in first:
                later.append(row)
            else:
                first[conversation_id] = row
        # Flip them under the conversation locks: another worker may have fired some.
        flipped = set(conn.execute(update(timers).where(
            timers.c.id.in_([r["id"] for r in first.values()]), timers.c.status == "pending")
            .values(status="fired", fired_at=utc(now)).returning(timers.c.id)).scalars())
        recorder = Recorder()
        done: list[tuple[int, _Work]] = []
        alone, failed = [], []  # alone: flipped, but to be fired on the real connection
        for row in first.values():
            if row["id"] not in flipped:
                continue
            recorder.begin_step()
            try:
                work = self._fire_row(recorder, row, self._locked(conn, locked[row["conversation_id"]]), now)
            except NeedsConnection:
                recorder.end_step(keep=False)
                alone.append(row)
                continue
            except Exception as exc:
                recorder.end_step(keep=False)
                log.exception("timer %s failed", row["id"])
                failed.append(row["id"])
                results[row["id"]]["error"] = f"{type(exc).__name__}: {exc}"
                continue
            recorder.end_step(keep=True)
            done.append((row["id"], work))
        try:
            with conn.begin_nested():
                recorder.replay(conn)
        except Exception:  # e.g. a constraint: fire each of them on its own, to find the one
            log.exception("writing %d timers together failed; firing them one by one", len(done))
            batched = {timer_id for timer_id, _ in done}
            alone = [row for row in first.values() if row["id"] in batched or row in alone]
            done = []
        flipped_alone = {row["id"] for row in alone}
        for row in sorted(alone + later, key=lambda r: (r["conversation_id"], r["id"])):
            try:
                with conn.begin_nested():
                    conv = self._lock(conn, row["conversation_id"])
                    if row["id"] not in flipped_alone and conn.execute(update(timers).where(
                            timers.c.id == row["id"], timers.c.status == "pending")
                            .values(status="fired", fired_at=utc(now))).rowcount != 1:
                        continue  # cancelled by the first timer's step, or fired elsewhere
                    work = self._fire_row(conn, row, conv, now)
            except Exception as exc:
                log.exception("timer %s failed", row["id"])
                if row["id"] in flipped_alone:
                    failed.append(row["id"])  # (a later one's flip was rolled back with it)
                results[row["id"]]["error"] = f"{type(exc).__name__}: {exc}"
                continue
            done.append((row["id"], work))
        if failed:  # they stay pending; the worker tries them again later
            conn.execute(update(timers).where(timers.c.id.in_(failed)).values(status="pending", fired_at=None))
        for timer_id, work in done:
            results[timer_id].update(fired=True, conversation_id=work.conversation_id, replies=work.replies)
        return [work for _, work in done]

    def _fire_row(self, conn, row, conv: dict, now: float) -> _Work:
        """What a timer (already flipped to fired) does to its locked conversation."""
        work = _Work(conv["id"])
        if row["kind"] == "auto_conclude":
            self._auto_conclude(conn, conv, now, work)
            return work
        run = conv["state"].get("run") or {}
        payload = row["payload"] or {}
        if run.get("id") == payload.get("run_id") and conv["status"] == machine.CONCLUDED:
            flow = self._run_flow(conn, run)
            if flow is not None:
                self._feed(conn, conv, flow, core.Timer(now, row["kind"], payload.get("token", -1)), work)
        return work

    def _auto_conclude(self, conn, conv: dict, now: float, work: _Work) -> None:
        after = self.settings.auto_conclude_after
        if conv["status"] != machine.OPEN or not after:
            return
        idle_since = epoch(conv["updated_at"])
        if now - idle_since + 1e-6 < after:  # activity since: try again later
            self._schedule(conn, conv["id"], "auto_conclude", idle_since + after, {})
            return
        self._transition(conn, conv, "auto_conclude", "system", now, work)

    def due_timers(self, now: float | None = None, limit: int = 100) -> list[int]:
        """Due timers of real conversations (the simulator fires its own on its own clock)."""
        now = self.clock() if now is None else now
        with read_only(self.db) as conn:
            return [r.id for r in conn.execute(select(timers.c.id).where(
                timers.c.status == "pending", timers.c.due_at <= utc(now),
                timers.c.conversation_id.not_in(
                    select(conversations.c.id).where(conversations.c.channel == TEST_CHANNEL)))
                .order_by(timers.c.due_at, timers.c.id).limit(limit))]

    def fire_due_timers(self, now: float | None = None, limit: int = 1000) -> list[dict]:
        """Fire every timer due at ``now`` (one process; the worker claims with a lease)."""
        results = []
        for timer_id in self.due_timers(now, limit):
            result = self.fire_timer(timer_id, now)
            if result["fired"]:
                results.append(result)
        return results

    def next_timer(self, conversation_id: int) -> dict | None:
        with read_only(self.db) as conn:
            row = conn.execute(select(timers).where(
                timers.c.conversation_id == conversation_id, timers.c.status == "pending")
                .order_by(timers.c.due_at, timers.c.id).limit(1)).mappings().first()
            return dict(row) if row else None

    def list_timers(self, conversation_id: int | None = None, limit: int = 500) -> list[dict]:
        query = select(timers).where(timers.c.status == "pending").order_by(timers.c.due_at).limit(limit)
        if conversation_id is not None:
            query = query.where(timers.c.conversation_id == conversation_id)
        with read_only(self.db) as conn:
            return [{"id": r["id"], "conversation_id": r["conversation_id"], "kind": r["kind"],
                     "due_at": iso(r["due_at"])} for r in conn.execute(query).mappings()]

    def cancel_timer(self, timer_id: int) -> bool:
        with self.db.begin() as conn:
            done = conn.execute(update(timers).where(timers.c.id == timer_id, timers.c.status == "pending")
                                .values(status="cancelled"))
            return done.rowcount == 1

    # ------------------------------------------------------------------ transitions
    def _transition(self, conn, conv: dict, action: str, actor: str, now: float, work: _Work,
                    user: str | None = None, detail: dict | None = None) -> bool:
        """Apply one row of the transition table to ``conv`` (locked) and its run."""
        assigned = self._attending(conn, conv)
        outcome = machine.plan(action, conv["status"], assigned, actor, user)
        if not outcome.changed:
            return False
        metrics.transition(action)
        before = conv["status"]
        added = [u for u in outcome.assignees if u not in assigned]
        removed = [u for u in assigned if u not in outcome.assignees]
        for login in added:
            conn.execute(insert(conversation_assignees).values(
                conversation_id=conv["id"], login=login, assigned_at=utc(now)))
        for login in removed:
            conn.execute(conversation_assignees.delete().where(
                conversation_assignees.c.conversation_id == conv["id"],
                conversation_assignees.c.login == login))
        conv["assignees"] = outcome.assignees
        conv["status"] = outcome.status
        entry_detail = dict(outcome.activity.get("detail") or {})
        entry_detail.update({k: v for k, v in (detail or {}).items() if v is not None})
        if before != machine.OPEN and outcome.status == machine.OPEN:
            conv["opened_at"] = utc(now)
            self._schedule_auto_conclude(conn, conv, now)
        if before == machine.OPEN and outcome.status == machine.CONCLUDED:
            entry_detail.update(self._resolution(conn, conv, now))
            conv["opened_at"] = None
            conn.execute(update(timers).where(
                timers.c.conversation_id == conv["id"], timers.c.status == "pending",
                timers.c.kind == "auto_conclude").values(status="cancelled"))
        conn.execute(_INSERT_ACTIVITY, {
            "conversation_id": conv["id"], "actor": actor, "action": outcome.activity["action"],
            "from_status": before, "to_status": outcome.status, "detail": entry_detail or None,
            "at": utc(now)})
        self._save_state(conn, conv, now)
        self._bot_after(conn, conv, outcome.bot, now, work)
        return True

    def _resolution(self, conn, conv: dict, now: float) -> dict:
        opened = conv.get("opened_at")
        if opened is None:
            return {}
        self._flush_messages(conn, conv)
        first = conn.execute(select(func.min(messages.c.at)).where(
            messages.c.conversation_id == conv["id"], messages.c.direction == "out",
            messages.c.author != "bot", messages.c.at >= opened)).scalar()
        out = {"opened_at": iso(opened), "resolution_s": round(now - epoch(opened), 3)}
        if first is not None:
            out["first_response_s"] = round(epoch(first) - epoch(opened), 3)
        return out

    def _bot_after(self, conn, conv: dict, bot: str, now: float, work: _Work) -> None:
        run = conv["state"].get("run")
        if bot in ("suspend", "interrupt"):
            if run and run["state"] in core.WAITING:
                flow = self._run_flow(conn, run)
                if flow is not None:
                    self._feed(conn, conv, flow, core.Opened(now, interrupt=bot == "interrupt"), work)
                else:
                    conv["state"]["run"]["state"] = core.ENDED
                    self._save_state(conn, conv, now)
            self._cancel_bot_timers(conn, conv["id"])
        elif bot == "conclude":
            resumed = False
            if run and run["state"] != core.ENDED:
                flow = self._run_flow(conn, run)
                if flow is not None:
                    was_at = (run["id"], run["state"], run.get("suspended_by"))
                    self._feed(conn, conv, flow, core.Concluded(now), work)
                    after = conv["state"].get("run") or {}
                    resumed = was_at[1] == core.SUSPENDED and was_at[2] == "flow" and \
                        after.get("id") == was_at[0]
                else:
                    conv["state"]["run"]["state"] = core.ENDED
                    self._save_state(conn, conv, now)
            if not resumed:
                self._start_on_conclude_flow(conn, conv, now, work)

    def _start_on_conclude_flow(self, conn, conv, now, work) -> None:
        flow_id = self.settings.on_conclude_flow
        if not flow_id:
            return
        flow = self._published_flow(conn, flow_id)
        if flow is not None:
            self._start(conn, conv, flow, now, work)

    def act(self, conversation_id: int, action: str, actor: str, user: str | None = None) -> dict:
        """An agent's action (DESIGN §6): returns ``{"conversation", "replies"}``."""
        if action not in machine.AGENT_ACTIONS or action == "agent_message":
            raise Invalid(f"Ação desconhecida: {action}.")
        now = self.clock()
        with self.db.begin() as conn:
            conv = self._lock(conn, conversation_id)
            if user is not None:
                if not isinstance(user, str) or not self._user_exists(conn, user):
                    raise Invalid(f"O usuário \"{user}\" não existe.", details=[
                        {"path": "$.user", "message": "Usuário desconhecido."}])
            elif action in ("assign", "unassign"):
                raise Invalid("Informe o usuário (campo \"user\").", details=[
                    {"path": "$.user", "message": "Campo obrigatório."}])
            work = _Work(conv["id"])
            self._transition(conn, conv, action, actor, now, work, user=user)
        replies = self._after_http(work)
        return {"conversation": self.get_conversation(conversation_id), "replies": replies}

    def agent_message(self, conversation_id: int, actor: str, text: str) -> dict:
        """An agent writes to the customer: the conversation opens and the bot pauses."""
        if not isinstance(text, str) or not text.strip():
            raise Invalid("A mensagem não pode ficar vazia.", details=[
                {"path": "$.text", "message": "Texto vazio ou ausente."}])
        now = self.clock()
        with self.db.begin() as conn:
            conv = self._lock(conn, conversation_id)
            work = _Work(conv["id"])
            self._transition(conn, conv, "agent_message", actor, now, work)
            self._store_message(conn, conv, "out", actor, text[:MAX_TEXT], [], now)
            if conv["status"] == machine.OPEN:
                self._schedule_auto_conclude(conn, conv, now)
        return {"conversation": self.get_conversation(conversation_id), "replies": []}

    def _after_http(self, work: _Work) -> list[dict]:
        if work.pending_http:
            return work.replies + self._perform_http(work.conversation_id, work.pending_http)["replies"]
        return work.replies

    # ------------------------------------------------------------------ reading
    def get_conversation(self, conversation_id: int, *, include_test: bool = True) -> dict:
        with read_only(self.db) as conn:
            row = conn.execute(select(conversations, contacts.c.external_id, contacts.c.name)
                               .join(contacts, contacts.c.id == conversations.c.contact_id)
                               .where(conversations.c.id == conversation_id)).mappings().first()
            if row is None or (not include_test and row["channel"] == TEST_CHANNEL):
                raise NotFound("Conversa não encontrada.")
            summary = self._summary(conn, row)
            msgs = conn.execute(select(messages).where(messages.c.conversation_id == conversation_id)
                                .order_by(messages.c.id)).mappings()
            acts = conn.execute(select(activity).where(activity.c.conversation_id == conversation_id)
                                .order_by(activity.c.id)).mappings()
            pending = conn.execute(select(timers).where(
                timers.c.conversation_id == conversation_id, timers.c.status == "pending")
                .order_by(timers.c.due_at)).mappings()
            summary.update(
                variables=row["state"].get("vars", {}),
                messages=[{"direction": m["direction"], "author": m["author"], "text": m["text"],
                           "buttons": m["buttons"] or [], "at": iso(m["at"])} for m in msgs],
                activity=[{"actor": a["actor"], "action": a["action"], "from": a["from_status"],
                           "to": a["to_status"], "at": iso(a["at"]), "detail": a["detail"]} for a in acts],
                timers=[{"id": t["id"], "kind": t["kind"], "due_at": iso(t["due_at"])} for t in pending],
            )
            return summary

    def _assignees(self, conn, conversation_ids: list[int]) -> dict[int, list[str]]:
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

    def _summary(self, conn, row, assignees: list[str] | None = None) -> dict:
        run = row["state"].get("run")
        if assignees is None:
            assignees = self._assignees(conn, [row["id"]])[row["id"]]
        return {
            "id": row["id"], "status": row["status"], "channel": row["channel"],
            "contact": {"external_id": row["external_id"], "name": row["name"]},
            "assignees": assignees,
            "run": {"state": run["state"], "flow_id": run["flow_id"], "flow_version": run.get("flow_version"),
                    "block_id": run.get("block_id")} if run else None,
            "tags": row["state"].get("tags", []),
            "updated_at": iso(row["updated_at"]),
        }

    def list_conversations(self, status: str | None = None, q: str | None = None,
                           assignee: str | None = None, cursor: str | None = None,
                           limit: int = 50, unassigned: bool = False) -> dict:
        """Newest activity first, with an opaque cursor for the next page."""
        limit = max(1, min(int(limit), 200))
        query = (select(conversations, contacts.c.external_id, contacts.c.name)
                 .join(contacts, contacts.c.id == conversations.c.contact_id)
                 .where(conversations.c.channel != TEST_CHANNEL))
        if status:
            if status not in machine.STATUSES:
                raise Invalid("Status deve ser \"open\" ou \"concluded\".", details=[
                    {"path": "status", "message": "Use open ou concluded."}])
            query = query.where(conversations.c.status == status)
        if q:
            query = query.where(conversations.c.name_norm.contains(normalize(q), autoescape=True))
        if assignee:
            query = query.where(conversations.c.id.in_(select(conversation_assignees.c.conversation_id)
                                                       .where(conversation_assignees.c.login == assignee)))
        if unassigned:
            query = query.where(~conversations.c.id.in_(select(conversation_assignees.c.conversation_id)))
        if cursor:
            at, last_id = _decode_cursor(cursor)
            query = query.where(or_(conversations.c.updated_at < at,
                                    and_(conversations.c.updated_at == at, conversations.c.id < last_id)))
        query = query.order_by(conversations.c.updated_at.desc(), conversations.c.id.desc()).limit(limit + 1)
        with read_only(self.db) as conn:
            rows = conn.execute(query).mappings().all()
            page = rows[:limit]
            assignees = self._assignees(conn, [r["id"] for r in page])
            items = [self._summary(conn, r, assignees[r["id"]]) for r in page]
        next_cursor = _encode_cursor(rows[limit - 1]["updated_at"], rows[limit - 1]["id"]) \
            if len(rows) > limit else None
        return {"items": items, "next_cursor": next_cursor}

    def count_by_status(self) -> dict:
        with read_only(self.db) as conn:
            rows = conn.execute(select(conversations.c.status, func.count()).where(
                conversations.c.channel != TEST_CHANNEL).group_by(conversations.c.status)).all()
        counts = {s: 0 for s in machine.STATUSES}
        counts.update({status: n for status, n in rows})
        return counts


def _keyword_matches(trigger: dict, text: str, norm: str) -> bool:
    value = trigger["value"]
    if trigger["match"] == "exact":
        return normalize(value) == norm
    if trigger["match"] == "contains":
        return normalize(value) in norm
    if len(text) > 2000:
        return False
    try:
        return regex.search(value, norm, regex.IGNORECASE, timeout=0.05) is not None or \
            regex.search(value, text, regex.IGNORECASE, timeout=0.05) is not None
    except (regex.error, TimeoutError):
        return False


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


def _encode_cursor(at: datetime, conversation_id: int) -> str:
    raw = f"{iso_micro(at)}|{conversation_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def iso_micro(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, conversation_id = raw.split("|")
        return datetime.fromisoformat(at), int(conversation_id)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("Cursor inválido.", details=[{"path": "cursor", "message": "Cursor inválido."}]) from None


# ---------------------------------------------------------------------- reports
def _stats(values: list[float]) -> dict:
    if not values:
        return {"avg": None, "median": None, "p90": None}
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    p90 = ordered[min(n - 1, max(0, -(-9 * n // 10) - 1))]  # nearest-rank
    return {"avg": round(sum(ordered) / n, 3), "median": round(median, 3), "p90": round(p90, 3)}


CONCLUDING_ACTIONS = ("concluded", "unassigned_and_concluded", "auto_concluded", "concluded_by_flow")


def report_summary(service: Service, date_from, date_to) -> dict:
    """DESIGN §6 reports: open now, conclusions in [from, to] (UTC dates, inclusive)."""
    from datetime import timedelta

    start = datetime.combine(date_from, datetime.min.time(), UTC)
    end = datetime.combine(date_to, datetime.min.time(), UTC) + timedelta(days=1)
    if end <= start:
        raise Invalid("A data final precisa ser igual ou posterior à inicial.", details=[
            {"path": "to", "message": "Data final antes da inicial."}])
    test_conversations = select(conversations.c.id).where(conversations.c.channel == TEST_CHANNEL)
    with read_only(service.db) as conn:
        open_now = conn.execute(select(func.count()).select_from(conversations).where(
            conversations.c.status == machine.OPEN, conversations.c.channel != TEST_CHANNEL)).scalar()
        # The two numbers each conclusion needs, extracted in SQL: decoding every JSON
        # detail in Python cost ~400 ms for 36,000 conclusions (bench/inbox.py).
        rows = conn.execute(select(activity.c.actor, activity.c.detail["resolution_s"].as_float(),
                                   activity.c.detail["first_response_s"].as_float()).where(
            activity.c.to_status == machine.CONCLUDED, activity.c.from_status == machine.OPEN,
            activity.c.at >= start, activity.c.at < end,
            activity.c.conversation_id.not_in(test_conversations))).all()
        csat_values = conn.execute(select(answers.c.value).where(
            answers.c.name == service.settings.csat_variable, answers.c.at >= start, answers.c.at < end,
            answers.c.conversation_id.not_in(test_conversations))).scalars().all()
    resolution, first_response, by_agent = [], [], {}
    for actor, resolution_s, first_response_s in rows:
        if resolution_s is not None:
            resolution.append(resolution_s)
        if first_response_s is not None:
            first_response.append(first_response_s)
        if actor not in ("bot", "system", "customer"):
            agent = by_agent.setdefault(actor, {"user": actor, "concluded": 0, "_res": []})
            agent["concluded"] += 1
            if resolution_s is not None:
                agent["_res"].append(resolution_s)
    scores = []
    for value in csat_values:
        try:
            score = json.loads(value) if not value.strip().isdigit() else int(value)
        except ValueError:
            continue
        if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5:
            scores.append(score)
    agents = [{"user": a["user"], "concluded": a["concluded"],
               "resolution_s_avg": round(sum(a["_res"]) / len(a["_res"]), 3) if a["_res"] else None}
              for a in sorted(by_agent.values(), key=lambda a: (-a["concluded"], a["user"]))]
    return {
        "open": open_now,
        "concluded": len(rows),
        "resolution_s": _stats(resolution),
        "first_response_s": _stats(first_response),
        "csat": {"avg": round(sum(scores) / len(scores), 3) if scores else None, "count": len(scores)},
        "by_agent": agents,
    }


def funnel(service: Service, flow_id: str) -> list[dict]:
    """How many runs reached each block of a flow."""
    with read_only(service.db) as conn:
        rows = conn.execute(select(run_blocks.c.block_id, func.count()).where(
            run_blocks.c.flow_id == flow_id).group_by(run_blocks.c.block_id)).all()
    return [{"block_id": b, "runs": n} for b, n in rows]
