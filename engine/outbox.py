"""The WhatsApp outbox sender: rows the service wrote become Cloud API requests.

The service's unit of work writes one ``outbox`` row per outbound WhatsApp message in the
same transaction as the message itself, so a reply is never lost; the row's key (a uuid
made before the write, ``idempotency_key``) is also the message's ``external_id`` until
the Graph API gives its wamid. The worker calls
:func:`send_due` every few seconds. A row moves::

    pending --claim--> sending --2xx--> sent
                          |---429/5xx/network--> pending (later, backoff) --...--> failed
                          '---other 4xx / too many attempts-------------------> failed

Each move is its own short transaction and the HTTP request happens outside any of them:
claim (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite) sets
``sending`` with a lease; just before the request the lease is renewed and ``attempts``
counted; right after, the answer is recorded. A sender that dies mid-way leaves the row
``sending``; once the lease is over any sender takes it again and repeats the request
with the *same* ``Idempotency-Key``. docs/WHATSAPP.md says what "never sent twice"
relies on.

Messages of one conversation go out in order: only the oldest unsent row of a
conversation can be claimed, so a reply never overtakes the one before it.
"""
from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, exists, insert, literal_column, or_, select, update

from engine import metrics, whatsapp_templates, whatsapp_window
from engine.moments import iso, utc
from engine.store import conversations, messages, outbox, run_log
from engine.whatsapp import DeliveryStatus, message_body
from engine.whatsapp_status import delivery_of, moves_forward

log = logging.getLogger("papo.outbox")

LEASE_S = 60.0  # longer than HTTP_TIMEOUT_S: a live sender never loses its row mid-request
HTTP_TIMEOUT_S = 15.0
MAX_ATTEMPTS = 10
BACKOFF_CAP_S = 3600.0
SENDER_THREADS = 4  # conversations sent in parallel; one conversation is always sequential
FAILURE_PREFIX = "WhatsApp não entregou a mensagem: "
TRANSIENT_STATUSES = frozenset({408, 429})  # plus every 5xx
UNSENT = ("pending", "sending")

_warned_unconfigured: weakref.WeakSet = weakref.WeakSet()


@dataclass(frozen=True)
class GraphResponse:
    """What the Graph API answered."""

    status: int
    body: str = ""
    retry_after: float | None = None


Transport = Callable[[str, dict, bytes], GraphResponse]
"""``http(url, headers, body) -> GraphResponse``; raises (e.g. ``OSError``) when no answer came."""


@dataclass(frozen=True)
class Claim:
    """An outbox row this sender holds until ``lease_until``."""

    id: int
    conversation_id: int
    idempotency_key: str
    payload: dict
    attempts: int
    lease_until: datetime
    # The attempt about to be made is counted and the lease fresh already (claimed right
    # before sending, in the transaction that marked the previous message sent).
    counted: bool = False


