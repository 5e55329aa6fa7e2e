"""Channel webhooks: WhatsApp Cloud API (DESIGN §7).

``GET /channels/whatsapp/webhook`` answers Meta's subscription handshake;
``POST /channels/whatsapp/webhook`` takes deliveries signed with the app secret and feeds
each customer message to the same service as ``/api/v1/inbound``. The bot's replies are
queued in the outbox in that transaction; the worker sends them (``engine/outbox.py``).

No session and no CSRF here (the app factory exempts ``/channels/``): the signature is
the authentication. Errors are JSON (``editor/errors.py``), never a stack trace.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace

from flask import Blueprint, Response, jsonify, request

from editor.app import get_service, get_settings
from editor.ops import observed_inbound
from engine import metrics, whatsapp
from engine.errors import PapoError

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
    """A signed delivery: customer messages go to the bot; failed-delivery statuses are logged."""
    settings = get_settings()
    raw = request.get_data(cache=True)  # the exact bytes Meta signed
    if not settings.whatsapp_app_secret:
        log.warning("WhatsApp delivery refused: PAPO_WHATSAPP_APP_SECRET is not set")
        return _error(403, "forbidden", "Canal WhatsApp sem segredo do app configurado.")
    if not whatsapp.verify_signature(settings.whatsapp_app_secret, raw,
                                     request.headers.get("X-Hub-Signature-256")):
        metrics.webhook_signature_failure("whatsapp")
        return _error(403, "invalid_signature", "Assinatura X-Hub-Signature-256 ausente ou inválida.")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # nested too deep: 400 too
        return _error(400, "bad_request", "O corpo não é JSON válido.",
                      [{"path": "$", "message": str(exc)[:200]}])
    try:
        delivery = whatsapp.parse_delivery(payload, settings.whatsapp_phone_number_id)
    except whatsapp.WebhookPayloadError as exc:
        return _error(400, "bad_request", "O corpo não é um webhook do WhatsApp Cloud API.",
                      [{"path": exc.path, "message": exc.message}])

    service = get_service()
    for message in delivery.messages:
        if message.reply_id:
            with service.db.connect() as conn:
                message = _with_text(message, whatsapp.full_reply_title(conn, message))
        try:
            observed_inbound("whatsapp", message.contact(), message.message())
        except PapoError as exc:
            # Retrying would fail the same way: log it and acknowledge the delivery.
            log.warning("WhatsApp message %s not processed: %s", message.message_id, exc.message)
    if delivery.statuses:
        from engine.outbox import record_status

        for status in delivery.statuses:
            record_status(service, status)
    return jsonify({"ok": True})


def _with_text(message: whatsapp.InboundMessage, text: str) -> whatsapp.InboundMessage:
    return message if text == message.text else replace(message, text=text)
