"""The WhatsApp webhook as Meta calls it (both databases).

Most tests run the Flask app on a real socket (``werkzeug.serving.make_server``) and sign
the exact bytes they send, like Meta; a few use the test client. Replies are sent by
``engine.outbox.send_due`` to a fake Graph API (tests/fake_graph.py).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
from sqlalchemy import func, select

from editor import create_app
from engine import outbox as sender
from engine.db import create_schema
from engine.flows import FlowRepository
from engine.service import Service
from engine.store import contacts, conversations, messages, outbox, processed_messages, run_log

T0 = 1_800_000_000.0
VERIFY_TOKEN = "papo-verify-123"
APP_SECRET = "a1b2c3-app-secret"
TOKEN = "EAAG-test-token"
PHONE_ID = "106540352242922"
WA_ID = "5511987654321"
NAME = "Ana Souza"
WEBHOOK = "/channels/whatsapp/webhook"
GREETING = f"Olá, {NAME}! 👋 Bem-vindo(a) à Loja da Ana."
MENU = "Como posso te ajudar hoje?"
ASK_ORDER = "Qual é o número do seu pedido? (só os números, ex.: 12345)"

LONG_LABELS_FLOW = {
    "schema_version": 1, "id": "vendas", "name": "Vendas",
    "triggers": [{"type": "keyword", "match": "exact", "value": "vendas"}],
    "start": "q",
    "blocks": [
        {"id": "q", "type": "question", "position": {"x": 0, "y": 0},
         "data": {"text": "Com quem quer falar?", "input": "choice", "save_as": "setor",
                  "options": [{"id": "vendas", "label": "Quero falar com a equipe de vendas"},
                              {"id": "suporte", "label": "Quero falar com o suporte técnico"}]}},
        {"id": "v", "type": "message", "position": {"x": 0, "y": 0}, "data": {"text": "Vendas, certo!"}},
        {"id": "s", "type": "message", "position": {"x": 0, "y": 0}, "data": {"text": "Suporte, certo!"}},
    ],
    "edges": [{"from": "q", "port": "vendas", "to": "v"}, {"from": "q", "port": "suporte", "to": "s"}],
}
LIST_FLOW = {
    "schema_version": 1, "id": "agenda", "name": "Agenda",
    "triggers": [{"type": "keyword", "match": "exact", "value": "agendar"}],
    "start": "q",
    "blocks": [
        {"id": "q", "type": "question", "position": {"x": 0, "y": 0},
         "data": {"text": "Qual dia?", "input": "choice", "save_as": "dia",
                  "options": [{"id": "seg", "label": "Segunda-feira"}, {"id": "ter", "label": "Terça-feira"},
                              {"id": "qua", "label": "Quarta-feira"},
                              {"id": "qui", "label": "Quinta-feira de manhã cedinho"}]}},
        {"id": "ok", "type": "message", "position": {"x": 0, "y": 0}, "data": {"text": "Marcado: {{ dia }}."}},
    ],
    "edges": [{"from": "q", "port": p, "to": "ok"} for p in ("seg", "ter", "qua", "qui")],
}


# -- fixtures ---------------------------------------------------------------------------------

def make_app(db_url, tmp_path, fake_graph, **settings):
    config = {
        "PAPO_DATABASE_URL": db_url,
        "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
        "PAPO_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "PAPO_WHATSAPP_APP_SECRET": APP_SECRET,
        "PAPO_WHATSAPP_TOKEN": TOKEN,
        "PAPO_WHATSAPP_PHONE_NUMBER_ID": PHONE_ID,
        "PAPO_WHATSAPP_API_BASE": fake_graph.api_base,
        "TESTING": True,
        "SECRET_KEY": "test-secret",
    }
    config.update(settings)
    app = create_app(config)
    papo = app.extensions["papo"]
    create_schema(papo["engine"])
    papo["service"] = Service(papo["engine"], papo["settings"], clock=lambda: T0)
    repo = FlowRepository(papo["engine"])
    for doc in (app_sample_flow(), LONG_LABELS_FLOW, LIST_FLOW):
        repo.create(doc)
        repo.publish(doc["id"])
    return app


def app_sample_flow() -> dict:
    from conftest import SAMPLE_FLOWS

    return json.loads((SAMPLE_FLOWS / "boas-vindas.json").read_text(encoding="utf-8"))


@pytest.fixture
def wa_app(db_url, tmp_path, fake_graph):
    app = make_app(db_url, tmp_path, fake_graph)
    yield app
    app.extensions["papo"]["engine"].dispose()


@pytest.fixture
def live(wa_app):
    """The app on a real socket: ``live.url``, ``live.get(...)``, ``live.post(...)``."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, wa_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()


