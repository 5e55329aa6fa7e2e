"""The WhatsApp outbox sender: rows the service wrote become Cloud API requests.

The service's unit of work writes one ``outbox`` row per outbound WhatsApp message in the
same transaction as the message itself, so a reply is never lost; the row's key (a uuid
made before the write, ``idempotency_key``) is also the message's ``external_id`` until
the Graph API gives its wamid. The worker calls
:func:`send_due` every few seconds. A row moves::

    pending --claim--> sending --2xx--> sent
                          |---429/5xx/network--> pending (later, backoff) --...--> failed
                          '---other 4xx / too many attempts-------------------> failed

:func:`send_due` works in rounds. A round is a set of claimed rows, at most one per
conversation; its requests go out in parallel (threads, one persistent HTTP connection
each: :class:`KeepAlive`) outside any transaction, and then every answer of the round is
recorded in **one** transaction, which also claims the next round (each conversation's
next message among them). A burst of N replies costs about N / round transactions.

A claim (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite) sets
``sending`` with a lease and counts the attempt about to be made. A sender that dies
mid-way leaves the row ``sending``; once the lease is over any sender takes it again and
repeats the request with the *same* ``Idempotency-Key``. A round that runs so long that a
row's lease could end before its answer comes hands the rows it has not started back
(``pending``, the attempt uncounted). docs/WHATSAPP.md says what "never sent twice"
relies on.

Messages of one conversation go out in order: only the oldest unsent row of a
conversation can be claimed, so a reply never overtakes the one before it.
"""
from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from http import client as http_client

from sqlalchemy import and_, bindparam, func, insert, literal_column, or_, select, update

from engine import metrics, whatsapp_templates, whatsapp_window
from engine.moments import aware, iso, utc
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
    # before sending, as send_due does).
    counted: bool = False
    # The conversation's last customer message (WhatsApp's window), read with the claim.
    last_inbound_at: datetime | None = None


# ---------------------------------------------------------------------- HTTP
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET: treat it as the error it is."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post_json(url: str, headers: dict, body: bytes, timeout: float = HTTP_TIMEOUT_S) -> GraphResponse:
    """POST ``body`` with urllib on a new connection; an HTTP error status is an answer,
    not an exception. (:class:`KeepAlive` is what :func:`send_due` uses by default.)"""
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


MAX_ANSWER = 65536  # bytes of an answer read; a longer one ends its connection
IDLE_S = 30.0  # an idle connection older than this is closed rather than reused


