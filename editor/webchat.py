"""The public customer web chat (DESIGN §8): ``/c/<flow_id>``, no login.

Routes (blueprint ``webchat``)::

    GET  /c/<flow_id>?name=            the chat page (404 page if the flow is not published)
    GET  /c/<flow_id>/messages?since=  htmx poll: what changed since the page's marker
                                       (204 when nothing did)
    POST /c/<flow_id>/messages         form fields ``text`` (or ``choice``, a bot button),
                                       ``message_id``, ``name``, ``csrf_token``

Who the customer is: a random visitor id in a signed, long-lived cookie scoped to the
chat's path (``/c/<flow_id>``), so a reload keeps the conversation and each chat has its
own. The conversation is the contact ``<flow_id>:<visitor>`` on channel ``web``; its
first message starts ``<flow_id>``'s published version whatever its triggers, then the
usual rules apply (handoff keywords, questions, triggers).

Every message goes through ``engine.service.Service.handle_inbound`` with the form's
``message_id`` (a fresh uuid per rendered form), so a double submit is stored once.
A per-process token bucket refuses floods (see :class:`RateLimiter`); the page polls
every 2 s for bot, agent and status changes. See docs/WEBCHAT.md.
"""
from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict

from flask import (
    Blueprint,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer

from editor.app import get_engine, get_service
from editor.ops import observed_inbound
from editor.security import MAX_ID, BadParameter, BadText
from engine import queries
from engine.flows import FlowRepository

bp = Blueprint("webchat", __name__)

CHANNEL = "web"
FLOW_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MESSAGE_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
COOKIE = "papo_chat"
COOKIE_MAX_AGE = 180 * 86_400  # the conversation survives reloads and browser restarts
COOKIE_SALT = "papo-webchat-visitor"
DEFAULT_NAME = "Visitante"
MAX_NAME = 80
MAX_TEXT = 4096
HISTORY = 200  # messages the page shows on load (older ones stay in the inbox)
# Per visitor (one conversation) and per client address; tokens refill continuously.
VISITOR_LIMIT = (10, 10.0)  # 10 messages per 10 s
ADDRESS_LIMIT = (30, 10.0)  # several visitors behind one NAT
# Per client address and hour (DESIGN §10.5): posting without the cookie makes a new
# visitor, and each visitor may open a conversation in the agents' inbox.
NEW_VISITOR_LIMIT = (20, 3600.0)  # new visitors (new contacts) per address per hour
OPENED_LIMIT = (10, 3600.0)  # conversations opened (handed to agents) per address per hour


# ---------------------------------------------------------------------------- throttling

class RateLimiter:
    """Token buckets per key, in this process's memory.

    ``limits`` maps a key kind to ``(capacity, seconds)``: a bucket holds at most
    ``capacity`` tokens and refills ``capacity`` tokens every ``seconds``. A message
    needs one token from every bucket it is checked against. Like the login throttle,
    N web processes give a sender up to N times the budget and a restart forgets it;
    that is fine for flood control (docs/WEBCHAT.md).
    """

    def __init__(self, limits: dict[str, tuple[int, float]], max_keys: int = 50_000,
                 clock=time.monotonic):
        self.limits = dict(limits)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[tuple, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: tuple, now: float) -> float:
        capacity, seconds = self.limits[key[0]]
        tokens, at = self._buckets.get(key, (float(capacity), now))
        return min(float(capacity), tokens + (now - at) * capacity / seconds)

    def take(self, **keys: str) -> bool:
        """Spend one token from each ``kind=value`` bucket; False (nothing spent) if any is empty."""
        now = self.clock()
        with self._lock:
            wanted = [(kind, value) for kind, value in keys.items() if value]
            levels = {key: self._level(key, now) for key in wanted}
            if any(level < 1.0 for level in levels.values()):
                return False
            for key, level in levels.items():
                self._buckets[key] = (level - 1.0, now)
                self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:  # bounded memory under a flood
                self._buckets.popitem(last=False)
            return True

    def available(self, kind: str, value: str) -> bool:
        """Whether ``kind=value`` has a token left (nothing spent)."""
        with self._lock:
            return self._level((kind, value), self.clock()) >= 1.0


def _limiter() -> RateLimiter:
    return current_app.extensions["papo"]["webchat_limiter"]


def _newcomers() -> RateLimiter:
    return current_app.extensions["papo"]["webchat_newcomers"]


@bp.record_once
def _setup(state) -> None:
    state.app.extensions["papo"].setdefault(
        "webchat_limiter", RateLimiter({"visitor": VISITOR_LIMIT, "address": ADDRESS_LIMIT}))
    state.app.extensions["papo"].setdefault(
        "webchat_newcomers", RateLimiter({"new_visitor": NEW_VISITOR_LIMIT,
                                          "opened": OPENED_LIMIT}))


# ---------------------------------------------------------------------------- visitor

def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=COOKIE_SALT)


