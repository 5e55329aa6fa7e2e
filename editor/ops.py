"""Operations endpoints: ``GET /healthz``, ``GET /readyz``, ``GET /metrics``; and
:func:`observed_inbound` / :func:`handle_inbound`: the API and the web chat hand a customer
message to the service through ``engine/observe.py`` (counted, timed, logged with its
ids), as the WhatsApp webhook does in ``engine/whatsapp_inbound.py``.

- ``/healthz``: the process answers (no database touch) → 200 ``{"status": "ok"}``.
- ``/readyz``: the database answers and is migrated to this code's head → 200, else 503
  with ``reason`` (``database_unreachable``, ``not_migrated``, ``migration_pending``).
- ``/metrics``: Prometheus text, only with ``Authorization: Bearer <PAPO_METRICS_TOKEN>``;
  without that setting the route does not exist (404).
"""
from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request

from editor.app import get_engine, get_service, get_settings
from engine import metrics, observe
from engine.health import readiness

log = logging.getLogger("papo.health")

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    found = readiness(get_engine())
    ext = current_app.extensions["papo"]
    if found.reason != ext.get("readiness"):  # one line per change, not one per probe
        ext["readiness"] = found.reason
        if found.ready:
            log.info("ready: %s", found.message)
        else:
            log.warning("not ready (%s): %s", found.reason, found.detail or found.message)
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


def handle_inbound(channel: str, contact: dict, message: dict, **kwargs) -> dict:
    """The app's service handles one customer message, observed (call it inside
    ``inbound_request(channel)``)."""
    return observe.handle_inbound(get_service(), channel, contact, message, **kwargs)


def observed_inbound(channel: str, contact: dict, message: dict, *, service=None,
                     **kwargs) -> dict:
    """One customer message, counted, timed and logged with its ids (``engine/observe.py``)."""
    return observe.observed_inbound(service or get_service(), channel, contact, message, **kwargs)


def init_app(app: Flask) -> None:
    """Register the routes; count responses by status when metrics are on."""
    app.register_blueprint(bp)
    if app.extensions["papo"]["settings"].metrics_token:
        metrics.enable("web")

        @app.after_request
        def _count_response(response):
            metrics.http_response(response.status_code)
            return response
