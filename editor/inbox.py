"""The agent inbox (DESIGN §8): the conversation list, one conversation, its actions.

Routes (blueprint ``inbox``), one URL per thing, full page or fragment (htmx)::

    GET  /inbox?status=open|concluded&q=&assignee=&mine=1&unassigned=1&limit=
         page: list pane (+ an empty conversation pane)
         htmx, HX-Target "inbox-pane": the list pane (filters + list)
         htmx, HX-Target "inbox-list": the list only; with ``since=<marker>`` → 204 if
         nothing changed (the 2-second poll)
         htmx, HX-Target "conv-pane": the conversation pane's hint (back to the list)
    GET  /inbox/<id>?<same filters>
         page: list pane + the conversation
         htmx, HX-Target "conv-live": the live part of the conversation (header, banner,
         actions, timeline); with ``since=<marker>`` → 204 if nothing changed
         htmx, HX-Target "inbox-list"/"inbox-pane": as on /inbox
         htmx, HX-Target "conv-pane": the conversation pane (chosen in the list; the
         address follows with HX-Push-Url, the title with a root-level <title>)
         htmx, anything else: the whole conversation pane
    POST /inbox/<id>/{reopen,open,assign,unassign,conclude,unassign_and_conclude}
         form field ``user`` (assign/unassign), ``seen`` (the newest activity id the page
         showed); htmx → the live fragment, with a notice when the page was stale;
         otherwise a redirect back to the conversation (flash notice)
    POST /inbox/<id>/messages   form field ``text``: the agent's reply (opens the conversation)

Every action goes through ``engine.service.Service`` (the same state machine as the
API). Live updates are htmx polling with a change marker; see docs/INBOX.md.

The read model (previews, unread marks, filtered counts, change markers, timeline with
exact timestamps) is ``engine.queries``; it never changes a conversation except for
``conversations.last_read_at`` (the shared read mark, ``queries.mark_read``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    render_template_string,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _

from blocks import timer_kinds
from editor.app import get_engine, get_service, get_settings, render_page
from editor.auth import current_user, login_required
from editor.i18n import current_lang
from editor.security import query_int
from engine import accounts, queries, timeline, whatsapp_media, whatsapp_templates
from engine import conversation as machine
from engine.errors import Conflict, Invalid, NotFound, PapoError
from engine.flows import FlowRepository
from engine.hours import zone as business_zone
from engine.whatsapp import PLACEHOLDERS
from engine.whatsapp_status import NOT_SENT_CODES, failure_text

bp = Blueprint("inbox", __name__)
log = logging.getLogger("papo.inbox")
# A reply may carry a file up to WhatsApp's largest (documents, 100 MB): this request's
# body limit is raised before anything reads the form (url_value_preprocessor runs before
# every before_request hook, the NUL check and CSRF included).
REPLY_BODY_LIMIT = whatsapp_media.LARGEST + 1024 * 1024


# What the reply box's file input accepts: each type WhatsApp takes, with its size limit.
ATTACH_LIMITS = {mime: limit for types, limit in whatsapp_media.LIMITS.values() for mime in types}


@bp.url_value_preprocessor
def _reply_body_limit(endpoint, values):
    if endpoint == "inbox.reply":
        request.max_content_length = REPLY_BODY_LIMIT

PAGE_SIZE = 50
MAX_PAGE = 200  # the service's largest page
COUNT_CAP = 1000  # a tab counts up to this many: "999+" (docs/INBOX.md)
_ID = "<int(min=1, max=9223372036854775807):conversation_id>"
ACTIONS = ("reopen", "open", "assign", "unassign", "conclude", "unassign_and_conclude")
CONCLUDING = ("concluded", "unassigned_and_concluded", "auto_concluded", "concluded_by_flow")
# Activity written by the bot or the customer follows the messages of the same instant
# (the customer's "atendente", the bot's "Já vou te passar…"); activity by people or the
# system comes before them (a conclusion, then the CSAT question it produced).
_AFTER_MESSAGES = ("bot", "customer")


# ---------------------------------------------------------------------------- filters

@dataclass(frozen=True)
class Filters:
    """What the list shows; the same query string on /inbox and /inbox/<id>."""

    status: str = machine.OPEN
    q: str = ""
    assignee: str = ""
    mine: bool = False
    unassigned: bool = False
    limit: int = PAGE_SIZE
    sort: str = ""  # "" newest activity first; "waiting": longest waiting first

    @classmethod
    def from_args(cls, args) -> Filters:
        status = args.get("status")
        if status not in machine.STATUSES:
            status = machine.OPEN
        limit = query_int("limit", default=PAGE_SIZE, minimum=1, source=args)
        assignee = (args.get("assignee") or "").strip()[:64]
        mine = args.get("mine") == "1"
        unassigned = args.get("unassigned") == "1"
        if assignee:  # a chosen agent replaces the "Minhas" / "Sem atendente" scopes
            mine = unassigned = False
        if unassigned:
            mine = False
        sort = "waiting" if args.get("sort") == "waiting" else ""
        return cls(status=status, q=(args.get("q") or "").strip()[:200], assignee=assignee,
                   mine=mine, unassigned=unassigned,
                   limit=max(PAGE_SIZE, min(limit, MAX_PAGE)), sort=sort)

    def assignee_login(self, me: str) -> str | None:
        """The login the list is restricted to (``mine`` means the current user)."""
        if self.mine:
            return me
        return self.assignee or None

    @property
    def scope(self) -> str:
        if self.mine:
            return "mine"
        if self.unassigned:
            return "unassigned"
        if self.assignee:
            return "agent"
        return "all"

    def args(self, **changes) -> dict:
        """Query arguments (defaults left out) with ``changes`` applied."""
        data = replace(self, **changes)
        out = {}
        if data.status != machine.OPEN:
            out["status"] = data.status
        if data.q:
            out["q"] = data.q
        if data.assignee:
            out["assignee"] = data.assignee
        if data.mine:
            out["mine"] = "1"
        if data.unassigned:
            out["unassigned"] = "1"
        if data.limit != PAGE_SIZE:
            out["limit"] = str(data.limit)
        if data.sort:
            out["sort"] = data.sort
        return out

    def url(self, path: str, **changes) -> str:
        args = self.args(**changes)
        return path + ("?" + urlencode(args) if args else "")


# ---------------------------------------------------------------------------- read model

def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def list_marker(db) -> str:
    """The inbox list's change marker (``engine.queries.list_marker``)."""
    return queries.list_marker(db)