class KeepAlive:
    """A :data:`Transport` that keeps its HTTP/1.1 connections open between requests.

    Each request takes an idle connection to its host (or opens one), and gives it back
    once the answer is read in full: with one sender thread per conversation in flight,
    that is one persistent connection per sender thread, no TCP (or TLS) handshake per
    message. ``https`` for the Graph API; ``http`` too (a local test or bench base).
    Redirects are not followed (the status is the answer, like :func:`post_json`). When
    a connection that was idle turns out closed by the server (no answer at all), the
    request goes once more on a new connection: it carries the same ``Idempotency-Key``,
    as any retry does. A connection idle for over ``IDLE_S`` is not reused (servers end
    idle ones). Connections made before a fork are not used after it.
    """

    def __init__(self, timeout: float = HTTP_TIMEOUT_S, max_idle: int = 2 * SENDER_THREADS):
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: dict[tuple, list[tuple[http_client.HTTPConnection, float]]] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._tls: ssl.SSLContext | None = None

    def __call__(self, url: str, headers: dict, body: bytes) -> GraphResponse:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"URL sem http(s) e host: {url!r}")
        key = (parts.scheme, parts.hostname, parts.port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = self._take(key)
        reused = conn is not None
        if conn is None:
            conn = self._connect(key)
        try:
            try:
                status, text, retry_after, reusable = self._post(conn, path, headers, body)
            except (ConnectionResetError, BrokenPipeError, http_client.BadStatusLine, ssl.SSLEOFError):
                # RemoteDisconnected is both: the server closed the idle connection
                conn.close()
                if not reused:
                    raise
                conn = self._connect(key)
                status, text, retry_after, reusable = self._post(conn, path, headers, body)
        except BaseException:
            conn.close()  # in an unknown state (a timeout mid-answer…): never reused
            raise
        if reusable:
            self._give(key, conn)
        else:
            conn.close()
        return GraphResponse(status, text, retry_after)

    def _post(self, conn, path: str, headers: dict, body: bytes) -> tuple[int, str, float | None, bool]:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read(MAX_ANSWER)
        reusable = not response.will_close and response.isclosed()  # read in full, kept open
        if not response.isclosed():
            response.close()
        retry_after = None if 200 <= response.status < 300 else _retry_after(response.getheader("Retry-After"))
        return response.status, data.decode("utf-8", "replace"), retry_after, reusable

    def _connect(self, key: tuple) -> http_client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            return http_client.HTTPSConnection(host, port, timeout=self.timeout, context=self._tls)
        return http_client.HTTPConnection(host, port, timeout=self.timeout)

    def _take(self, key: tuple) -> http_client.HTTPConnection | None:
        stale = []
        found = None
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's sockets are not ours
                self._idle, self._pid = {}, os.getpid()
            idle = self._idle.get(key)
            while idle:
                conn, since = idle.pop()
                if time.monotonic() - since <= IDLE_S:
                    found = conn
                    break
                stale.append(conn)
        for conn in stale:
            conn.close()
        return found

    def _give(self, key: tuple, conn: http_client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.max_idle:
                idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn, _ in conns:
                conn.close()


_keep_alive = KeepAlive()


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


# ---------------------------------------------------------------------- the statements
# Built once: they run inside write transactions, where building them again (about a
# millisecond of Python each) would hold the write lock.
def _claim_query(postgres: bool, shape: str):
    """The due rows' query, with each one's conversation's ``last_inbound_at``. A row may
    go when it is its conversation's *head*, the oldest unsent row (``ix_outbox_unsent``):

    - ``all``: the head of every conversation with unsent rows (one pass over that small
      partial index, its entries only), those due, oldest first;
    - ``these``: the heads of the conversations ``_conversation_ids`` (one index seek each:
      what a round claims after settling its own conversations' rows);
    - ``one``: the head of ``_conversation_id``.
    """
    key = (postgres, shape)
    found = _CLAIM_QUERIES.get(key)
    if found is None:
        at = bindparam("_at")
        unsent = outbox.alias("unsent")
        if shape == "all":
            heads = select(func.min(unsent.c.id)).where(_unsent(unsent)).group_by(unsent.c.conversation_id)
        else:
            asked = conversations.alias("asked")
            head_of = select(func.min(unsent.c.id)).where(
                unsent.c.conversation_id == asked.c.id, _unsent(unsent)).scalar_subquery()
            which = (asked.c.id.in_(bindparam("_conversation_ids", expanding=True)) if shape == "these"
                     else asked.c.id == bindparam("_conversation_id"))
            heads = select(head_of).select_from(asked).where(which)
        found = (select(outbox.c.id, outbox.c.conversation_id, outbox.c.idempotency_key,
                        outbox.c.payload, outbox.c.attempts, conversations.c.last_inbound_at)
                 .select_from(outbox.join(conversations, conversations.c.id == outbox.c.conversation_id))
                 .where(outbox.c.id.in_(heads), outbox.c.channel == "whatsapp",
                        or_(and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= at),
                            and_(outbox.c.status == "sending",
                                 or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= at))))
                 .order_by(outbox.c.id).limit(bindparam("_limit")))
        if postgres:
            found = found.with_for_update(skip_locked=True, of=outbox)
        _CLAIM_QUERIES[key] = found
    return found


def _unsent(table):
    """``status IN ('pending', 'sending')`` written out, not bound: so both databases see that
    the partial index ``ix_outbox_unsent`` (the same words) holds every row asked for."""
    return table.c.status.in_([literal_column(f"'{status}'") for status in UNSENT])


_CLAIM_QUERIES: dict[tuple[bool, str], object] = {}
_TAKE = update(outbox).where(outbox.c.id == bindparam("_id")).values(
    status="sending", claimed_until=bindparam("_until"), attempts=bindparam("_attempts"))
# Still ours: the lease this sender was given is the row's.
_HELD = and_(outbox.c.id == bindparam("_id"), outbox.c.status == "sending",
             outbox.c.claimed_until == bindparam("_lease"))
_RENEW = update(outbox).where(_HELD).values(claimed_until=bindparam("_until"),
                                            attempts=outbox.c.attempts + 1)