# ---------------------------------------------------------------------- HTTP
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET: treat it as the error it is."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post_json(url: str, headers: dict, body: bytes, timeout: float = HTTP_TIMEOUT_S) -> GraphResponse:
    """POST ``body`` with urllib; an HTTP error status is an answer, not an exception."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            return GraphResponse(response.status, response.read(65536).decode("utf-8", "replace"))
    except urllib.error.HTTPError as error:
        try:
            text = error.read(65536).decode("utf-8", "replace")
        except OSError:
            text = ""
        finally:
            error.close()
        return GraphResponse(error.code, text, _retry_after(error.headers.get("Retry-After")))


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # the HTTP-date form: our own backoff will do
    return seconds if seconds is not None and seconds >= 0 else None


# ---------------------------------------------------------------------- time


def _clock(service, now: float | None) -> Callable[[], float]:
    """A fixed ``now`` (tests, the caller's tick) or the service's clock at each step."""
    return (lambda: now) if now is not None else service.clock


def backoff_s(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next try after ``attempts`` tries: 2, 4, 8… capped at one hour."""
    delay = min(2.0 ** max(attempts, 1), BACKOFF_CAP_S)
    if retry_after is not None:
        delay = max(delay, min(retry_after, BACKOFF_CAP_S))
    return delay


# ---------------------------------------------------------------------- the row's moves
def claim_due(service, now: float | None = None, batch: int = 50, *, lease_s: float = LEASE_S,
              conversation_id: int | None = None) -> list[Claim]:
    """Take up to ``batch`` due rows (one per conversation: its oldest unsent one).

    Due: ``pending`` with ``next_attempt_at <= now``, or ``sending`` whose lease is over
    (its sender died). The rows become ``sending`` until ``now + lease_s``.
    """
    with service.db.begin() as conn:
        return _claim(conn, service, _clock(service, now)(), batch, lease_s, conversation_id)


def _claim_query(postgres: bool, one_conversation: bool):
    """The due rows' query, built once per shape: it runs inside the write transaction, where
    building it again (about a millisecond of Python) would hold the write lock."""
    key = (postgres, one_conversation)
    found = _CLAIM_QUERIES.get(key)
    if found is None:
        at = bindparam("_at")
        earlier = outbox.alias("earlier")
        older_unsent = exists().where(earlier.c.conversation_id == outbox.c.conversation_id,
                                      earlier.c.id < outbox.c.id, _unsent(earlier))
        found = (select(outbox.c.id, outbox.c.conversation_id, outbox.c.idempotency_key,
                        outbox.c.payload, outbox.c.attempts)
                 .where(outbox.c.channel == "whatsapp",
                        or_(and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= at),
                            and_(outbox.c.status == "sending",
                                 or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= at))),
                        ~older_unsent)
                 .order_by(outbox.c.id).limit(bindparam("_limit")))
        if one_conversation:
            found = found.where(outbox.c.conversation_id == bindparam("_conversation_id"), _unsent(outbox))
        if postgres:
            found = found.with_for_update(skip_locked=True, of=outbox)
        _CLAIM_QUERIES[key] = found
    return found


def _unsent(table):
    """``status IN ('pending', 'sending')`` written out, not bound: so both databases see that
    the partial index ``ix_outbox_unsent`` (the same words) holds every row asked for."""
    return table.c.status.in_([literal_column(f"'{status}'") for status in UNSENT])


_CLAIM_QUERIES: dict[tuple[bool, bool], object] = {}
_TAKE = update(outbox).where(outbox.c.id == bindparam("_id")).values(
    status="sending", claimed_until=bindparam("_until"), attempts=bindparam("_attempts"))


def _claim(conn, service, now: float, batch: int, lease_s: float,
           conversation_id: int | None = None, *, count: bool = False) -> list[Claim]:
    """:func:`claim_due` in the caller's transaction; ``count``: the attempt about to be
    made is counted now (what :func:`mark_sending` would do just before the request)."""
    at = utc(now)
    query = _claim_query(service.db.dialect.name == "postgresql", conversation_id is not None)
    params = {"_at": at, "_limit": max(1, int(batch)), "_conversation_id": conversation_id}
    lease_until = at + timedelta(seconds=lease_s)
    claims = []
    for row in conn.execute(query, params).all():
        counted = count and row.attempts < MAX_ATTEMPTS
        claims.append(Claim(row.id, row.conversation_id, row.idempotency_key,
                            dict(row.payload or {}), row.attempts + counted, lease_until, counted))
    if claims:
        conn.execute(_TAKE, [{"_id": c.id, "_until": lease_until, "_attempts": c.attempts} for c in claims])
    return claims


def mark_sending(service, claim: Claim, now: float | None = None, *,
                 lease_s: float = LEASE_S) -> Claim | None:
    """Renew the lease and count the attempt just before the request; None if the row was lost."""
    lease_until = utc(_clock(service, now)()) + timedelta(seconds=lease_s)
    with service.db.begin() as conn:
        done = conn.execute(update(outbox).where(
            outbox.c.id == claim.id, outbox.c.status == "sending",
            outbox.c.claimed_until == claim.lease_until,
        ).values(claimed_until=lease_until, attempts=outbox.c.attempts + 1))
    if done.rowcount != 1:
        return None
    return replace(claim, attempts=claim.attempts + 1, lease_until=lease_until)