def status_counts(db, filters: Filters, me: str) -> dict[str, int]:
    """Conversations per status under the list's other filters (the tab counts)."""
    return queries.status_counts(db, anywhere=filters.q or None, assignee=filters.assignee_login(me),
                                 unassigned=filters.unassigned, cap=COUNT_CAP)


# ---------------------------------------------------------------------------- wording

def user_names() -> dict[str, str]:
    return {u["login"]: (u.get("name") or u["login"]) for u in accounts.list_users(get_engine())}


def who(login: str | None, names: dict[str, str]) -> str:
    """A person's display name; the bot, the customer and the system by their role."""
    if login == "bot":
        return _("Bot")
    if login == "customer":
        return _("Cliente")
    if login == "system" or not login:
        return _("Sistema")
    return names.get(login, login)


def activity_sentence(entry: dict, names: dict[str, str]) -> str:
    """One activity-log entry as a sentence people read in the timeline."""
    action = entry["action"]
    detail = entry.get("detail") or {}
    actor_login = entry.get("actor")
    actor = who(actor_login, names)
    user_login = detail.get("user")
    user = who(user_login, names) if user_login else ""
    self_ = user_login is not None and user_login == actor_login
    if action == "opened_by_flow":
        return _("Bot pausado: o fluxo abriu o atendimento")
    if action == "handoff_requested":
        return _("Cliente pediu atendimento humano")
    if action == "run_interrupted":  # an interrupting keyword trigger (DESIGN §10.3)
        return _("Cliente escreveu “%(keyword)s” no meio de uma pergunta: o bot parou ali e começou o fluxo %(flow)s",
                 keyword=detail.get("keyword") or "", flow=detail.get("started") or "")
    if action == "reopened":
        return _("Reaberto por %(name)s", name=actor)
    if action == "opened":
        return _("Marcado como aberto por %(name)s", name=actor)
    if action == "agent_message":
        return _("Aberto por %(name)s ao responder ao cliente", name=actor)
    if action == "assigned":
        if actor_login == "bot":
            return _("O fluxo atribuiu a %(user)s", user=user)
        if actor_login == "system":  # automatic assignment (PAPO_ASSIGNMENT)
            return _("Atribuído automaticamente a %(user)s", user=user)
        if self_:  # not "Bruno atribuiu a Bruno"
            return _("%(name)s assumiu o atendimento", name=actor)
        return _("%(name)s atribuiu a %(user)s", name=actor, user=user)
    if action == "unassigned":
        if self_:
            return _("%(name)s saiu do atendimento", name=actor)
        return _("%(name)s desatribuiu %(user)s", name=actor, user=user)
    if action == "concluded":
        return _("Concluído por %(name)s", name=actor)
    if action == "transferred":
        return _("%(name)s transferiu para %(user)s", name=actor, user=user)
    if action == "unassigned_and_concluded":
        if self_ or not user_login:
            return _("Desatribuído e concluído por %(name)s", name=actor)
        return _("%(name)s desatribuiu %(user)s e concluiu", name=actor, user=user)
    if action == "auto_concluded":
        return _("Concluído automaticamente por inatividade")
    if action == "concluded_by_flow":
        return _("Concluído pelo fluxo")
    if action == "number_changed":
        return _("O cliente trocou de número no WhatsApp: de %(old)s para %(new)s",
                 old=phone_number(detail.get("from")), new=phone_number(detail.get("to")))
    return _("%(name)s: %(action)s", name=actor, action=action)


