"""Channel webhooks: WhatsApp Cloud API (DESIGN §7).

``GET /channels/whatsapp/webhook`` answers Meta's subscription handshake;
``POST /channels/whatsapp/webhook`` takes deliveries signed with the app secret and feeds
each customer message to the same service as ``/api/v1/inbound`` (``engine/whatsapp.py``
reads a delivery, ``engine/whatsapp_inbound.py`` applies it). The bot's replies are
queued in the outbox in that transaction; the worker sends them (``engine/outbox.py``).

No session and no CSRF here (the app factory exempts ``/channels/``): the signature is
the authentication. Errors are JSON (``editor/errors.py``), never a stack trace.
"""
from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, jsonify, request

from editor.app import get_service, get_settings
from engine import metrics, whatsapp, whatsapp_inbound
from engine.clean import clean, needs_cleaning

log = logging.getLogger("papo.channels")

bp = Blueprint("channels", __name__, url_prefix="/channels")


def _error(status: int, code: str, message: str, details: list[dict] | None = None):
    body = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    return response


@bp.get("/whatsapp/webhook")
def whatsapp_verify():
    """Meta's subscription check: echo ``hub.challenge`` when the verify token matches."""
    settings = get_settings()
    if not whatsapp.verify_subscription(settings.whatsapp_verify_token,
                                        request.args.get("hub.mode"),
                                        request.args.get("hub.verify_token")):
        if not settings.whatsapp_verify_token:
            log.warning("WhatsApp webhook verification refused: PAPO_WHATSAPP_VERIFY_TOKEN is not set")
        return _error(403, "forbidden", "Token de verificação inválido.")
    challenge = request.args.get("hub.challenge", "")
    return Response(challenge, status=200, mimetype="text/plain")


@bp.post("/whatsapp/webhook")
def whatsapp_receive():
    """A signed delivery: 200 once every part of it was handled (DESIGN §10.7).

    Each message, change, status and error is handled on its own (``engine.whatsapp`` reads
    them, ``engine.whatsapp_inbound`` stores them): a part that cannot be read is logged
    and skipped, never refusing its siblings. Refused: a bad signature (403) and a body
    that is not JSON (400), both logged with the reason; 503 when the database cannot be
    reached, so Meta delivers again later.
    """
    settings = get_settings()
    raw = request.get_data(cache=True)  # the exact bytes Meta signed
    if not settings.whatsapp_app_secret:
        log.warning("WhatsApp delivery refused: PAPO_WHATSAPP_APP_SECRET is not set")
        return _error(403, "forbidden", "Canal WhatsApp sem segredo do app configurado.")
    header = request.headers.get("X-Hub-Signature-256")
    if not whatsapp.verify_signature(settings.whatsapp_app_secret, raw, header):
        metrics.webhook_signature_failure("whatsapp")
        log.warning("WhatsApp delivery refused (403): %s, %d bytes from %s",
                    "no X-Hub-Signature-256 header" if not header else
                    "X-Hub-Signature-256 does not match the body and the app secret",
                    len(raw), request.remote_addr)
        return _error(403, "invalid_signature", "Assinatura X-Hub-Signature-256 ausente ou inválida.")
    try:
        # A third party's text: NUL removed, lone surrogates → U+FFFD (engine/clean.py).
        payload = json.loads(raw.decode("utf-8"))
        if needs_cleaning(raw):
            payload = clean(payload, drop_nul=True)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # nested too deep: 400 too
        log.warning("WhatsApp delivery refused (400): the signed body is not JSON: %s", str(exc)[:200])
        return _error(400, "bad_request", "O corpo não é JSON válido.",
                      [{"path": "$", "message": str(exc)[:200]}])
    delivery = whatsapp.parse_delivery(payload, settings.whatsapp_phone_number_id)
    try:
        receipt = whatsapp_inbound.receive(get_service(), delivery)
    except whatsapp_inbound.DATABASE_UNAVAILABLE as exc:
        log.error("WhatsApp delivery not processed (503, Meta will retry): database unavailable: %s",
                  str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
        response = _error(503, "unavailable", "Banco de dados indisponível; tente novamente.")
        response.headers["Retry-After"] = "30"
        return response
    log.info("WhatsApp delivery: %d messages, %d changes, %d statuses; %d skipped, %d refused, "
             "%d errors reported", receipt.messages, receipt.changes, receipt.statuses,
             receipt.skipped, receipt.refused, receipt.errors)
    return jsonify({"ok": True})