# Accepted by the Graph API: recorded even if our lease ran out meanwhile.
_SENT_ROW = and_(outbox.c.id == bindparam("_id"), _unsent(outbox))
_SENT = update(outbox).where(_SENT_ROW).values(
    status="sent", sent_at=bindparam("_at"), claimed_until=None, last_error=None)
_SENT_WAMID = update(outbox).where(_SENT_ROW).values(
    status="sent", sent_at=bindparam("_at"), claimed_until=None, last_error=None,
    payload=bindparam("_payload", type_=outbox.c.payload.type))
# so a customer's reaction or reply can name this message (until sent, the message is
# known by its outbox row's key, unique: the external id's index finds it, never a scan)
_MESSAGE_WAMID = update(messages).where(messages.c.external_id == bindparam("_key")).values(
    external_id=bindparam("_wamid"))
_RETRY = update(outbox).where(_HELD).values(
    status="pending", next_attempt_at=bindparam("_due"), claimed_until=None, last_error=bindparam("_error"))
_FAIL = update(outbox).where(_HELD).values(status="failed", claimed_until=None, last_error=bindparam("_error"))
# a row not tried after all (its round ran out of lease): due again, the attempt uncounted
_RELEASE = update(outbox).where(_HELD).values(status="pending", claimed_until=None,
                                              attempts=outbox.c.attempts - 1)
_FAILED_MESSAGE = select(messages.c.id, messages.c.details).where(
    messages.c.conversation_id == bindparam("_conversation_id"), messages.c.external_id == bindparam("_key"))
_MESSAGE_DETAILS = update(messages).where(messages.c.id == bindparam("_id")).values(details=bindparam("_details"))
_LOG_FAILURE = insert(run_log).values(conversation_id=bindparam("_conversation_id"), level="error",
                                      block_id=None, message=bindparam("_message"), at=bindparam("_at"))


# ---------------------------------------------------------------------- the row's moves
def claim_due(service, now: float | None = None, batch: int = 50, *, lease_s: float = LEASE_S,
              conversation_id: int | None = None) -> list[Claim]:
    """Take up to ``batch`` due rows (one per conversation: its oldest unsent one).

    Due: ``pending`` with ``next_attempt_at <= now``, or ``sending`` whose lease is over
    (its sender died). The rows become ``sending`` until ``now + lease_s``.
    """
    with service.db.begin() as conn:
        return _claim(conn, service, _clock(service, now)(), batch, lease_s, conversation_id)


def _claim(conn, service, now: float, batch: int, lease_s: float,
           conversation_id: int | None = None, *, count: bool = False,
           conversation_ids: list[int] | None = None) -> list[Claim]:
    """:func:`claim_due` in the caller's transaction; ``count``: the attempt about to be
    made is counted now (what :func:`mark_sending` would do just before the request);
    ``conversation_ids``: only those conversations' next rows."""
    at = utc(now)
    shape = "one" if conversation_id is not None else "these" if conversation_ids is not None else "all"
    if shape == "these" and not conversation_ids:
        return []
    query = _claim_query(service.db.dialect.name == "postgresql", shape)
    params = {"_at": at, "_limit": max(1, int(batch))}
    if shape == "one":
        params["_conversation_id"] = conversation_id
    elif shape == "these":
        params["_conversation_ids"] = list(conversation_ids)
    lease_until = at + timedelta(seconds=lease_s)
    claims = []
    for row in conn.execute(query, params).all():
        counted = count and row.attempts < MAX_ATTEMPTS
        claims.append(Claim(row.id, row.conversation_id, row.idempotency_key,
                            dict(row.payload or {}), row.attempts + counted, lease_until, counted,
                            aware(row.last_inbound_at) if row.last_inbound_at is not None else None))
    if claims:
        conn.execute(_TAKE, [{"_id": c.id, "_until": lease_until, "_attempts": c.attempts} for c in claims])
    return claims


def mark_sending(service, claim: Claim, now: float | None = None, *,
                 lease_s: float = LEASE_S) -> Claim | None:
    """Renew the lease and count the attempt just before the request; None if the row was lost."""
    lease_until = utc(_clock(service, now)()) + timedelta(seconds=lease_s)
    with service.db.begin() as conn:
        done = conn.execute(_RENEW, {"_id": claim.id, "_lease": claim.lease_until, "_until": lease_until})
    if done.rowcount != 1:
        return None
    return replace(claim, attempts=claim.attempts + 1, lease_until=lease_until)