def phone_number(digits: str | None) -> str:
    """A WhatsApp id as people read a number: ``+5511987654321``."""
    return f"+{digits}" if digits and digits.isdigit() else (digits or "?")


def already_sentence(action: str, fresh: dict, acts: list[dict], user: str | None,
                     names: dict[str, str]) -> str:
    """Why ``action`` changed nothing on the fresh conversation (a stale page's click)."""
    if action in ("conclude", "unassign_and_conclude"):
        last = next((a for a in reversed(acts) if a["action"] in CONCLUDING), None)
        if last is None:
            return _("Esta conversa já estava concluída.")
        if last["action"] == "auto_concluded":
            return _("Esta conversa já estava concluída automaticamente por inatividade.")
        if last["action"] == "concluded_by_flow":
            return _("Esta conversa já estava concluída pelo fluxo.")
        return _("Esta conversa já estava concluída por %(name)s.", name=who(last["actor"], names))
    if action in ("reopen", "open"):
        last = next((a for a in reversed(acts)
                     if a["to_status"] == machine.OPEN and a["from_status"] != machine.OPEN), None)
        if last is None:
            return _("Esta conversa já estava aberta.")
        return _("Esta conversa já estava aberta (%(what)s).",
                 what=activity_sentence(_entry(last), names))
    if action == "assign":
        return _("%(user)s já estava entre os atendentes desta conversa.", user=who(user, names))
    if action == "unassign":
        return _("%(user)s não estava entre os atendentes desta conversa.", user=who(user, names))
    return _("Nada mudou: a conversa já estava assim.")


def _entry(row: dict) -> dict:
    return {"actor": row["actor"], "action": row["action"], "detail": row.get("detail")}


def build_timeline(msgs: list[dict], acts: list[dict], names: dict[str, str]) -> list[dict]:
    """Messages and activity sentences interleaved by time (see ``_AFTER_MESSAGES``)."""
    items = []
    by_external_id = {m["external_id"]: m for m in msgs if m.get("external_id")}
    for m in msgs:
        author = m["author"]
        item = {
            "kind": "message", "id": m["id"], "direction": m["direction"], "author": author,
            "role": "customer" if author == "customer" else ("bot" if author == "bot" else "agent"),
            "note": m["direction"] == "note",
            "author_name": who(author, names), "text": m["text"],
            "buttons": m.get("buttons") or [], "at": m["at"]}
        if m.get("details"):  # WhatsApp: media, quote, ad, reaction, deleted, edited (engine/timeline.py)
            item.update(whatsapp_extras(m, by_external_id))
        items.append(((m["at"], 1, m["id"]), item))
    for a in acts:
        rank = 2 if a["actor"] in _AFTER_MESSAGES else 0
        detail = a.get("detail") or {}
        items.append(((a["at"], rank, a["id"]), {
            "kind": "activity", "id": a["id"], "action": a["action"],
            "sentence": activity_sentence(_entry(a), names),
            "note": detail.get("note") or detail.get("reason"), "at": a["at"]}))
    items.sort(key=lambda pair: pair[0])
    return [item for _key, item in items]


