"""Helpers for the operations tests (health, metrics, logs, backups): apps on a given
database, a small flow, signed WhatsApp deliveries and parsed Prometheus scrapes."""
from __future__ import annotations

import hashlib
import hmac
import json

from prometheus_client.parser import text_string_to_metric_families

from editor import create_app

METRICS_TOKEN = "metrics-token-123"
APP_SECRET = "ops-app-secret"
PHONE_ID = "106540352242922"

# Any message → one reply naming the contact; "espera" → a message, a 1 s wait, a message.
ECHO_FLOW = {
    "schema_version": 1, "id": "eco", "name": "Eco",
    "triggers": [{"type": "default"}],
    "start": "m",
    "blocks": [{"id": "m", "type": "message", "position": {"x": 0, "y": 0},
                "data": {"text": "Recebido, {{ contact.name }}."}}],
    "edges": [],
}
WAIT_FLOW = {
    "schema_version": 1, "id": "espera", "name": "Espera", "priority": 1,
    "triggers": [{"type": "keyword", "match": "exact", "value": "espera"}],
    "start": "m1",
    "blocks": [
        {"id": "m1", "type": "message", "position": {"x": 0, "y": 0}, "data": {"text": "Um momento."}},
        {"id": "w", "type": "wait", "position": {"x": 0, "y": 0}, "data": {"seconds": 1}},
        {"id": "m2", "type": "message", "position": {"x": 0, "y": 0}, "data": {"text": "Pronto."}},
    ],
    "edges": [{"from": "m1", "port": "next", "to": "w"}, {"from": "w", "port": "next", "to": "m2"}],
}


def make_app(db_url: str, tmp_path, **settings):
    """``create_app`` on ``db_url`` (schema left as it is) with ``PAPO_*`` ``settings``."""
    return create_app({
        "PAPO_DATABASE_URL": db_url,
        "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
        **settings,
    })


def scrape(text: str) -> dict[tuple, float]:
    """``{(sample name, ((label, value), ...)): value}`` from a Prometheus text scrape."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def webhook_body(wa_id: str, message_id: str, text: str, name: str = "Cliente") -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_ID},
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": message_id, "timestamp": "1800000000",
                          "type": "text", "text": {"body": text}}]}}]}]}).encode()


def signature(raw: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