def mark_sent(service, claim: Claim, now: float | None = None, wamid: str | None = None, *,
              then_claim: bool = False, lease_s: float = LEASE_S) -> Claim | None:
    """The Graph API accepted the message (even if our lease had run out meanwhile).

    ``then_claim``: the conversation's next due row is claimed in the same transaction
    and returned (a conversation's replies go one after the other: one write per message
    instead of two)."""
    values = {"status": "sent", "sent_at": utc(_clock(service, now)()), "claimed_until": None,
              "last_error": None}
    if wamid:
        values["payload"] = {**claim.payload, "wamid": wamid}
    with service.db.begin() as conn:
        _mark_sent(conn, claim, values, wamid)
        if then_claim:
            following = _claim(conn, service, _clock(service, now)(), 1, lease_s, claim.conversation_id,
                               count=True)
            return following[0] if following else None
    return None


def _mark_sent(conn, claim: Claim, values: dict, wamid: str | None) -> None:
    conn.execute(update(outbox).where(outbox.c.id == claim.id, outbox.c.status.in_(UNSENT))
                 .values(**values))
    if wamid:  # so a customer's reaction or reply can name this message
        # (until sent, the message is known by its outbox row's key, unique: the external
        # id's index finds it, never a scan of the conversation's messages)
        conn.execute(update(messages).where(messages.c.external_id == claim.idempotency_key)
                     .values(external_id=wamid[:200]))


def _mark_retry(service, claim: Claim, at: float, error: str, retry_after: float | None) -> bool:
    due = at + backoff_s(claim.attempts, retry_after)
    with service.db.begin() as conn:
        done = conn.execute(update(outbox).where(
            outbox.c.id == claim.id, outbox.c.status == "sending",
            outbox.c.claimed_until == claim.lease_until,
        ).values(status="pending", next_attempt_at=utc(due), claimed_until=None,
                 last_error=error[:2000]))
    return done.rowcount == 1


def _mark_failed(service, claim: Claim, at: float, error: str, code: str | None = None) -> bool:
    """The row failed for good; ``code`` (``window_closed``, ``template_unknown``): papo
    did not send it at all, and the message's ``delivery`` says so in the timeline."""
    with service.db.begin() as conn:
        done = conn.execute(update(outbox).where(
            outbox.c.id == claim.id, outbox.c.status == "sending",
            outbox.c.claimed_until == claim.lease_until,
        ).values(status="failed", claimed_until=None, last_error=error[:2000]))
        if done.rowcount != 1:
            return False
        if code is not None:
            _message_failed(conn, claim, at, code, error)
        conn.execute(insert(run_log).values(
            conversation_id=claim.conversation_id, level="error", block_id=None,
            message=(FAILURE_PREFIX + error)[:2000], at=utc(at)))
    log.warning("outbox row %s failed for good: %s", claim.id, error,
                extra={"outbox_id": claim.id, "conversation_id": claim.conversation_id})
    return True


def _message_failed(conn, claim: Claim, at: float, code: str, title: str) -> None:
    """``delivery: {"status": "failed", "at", "error": {"code", "title"}}`` on the message
    the row carried (DESIGN §10.6); found by the row's key, its ``external_id`` until sent."""
    row = conn.execute(select(messages.c.id, messages.c.details).where(
        messages.c.conversation_id == claim.conversation_id,
        messages.c.external_id == claim.idempotency_key)).first()
    if row is None:
        return
    details = dict(row.details) if isinstance(row.details, dict) else {}
    details["delivery"] = {"status": "failed", "at": iso(utc(at)),
                           "error": {"code": code, "title": title[:500]}}
    conn.execute(update(messages).where(messages.c.id == row.id).values(details=details))
    # A changed version is what the inbox's live view polls for (queries.conversation_marker);
    # a unit of work that read the old one simply reads again.
    conn.execute(update(conversations).where(conversations.c.id == claim.conversation_id)
                 .values(version=conversations.c.version + 1))


# ---------------------------------------------------------------------- text or template
WINDOW_CLOSED = "window_closed"
TEMPLATE_UNKNOWN = "template_unknown"
WINDOW_CLOSED_TEXT = ("fora da janela de 24 h: o cliente não escreve há mais de 24 horas e a "
                      "mensagem não tem modelo do WhatsApp")


@dataclass(frozen=True)
class Outgoing:
    """What a row becomes at send time: a request ``body``, or why it is not sent."""

    body: dict | None = None
    code: str | None = None  # window_closed | template_unknown
    error: str = ""