def whatsapp_extras(row: dict, by_external_id: dict) -> dict:
    """What a WhatsApp message carried, ready for the bubble (``inbox/_message_extras.html``).

    The same reading as the API's (:func:`engine.timeline.message_view`); besides it, a
    placeholder text ("[imagem]") is not shown twice when the media block says it, times
    are datetimes, and an edit's earlier versions are listed newest first."""
    view = timeline.message_view(row, by_external_id)
    extras = {key: view[key] for key in timeline.EXTRA_KEYS if key in view}
    if "media" in view or "contacts" in view or "order" in view:
        extras["placeholder"] = row["text"] in PLACEHOLDERS.values()
    if "reaction" in view:
        extras["reaction"] = {**view["reaction"], "at": _parse_iso(view["reaction"]["at"])}
    if "edits" in view:
        extras["edits"] = [{"text": e["text"], "at": _parse_iso(e["at"])} for e in reversed(view["edits"])]
    if view.get("delivery"):
        extras["delivery"] = view["delivery"]
        error = view["delivery"].get("error") or {}
        if view["delivery"].get("status") == "failed" and error.get("code") not in NOT_SENT_CODES:
            extras["failure"] = failure_text(view["delivery"].get("error"), current_lang())
    location = extras.get("media") if (extras.get("media") or {}).get("type") == "location" else None
    if location and location.get("latitude") is not None and location.get("longitude") is not None:
        extras["map_url"] = "https://www.openstreetmap.org/?" + urlencode(
            {"mlat": location["latitude"], "mlon": location["longitude"]}) + \
            f"#map=17/{location['latitude']}/{location['longitude']}"
    return extras


def driver(conv: dict) -> dict:
    """Who is driving the conversation now: people, or the bot (and what it waits for)."""
    run = conv.get("run") or {}
    state = run.get("state")
    # named as people read them: the flow's name and the block's title (id after it)
    where = FlowRepository(get_engine()).run_position(
        run.get("flow_id"), run.get("flow_version"), run.get("block_id"), current_lang())
    if conv["status"] == machine.OPEN:
        if conv["assignees"]:
            return {"kind": "agent", "title": _("Bot pausado — atendimento humano"), **where,
                    "text": _("Com %(names)s.", names=", ".join(conv["assignee_names"]))}
        return {"kind": "agent", "title": _("Bot pausado — atendimento humano"), **where,
                "text": _("Ninguém atribuído ainda.")}
    if state == "running":
        return {"kind": "bot", "title": _("Bot conduzindo"), **where,
                "text": _("O fluxo está executando.")}
    if state == "waiting_input":
        return {"kind": "bot", "title": _("Bot aguardando resposta do cliente"), **where,
                "text": _("O fluxo espera a resposta a uma pergunta.")}
    if state == "waiting_timer":
        return {"kind": "bot", "title": _("Bot aguardando um tempo"), **where,
                "text": _("O fluxo continua quando o tempo de espera acabar.")}
    return {"kind": "idle", "title": _("Bot no comando"), "flow": None, "block": None,
            "text": _("A próxima mensagem do cliente é tratada pelos gatilhos dos fluxos.")}


def timer_label(kind: str) -> str:
    """What people call a pending timer: a block's (from its kind) or the service's own."""
    if kind == "auto_conclude":
        return _("Conclusão automática por inatividade")
    if kind == "debounce":
        return _("Resposta do bot às mensagens seguidas do cliente")
    found = timer_kinds().get(kind)
    return _(found.label) if found else kind


# ---------------------------------------------------------------------------- views

def _me() -> str:
    return current_user()["login"]


def _htmx_target() -> str | None:
    htmx = getattr(request, "htmx", None)
    if not htmx or htmx.boosted or htmx.history_restore_request:
        return None
    return request.headers.get("HX-Target") or ""


def _no_change() -> object:
    response = make_response("", 204)
    response.vary.add("HX-Request")
    response.vary.add("HX-Target")
    response.headers["Cache-Control"] = "no-store"
    return response


def _titled(body: str, ctx: dict, name: str | None = None) -> str:
    """A fragment with a root-level ``<title>``: htmx puts it in the tab's title, so the
    tab shows this agent's unread count ("(3) Atendimentos · papo") as the list polls, and
    the contact's name when a conversation is chosen without a page load."""
    count = ctx.get("unread_total") or 0
    if name is None and ctx.get("selected"):  # the list of /inbox/<id>: that contact's name
        name = next((c["contact"]["name"] or _("Sem nome") for c in ctx.get("items", [])
                     if c["id"] == ctx["selected"]), None)
    title = (f"({count}) " if count else "") + (f"{name} · " if name else "") + _("Atendimentos") + " · papo"
    return render_template_string("<title>{{ t }}</title>", t=title) + body


