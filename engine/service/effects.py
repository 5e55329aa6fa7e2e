"""An engine step's effects applied to the database, and the conversation rows they write."""
from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine import core, logs, metrics
from engine.errors import NotFound
from engine.graph import CompiledFlow
from engine.moments import utc
from engine.service.common import _EXTRA_COLUMNS, _INSERT_IGNORE, MAX_JUMPS, _Work
from engine.service.statements import (
    _ASSIGNEES,
    _CONVERSATION,
    _CONVERSATION_FOR_UPDATE,
    _INSERT_ANSWER,
    _INSERT_LOG,
    _INSERT_MESSAGE,
    _INSERT_OUTBOX,
    _SAVE_STATE,
)
from engine.store import (
    run_blocks,
    users,
)


class EffectsMixin:
    """Effects of :class:`engine.service.Service` (a mixin)."""

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
                       save: bool = True, details: dict | None = None) -> None:
        """Store one message (and its WhatsApp outbox row) with the conversation's next save;
        ``save=False`` when the caller saves the conversation itself later in the same
        transaction (then one statement stores every message of the step)."""
        conv.setdefault("_messages", []).append({
            "conversation_id": conv["id"], "direction": direction, "author": author, "text": text,
            "buttons": list(buttons or []), "at": utc(now), "external_id": external_id,
            "details": details or None})
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

