"""A customer's message: the contact, its conversation and the bot's answer."""
from __future__ import annotations

import json
import uuid

from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from blocks.text import normalize
from engine import conversation as machine
from engine import core, metrics, triggers
from engine.batch import NeedsConnection, Recorder
from engine.db import read_only
from engine.errors import Invalid
from engine.graph import CompiledFlow
from engine.moments import epoch, utc
from engine.service.common import (
    _UNKNOWN,
    MAX_TEXT,
    Sent,
    _check_channel,
    _clean,
    _Stale,
    _Work,
)
from engine.service.statements import (
    _CONTACT,
    _CONVERSATION_BY_CONTACT,
    _CONVERSATION_BY_CONTACT_FOR_UPDATE,
    _CONVERSATION_OF,
    _INBOUND_SQLITE,
    _INSERT_PROCESSED,
    _PROCESSED,
    _VERSION_SQL,
)
from engine.store import (
    contacts,
    conversations,
    processed_messages,
)


class InboundMixin:
    """Inbound of :class:`engine.service.Service` (a mixin)."""

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
        text = text[:MAX_TEXT]
        now = self.clock()
        sent = Sent(now if at is None else min(at, now), answer, details)
        args = (channel, external_id, name, message_id, text, now, start_flow_id, sent)
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

    def _inbound(self, conn, channel, external_id, name, message_id, text, now, start_flow_id,
                 sent: Sent) -> tuple[dict, _Work | None]:
        conv = self._conversation_for(conn, channel, external_id, name, now, message_id)
        done = conv.pop("_processed", _UNKNOWN)
        if done is _UNKNOWN:
            row = conn.execute(_PROCESSED, {"_channel": channel, "_external_id": message_id}).first()
            done = row.result if row is not None else None
        if done is not None:
            return done, None
        work = _Work(conv["id"])
        self._store_message(conn, conv, "in", "customer", text, [], sent.at,
                            external_id=message_id, save=False, details=sent.details)
        if sent.answer:
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
        return triggers.asks_for_human(text, self.settings.handoff_keywords)

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

