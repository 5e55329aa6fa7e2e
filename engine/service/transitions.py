"""Agents' actions (DESIGN §6): the status table applied through the unit of work.

The table itself is :mod:`engine.conversation`; applying it to a conversation and its
bot's run is :func:`engine.service.decide.decide` (pure)."""
from __future__ import annotations

from sqlalchemy import select

from engine import conversation as machine
from engine import whatsapp_templates, whatsapp_window
from engine.errors import Conflict, Invalid, NotFound
from engine.i18n import N_
from engine.service import load, unit
from engine.service.changes import AgentAction, AgentMessage, AgentNote, Changes
from engine.service.common import MAX_TEXT
from engine.service.statements import CONVERSATION_EXISTS
from engine.store import conversations


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
        self.check_window(conversation_id)
        self._run_on(conversation_id, AgentMessage(actor, text[:MAX_TEXT], self.clock(), media=media))
        return {"conversation": self.get_conversation(conversation_id), "replies": []}

    def agent_template(self, conversation_id: int, actor: str, name: str, language: str,
                       params: list | None = None) -> dict:
        """An agent sends an approved WhatsApp template (DESIGN §10.4), e.g. when the
        24-hour window is closed: the conversation opens as with a message, and the text
        shown in the timeline is the template's body with its parameters filled in."""
        params = params if params is not None else []
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise Invalid(N_("Os parâmetros do modelo devem ser uma lista de textos."), details=[
                {"path": "$.params", "message": N_("Use uma lista de textos.")}])
        with self.db.connect() as conn:
            channel = conn.execute(select(conversations.c.channel).where(
                conversations.c.id == conversation_id)).scalar()
            if channel is None:
                raise NotFound(N_("Conversa não encontrada."))
            template = whatsapp_templates.find(conn, name, language) \
                if isinstance(name, str) and isinstance(language, str) else None
        if channel != "whatsapp":
            raise Invalid(N_("Modelos só podem ser enviados em conversas do WhatsApp."), details=[
                {"path": "$.name", "message": N_("Esta conversa não é do WhatsApp.")}])
        if template is None:
            raise Invalid(N_("Este modelo do WhatsApp não está entre os aprovados. Sincronize os modelos em Configurações › WhatsApp."),
                          code="template_unknown", details=[
                              {"path": "$.name", "message": N_("Modelo desconhecido.")}])
        if len(params) != template["param_count"] or any(not p.strip() for p in params):
            raise Invalid(N_("Preencha todos os parâmetros do modelo, nem mais nem menos."), details=[
                {"path": "$.params", "message": N_("Número de parâmetros errado ou parâmetro vazio.")}],
                extra={"expected": template["param_count"]})
        params = [p.strip()[:1024] for p in params]
        text = whatsapp_templates.fill(template["body"], params) or template["name"]
        self._run_on(conversation_id, AgentMessage(
            actor, text[:MAX_TEXT], self.clock(),
            template={"name": template["name"], "language": template["language"], "params": params}))
        return {"conversation": self.get_conversation(conversation_id), "replies": []}

    def check_window(self, conversation_id: int) -> None:
        """Free text outside WhatsApp's 24-hour window is refused (409 ``window_closed``)."""
        with self.db.connect() as conn:
            channel = conn.execute(select(conversations.c.channel).where(
                conversations.c.id == conversation_id)).scalar()
            if channel != "whatsapp":
                return  # other channels have no window; a missing conversation is a 404 later
            closes = whatsapp_window.window_of(conn, conversation_id)
        if closes is None or closes.timestamp() <= self.clock():
            raise Conflict(N_("A janela de 24 h do WhatsApp está fechada: o cliente não escreve há mais de 24 horas e o WhatsApp não entrega texto livre. Envie um modelo aprovado."),
                           code="window_closed")

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