def mark_sent(service, claim: Claim, now: float | None = None, wamid: str | None = None, *,
              then_claim: bool = False, lease_s: float = LEASE_S) -> Claim | None:
    """The Graph API accepted the message (even if our lease had run out meanwhile).

    ``then_claim``: the conversation's next due row is claimed in the same transaction
    and returned (its attempt counted)."""
    at = _clock(service, now)()
    with service.db.begin() as conn:
        _mark_sent(conn, [(claim, wamid)], utc(at))
        if then_claim:
            following = _claim(conn, service, at, 1, lease_s, claim.conversation_id, count=True)
            return following[0] if following else None
    return None


def _mark_sent(conn, sent: list[tuple[Claim, str | None]], at: datetime) -> None:
    """Rows the Graph API accepted, with the wamids it gave: a few executemany."""
    plain = [{"_id": c.id, "_at": at} for c, wamid in sent if not wamid]
    named = [{"_id": c.id, "_at": at, "_payload": {**c.payload, "wamid": wamid}} for c, wamid in sent if wamid]
    keys = [{"_key": c.idempotency_key, "_wamid": wamid[:200]} for c, wamid in sent if wamid]
    for statement, rows in ((_SENT, plain), (_SENT_WAMID, named), (_MESSAGE_WAMID, keys)):
        if rows:
            conn.execute(statement, rows if len(rows) > 1 else rows[0])


def _mark_retry(conn, claim: Claim, at: float, error: str, retry_after: float | None) -> bool:
    due = at + backoff_s(claim.attempts, retry_after)
    done = conn.execute(_RETRY, {"_id": claim.id, "_lease": claim.lease_until, "_due": utc(due),
                                 "_error": error[:2000]})
    return done.rowcount == 1


def _mark_failed(conn, claim: Claim, at: float, error: str, code: str | None = None) -> bool:
    """The row failed for good; ``code`` (``window_closed``, ``template_unknown``): papo
    did not send it at all, and the message's ``delivery`` says so in the timeline."""
    done = conn.execute(_FAIL, {"_id": claim.id, "_lease": claim.lease_until, "_error": error[:2000]})
    if done.rowcount != 1:
        return False
    if code is not None:
        _message_failed(conn, claim, at, code, error)
    conn.execute(_LOG_FAILURE, {"_conversation_id": claim.conversation_id,
                                "_message": (FAILURE_PREFIX + error)[:2000], "_at": utc(at)})
    log.warning("outbox row %s failed for good: %s", claim.id, error,
                extra={"outbox_id": claim.id, "conversation_id": claim.conversation_id})
    return True


def _release(conn, claim: Claim) -> None:
    conn.execute(_RELEASE, {"_id": claim.id, "_lease": claim.lease_until})


def _message_failed(conn, claim: Claim, at: float, code: str, title: str) -> None:
    """``delivery: {"status": "failed", "at", "error": {"code", "title"}}`` on the message
    the row carried (DESIGN §10.6); found by the row's key, its ``external_id`` until sent."""
    row = conn.execute(_FAILED_MESSAGE, {"_conversation_id": claim.conversation_id,
                                         "_key": claim.idempotency_key}).first()
    if row is None:
        return
    details = dict(row.details) if isinstance(row.details, dict) else {}
    details["delivery"] = {"status": "failed", "at": iso(utc(at)),
                           "error": {"code": code, "title": title[:500]}}
    conn.execute(_MESSAGE_DETAILS, {"_id": row.id, "_details": details})
    # A changed version is what the inbox's live view polls for (queries.conversation_marker);
    # a unit of work that read the old one simply reads again.
    conn.execute(_BUMP_VERSION, {"_id": claim.conversation_id})


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


class _Templates:
    """The synced approved templates asked for by one :func:`send_due`, each read once
    (on one connection, opened only if a row needs a template)."""

    def __init__(self, service):
        self.service = service
        self.found: dict[tuple[str, str], dict | None] = {}

    def find(self, name: str, language: str) -> dict | None:
        key = (name, language)
        if key not in self.found:
            with self.service.db.connect() as conn:
                self.found[key] = whatsapp_templates.find(conn, name, language)
        return self.found[key]