def outgoing(service, claim: Claim, now: float) -> Outgoing:
    """Text or template, decided at send time (DESIGN §10.4).

    Inside the 24-hour window the text goes (with its buttons or list); outside it the
    block's approved template goes instead, and a message without one is not sent at all
    (WhatsApp would accept it and then drop it): it fails with ``window_closed``. An agent's
    template (``send: template``) always goes as a template. A template that is not among
    the synced approved ones fails with ``template_unknown``.
    """
    payload = claim.payload
    template = payload.get("template") if isinstance(payload.get("template"), dict) else None
    with service.db.connect() as conn:
        if payload.get("send") != "template":
            last_in = whatsapp_window.last_inbound(conn, [claim.conversation_id]).get(claim.conversation_id)
            if whatsapp_window.is_open(last_in, now):
                return Outgoing(body=message_body(payload))
            if template is None:
                return Outgoing(code=WINDOW_CLOSED, error=WINDOW_CLOSED_TEXT)
        if template is None:
            return Outgoing(code=TEMPLATE_UNKNOWN, error="modelo do WhatsApp ausente")
        known = whatsapp_templates.find(conn, str(template.get("name")), str(template.get("language")))
    if known is None:
        return Outgoing(code=TEMPLATE_UNKNOWN, error=(
            f"o modelo do WhatsApp \"{template.get('name')}\" ({template.get('language')}) não está "
            "entre os aprovados sincronizados"))
    return Outgoing(body=whatsapp_templates.message_body(payload["to"], template))


# ---------------------------------------------------------------------- one delivery
def configured(settings) -> bool:
    return bool(settings.whatsapp_token and settings.whatsapp_phone_number_id)


def messages_url(settings) -> str:
    number = urllib.parse.quote(str(settings.whatsapp_phone_number_id), safe="")
    return f"{settings.whatsapp_api_base.rstrip('/')}/{number}/messages"


def _deliver(service, claim: Claim, http: Transport | None = None, now: float | None = None, *,
             lease_s: float = LEASE_S, then_claim: bool = False) -> tuple[str, Claim | None]:
    """Send one claimed row: (``sent``, ``retry``, ``failed`` or ``lost``, and with
    ``then_claim`` the conversation's next row, claimed in the transaction that marked this
    one sent or right after a failure settled it)."""
    outcome, following = _send(service, claim, http, now, lease_s=lease_s, then_claim=then_claim)
    if then_claim and outcome == "failed":  # settled for good: the next one may go
        found = claim_due(service, now, 1, lease_s=lease_s, conversation_id=claim.conversation_id)
        following = found[0] if found else None
    return outcome, following


def _send(service, claim: Claim, http, now, *, lease_s: float, then_claim: bool
          ) -> tuple[str, Claim | None]:
    clock = _clock(service, now)
    http = http or post_json
    if not claim.counted:
        if claim.attempts >= MAX_ATTEMPTS:  # a sender kept dying mid-request
            return ("failed" if _mark_failed(service, claim, clock(),
                                             f"{claim.attempts} tentativas sem resposta") else "lost"), None
        claim = mark_sending(service, claim, now, lease_s=lease_s)
        if claim is None:
            return "lost", None  # another sender took it after our lease ran out
    settings = service.settings
    try:
        chosen = outgoing(service, claim, clock())
        if chosen.body is None:
            return ("failed" if _mark_failed(service, claim, clock(), chosen.error, chosen.code)
                    else "lost"), None
        body = json.dumps(chosen.body, ensure_ascii=False).encode("utf-8")
    except (KeyError, TypeError, ValueError) as exc:
        return ("failed" if _mark_failed(service, claim, clock(),
                                         f"mensagem inválida na fila ({exc})") else "lost"), None
    headers = {
        "Authorization": f"Bearer {settings.whatsapp_token}",
        "Content-Type": "application/json",
        "Idempotency-Key": claim.idempotency_key,
        "User-Agent": "papo",
    }
    try:
        response = http(messages_url(settings), headers, body)
    except Exception as exc:  # no answer at all: the network, a timeout, a refused connection
        error = f"sem resposta da API do WhatsApp ({type(exc).__name__}: {exc})"
        return _after_failure(service, claim, clock(), error, None, transient=True), None
    if 200 <= response.status < 300:
        return "sent", mark_sent(service, claim, now, _wamid(response.body), then_claim=then_claim,
                                 lease_s=lease_s)
    error = f"HTTP {response.status}: {_graph_error(response.body)}"
    transient = response.status in TRANSIENT_STATUSES or response.status >= 500
    return _after_failure(service, claim, clock(), error, response.retry_after, transient=transient), None


