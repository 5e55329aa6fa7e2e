"""Operations endpoints: ``GET /healthz``, ``GET /readyz``, ``GET /metrics``; and
:func:`observed_inbound`, the one way the channel routes hand a customer message to the
service (counted, timed and logged with its ids).

- ``/healthz``: the process answers (no database touch) → 200 ``{"status": "ok"}``.
- ``/readyz``: the database answers and is migrated to this code's head → 200, else 503
  with ``reason`` (``database_unreachable``, ``not_migrated``, ``migration_pending``).
- ``/metrics``: Prometheus text, only with ``Authorization: Bearer <PAPO_METRICS_TOKEN>``;
  without that setting the route does not exist (404).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, Flask, Response, abort, jsonify, request

from editor.app import get_engine, get_service, get_settings
from engine import logs, metrics
from engine.health import readiness

log = logging.getLogger("papo.web")

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    found = readiness(get_engine())
    response = jsonify(found.to_json())
    response.status_code = 200 if found.ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/metrics")
def metrics_view():
    token = get_settings().metrics_token
    if not token:
        abort(404)
    if not metrics.token_matches(token, request.headers.get("Authorization")):
        return Response("A bearer token (PAPO_METRICS_TOKEN) is required.\n", status=401,
                        mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="papo metrics"'})
    body, content_type = metrics.render(get_engine())
    return Response(body, status=200, headers={"Content-Type": content_type,
                                               "Cache-Control": "no-store"})


@contextmanager
def inbound_request(channel: str) -> Iterator[None]:
    """Around one inbound request: counted and timed by outcome (a refused body counts as
    ``invalid``), with the channel on every log line written inside."""
    with logs.context(channel=channel), metrics.inbound(channel):
        yield


def handle_inbound(channel: str, contact: dict, message: dict, *, service=None, **kwargs) -> dict:
    """``Service.handle_inbound`` inside :func:`inbound_request`: the message's ids on every
    log line written meanwhile, and one INFO line at the end (ids, never the text)."""
    message_id = message.get("id") if isinstance(message, dict) else None
    started = time.perf_counter()
    logs.bind(channel=channel, message_id=message_id)
    result = (service or get_service()).handle_inbound(channel, contact, message, **kwargs)
    logs.bind(conversation_id=result.get("conversation_id"))
    replies = len(result.get("replies") or ())
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.info("inbound %s message %s: conversation %s %s, %d replies, %.1f ms", channel, message_id,
             result.get("conversation_id"), result.get("status"), replies, elapsed_ms,
             extra={"status": result.get("status"), "replies": replies,
                    "duration_ms": round(elapsed_ms, 2)})
    return result


def observed_inbound(channel: str, contact: dict, message: dict, **kwargs) -> dict:
    """One customer message, counted, timed and logged (webhook, web chat)."""
    with inbound_request(channel):
        return handle_inbound(channel, contact, message, **kwargs)


def init_app(app: Flask) -> None:
    """Register the routes; count responses by status when metrics are on."""
    app.register_blueprint(bp)
    if app.extensions["papo"]["settings"].metrics_token:
        metrics.enable()

        @app.after_request
        def _count_response(response):
            metrics.http_response(response.status_code)
            return response