def outgoing(service, claim: Claim, now: float, templates: _Templates | None = None) -> Outgoing:
    """Text or template, decided at send time (DESIGN §10.4).

    Inside the 24-hour window the text goes (with its buttons or list); outside it the
    block's approved template goes instead, and a message without one is not sent at all
    (WhatsApp would accept it and then drop it): it fails with ``window_closed``. An agent's
    template (``send: template``) always goes as a template. A template that is not among
    the synced approved ones fails with ``template_unknown``. The window is the claim's
    ``last_inbound_at`` (the conversation's, read with the claim).
    """
    payload = claim.payload
    template = payload.get("template") if isinstance(payload.get("template"), dict) else None
    if payload.get("send") != "template":
        if whatsapp_window.is_open(claim.last_inbound_at, now):
            return Outgoing(body=message_body(payload))
        if template is None:
            return Outgoing(code=WINDOW_CLOSED, error=WINDOW_CLOSED_TEXT)
    if template is None:
        return Outgoing(code=TEMPLATE_UNKNOWN, error="modelo do WhatsApp ausente")
    known = (templates or _Templates(service)).find(str(template.get("name")), str(template.get("language")))
    if known is None:
        return Outgoing(code=TEMPLATE_UNKNOWN, error=(
            f"o modelo do WhatsApp \"{template.get('name')}\" ({template.get('language')}) não está "
            "entre os aprovados sincronizados"))
    return Outgoing(body=whatsapp_templates.message_body(payload["to"], template))


# ---------------------------------------------------------------------- one round
def configured(settings) -> bool:
    return bool(settings.whatsapp_token and settings.whatsapp_phone_number_id)


def messages_url(settings) -> str:
    number = urllib.parse.quote(str(settings.whatsapp_phone_number_id), safe="")
    return f"{settings.whatsapp_api_base.rstrip('/')}/{number}/messages"


@dataclass(frozen=True)
class _Result:
    """What became of one claimed row in a round (plain data, recorded by :func:`_settle`)."""

    claim: Claim
    outcome: str  # sent | retry | failed | release (not tried: the round's lease ran short)
    wamid: str | None = None
    error: str = ""
    code: str | None = None  # failed without a request: window_closed | template_unknown
    retry_after: float | None = None


def _prepare(service, claim: Claim, now: float, templates: _Templates) -> bytes | _Result:
    """The request body of a claimed row, or why it is not sent (decided at send time)."""
    if not claim.counted:  # a sender kept dying mid-request
        return _Result(claim, "failed", error=f"{claim.attempts} tentativas sem resposta")
    try:
        chosen = outgoing(service, claim, now, templates)
        if chosen.body is None:
            return _Result(claim, "failed", error=chosen.error, code=chosen.code)
        return json.dumps(chosen.body, ensure_ascii=False).encode("utf-8")
    except (KeyError, TypeError, ValueError) as exc:
        return _Result(claim, "failed", error=f"mensagem inválida na fila ({exc})")


def _post(http: Transport, url: str, headers: dict, claim: Claim, body: bytes,
          start_by: float) -> _Result:
    """One request (in a sender thread); ``start_by`` (monotonic): too late to start it."""
    if time.monotonic() > start_by:
        return _Result(claim, "release")
    try:
        response = http(url, {**headers, "Idempotency-Key": claim.idempotency_key}, body)
    except Exception as exc:  # no answer at all: the network, a timeout, a refused connection
        return _failure(claim, f"sem resposta da API do WhatsApp ({type(exc).__name__}: {exc})", None,
                        transient=True)
    if 200 <= response.status < 300:
        return _Result(claim, "sent", wamid=_wamid(response.body))
    error = f"HTTP {response.status}: {_graph_error(response.body)}"
    transient = response.status in TRANSIENT_STATUSES or response.status >= 500
    return _failure(claim, error, response.retry_after, transient=transient)


def _failure(claim: Claim, error: str, retry_after: float | None, *, transient: bool) -> _Result:
    if transient and claim.attempts < MAX_ATTEMPTS:
        log.info("outbox row %s: attempt %s failed (%s); trying again later",
                 claim.id, claim.attempts, error,
                 extra={"outbox_id": claim.id, "conversation_id": claim.conversation_id})
        return _Result(claim, "retry", error=error, retry_after=retry_after)
    if transient:
        error = f"{error} — desistimos após {claim.attempts} tentativas"
    return _Result(claim, "failed", error=error)