def _conv_pane(filters: Filters, conversation_id: int | None = None) -> object:
    """The conversation pane alone (htmx target ``conv-pane``): a conversation chosen in
    the list, or the hint when the agent goes back to it; the tab title follows."""
    ctx = {"filters": filters, "conversation": conversation_id is not None}
    name = None
    if conversation_id is not None:
        ctx.update(_conversation_context(conversation_id))  # marks it read: count after
        name = ctx["conv"]["contact"]["name"] or _("Sem nome")
    ctx["unread_total"] = queries.unread_count(get_engine(), _me())
    response = make_response(_titled(render_template("inbox/_conv_pane.html", **ctx), ctx, name))
    response.headers["HX-Push-Url"] = filters.url(request.path)
    return response


def _list_context(filters: Filters, selected: int | None = None) -> dict:
    db = get_engine()
    me = _me()
    marker = list_marker(db)  # read first: a change during the reads shows up next poll
    names = user_names()
    page = get_service().list_conversations(
        status=filters.status, anywhere=filters.q or None, assignee=filters.assignee_login(me),
        limit=filters.limit, unassigned=filters.unassigned, sort=filters.sort or None)
    items = page["items"]
    extra = queries.previews(db, [c["id"] for c in items], login=me)
    now = get_service().clock()
    rows = []
    for conv in items:
        info = extra.get(conv["id"], {})
        last = info.get("message")
        rows.append({**conv, "last": last, "unread": info.get("unread", False),
                     "last_author": who(last["author"], names) if last else "",
                     "assignee_names": [who(login, names) for login in conv["assignees"]],
                     "updated": _parse_iso(conv["updated_at"]),
                     "waiting_min": waiting_minutes(conv.get("waiting_since"), now)})
    return {
        "filters": filters, "items": rows, "more": bool(page["next_cursor"]) and filters.limit < MAX_PAGE,
        "capped": bool(page["next_cursor"]) and filters.limit >= MAX_PAGE,
        "counts": status_counts(db, filters, me), "list_marker": marker,
        "users": accounts.list_users(db), "selected": selected, "me": me,
        "base_path": request.path, "unread_total": queries.unread_count(db, me),
    }