class Answer:
    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self):
        return json.loads(self.body)


class LiveServer:
    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None) -> Answer:
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, error.headers, error.read())

    def verify(self, **params) -> Answer:
        return self.call("GET", f"{WEBHOOK}?{urllib.parse.urlencode(params)}")

    def deliver(self, raw: bytes, signature: str | None = "sign", headers: dict | None = None) -> Answer:
        """POST ``raw`` signed with the app secret (or with ``signature`` as given)."""
        headers = {"Content-Type": "application/json", **(headers or {})}
        if signature == "sign":
            headers["X-Hub-Signature-256"] = sign(raw)
        elif signature is not None:
            headers["X-Hub-Signature-256"] = signature
        return self.call("POST", WEBHOOK, raw, headers)


def sign(raw: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def encode(payload: dict) -> bytes:
    # Indented and ASCII-escaped like Meta's own bodies: re-serializing would change the
    # bytes, so only a check over the raw body passes.
    return json.dumps(payload, indent=1).encode()


def delivery(*msgs: dict, wa_id: str = WA_ID, name: str = NAME, phone_number_id: str = PHONE_ID,
             statuses: list[dict] | None = None) -> dict:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id}}
    if msgs:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
        value["messages"] = [{"from": wa_id, "timestamp": "1800000000", **m} for m in msgs]
    if statuses is not None:
        value["statuses"] = statuses
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}]}


def text(body: str, wamid: str = "wamid.HBgNNTUxMTk4NzY1NDMyMQ001") -> dict:
    return {"id": wamid, "type": "text", "text": {"body": body}}


def button_reply(reply_id: str, title: str, wamid: str) -> dict:
    return {"id": wamid, "type": "interactive", "context": {"from": "15550001111", "id": "wamid.OUT"},
            "interactive": {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}}}


def list_reply(reply_id: str, title: str, wamid: str, description: str | None = None) -> dict:
    reply = {"id": reply_id, "title": title}
    if description is not None:
        reply["description"] = description
    return {"id": wamid, "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": reply}}


def engine_of(app):
    return app.extensions["papo"]["engine"]


def service_of(app) -> Service:
    return app.extensions["papo"]["service"]


def counts(app) -> dict[str, int]:
    with engine_of(app).connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                for t in (contacts, conversations, messages, outbox, processed_messages)}


NOTHING = {"contacts": 0, "conversations": 0, "messages": 0, "outbox": 0, "processed_messages": 0}


def conversation(app) -> dict:
    with engine_of(app).connect() as conn:
        conversation_id = conn.execute(select(conversations.c.id)).scalar_one()
    return service_of(app).get_conversation(conversation_id)


def bot_texts(app) -> list[str]:
    return [m["text"] for m in conversation(app)["messages"] if m["author"] == "bot"]


# -- the verification handshake ---------------------------------------------------------------

def test_verify_handshake_echoes_the_challenge_with_the_right_token(live):
    answer = live.verify(**{"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                            "hub.challenge": "1158201444"})
    assert answer.status == 200
    assert answer.body == b"1158201444"
    assert answer.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("params", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "8675309"},
    {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN.upper(), "hub.challenge": "8675309"},
    {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "8675309"},
    {"hub.mode": "subscribe", "hub.challenge": "8675309"},
    {},
], ids=["wrong-token", "case-differs", "wrong-mode", "no-token", "nothing"])
def test_verify_handshake_is_refused_otherwise(live, params):
    answer = live.verify(**params)
    assert answer.status == 403
    assert answer.json["error"]["code"] == "forbidden"
    assert b"8675309" not in answer.body  # the challenge is not echoed


