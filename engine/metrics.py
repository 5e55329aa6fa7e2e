"""Prometheus metrics for papo (``prometheus-client``), doing nothing until enabled.

Callers record events with the one-line functions below (``inbound``, ``bot_step``,
``transition``, ``timer_fired``, ``outbox_send``, ...). Until :func:`enable` runs they
return at once, so a process that exposes no metrics (tests, ``papo chat``, the
simulator) pays one attribute check per call.

Two kinds of numbers:

- **Events** (counters, histograms) are counted by the process where they happen. Under
  gunicorn several worker processes serve one port: with ``PROMETHEUS_MULTIPROC_DIR``
  set (to an empty folder, before the processes start) each process writes its values
  there and a scrape adds them up (prometheus-client's multiprocess mode).
- **State** (open conversations, due timers, outbox backlog) is read from the database at
  scrape time by :class:`DatabaseCollector`, so every process reports the same truth and
  nothing has to be kept in step.

The web app serves ``GET /metrics`` (``editor/ops.py``, token ``PAPO_METRICS_TOKEN``);
``papo worker --metrics-port`` serves the same on a port of its own (:func:`serve`).
"""
from __future__ import annotations

import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from engine.db import read_only
from engine.errors import PapoError
from engine.store import conversations, outbox, timers

log = logging.getLogger("papo.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Inbound latency: the bot answers in a few milliseconds; a slow HTTP block takes seconds.
INBOUND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Timer lateness: the worker ticks every second; minutes late means no worker or too few.
LATENESS_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


CHANNELS = ("api", "whatsapp", "web")
INBOUND_OUTCOMES = ("ok", "invalid", "error")
TIMER_KINDS = ("wait", "question_timeout", "auto_conclude", "debounce")
OUTBOX_OUTCOMES = ("sent", "retry", "failed", "lost")
WORKER_JOBS = ("timers", "outbox", "cleanup")


class _Instruments:
    """The counters and histograms of one process, created once on :func:`enable`."""

    def __init__(self, registry) -> None:
        from prometheus_client import Counter, Histogram

        self.children: dict[tuple, object] = {}  # see child()

        def counter(name, doc, labels=()):
            return Counter(name, doc, labels, registry=registry)

        self.inbound = counter(
            "papo_inbound_messages_total",
            "Customer messages received, by channel and outcome (ok, invalid, error); "
            "a repeated delivery of an answered message counts as ok and in "
            "papo_inbound_duplicates_total.", ("channel", "outcome"))
        self.inbound_seconds = Histogram(
            "papo_inbound_seconds", "Time to store a customer message and compute the bot's answer.",
            ("channel",), buckets=INBOUND_BUCKETS, registry=registry)
        self.duplicates = counter(
            "papo_inbound_duplicates_total",
            "Repeated deliveries of a message already answered (same channel and message id).",
            ("channel",))
        self.bot_steps = counter(
            "papo_bot_steps_total", "Engine steps run (one per event fed to a flow run).", ("event",))
        self.transitions = counter(
            "papo_transitions_total", "Conversation status/assignment transitions applied, by action.",
            ("action",))
        self.timers_fired = counter("papo_timers_fired_total", "Timers fired, by kind.", ("kind",))
        self.timer_lateness = Histogram(
            "papo_timer_lateness_seconds", "How long after its due time a timer fired.",
            ("kind",), buckets=LATENESS_BUCKETS, registry=registry)
        self.outbox_sends = counter(
            "papo_outbox_sends_total",
            "WhatsApp outbox delivery attempts by outcome: sent, retry (failed, tried again "
            "later), failed (given up), lost (another sender had taken the row).", ("outcome",))
        self.job_failures = counter(
            "papo_worker_job_failures_total",
            "Worker jobs (timers, outbox, cleanup) that failed, the database being unreachable "
            "included; the job runs again at its next turn.", ("job",))
        self.signature_failures = counter(
            "papo_webhook_signature_failures_total",
            "Webhook deliveries refused for a missing or wrong signature.", ("channel",))
        self.http_responses = counter(
            "papo_http_responses_total", "HTTP responses sent by the web app, by status code.",
            ("code",))

    def initialize(self, role: str) -> None:
        """Every series this kind of process records, at 0 from the start, so that rate()
        and alerts work before the first event (each process only its own: a scrape reads
        every series of every process, and the web has no timers to report)."""
        if role == "web":
            for channel in CHANNELS:
                self.duplicates.labels(channel)
                self.inbound_seconds.labels(channel)
                for outcome in INBOUND_OUTCOMES:
                    self.inbound.labels(channel, outcome)
            self.signature_failures.labels("whatsapp")
        elif role == "worker":
            for kind in TIMER_KINDS:
                self.timers_fired.labels(kind)
                self.timer_lateness.labels(kind)
            for outcome in OUTBOX_OUTCOMES:
                self.outbox_sends.labels(outcome)
            for job in WORKER_JOBS:
                self.job_failures.labels(job)


_instruments: _Instruments | None = None
_registry = None  # single-process mode: the registry our instruments live in
_enable_lock = threading.Lock()


def enable(role: str | None = None) -> None:
    """Start counting in this process (idempotent); ``role`` (``web``, ``worker``) names the
    series to show at 0 from the start.

    Multiprocess mode follows ``PROMETHEUS_MULTIPROC_DIR`` as it is now: set it (to a
    folder emptied at server start) before the app is created — ``editor/gunicorn_conf.py``
    does it for gunicorn.
    """
    global _instruments, _registry
    with _enable_lock:
        if _instruments is not None:
            return
        from prometheus_client import CollectorRegistry, disable_created_metrics, values

        # prometheus-client picks its value store when first imported; papo decides here,
        # when metrics are turned on (the folder may have been set up after that import).
        if multiprocess() and values.ValueClass is values.MutexValue:
            values.ValueClass = values.MultiProcessValue()
        disable_created_metrics()  # *_created series: noise for dashboards, cost per scrape
        # Multiprocess mode: values go to files; the registry is only a namespace here.
        _registry = CollectorRegistry(auto_describe=True)
        _instruments = _Instruments(_registry)
        _instruments.initialize(role or "")


def enabled() -> bool:
    return _instruments is not None


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


# ---------------------------------------------------------------------- recording
def child(metric, *values: str):
    """``metric.labels(*values)``, kept: prometheus-client checks the labels and takes a
    lock on every call; the same few children are asked for on every message."""
    cache = _instruments.children
    key = (id(metric), values)
    found = cache.get(key)
    if found is None:
        found = cache[key] = metric.labels(*values)
    return found


@contextmanager
def inbound(channel: str) -> Iterator[None]:
    """Time one customer message and count its outcome: ``ok``, ``invalid`` (the sender's
    mistake, a 4xx) or ``error`` (papo's, a 5xx). The exception is not handled here."""
    metrics = _instruments
    if metrics is None:
        yield
        return
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except Exception as exc:
        outcome = "invalid" if _client_error(exc) else "error"
        raise
    finally:
        child(metrics.inbound, channel, outcome).inc()
        child(metrics.inbound_seconds, channel).observe(time.perf_counter() - started)


def _client_error(exc: BaseException) -> bool:
    """A refusal of the sender's input (``PapoError``, werkzeug's 4xx), not papo failing."""
    status = exc.status if isinstance(exc, PapoError) else getattr(exc, "code", None)
    return isinstance(status, int) and 400 <= status < 500


def inbound_duplicate(channel: str) -> None:
    if _instruments is not None:
        child(_instruments.duplicates, channel).inc()


_EVENT_NAMES: dict[type, str] = {}


def bot_step(event) -> None:
    """One engine step; the label is the event's kind (``user_message``, ``timer`` …)."""
    if _instruments is not None:
        kind = type(event)
        name = _EVENT_NAMES.get(kind)
        if name is None:
            name = _EVENT_NAMES[kind] = re.sub(r"(?<!^)(?=[A-Z])", "_", kind.__name__).lower()
        child(_instruments.bot_steps, name).inc()


def transition(action: str) -> None:
    if _instruments is not None:
        child(_instruments.transitions, action).inc()


def timer_fired(kind: str, lateness_s: float) -> None:
    if _instruments is not None:
        child(_instruments.timers_fired, kind).inc()
        child(_instruments.timer_lateness, kind).observe(max(0.0, lateness_s))


def outbox_send(outcome: str) -> None:
    if _instruments is not None:
        child(_instruments.outbox_sends, outcome).inc()


def worker_job_failed(job: str) -> None:
    if _instruments is not None:
        child(_instruments.job_failures, job).inc()


def webhook_signature_failure(channel: str) -> None:
    if _instruments is not None:
        child(_instruments.signature_failures, channel).inc()


def http_response(status: int) -> None:
    if _instruments is not None:
        child(_instruments.http_responses, str(status)).inc()


# ---------------------------------------------------------------------- state from the database
class DatabaseCollector:
    """Gauges read from the database at scrape time (a few indexed counts).

    A database that cannot be read gives ``papo_database_up 0`` and no other gauge,
    never a failed scrape.
    """

    def __init__(self, db: Engine, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("papo_database_up", "1 when the database answered this scrape.")
        try:
            state = database_state(self.db, self.clock())
        except SQLAlchemyError as exc:
            log.warning("metrics: the database did not answer (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for name, doc, value in (
            ("papo_open_conversations", "Conversations open now (waiting for or with an agent).",
             state["open_conversations"]),
            ("papo_timers_pending", "Timers waiting to fire.", state["timers_pending"]),
            ("papo_timers_due", "Timers past their due time and not fired yet.", state["timers_due"]),
            ("papo_timers_oldest_due_seconds",
             "How long the oldest unfired due timer has been due (0: none).", state["timers_oldest_due_s"]),
            ("papo_outbox_backlog", "WhatsApp messages not sent yet (pending or being sent).",
             state["outbox_backlog"]),
            ("papo_outbox_oldest_seconds", "Age of the oldest unsent WhatsApp message (0: none).",
             state["outbox_oldest_s"]),
            ("papo_outbox_failed", "WhatsApp messages given up on (stored as failed).",
             state["outbox_failed"]),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge


def database_state(db: Engine, now: float) -> dict:
    """The counts behind the gauges (one short read transaction)."""
    at = datetime.fromtimestamp(now, UTC)
    with read_only(db) as conn:  # SQLite: a deferred read, never the write lock
        open_count = conn.execute(select(func.count()).select_from(conversations).where(
            conversations.c.status == "open", conversations.c.channel != "test")).scalar_one()
        pending = conn.execute(select(func.count()).select_from(timers)
                               .where(timers.c.status == "pending")).scalar_one()
        due, oldest_due = conn.execute(select(func.count(), func.min(timers.c.due_at)).where(
            timers.c.status == "pending", timers.c.due_at <= at)).one()
        backlog = dict(conn.execute(select(outbox.c.status, func.count()).where(
            outbox.c.status.in_(("pending", "sending", "failed"))).group_by(outbox.c.status)).all())
        oldest_unsent = conn.execute(select(func.min(outbox.c.created_at)).where(
            outbox.c.status.in_(("pending", "sending")))).scalar_one()
    return {
        "open_conversations": open_count,
        "timers_pending": pending,
        "timers_due": due,
        "timers_oldest_due_s": _age(oldest_due, now),
        "outbox_backlog": backlog.get("pending", 0) + backlog.get("sending", 0),
        "outbox_failed": backlog.get("failed", 0),
        "outbox_oldest_s": _age(oldest_unsent, now),
    }


def _age(moment: datetime | None, now: float) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, now - moment.timestamp())


# ---------------------------------------------------------------------- exposition
class _Scrape:
    """What one scrape reports: this process's (or every process's) events + the database."""

    def __init__(self, db: Engine | None) -> None:
        self.db = db

    def collect(self):
        if multiprocess():
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            yield from registry.collect()
        elif _registry is not None:
            yield from _registry.collect()
        if self.db is not None:
            yield from DatabaseCollector(self.db).collect()


def render(db: Engine | None) -> tuple[bytes, str]:
    """The Prometheus text exposition: (body, content type)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(_Scrape(db)), CONTENT_TYPE_LATEST


def token_matches(expected: str | None, authorization: str | None) -> bool:
    """``Authorization: Bearer <expected>``, compared in constant time."""
    if not expected or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


def mark_process_dead(pid: int) -> None:
    """Multiprocess mode: forget a dead gunicorn worker's live gauges (gunicorn ``child_exit``)."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class _ThreadingServer(WSGIServer):
    daemon_threads = True

    def process_request(self, request, client_address):
        thread = threading.Thread(target=self._handle, args=(request, client_address), daemon=True)
        thread.start()

    def _handle(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


def metrics_wsgi_app(db: Engine | None, token: str | None):
    """A tiny WSGI app: ``GET /metrics`` (bearer token when one is set) and ``GET /healthz``."""

    def app(environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status":"ok"}']
        if path != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if token and not token_matches(token, environ.get("HTTP_AUTHORIZATION")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", 'Bearer realm="papo metrics"')])
            return [b"a bearer token (PAPO_METRICS_TOKEN) is required\n"]
        body, content_type = render(db)
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app


def serve(host: str, port: int, db: Engine | None, token: str | None) -> WSGIServer:
    """Serve :func:`metrics_wsgi_app` on ``host:port`` in a daemon thread (``papo worker``).

    Returns the server (``server.server_port`` is the port when 0 was asked;
    ``server.shutdown()`` stops it). Raises ``OSError`` when the port cannot be had.
    """
    # One process: its own numbers. A PROMETHEUS_MULTIPROC_DIR shared with the web
    # processes (one environment file for both) would mix their counters into ours.
    if not enabled():
        os.environ.pop(MULTIPROC_ENV, None)
        os.environ.pop(MULTIPROC_ENV.lower(), None)
    enable("worker")
    server = make_server(host, port, metrics_wsgi_app(db, token), server_class=_ThreadingServer,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="papo-metrics", daemon=True)
    thread.start()
    return server


__all__ = ["DatabaseCollector", "bot_step", "database_state", "enable", "enabled", "http_response",
           "inbound", "inbound_duplicate", "mark_process_dead", "metrics_wsgi_app", "multiprocess",
           "outbox_send", "render", "serve", "timer_fired", "token_matches", "transition",
           "webhook_signature_failure", "worker_job_failed"]