def waiting_minutes(since: str | None, now: float) -> int | None:
    """Whole minutes a customer has waited for an answer (None: not waiting)."""
    moment = _parse_iso(since)
    if moment is None:
        return None
    return max(0, int((now - moment.timestamp()) // 60))


def earlier_periods(acts: list[dict]) -> list[dict]:
    """The conversation's earlier attended periods, newest first: when each was concluded,
    by whom, and how long it stayed open (the contact panel's "Atendimentos anteriores")."""
    out = []
    for a in acts:
        if a["action"] in CONCLUDING and a["from_status"] == machine.OPEN:
            detail = a.get("detail") or {}
            out.append({"at": a["at"], "actor": a["actor"], "opened": _parse_iso(detail.get("opened_at"))})
    return out[::-1]


def window_banner(closes_at: str | None, channel: str, now: float) -> dict | None:
    """WhatsApp's 24-hour window as the inbox shows it (DESIGN §10.4): ``{"state", "text"}``;
    None on other channels."""
    if channel != "whatsapp":
        return None
    closing = _parse_iso(closes_at)
    left = closing.timestamp() - now if closing is not None else 0
    if left <= 0:
        return {"state": "closed", "text": _("Janela fechada"), "help": _(
            "O cliente não escreve há mais de 24 horas: o WhatsApp só entrega modelos aprovados.")}
    if left < 3600:
        when = _("fecha em %(n)d min", n=max(1, int(left // 60)))
    else:
        when = _("fecha em %(n)d h", n=int(left // 3600))
    return {"state": "open", "text": _("Janela de 24 h: %(when)s", when=when), "help": None}


def _conversation_context(conversation_id: int, notice: dict | None = None) -> dict:
    db = get_engine()
    marker = queries.conversation_marker(db, conversation_id, get_service().clock())
    try:
        conv = get_service().get_conversation(conversation_id, include_test=False)
    except NotFound:
        raise NotFound(_("Esta conversa não existe ou foi removida.")) from None
    names = user_names()
    msgs, acts, _shared_read = queries.timeline_rows(db, conversation_id)
    conv["assignee_names"] = [who(login, names) for login in conv["assignees"]]
    newest_in = max((m["at"] for m in msgs if m["direction"] == "in"), default=None)
    mine = queries.read_mark(db, conversation_id, _me())
    if newest_in is not None and (mine is None or newest_in > mine):
        # Shown to this agent now: read by this agent (per-agent marks, DESIGN §10.8).
        queries.mark_read(db, conversation_id, max(get_service().clock(), newest_in.timestamp()),
                          login=_me())
    users = accounts.list_users(db)
    others = [who(login, names) for login in conv["assignees"] if login != _me()]
    return {
        "conv": conv, "timeline": build_timeline(msgs, acts, names),
        "seen": acts[-1]["id"] if acts else 0, "conv_marker": marker,
        "driver": driver(conv),
        "timers": [{"kind": t["kind"], "label": timer_label(t["kind"]),
                    "due": _parse_iso(t["due_at"])} for t in conv["timers"]],
        "users": users, "names": names, "me": _me(), "notice": notice,
        "assignable": [u for u in users if u["login"] not in conv["assignees"]],
        "transferable": [u for u in users if u["login"] != _me() and not u.get("disabled")],
        "others": others,
        "earlier": earlier_periods(acts),
        "attach_accept": ",".join(sorted(ATTACH_LIMITS)), "attach_limits": ATTACH_LIMITS,
        "window": window_banner(conv.get("window_closes_at"), conv["channel"], get_service().clock()),
        "whatsapp_templates": whatsapp_templates.list_templates(db) if conv["channel"] == "whatsapp" else [],
    }


@bp.get("/inbox")
@login_required
def index():
    filters = Filters.from_args(request.args)
    target = _htmx_target()
    if target == "inbox-list" and request.args.get("since") == list_marker(get_engine()):
        return _no_change()
    if target == "conv-pane":  # back to the list from a conversation (a phone's one pane)
        response = _conv_pane(filters)
        response.vary.add("HX-Request")
        response.vary.add("HX-Target")
        return response
    ctx = _list_context(filters)
    fragment = "inbox/_list.html" if target == "inbox-list" else "inbox/_pane.html"
    if target in ("inbox-list", "inbox-pane"):
        response = make_response(_titled(render_template(fragment, conversation=None, **ctx), ctx))
    else:
        response = render_page("inbox/index.html", fragment, conversation=None, **ctx)
    response.vary.add("HX-Request")
    response.vary.add("HX-Target")
    if target == "inbox-pane":  # the address bar shows the tidy URL, not the raw form
        response.headers["HX-Push-Url"] = filters.url(request.path)
    return response


@bp.get(f"/inbox/{_ID}")
@login_required
def show(conversation_id: int):
    filters = Filters.from_args(request.args)
    target = _htmx_target()
    db = get_engine()
    if target in ("inbox-list", "inbox-pane"):
        if target == "inbox-list" and request.args.get("since") == list_marker(db):
            return _no_change()
        template = "inbox/_list.html" if target == "inbox-list" else "inbox/_pane.html"
        ctx = _list_context(filters, conversation_id)
        response = make_response(_titled(render_template(template, **ctx), ctx))
        if target == "inbox-pane":
            response.headers["HX-Push-Url"] = filters.url(request.path)
    elif target == "conv-live":
        since = request.args.get("since")
        if since and since == queries.conversation_marker(db, conversation_id, get_service().clock()):
            return _no_change()
        try:
            ctx = _conversation_context(conversation_id)
        except NotFound:
            # The polled conversation is gone: say so once and stop polling (286).
            body = render_template("inbox/_gone.html")
            return make_response(body, 286)
        response = make_response(render_template("inbox/_live.html", filters=filters, **ctx))
    elif target == "conv-pane":  # chosen in the list: the pane alone, no page load
        response = _conv_pane(filters, conversation_id)
    else:
        ctx = _conversation_context(conversation_id)
        if target is None:
            ctx.update(_list_context(filters, conversation_id))
        else:
            ctx["filters"] = filters
        response = render_page("inbox/index.html", "inbox/_conversation.html", conversation=True, **ctx)
    response.vary.add("HX-Request")
    response.vary.add("HX-Target")
    return response


def _stale_changes(acts: list[dict], seen: int | None, me: str, names: dict) -> list[str]:
    if seen is None:
        return []
    return [activity_sentence(_entry(a), names) for a in acts if a["id"] > seen and a["actor"] != me]


def _respond(conversation_id: int, filters: Filters, notice: dict | None, status: int = 200,
             changed: bool = True):
    if getattr(request, "htmx", False):
        ctx = _conversation_context(conversation_id, notice=notice)
        response = make_response(render_template("inbox/_live.html", filters=filters, **ctx), status)
        if changed:
            response.headers["HX-Trigger"] = "inbox-changed"  # the list refreshes at once
        return response
    if notice:
        flash(notice["text"], "error" if notice["level"] == "error" else "info")
    return redirect(filters.url(url_for("inbox.show", conversation_id=conversation_id)), code=303)


def _seen() -> int | None:
    try:
        return int(request.form.get("seen", ""))
    except ValueError:
        return None


@bp.post(f"/inbox/{_ID}/<action>")
@login_required
def act(conversation_id: int, action: str):
    if action not in ACTIONS:
        abort(404)
    filters = Filters.from_args(request.args)
    service = get_service()
    me = _me()
    user = (request.form.get("user") or "").strip() or None
    if action == "unassign" and user is None:
        user = me  # "Desatribuir" without a choice: the acting agent leaves
    if action == "assign" and user is None:
        return _respond(conversation_id, filters, {
            "level": "error", "text": _("Escolha quem vai atender a conversa.")}, 422, False)
    try:
        fresh = service.get_conversation(conversation_id, include_test=False)
    except NotFound:
        raise NotFound(_("Esta conversa não existe ou foi removida.")) from None
    names = user_names()
    others = [login for login in fresh["assignees"] if login != me]
    if action == "assign" and user == me and others and request.form.get("join") != "1":
        # Someone else already handles it (maybe since a moment ago): ask first (§10.8).
        return _respond(conversation_id, filters, {
            "level": "warning", "join": True,
            "text": _("%(names)s já está atendendo. Atender junto?",
                      names=", ".join(who(login, names) for login in others))}, 200, False)
    _msgs, acts, _read = queries.timeline_rows(get_engine(), conversation_id)
    would = machine.plan(action, fresh["status"], fresh["assignees"], me, user)
    try:
        service.act(conversation_id, action, me, user=user)
    except Invalid:
        if action in ("assign", "unassign") and user is not None and user not in names:
            text = _("O usuário %(user)s não existe.", user=user)
        else:
            text = _("Não foi possível fazer esta ação.")
        return _respond(conversation_id, filters, {"level": "error", "text": text}, 422, False)
    notice = None
    changes = _stale_changes(acts, _seen(), me, names)
    if not would.changed:
        notice = {"level": "warning", "text": already_sentence(action, fresh, acts, user, names)}
    elif changes:
        notice = {"level": "warning", "text": _(
            "Esta conversa mudou enquanto você a via (%(changes)s); sua ação foi aplicada ao "
            "estado atual.", changes="; ".join(changes))}
    return _respond(conversation_id, filters, notice, changed=would.changed)


def _require_conversation(service, conversation_id: int) -> None:
    """A 404 in the agent's words when the conversation is gone (or a simulator's)."""
    try:
        service.get_conversation(conversation_id, include_test=False)
    except NotFound:
        raise NotFound(_("Esta conversa não existe ou foi removida.")) from None


@bp.post(f"/inbox/{_ID}/messages")
@login_required
def reply(conversation_id: int):
    """The agent's reply: a text, or a file (WhatsApp) with the text as its caption. Both are
    refused with a 409 outside WhatsApp's 24-hour window (a file before it is uploaded)."""
    filters = Filters.from_args(request.args)
    text = request.form.get("text") or ""
    file = request.files.get("file")
    attached = file is not None and bool(file.filename)
    if not attached and not text.strip():
        return _respond(conversation_id, filters, {
            "level": "error", "text": _("Escreva uma mensagem antes de enviar.")}, 422, False)
    service = get_service()
    _require_conversation(service, conversation_id)
    try:
        if attached:
            data = file.read(whatsapp_media.LARGEST + 1)
            _result, problem = whatsapp_media.send_attachment(
                service, media_cache(), conversation_id, _me(), text, file.filename, file.mimetype, data,
                current_lang())
            if problem is not None:
                return _respond(conversation_id, filters, {"level": "error", "text": problem}, 422, False)
        else:
            service.agent_message(conversation_id, _me(), text)
    except Conflict as exc:  # WhatsApp's 24-hour window closed: a template must go instead
        raise Conflict(_("A janela de 24 h do WhatsApp está fechada: o cliente não escreve há "
                         "mais de 24 horas e o WhatsApp não entrega texto livre. Envie um modelo "
                         "aprovado."), code=exc.code) from None
    return _respond(conversation_id, filters, None)


@bp.post(f"/inbox/{_ID}/messages/template")
@login_required
def send_template(conversation_id: int):
    """The composer's "Enviar modelo": an approved WhatsApp template with its parameters."""
    filters = Filters.from_args(request.args)
    name, _bar, language = (request.form.get("template") or "").strip().rpartition("|")
    if not name:
        return _respond(conversation_id, filters, {
            "level": "error", "text": _("Escolha um modelo antes de enviar.")}, 422, False)
    service = get_service()
    _require_conversation(service, conversation_id)
    try:
        service.agent_template(conversation_id, _me(), name, language,
                               request.form.getlist("template.params"))
    except Invalid as exc:
        text = _("Preencha todos os parâmetros do modelo.") if exc.extra.get("expected") is not None \
            else _("Este modelo não está entre os aprovados. Sincronize os modelos em Configurações › WhatsApp.")
        return _respond(conversation_id, filters, {"level": "error", "text": text}, 422, False)
    return _respond(conversation_id, filters, None)


def media_cache() -> whatsapp_media.MediaCache:
    return whatsapp_media.cache_for(get_settings(), current_app.instance_path)


@bp.get("/media/<int:message_id>")
@login_required
def media(message_id: int):
    """A WhatsApp message's file: fetched from the Graph API the first time, then from the
    cache. Served inline only for types a browser shows safely, otherwise as a download;
    either way under a sandboxing CSP."""
    found = whatsapp_media.message_media(get_engine(), message_id)
    if found is None:
        raise NotFound(_("Este arquivo não existe ou não está mais disponível."))
    cached, problem = whatsapp_media.fetch(get_settings(), str(found["id"]), media_cache(), found.get("mime"))
    if problem is not None:
        log.warning("media of message %s not served: %s", message_id, problem.reason)
        messages = {404: _("O WhatsApp não tem mais este arquivo (ele fica disponível por 30 dias)."),
                    413: _("Este arquivo é grande demais para o limite de mídia (PAPO_MEDIA_CACHE_MB)."),
                    502: _("Não foi possível baixar este arquivo do WhatsApp agora. Tente de novo em instantes.")}
        raise MediaUnavailable(messages.get(problem.status, messages[502]), status=problem.status)
    inline = cached.mime in whatsapp_media.INLINE
    name = whatsapp_media.safe_filename(found.get("filename"), cached.mime)
    response = send_file(cached.path, mimetype=cached.mime, as_attachment=not inline, download_name=name,
                         conditional=True, max_age=0)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


class MediaUnavailable(PapoError):
    """A media file the Graph API did not give (502), no longer has (404) or that is over
    the cache's size (413)."""

    code = "media_unavailable"

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@bp.post(f"/inbox/{_ID}/transfer")
@login_required
def transfer(conversation_id: int):
    """"Transferir": the chosen agent takes over, the acting agent leaves, the note stays."""
    filters = Filters.from_args(request.args)
    user = (request.form.get("user") or "").strip()
    note = request.form.get("note") or ""
    if not user:
        return _respond(conversation_id, filters, {
            "level": "error", "text": _("Escolha para quem transferir.")}, 422, False)
    service = get_service()
    _require_conversation(service, conversation_id)
    try:
        service.transfer(conversation_id, _me(), user, note=note)
    except Invalid:
        text = _("Transfira para outra pessoa.") if user == _me() else \
            _("O usuário %(user)s não existe.", user=user)
        return _respond(conversation_id, filters, {"level": "error", "text": text}, 422, False)
    return _respond(conversation_id, filters, None)


@bp.post(f"/inbox/{_ID}/notes")
@login_required
def note(conversation_id: int):
    """A private note: agents see it in the timeline; the customer never does."""
    filters = Filters.from_args(request.args)
    text = request.form.get("text") or ""
    if not text.strip():
        return _respond(conversation_id, filters, {
            "level": "error", "text": _("Escreva a nota antes de salvar.")}, 422, False)
    service = get_service()
    _require_conversation(service, conversation_id)
    service.add_note(conversation_id, _me(), text)
    return _respond(conversation_id, filters, None)


@bp.app_template_filter("inbox_time")
def inbox_time(moment: datetime | None) -> str:
    """A timestamp in the business's zone (``PAPO_TIMEZONE``), written the interface
    language's way (inbox.js shortens it: today's show only the time). strftime, not
    Babel: a timeline has hundreds of them."""
    from editor.i18n import current_lang

    moment = _aware(moment)
    if moment is None:
        return ""
    moment = moment.astimezone(business_zone(get_settings().timezone))
    return moment.strftime("%Y-%m-%d %H:%M" if current_lang() == "en" else "%d/%m/%Y %H:%M")


@bp.app_template_global("inbox_iso")
def inbox_iso(moment: datetime | None) -> str:
    moment = _aware(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


__all__ = ["bp", "Filters"]