def _after_failure(service, claim: Claim, at: float, error: str, retry_after, *, transient: bool) -> str:
    if transient and claim.attempts < MAX_ATTEMPTS:
        log.info("outbox row %s: attempt %s failed (%s); trying again later",
                 claim.id, claim.attempts, error,
                 extra={"outbox_id": claim.id, "conversation_id": claim.conversation_id})
        return "retry" if _mark_retry(service, claim, at, error, retry_after) else "lost"
    if transient:
        error = f"{error} — desistimos após {claim.attempts} tentativas"
    return "failed" if _mark_failed(service, claim, at, error) else "lost"


def _wamid(body: str) -> str | None:
    try:
        found = json.loads(body)["messages"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return found if isinstance(found, str) else None


def _graph_error(body: str) -> str:
    """Meta's ``{"error": {"message", "code", "error_data": {"details"}}}`` in one line."""
    try:
        error = json.loads(body)["error"]
        message = str(error.get("message") or "").strip()
        details = str((error.get("error_data") or {}).get("details") or "").strip()
        code = error.get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        text = " ".join(body.split())
        return text[:300] or "sem detalhes"
    text = message
    if details and details not in message:
        text = f"{text} — {details}" if text else details
    if code is not None:
        text = f"{text} (código {code})"
    return text[:500] or "sem detalhes"


# ---------------------------------------------------------------------- the worker's job
def send_due(service, now: float | None = None, batch: int = 50, http: Transport | None = None,
             *, threads: int = SENDER_THREADS, lease_s: float = LEASE_S) -> int:
    """Send due outbox rows (at most ``batch``); returns how many the Graph API accepted.

    The worker calls this every few seconds. Without ``PAPO_WHATSAPP_TOKEN`` and
    ``PAPO_WHATSAPP_PHONE_NUMBER_ID`` nothing is claimed: the rows wait, none is lost.
    """
    if not configured(service.settings):
        if service not in _warned_unconfigured:
            _warned_unconfigured.add(service)
            log.warning("WhatsApp outbox not sent: set PAPO_WHATSAPP_TOKEN and "
                        "PAPO_WHATSAPP_PHONE_NUMBER_ID (messages stay queued)")
        return 0
    claims = claim_due(service, now, batch, lease_s=lease_s)
    budget = [max(0, int(batch) - len(claims))]
    lock = threading.Lock()

    def conversation_chain(claim: Claim | None) -> int:
        # Once a message is settled (sent, or failed for good) the conversation's next one
        # goes right away, in order; a message waiting to be retried holds the rest back.
        sent = 0
        while claim is not None:
            with lock:
                more = budget[0] > 0
                budget[0] -= more
            outcome, following = _deliver(service, claim, http, now, lease_s=lease_s, then_claim=more)
            metrics.outbox_send(outcome)
            if outcome not in ("sent", "failed"):
                with lock:
                    budget[0] += more  # not used: this conversation waits
                break
            sent += outcome == "sent"
            claim = following
        return sent

    if len(claims) <= 1 or threads <= 1:
        return sum(conversation_chain(claim) for claim in claims)
    with ThreadPoolExecutor(max_workers=min(threads, len(claims)),
                            thread_name_prefix="papo-outbox") as pool:
        return sum(pool.map(conversation_chain, claims))


# ---------------------------------------------------------------------- reading and fixing
def outbox_status(service, conversation_id: int) -> list[dict]:
    """Delivery state of each WhatsApp message of a conversation, oldest first (for the inbox)."""
    # The message an outbox row sends is known by the row's key until sent, by its wamid after.
    with service.db.connect() as conn:
        rows = conn.execute(select(outbox).where(outbox.c.conversation_id == conversation_id)
                            .order_by(outbox.c.id)).mappings().all()
        sent_ids = dict(conn.execute(select(messages.c.external_id, messages.c.id).where(
            messages.c.conversation_id == conversation_id, messages.c.direction == "out",
            messages.c.external_id.is_not(None))).all())
    rows = [{**r, "message_id": sent_ids.get(r["idempotency_key"])
             or sent_ids.get((r["payload"] or {}).get("wamid"))} for r in rows]
    return [{"id": r["id"], "message_id": r["message_id"],
             "status": r["status"], "attempts": r["attempts"], "last_error": r["last_error"],
             "next_attempt_at": iso(r["next_attempt_at"]) if r["status"] == "pending" else None,
             "created_at": iso(r["created_at"]), "sent_at": iso(r["sent_at"])} for r in rows]


def retry(service, outbox_id: int, now: float | None = None) -> bool:
    """Queue a failed row again (e.g. after fixing the token); True if it was failed."""
    at = utc(_clock(service, now)())
    with service.db.begin() as conn:
        done = conn.execute(update(outbox).where(outbox.c.id == outbox_id, outbox.c.status == "failed")
                            .values(status="pending", attempts=0, next_attempt_at=at,
                                    claimed_until=None))
    return done.rowcount == 1


# The statements of a status, built once (a status webhook is as frequent as a message).
_SENT_MESSAGE = (select(messages.c.id, messages.c.conversation_id, messages.c.details)
                 .join(conversations, conversations.c.id == messages.c.conversation_id)
                 .where(messages.c.external_id == bindparam("_wamid"), messages.c.direction == "out",
                        conversations.c.channel == "whatsapp")
                 .order_by(messages.c.id).limit(1))
_SENT_MESSAGE_LOCKED = _SENT_MESSAGE.with_for_update(of=messages)  # two statuses of one message at once
_SET_DETAILS = update(messages).where(messages.c.id == bindparam("_id"))
_BUMP_VERSION = update(conversations).where(conversations.c.id == bindparam("_id")).values(
    version=conversations.c.version + 1)


def record_status(service, status: DeliveryStatus, now: float | None = None,
                  lookback: int = 200) -> bool:
    """Meta reported (webhook ``statuses[]``) how far a message we sent got.

    The message (found by its wamid, ``messages.external_id`` once sent) keeps the
    furthest status as ``details["delivery"]`` (``engine.whatsapp_status``): one that would
    move it backwards, or repeats what it has, changes nothing. The conversation's
    ``version`` moves so the inbox redraws its ticks. A ``failed`` one also marks the
    outbox row failed and says why in the run log. True when something changed.
    """
    clock = _clock(service, now)
    delivery = delivery_of(status, clock())
    if delivery is None:
        return False  # deleted, warning…: nothing an agent needs to see
    query = _SENT_MESSAGE_LOCKED if service.db.dialect.name == "postgresql" else _SENT_MESSAGE
    with service.db.begin() as conn:
        found = conn.execute(query, {"_wamid": status.wamid}).first()
        if found is None:
            return False  # another business's message, or one sent before papo
        details = dict(found.details) if isinstance(found.details, dict) else {}
        if not moves_forward(details.get("delivery"), delivery):
            return False
        details["delivery"] = delivery
        conn.execute(_SET_DETAILS, {"_id": found.id, "details": details})
        conn.execute(_BUMP_VERSION, {"_id": found.conversation_id})
        if delivery["status"] == "failed":
            _record_failure(conn, found.conversation_id, status, clock(), lookback)
    return True


def _record_failure(conn, conversation_id: int, status: DeliveryStatus, at: float, lookback: int) -> None:
    """The outbox row of a message Meta could not deliver becomes ``failed``, with a run-log line."""
    error = status.error_text()
    rows = conn.execute(select(outbox.c.id, outbox.c.payload).where(
        outbox.c.conversation_id == conversation_id, outbox.c.status == "sent")
        .order_by(outbox.c.id.desc()).limit(lookback)).all()
    row = next((r for r in rows if (r.payload or {}).get("wamid") == status.wamid), None)
    if row is None:
        return
    conn.execute(update(outbox).where(outbox.c.id == row.id, outbox.c.status == "sent")
                 .values(status="failed", last_error=error[:2000]))
    conn.execute(insert(run_log).values(
        conversation_id=conversation_id, level="error", block_id=None,
        message=(FAILURE_PREFIX + error)[:2000], at=utc(at)))