def _visitor() -> tuple[str, bool]:
    """``(visitor id, is_new)`` from the chat's signed cookie (a new id if absent or forged)."""
    raw = request.cookies.get(COOKIE)
    if raw:
        try:
            value = _serializer().loads(raw)
            if isinstance(value, str) and 8 <= len(value) <= 64:
                return value, False
        except BadSignature:
            pass
    return secrets.token_urlsafe(16), True


def _remember(response, flow_id: str, visitor: str):
    response.set_cookie(COOKIE, _serializer().dumps(visitor), max_age=COOKIE_MAX_AGE,
                        path=f"/c/{flow_id}", secure=request.is_secure, httponly=True,
                        samesite="Lax")
    return response


def _external_id(flow_id: str, visitor: str) -> str:
    return f"{flow_id}:{visitor}"


# ---------------------------------------------------------------------------- read model

def _published_flow(flow_id: str) -> dict | None:
    """The published document of ``flow_id``, or None (unknown, draft only, deleted)."""
    if not FLOW_ID.match(flow_id):
        return None
    found = FlowRepository(get_engine()).published(flow_id)
    return found[0] if found else None


def _conversation(external_id: str) -> dict | None:
    """``{"id","status","version","name"}`` of the visitor's conversation, or None before the first message."""
    return queries.contact_conversation(get_engine(), CHANNEL, external_id)


