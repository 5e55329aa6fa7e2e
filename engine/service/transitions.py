"""Status transitions (DESIGN §3): the table applied, agents' actions."""
from __future__ import annotations

from sqlalchemy import func, insert, select, update

from engine import conversation as machine
from engine import core, metrics
from engine.errors import Invalid
from engine.moments import epoch, iso, utc
from engine.service.common import MAX_TEXT, _Work
from engine.service.statements import _INSERT_ACTIVITY
from engine.store import (
    conversation_assignees,
    messages,
    timers,
)


class TransitionsMixin:
    """Transitions of :class:`engine.service.Service` (a mixin)."""

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

