"""``kill -9`` of ``papo worker`` while it sends WhatsApp *template* messages (DESIGN §10.4).

Replies queued 30 hours ago, after the customers' last message: the 24-hour window is
closed, so the real ``papo worker`` process sends each as its block's approved template to
the fake Graph API (tests/fake_graph.py, which answers each accepted message 50 ms late so
the kill lands while sends are in flight). It is killed by its pid mid-way and started
again: every template reaches the Graph API exactly once (one delivery per idempotency
key), in order per conversation, with its rendered parameters. SQLite always, PostgreSQL
when PAPO_TEST_POSTGRES_URL is set.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict

from conftest import make_test_engine
from reliability_support import LONG, PapoWorker, outbox_counts, papo_env, report, wait_until

from engine import whatsapp_templates
from engine.db import create_schema
from engine.flows import FlowRepository
from engine.service import Service
from engine.settings import Settings

PHONE_ID = "106540352242922"
WA_TOKEN = "EAAG-reliability"
TEMPLATES = [
    {"name": "pedido_pronto", "language": "pt_BR", "status": "APPROVED",
     "components": [{"type": "BODY", "text": "Olá {{1}}, seu pedido está pronto!"}]},
    {"name": "obrigado", "language": "pt_BR", "status": "APPROVED",
     "components": [{"type": "BODY", "text": "Obrigado pela preferência."}]},
]
FLOW = {
    "schema_version": 1, "id": "pronto", "name": "Pronto",
    "triggers": [{"type": "keyword", "match": "exact", "value": "oi"}], "start": "b1",
    "blocks": [
        {"id": "b1", "type": "message", "position": {"x": 0, "y": 0},
         "data": {"text": "Seu pedido está pronto, {{ contact.name }}!",
                  "template": {"name": "pedido_pronto", "language": "pt_BR",
                               "params": ["{{ contact.name }}"]}}},
        {"id": "b2", "type": "message", "position": {"x": 0, "y": 0},
         "data": {"text": "Obrigado!", "template": {"name": "obrigado", "language": "pt_BR"}}}],
    "edges": [{"from": "b1", "port": "next", "to": "b2"}],
}


def test_killing_papo_worker_sends_each_template_exactly_once(db_url, tmp_path, fake_graph):
    conversations = 120 if LONG else 30
    db = make_test_engine(db_url)
    create_schema(db)
    fake_graph.templates = list(TEMPLATES)
    settings = Settings(whatsapp_token=WA_TOKEN, whatsapp_phone_number_id=PHONE_ID,
                        whatsapp_business_account_id="102290129340398",
                        whatsapp_api_base=fake_graph.api_base)
    assert whatsapp_templates.sync(db, settings, time.time()).approved == 2
    repo = FlowRepository(db)
    repo.create(FLOW, actor="test")
    repo.publish(FLOW["id"], actor="test")
    past = time.time() - 30 * 3600  # the customers wrote 30 h ago; the replies wait since then
    queued = Service(db, settings, clock=lambda: past)
    for k in range(conversations):
        queued.handle_inbound("whatsapp", {"external_id": f"55119{k:08d}", "name": f"Cliente {k}"},
                              {"id": f"wamid.TPL{k:06d}", "text": "oi"})
    assert outbox_counts(db) == {"pending": 2 * conversations}

    env = papo_env(db_url, tmp_path / "instance", PAPO_WHATSAPP_TOKEN=WA_TOKEN,
                   PAPO_WHATSAPP_PHONE_NUMBER_ID=PHONE_ID, PAPO_WHATSAPP_API_BASE=fake_graph.api_base,
                   PAPO_LOG_LEVEL="INFO")
    fake_graph.hang(times=10 * conversations, seconds=0.05)
    worker = PapoWorker(env, tmp_path / "worker.log")
    try:
        assert wait_until(lambda: len(fake_graph.delivered) >= 5, timeout=60, step=0.01), \
            worker.log.read_text()[-3000:]
        worker.kill()
        at_kill = len(fake_graph.delivered)
        assert at_kill < 2 * conversations, "the worker must die before the work is done"
        worker = PapoWorker(env, tmp_path / "worker.log")
        assert wait_until(lambda: outbox_counts(db).get("sent", 0) == 2 * conversations,
                          timeout=150, step=0.5), (outbox_counts(db), worker.log.read_text()[-3000:])
    finally:
        worker.stop()

    sent = defaultdict(list)
    for request in fake_graph.delivered:
        body = request.json
        assert body["type"] == "template", body  # never free text outside the window
        params = [p["text"] for c in body["template"].get("components", []) for p in c["parameters"]]
        sent[body["to"]].append((body["template"]["name"], params))
    assert dict(sent) == {f"55119{k:08d}": [("pedido_pronto", [f"Cliente {k}"]), ("obrigado", [])]
                          for k in range(conversations)}
    assert len(fake_graph.delivered) == 2 * conversations
    assert outbox_counts(db) == {"sent": 2 * conversations}
    keys = Counter(r.idempotency_key for r in fake_graph.requests if r.method == "POST" and r.status == 200)
    resent = sum(n - 1 for n in keys.values())
    report(f"template kill -9 on {db.dialect.name}: {conversations} conversations, {at_kill} templates "
           f"delivered before the worker died, {resent} re-sent with the same idempotency key, "
           f"{len(fake_graph.delivered)} delivered (once each)")
