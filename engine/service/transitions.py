"""Agents' actions (DESIGN §6): the status table applied through the unit of work.

The table itself is :mod:`engine.conversation`; applying it to a conversation and its
bot's run is :func:`engine.service.decide.decide` (pure)."""
from __future__ import annotations

from engine import conversation as machine
from engine.errors import Invalid, NotFound
from engine.service import load, unit
from engine.service.changes import AgentAction, AgentMessage, AgentNote, Changes
from engine.service.common import MAX_TEXT
from engine.service.statements import CONVERSATION_EXISTS


class TransitionsMixin:
    """Agents' actions of :class:`engine.service.Service` (a mixin)."""

    def act(self, conversation_id: int, action: str, actor: str, user: str | None = None) -> dict:
        """An agent's action (DESIGN §6): returns ``{"conversation", "replies"}``."""
        if action not in machine.AGENT_ACTIONS or action in ("agent_message", "transfer"):
            raise Invalid(f"Ação desconhecida: {action}.")
        if user is not None:
            if not isinstance(user, str) or not self._user_exists(user):
                self._conversation_exists(conversation_id)
                raise Invalid(f"O usuário \"{user}\" não existe.", details=[
                    {"path": "$.user", "message": "Usuário desconhecido."}])
        elif action in ("assign", "unassign"):
            self._conversation_exists(conversation_id)
            raise Invalid("Informe o usuário (campo \"user\").", details=[
                {"path": "$.user", "message": "Campo obrigatório."}])
        changes = self._run_on(conversation_id, AgentAction(action, actor, user, self.clock()))
        replies = list(changes.replies)
        if changes.pending_http:
            replies += self._perform_http(conversation_id, changes.pending_http)["replies"]
        return {"conversation": self.get_conversation(conversation_id), "replies": replies}

    def agent_message(self, conversation_id: int, actor: str, text: str, media: dict | None = None) -> dict:
        """An agent writes to the customer: the conversation opens and the bot pauses.

        ``media``: a file already uploaded to WhatsApp (``engine.whatsapp_media``); the
        text may then be empty, else it is the file's caption."""
        if media is None and (not isinstance(text, str) or not text.strip()):
            raise Invalid("A mensagem não pode ficar vazia.", details=[
                {"path": "$.text", "message": "Texto vazio ou ausente."}])
        text = text if isinstance(text, str) else ""
        self._run_on(conversation_id, AgentMessage(actor, text[:MAX_TEXT], self.clock(), media=media))
        return {"conversation": self.get_conversation(conversation_id), "replies": []}

    def transfer(self, conversation_id: int, actor: str, user: str, note: str | None = None) -> dict:
        """Hand the conversation to ``user`` (DESIGN §10.8): ``user`` is assigned and the
        actor unassigned in one activity entry; ``note`` becomes a private note."""
        self._conversation_exists(conversation_id)
        if not isinstance(user, str) or not self._user_exists(user):
            raise Invalid(f"O usuário \"{user}\" não existe.", details=[
                {"path": "$.user", "message": "Usuário desconhecido."}])
        if user == actor:
            raise Invalid("Transfira para outra pessoa, não para você.", details=[
                {"path": "$.user", "message": "É você mesmo."}])
        note = note.strip()[:MAX_TEXT] if isinstance(note, str) and note.strip() else None
        self._run_on(conversation_id, AgentAction("transfer", actor, user, self.clock(), note=note))
        return {"conversation": self.get_conversation(conversation_id), "replies": []}

    def add_note(self, conversation_id: int, actor: str, text: str) -> dict:
        """A private note (direction ``note``): agents see it, the customer never does."""
        if not isinstance(text, str) or not text.strip():
            raise Invalid("A nota não pode ficar vazia.", details=[
                {"path": "$.text", "message": "Texto vazio ou ausente."}])
        self._run_on(conversation_id, AgentNote(actor, text[:MAX_TEXT], self.clock()))
        return {"conversation": self.get_conversation(conversation_id), "replies": []}

    def _run_on(self, conversation_id: int, event) -> Changes:
        changes = unit.run(self, event, lambda conn, lock: load.by_id(self, conn, conversation_id, lock))
        if changes is None:
            raise NotFound("Conversa não encontrada.")
        return changes

    def _user_exists(self, login: str) -> bool:
        with self.db.connect() as conn:
            return load.user_exists(conn, login)

    def _conversation_exists(self, conversation_id: int) -> None:
        """A missing conversation is reported first, as it was before (404, not 400)."""
        with self.db.connect() as conn:
            if conn.execute(CONVERSATION_EXISTS, {"_id": conversation_id}).first() is None:
                raise NotFound("Conversa não encontrada.")