def test_verify_handshake_is_refused_when_no_verify_token_is_configured(db_url, tmp_path, fake_graph):
    app = make_app(db_url, tmp_path, fake_graph, PAPO_WHATSAPP_VERIFY_TOKEN="")
    answer = app.test_client().get(WEBHOOK, query_string={
        "hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "42"})
    assert answer.status_code == 403
    app.extensions["papo"]["engine"].dispose()


# -- a customer writes ------------------------------------------------------------------------

def test_a_signed_text_message_is_answered_through_the_outbox(live, wa_app, fake_graph):
    answer = live.deliver(encode(delivery(text("oi"))))

    assert answer.status == 200
    assert answer.json == {"ok": True}
    conv = conversation(wa_app)
    assert conv["channel"] == "whatsapp"
    assert conv["contact"] == {"external_id": WA_ID, "name": NAME}
    assert [(m["direction"], m["text"]) for m in conv["messages"]] == [
        ("in", "oi"), ("out", GREETING), ("out", MENU)]
    assert [r["status"] for r in sender.outbox_status(service_of(wa_app), conv["id"])] == ["pending"] * 2

    assert sender.send_due(service_of(wa_app), now=T0) == 2

    first, second = fake_graph.delivered
    assert first.path == f"/v21.0/{PHONE_ID}/messages"
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.json == {"messaging_product": "whatsapp", "recipient_type": "individual",
                          "to": WA_ID, "type": "text", "text": {"body": GREETING}}
    assert second.json["type"] == "interactive"
    assert second.json["interactive"]["body"] == {"text": MENU}
    assert [b["reply"] for b in second.json["interactive"]["action"]["buttons"]] == [
        {"id": "b1", "title": "Ver produtos"}, {"id": "b2", "title": "Status do pedido"},
        {"id": "b3", "title": "Falar com atendente"}]
    assert [r["status"] for r in sender.outbox_status(service_of(wa_app), conv["id"])] == ["sent"] * 2


def test_the_test_client_is_answered_the_same(wa_app):
    raw = encode(delivery(text("oi")))
    answer = wa_app.test_client().post(WEBHOOK, data=raw, content_type="application/json",
                                       headers={"X-Hub-Signature-256": sign(raw)})
    assert answer.status_code == 200
    assert answer.get_json() == {"ok": True}
    assert bot_texts(wa_app) == [GREETING, MENU]


def test_a_repeated_delivery_is_processed_once(live, wa_app, fake_graph):
    raw = encode(delivery(text("oi")))
    assert live.deliver(raw).status == 200
    assert live.deliver(raw).status == 200  # Meta retries when it missed our 200

    assert counts(wa_app) == {"contacts": 1, "conversations": 1, "messages": 3, "outbox": 2,
                              "processed_messages": 1}
    assert sender.send_due(service_of(wa_app), now=T0) == 2
    assert fake_graph.texts() == [GREETING, MENU]


def test_several_messages_in_one_delivery_are_each_processed(live, wa_app):
    raw = encode(delivery(text("oi", "wamid.A1"), text("2", "wamid.A2")))
    assert live.deliver(raw).status == 200
    assert bot_texts(wa_app) == [GREETING, MENU, ASK_ORDER]


def test_tapping_a_reply_button_picks_the_option(live, wa_app):
    live.deliver(encode(delivery(text("oi", "wamid.B1"))))

    answer = live.deliver(encode(delivery(button_reply("b2", "Status do pedido", "wamid.B2"))))

    assert answer.status == 200
    conv = conversation(wa_app)
    assert conv["messages"][-2] == {**conv["messages"][-2], "direction": "in", "text": "Status do pedido"}
    assert conv["messages"][-1]["text"] == ASK_ORDER
    assert conv["variables"]["escolha"] == "Status do pedido"


def test_a_button_whose_label_was_shortened_still_picks_its_option(live, wa_app, fake_graph):
    live.deliver(encode(delivery(text("vendas", "wamid.C1"))))
    sender.send_due(service_of(wa_app), now=T0)
    buttons = fake_graph.delivered[0].json["interactive"]["action"]["buttons"]
    assert buttons[0]["reply"] == {"id": "b1", "title": "Quero falar com a eq"}

    live.deliver(encode(delivery(button_reply("b1", "Quero falar com a eq", "wamid.C2"))))

    assert bot_texts(wa_app)[-1] == "Vendas, certo!"
    assert conversation(wa_app)["variables"]["setor"] == "Quero falar com a equipe de vendas"


def test_a_list_reply_picks_the_option(live, wa_app, fake_graph):
    live.deliver(encode(delivery(text("agendar", "wamid.D1"))))
    sender.send_due(service_of(wa_app), now=T0)
    sent = fake_graph.delivered[0].json["interactive"]
    assert sent["type"] == "list"
    row = sent["action"]["sections"][0]["rows"][3]
    assert row["title"] == "Quinta-feira de manhã ce"

    live.deliver(encode(delivery(list_reply("b4", row["title"], "wamid.D2"))))

    assert bot_texts(wa_app)[-1] == "Marcado: Quinta-feira de manhã cedinho."


def test_a_list_reply_with_its_description_picks_the_option(live, wa_app):
    live.deliver(encode(delivery(text("agendar", "wamid.E1"))))
    live.deliver(encode(delivery(list_reply("b2", "Terça-feira", "wamid.E2"))))
    assert bot_texts(wa_app)[-1] == "Marcado: Terça-feira."


def test_a_template_quick_reply_button_is_read_as_its_text(live, wa_app):
    live.deliver(encode(delivery({"id": "wamid.F1", "type": "button",
                                  "button": {"text": "Oi", "payload": "promo-nov"}})))
    assert bot_texts(wa_app) == [GREETING, MENU]


def test_media_is_stored_as_a_placeholder_for_agents(live, wa_app):
    live.deliver(encode(delivery(text("atendente", "wamid.G1"))))  # a person takes over
    answer = live.deliver(encode(delivery({
        "id": "wamid.G2", "type": "image",
        "image": {"id": "1479537139650973", "mime_type": "image/jpeg", "sha256": "x",
                  "caption": "foto do pedido"}})))

    assert answer.status == 200
    conv = conversation(wa_app)
    assert conv["status"] == "open"
    assert [m["text"] for m in conv["messages"] if m["direction"] == "in"] == [
        "atendente", "foto do pedido"]  # a captioned media message's text is its caption
    assert conv["messages"][-1]["media"] == {"type": "image", "mime": "image/jpeg",
                                             "id": "1479537139650973", "caption": "foto do pedido"}


def test_status_updates_and_reactions_are_acknowledged_and_ignored(live, wa_app):
    statuses = [{"id": "wamid.OUT1", "status": "delivered", "timestamp": "1800000001",
                 "recipient_id": WA_ID}]
    assert live.deliver(encode(delivery(statuses=statuses))).status == 200
    reaction = {"id": "wamid.H1", "type": "reaction",
                "reaction": {"message_id": "wamid.OUT1", "emoji": "👍"}}
    answer = live.deliver(encode(delivery(reaction)))
    assert answer.status == 200
    assert answer.json == {"ok": True}
    assert counts(wa_app) == NOTHING


def test_a_failed_delivery_status_is_shown_on_the_conversation(live, wa_app, fake_graph):
    live.deliver(encode(delivery(text("oi", "wamid.I1"))))
    sender.send_due(service_of(wa_app), now=T0)
    with engine_of(wa_app).connect() as conn:
        wamid = conn.execute(select(outbox.c.payload).order_by(outbox.c.id)).scalars().all()[1]["wamid"]
    assert wamid == "wamid.FAKE000002"  # what the Graph API answered when it took the menu

    failed = [{"id": wamid, "status": "failed", "timestamp": "1800000009", "recipient_id": WA_ID,
               "errors": [{"code": 131047, "title": "Re-engagement message",
                           "error_data": {"details": "Message failed to send because more than "
                                                     "24 hours have passed"}}]}]
    assert live.deliver(encode(delivery(statuses=failed))).status == 200
    assert live.deliver(encode(delivery(statuses=failed))).status == 200  # Meta repeats itself

    conv = conversation(wa_app)
    assert [s["status"] for s in sender.outbox_status(service_of(wa_app), conv["id"])] == ["sent", "failed"]
    with engine_of(wa_app).connect() as conn:
        logged = conn.execute(select(run_log.c.message).where(run_log.c.level == "error")).scalars().all()
    assert logged == ["WhatsApp não entregou a mensagem: Message failed to send because more than "
                      "24 hours have passed (código 131047)"]


def test_messages_for_another_business_number_are_ignored(live, wa_app):
    answer = live.deliver(encode(delivery(text("oi"), phone_number_id="999999999")))
    assert answer.status == 200
    assert counts(wa_app) == NOTHING


# -- refused deliveries -----------------------------------------------------------------------

@pytest.mark.parametrize("case", ["missing", "other-secret", "tampered-body", "sha1", "garbage", "empty"])
def test_a_bad_or_missing_signature_is_refused_and_nothing_is_stored(live, wa_app, case):
    raw = encode(delivery(text("oi")))
    signature = {
        "missing": None,
        "other-secret": sign(raw, "not-the-secret"),
        "tampered-body": sign(raw.replace(b'"oi"', b'"ol\\u00e1"')),
        "sha1": "sha1=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha1).hexdigest(),
        "garbage": "sha256=ü-not-hex",
        "empty": "",
    }[case]

    answer = live.deliver(raw, signature=signature)

    assert answer.status == 403
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json["error"]["code"] in ("invalid_signature", "forbidden")
    assert counts(wa_app) == NOTHING


def test_the_signature_is_over_the_raw_bytes_not_the_parsed_json(live, wa_app):
    raw = encode(delivery(text("oi")))
    compact = json.dumps(json.loads(raw), separators=(",", ":")).encode()  # same JSON, other bytes
    assert live.deliver(compact, signature=sign(raw)).status == 403
    assert counts(wa_app) == NOTHING


def test_deliveries_are_refused_when_no_app_secret_is_configured(db_url, tmp_path, fake_graph):
    app = make_app(db_url, tmp_path, fake_graph, PAPO_WHATSAPP_APP_SECRET="")
    raw = encode(delivery(text("oi")))
    answer = app.test_client().post(WEBHOOK, data=raw, content_type="application/json",
                                    headers={"X-Hub-Signature-256": sign(raw, "")})
    assert answer.status_code == 403
    assert answer.get_json()["error"]["code"] == "forbidden"
    assert counts(app) == NOTHING
    app.extensions["papo"]["engine"].dispose()


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe{}"], ids=["not-json", "not-utf8"])
def test_a_signed_body_that_is_not_json_is_a_clear_400_and_nothing_is_stored(live, wa_app, raw, caplog):
    answer = live.deliver(raw)

    assert answer.status == 400
    error = answer.json["error"]
    assert error["code"] == "bad_request"
    assert error["details"][0]["path"] == "$"
    assert b"Traceback" not in answer.body
    assert counts(wa_app) == NOTHING
    assert "the signed body is not JSON" in caplog.text  # every refusal is logged with its reason


@pytest.mark.parametrize("raw", [
    b'["entry"]',
    b'{"object": "whatsapp_business_account"}',
    b'{"entry": [{"changes": [{"field": "messages", "value": []}]}]}',
    json.dumps(delivery({"id": "wamid.X", "type": "text", "text": "oi"})).encode(),
], ids=["a-list", "no-entry", "value-not-object", "text-not-object"])
def test_a_signed_json_body_of_another_shape_is_acknowledged_and_logged(live, wa_app, raw, caplog):
    answer = live.deliver(raw)

    assert answer.status == 200  # Meta would retry a refusal for days, in vain
    assert b"Traceback" not in answer.body
    if b"wamid.X" in raw:  # a message whose text cannot be read is kept as unsupported
        assert [m["text"] for m in conversation(wa_app)["messages"] if m["direction"] == "in"] == [
            "[mensagem não suportada]"]
        assert "stored as unsupported: text.body ausente" in caplog.text
    else:
        assert counts(wa_app) == NOTHING
        assert "skipped" in caplog.text


def test_the_webhook_answers_other_methods_with_json(live):
    answer = live.call("PUT", WEBHOOK, b"{}", {"Content-Type": "application/json"})
    assert answer.status == 405
    assert answer.json["error"]["code"] == "method_not_allowed"