def _messages(conversation_id: int, after: int = 0) -> list[dict]:
    """Messages newer than id ``after`` (at most the last ``HISTORY``), oldest first, with author labels."""
    out = []
    for row in queries.recent_messages(get_engine(), conversation_id, after, limit=HISTORY):
        if row["author"] == "customer":
            kind, label = "customer", _("Você")
        elif row["author"] == "bot":
            kind, label = "bot", _("Assistente")
        else:
            kind, label = "agent", row["author_name"]
        at = row["at"]
        out.append({"id": row["id"], "kind": kind, "author": label, "text": row["text"],
                    "buttons": row["buttons"], "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "time": at.strftime("%H:%M")})
    return out


def _marker(last_id: int, conv) -> str:
    """What the page has seen: its newest message id and the conversation's write counter."""
    return f"{last_id}.{conv['version'] if conv else 0}"


def _parse_marker(value: str | None) -> tuple[int, int] | None:
    """``(last message id, version)`` from ``since``; None when absent; a malformed or
    out-of-range one (``9223372036854775808.0``) is a 400 (``editor.security``)."""
    if value is None or not value.strip():
        return None
    found = re.fullmatch(r"([0-9]{1,19})\.([0-9]{1,19})", value.strip())
    if found and int(found.group(1)) <= MAX_ID and int(found.group(2)) <= MAX_ID:
        return int(found.group(1)), int(found.group(2))
    message = _("Parâmetro inválido: %(name)s. Use um número inteiro entre %(minimum)d e "
                "%(maximum)d.", name="since", minimum=0, maximum=MAX_ID)
    raise BadParameter(message, details=[{"path": "since", "message": message}])


# ---------------------------------------------------------------------------- sending

def deliver(service, flow_id: str, contact: dict, message: dict) -> dict:
    """One customer message into the service; a conversation's first run is ``flow_id``."""
    return observed_inbound(CHANNEL, contact, message, service=service, start_flow_id=flow_id)


# ---------------------------------------------------------------------------- views

def _clean_name(value: str | None) -> str:
    return " ".join((value or "").split())[:MAX_NAME]


def _missing():
    response = make_response(render_template("webchat/missing.html"), 404)
    response.headers["Cache-Control"] = "no-store"
    return response


def _page(flow_id: str, doc: dict, visitor: str, is_new: bool, *, notice: str | None = None,
          status: int = 200, text: str = ""):
    conv = _conversation(_external_id(flow_id, visitor))
    shown = _messages(conv["id"]) if conv else []
    name = _clean_name(request.values.get("name")) or (conv["name"] if conv else "") or DEFAULT_NAME
    response = make_response(render_template(
        "webchat/page.html", flow_id=flow_id, flow_name=doc.get("name") or flow_id,
        messages=shown, conv=conv, name=name, text=text, notice=notice,
        marker=_marker(shown[-1]["id"] if shown else 0, conv),
        message_id=str(uuid.uuid4())), status)
    response.headers["Cache-Control"] = "no-store"
    return _remember(response, flow_id, visitor) if is_new else response


def _news(flow_id: str, conv, after: int, *, fresh_form: bool = False):
    """The htmx answer: new messages (appended), the status line and a new poller."""
    new = _messages(conv["id"], after) if conv else []
    last = new[-1]["id"] if new else after
    response = make_response(render_template(
        "webchat/_update.html", flow_id=flow_id, messages=new, conv=conv,
        marker=_marker(last, conv), message_id=str(uuid.uuid4()) if fresh_form else None))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/c/<flow_id>")
def chat(flow_id: str):
    doc = _published_flow(flow_id)
    if doc is None:
        return _missing()
    visitor, is_new = _visitor()
    return _page(flow_id, doc, visitor, is_new)


@bp.get("/c/<flow_id>/messages")
def poll(flow_id: str):
    if _published_flow(flow_id) is None:
        return _missing()
    visitor, is_new = _visitor()
    conv = None if is_new else _conversation(_external_id(flow_id, visitor))
    seen = _parse_marker(request.args.get("since"))
    if conv is None or (seen is not None and seen[1] == conv["version"]):
        return "", 204
    return _news(flow_id, conv, seen[0] if seen else 0)


@bp.post("/c/<flow_id>/messages")
def send(flow_id: str):
    doc = _published_flow(flow_id)
    if doc is None:
        return _missing()
    visitor, is_new = _visitor()
    htmx = bool(getattr(request, "htmx", False))
    text = (request.form.get("choice") or request.form.get("text") or "").strip()[:MAX_TEXT]
    if not text:
        return _refuse(flow_id, doc, visitor, is_new, htmx, 422, _("Escreva uma mensagem antes de enviar."))
    address = request.remote_addr or "?"
    if not _limiter().take(visitor=f"{flow_id}:{visitor}", address=address):
        return _refuse(flow_id, doc, visitor, is_new, htmx, 429,
                       _("Calma! Você está enviando mensagens rápido demais. Espere alguns "
                         "segundos e tente de novo."), text=text)
    external_id = _external_id(flow_id, visitor)
    before = None if is_new else _conversation(external_id)
    busy = _("Muitas conversas novas começaram deste endereço na última hora. Espere um "
             "pouco e tente de novo mais tarde.")
    if before is None and not _newcomers().take(new_visitor=address):
        return _refuse(flow_id, doc, visitor, is_new, htmx, 429, busy, text=text, retry_after=600)
    if (before is None or before["status"] != "open") and \
            not _newcomers().available("opened", address):
        # Visitors already talking to an agent go on; nobody else opens one more.
        return _refuse(flow_id, doc, visitor, is_new, htmx, 429, busy, text=text, retry_after=600)
    message_id = request.form.get("message_id") or ""
    if not MESSAGE_ID.match(message_id):
        message_id = str(uuid.uuid4())
    name = _clean_name(request.form.get("name"))
    if not name:  # a bot button without JavaScript: keep the name the contact has
        name = (before["name"] if before else "") or DEFAULT_NAME
    contact = {"external_id": external_id, "name": name}
    # The visitor id namespaces the message id: nobody can replay someone else's.
    result = deliver(get_service(), flow_id, contact, {"id": f"{visitor}:{message_id}", "text": text})
    if result.get("status") == "open" and (before is None or before["status"] != "open"):
        _newcomers().take(opened=address)
    if not htmx:
        response = redirect(url_for("webchat.chat", flow_id=flow_id), 303)
        return _remember(response, flow_id, visitor) if is_new else response
    seen = _parse_marker(request.form.get("since") or request.args.get("since"))
    conv = _conversation(contact["external_id"])
    response = _news(flow_id, conv, seen[0] if seen else 0, fresh_form=True)
    return _remember(response, flow_id, visitor) if is_new else response


@bp.errorhandler(BadText)
def _bad_text(error: BadText):
    """A message with a NUL (refused before the view ran, ``editor.security``): the
    customer sees why in the chat, their conversation untouched."""
    from editor.errors import handle_papo_error

    flow_id = (request.view_args or {}).get("flow_id", "")
    doc = _published_flow(flow_id) if request.method == "POST" else None
    if doc is None:
        return handle_papo_error(error)
    visitor, is_new = _visitor()
    return _refuse(flow_id, doc, visitor, is_new, bool(getattr(request, "htmx", False)), 422,
                   error.message)


def _refuse(flow_id, doc, visitor, is_new, htmx, status, notice, text="", retry_after=5):
    """A message that is not processed: the notice, the customer's text kept in the box."""
    if not htmx:
        response = _page(flow_id, doc, visitor, is_new, notice=notice, status=status, text=text)
    else:
        response = make_response(render_template("webchat/_notice.html", notice=notice), status)
        response.headers["HX-Retarget"] = "#chat-notice"
        response.headers["HX-Reswap"] = "outerHTML"
    if status == 429:
        response.headers["Retry-After"] = str(retry_after)
    return response