def _settle(conn, results: list[_Result], at: float) -> list[str]:
    """Record a round's answers in the caller's transaction; the outcome of each
    (``sent``, ``retry``, ``failed``, ``lost``: another sender holds the row now, or
    ``release``)."""
    _mark_sent(conn, [(r.claim, r.wamid) for r in results if r.outcome == "sent"], utc(at))
    outcomes = []
    for r in results:
        if r.outcome == "retry":
            outcome = "retry" if _mark_retry(conn, r.claim, at, r.error, r.retry_after) else "lost"
        elif r.outcome == "failed":
            outcome = "failed" if _mark_failed(conn, r.claim, at, r.error, r.code) else "lost"
        else:
            if r.outcome == "release":
                _release(conn, r.claim)
            outcome = r.outcome
        outcomes.append(outcome)
    return outcomes


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
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """The sender threads, kept for the process's life (starting them anew for each call
    cost more than a request): one pool per size asked for, made again after a fork."""
    key = (os.getpid(), threads)
    with _pools_lock:
        found = _pools.get(key)
        if found is None:
            found = _pools[key] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="papo-outbox")
    return found


def send_due(service, now: float | None = None, batch: int = 50, http: Transport | None = None,
             *, threads: int = SENDER_THREADS, lease_s: float = LEASE_S) -> int:
    """Send due outbox rows (at most ``batch`` requests); returns how many the Graph API
    accepted.

    Round after round: the claimed rows (one per conversation) are sent in parallel on
    ``threads`` threads, then their answers recorded and the next rows claimed (each
    conversation's next message among them) in one transaction. A message waiting to be
    retried holds its conversation's next ones back; other conversations go on.

    The worker calls this every few seconds. Without ``PAPO_WHATSAPP_TOKEN`` and
    ``PAPO_WHATSAPP_PHONE_NUMBER_ID`` nothing is claimed: the rows wait, none is lost.
    """
    if not configured(service.settings):
        if service not in _warned_unconfigured:
            _warned_unconfigured.add(service)
            log.warning("WhatsApp outbox not sent: set PAPO_WHATSAPP_TOKEN and "
                        "PAPO_WHATSAPP_PHONE_NUMBER_ID (messages stay queued)")
        return 0
    clock = _clock(service, now)
    http = http or _keep_alive
    settings = service.settings
    url = messages_url(settings)
    headers = {"Authorization": f"Bearer {settings.whatsapp_token}",
               "Content-Type": "application/json", "User-Agent": "papo"}
    templates = _Templates(service)
    budget = max(1, int(batch))
    # A round's rows are all claimed at its start: one whose request could not begin before
    # its lease might run out during the answer is handed back, not sent.
    window = max(lease_s - HTTP_TIMEOUT_S, lease_s / 2)
    with service.db.begin() as conn:
        claims = _claim(conn, service, clock(), budget, lease_s, count=True)
    budget -= len(claims)
    sent = 0
    while claims:
        start_by = time.monotonic() + window
        results: list[_Result | None] = []
        jobs = []
        for claim in claims:
            prepared = _prepare(service, claim, clock(), templates)
            if isinstance(prepared, _Result):
                results.append(prepared)
            else:
                results.append(None)
                jobs.append((len(results) - 1, claim, prepared))
        if len(jobs) > 1 and threads > 1:
            answers = list(_pool(threads).map(_post, *zip(*((http, url, headers, claim, body, start_by)
                                                  for _, claim, body in jobs), strict=True)))
        else:
            answers = [_post(http, url, headers, claim, body, start_by) for _, claim, body in jobs]
        for (index, _, _), answer in zip(jobs, answers, strict=True):
            results[index] = answer
        # rows handed back: the round ran long (a slow Graph API); the rest waits
        more = budget > 0 and not any(r.outcome == "release" for r in results)
        with service.db.begin() as conn:
            outcomes = _settle(conn, results, clock())
            # the next round: the next message of each conversation whose row was settled
            # (index seeks; other conversations' rows wait for the next call's claim)
            settled = [r.claim.conversation_id for r, outcome in zip(results, outcomes, strict=True)
                       if outcome in ("sent", "failed")]
            claims = _claim(conn, service, clock(), budget, lease_s, count=True,
                            conversation_ids=settled) if more else []
        budget -= len(claims)
        for outcome in outcomes:
            if outcome != "release":
                metrics.outbox_send(outcome)
        sent += outcomes.count("sent")
    return sent


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
