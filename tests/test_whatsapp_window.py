"""WhatsApp's 24-hour window, approved templates and lists (DESIGN §10.4), both databases.

The clock is moved by hand; the bot's replies go out through ``engine.outbox.send_due`` to
the fake Graph API (tests/fake_graph.py), which also serves ``message_templates`` in pages.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine import outbox as sender
from engine import whatsapp_templates
from engine.errors import Conflict, Invalid
from engine.flows import FlowRepository
from engine.service import Service
from engine.settings import Settings
from engine.store import outbox, run_log
from engine.whatsapp import message_body

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOUR = 3600.0
TOKEN = "EAAG-test-token"
PHONE_ID = "106540352242922"
WABA_ID = "102290129340398"
WA_ID = "5511987654321"

APPROVED = [
    {"name": "pedido_pronto", "language": "pt_BR", "status": "APPROVED", "category": "UTILITY",
     "components": [{"type": "HEADER", "format": "TEXT", "text": "Loja da Ana"},
                    {"type": "BODY", "text": "Olá {{1}}, seu pedido {{2}} está pronto!"}]},
    {"name": "pedido_pronto", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
     "components": [{"type": "BODY", "text": "Hi {{1}}, order {{2}} is ready!"}]},
    {"name": "retomar_conversa", "language": "pt_BR", "status": "APPROVED", "category": "UTILITY",
     "components": [{"type": "BODY", "text": "Oi {{1}}! Podemos continuar seu atendimento?"}]},
    {"name": "promo_rejeitada", "language": "pt_BR", "status": "REJECTED", "category": "MARKETING",
     "components": [{"type": "BODY", "text": "Promoção!"}]},
    {"name": "sem_parametros", "language": "pt_BR", "status": "APPROVED", "category": "UTILITY",
     "components": [{"type": "BODY", "text": "Estamos à disposição."}]},
]


def block(block_id: str, kind: str, **data) -> dict:
    return {"id": block_id, "type": kind, "position": {"x": 0, "y": 0}, "data": data}


def reminder_flow(template: dict | None = None) -> dict:
    """oi → "Recebemos seu pedido" → 25 h → "Seu pedido está pronto" (with ``template``)
    → 25 h → "Ainda está aí?" (no template)."""
    ready = {"text": "Seu pedido {{ pedido }} está pronto, {{ contact.name }}!"}
    if template is not None:
        ready["template"] = template
    return {
        "schema_version": 1, "id": "pedido", "name": "Pedido",
        "triggers": [{"type": "keyword", "match": "exact", "value": "oi"}], "start": "b1",
        "blocks": [block("b1", "set_variable", name="pedido", value="A-17"),
                   block("b2", "message", text="Recebemos seu pedido."),
                   block("b3", "wait", seconds=90000),
                   block("b4", "message", **ready),
                   block("b5", "wait", seconds=90000),
                   block("b6", "message", text="Ainda está aí?")],
        "edges": [{"from": "b1", "port": "next", "to": "b2"}, {"from": "b2", "port": "next", "to": "b3"},
                  {"from": "b3", "port": "next", "to": "b4"}, {"from": "b4", "port": "next", "to": "b5"},
                  {"from": "b5", "port": "next", "to": "b6"}],
    }


READY = {"name": "pedido_pronto", "language": "pt_BR", "params": ["{{ contact.name }}", "{{ pedido }}"]}


@pytest.fixture
def clock() -> list[float]:
    return [T0]


def whatsapp_service(db, api_base: str, clock: list[float]) -> Service:
    settings = Settings(whatsapp_token=TOKEN, whatsapp_phone_number_id=PHONE_ID,
                        whatsapp_api_base=api_base, whatsapp_business_account_id=WABA_ID)
    return Service(db, settings, clock=lambda: clock[0])


@pytest.fixture
def service(db, fake_graph, clock) -> Service:
    fake_graph.templates = list(APPROVED)
    fake_graph.page_size = 2
    svc = whatsapp_service(db, fake_graph.api_base, clock)
    assert whatsapp_templates.sync(db, svc.settings, T0).ok
    return svc


def publish(db, doc: dict) -> list[dict]:
    repo = FlowRepository(db)
    repo.create(doc)
    findings = repo.lint(doc)
    repo.publish(doc["id"])
    return findings


def customer_says(service: Service, text: str, n: int = 1, at: float | None = None) -> int:
    return service.handle_inbound("whatsapp", {"external_id": WA_ID, "name": "Ana"},
                                  {"id": f"wamid.IN-{n}", "text": text}, at=at)["conversation_id"]


def advance(service: Service, clock: list[float], seconds: float) -> None:
    clock[0] += seconds
    service.fire_due_timers(clock[0])
    sender.send_due(service, now=clock[0])


def outbox_rows(db) -> list[dict]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(select(outbox).order_by(outbox.c.id)).mappings()]


# -- the window in the conversation JSON ----------------------------------------------------

def test_window_closes_24_hours_after_the_customers_whatsapp_timestamp(service, clock):
    conversation_id = service.ensure_conversation("whatsapp", {"external_id": WA_ID, "name": "Ana"})
    assert service.get_conversation(conversation_id)["window_closes_at"] is None  # no message yet
    conversation_id = customer_says(service, "olá", at=T0 - 2 * HOUR)  # sent 2 h ago, delivered now
    conv = service.get_conversation(conversation_id)
    assert conv["window_closes_at"] == "2027-01-16T06:00:00Z"  # its timestamp + 24 h
    listed = service.list_conversations()["items"]
    assert [c["window_closes_at"] for c in listed] == ["2027-01-16T06:00:00Z"]
    clock[0] += HOUR
    customer_says(service, "oi de novo", n=2)  # no timestamp: its receive time counts
    assert service.get_conversation(conversation_id)["window_closes_at"] == "2027-01-16T09:00:00Z"


def test_window_is_null_on_other_channels(service):
    conversation_id = service.handle_inbound("api", {"external_id": "c1", "name": "Bia"},
                                             {"id": "m1", "text": "oi"})["conversation_id"]
    assert service.get_conversation(conversation_id)["window_closes_at"] is None
    assert service.list_conversations()["items"][0]["window_closes_at"] is None


# -- agents -----------------------------------------------------------------------------------

def test_an_agent_writes_freely_inside_the_window_and_is_refused_outside(service, clock, fake_graph):
    conversation_id = customer_says(service, "preciso de ajuda")
    clock[0] += 23 * HOUR
    service.agent_message(conversation_id, "ana", "Oi Ana, tudo certo?")
    sender.send_due(service, now=clock[0])
    clock[0] += 2 * HOUR  # 25 h after the customer's message
    with pytest.raises(Conflict) as refused:
        service.agent_message(conversation_id, "ana", "Ainda precisa de ajuda?")
    assert refused.value.code == "window_closed" and "modelo" in refused.value.message
    texts = [m["text"] for m in service.get_conversation(conversation_id)["messages"]]
    assert "Ainda precisa de ajuda?" not in texts  # nothing stored
    sender.send_due(service, now=clock[0])
    assert fake_graph.texts() == ["Oi Ana, tudo certo?"]


def test_an_agent_sends_a_template_when_the_window_is_closed(service, clock, fake_graph):
    conversation_id = customer_says(service, "preciso de ajuda")
    clock[0] += 30 * HOUR
    result = service.agent_template(conversation_id, "ana", "retomar_conversa", "pt_BR", ["Ana"])
    out = result["conversation"]["messages"][-1]
    assert (out["author"], out["text"]) == ("ana", "Oi Ana! Podemos continuar seu atendimento?")
    assert result["conversation"]["status"] == "open"
    sender.send_due(service, now=clock[0])
    [request] = fake_graph.delivered
    assert request.json == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID, "type": "template",
        "template": {"name": "retomar_conversa", "language": {"code": "pt_BR"},
                     "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]}}


def test_an_agent_template_must_be_approved_and_complete(service, clock):
    conversation_id = customer_says(service, "oi")
    with pytest.raises(Invalid) as unknown:
        service.agent_template(conversation_id, "ana", "promo_rejeitada", "pt_BR", [])
    assert unknown.value.code == "template_unknown"
    with pytest.raises(Invalid):
        service.agent_template(conversation_id, "ana", "pedido_pronto", "pt_BR", ["Ana"])  # 2 needed
    with pytest.raises(Invalid):
        service.agent_template(conversation_id, "ana", "pedido_pronto", "pt_BR", ["Ana", " "])
    assert len(service.get_conversation(conversation_id)["messages"]) == 1  # nothing stored


def test_the_api_answers_409_window_closed_and_sends_templates(app, api, api_clock, fake_graph):
    from editor.app import get_service

    papo = app.extensions["papo"]
    fake_graph.templates = list(APPROVED)
    settings = Settings(whatsapp_token=TOKEN, whatsapp_business_account_id=WABA_ID,
                        whatsapp_api_base=fake_graph.api_base)
    assert whatsapp_templates.sync(papo["engine"], settings, api_clock.now).ok
    with app.app_context():
        service = get_service()
        conversation_id = service.handle_inbound("whatsapp", {"external_id": WA_ID, "name": "Ana"},
                                                 {"id": "wamid.A", "text": "oi"})["conversation_id"]
    path = f"/api/v1/conversations/{conversation_id}/messages"
    got = api.get(f"/api/v1/conversations/{conversation_id}", user="ana").get_json()
    assert got["window_closes_at"] is not None
    assert api.post(path, json={"text": "Bom dia!"}, user="ana").status_code == 200
    api_clock.advance(25 * HOUR)
    refused = api.post(path, json={"text": "Ainda aí?"}, user="ana")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "window_closed"
    english = api.post(path + "?lang=en", json={"text": "Still there?"}, user="ana",
                       headers={"Accept-Language": "en"})
    assert english.status_code == 409
    sent = api.post(path, json={"template": {"name": "retomar_conversa", "language": "pt_BR",
                                             "params": ["Ana"]}}, user="ana")
    assert sent.status_code == 200, sent.data
    assert sent.get_json()["conversation"]["messages"][-1]["text"] == \
        "Oi Ana! Podemos continuar seu atendimento?"
    unknown = api.post(path, json={"template": {"name": "nao_existe", "language": "pt_BR"}}, user="ana")
    assert unknown.status_code == 422 and unknown.get_json()["error"]["details"][0]["path"] == "$.name"


# -- the bot ----------------------------------------------------------------------------------

def test_a_bot_message_outside_the_window_goes_as_its_template_with_rendered_params(
        db, service, clock, fake_graph):
    publish(db, reminder_flow(READY))
    customer_says(service, "oi")
    sender.send_due(service, now=clock[0])
    assert fake_graph.texts() == ["Recebemos seu pedido."]  # inside the window: text
    advance(service, clock, 25 * HOUR)  # the wait ends after the window closed
    assert fake_graph.delivered[-1].json["template"] == {
        "name": "pedido_pronto", "language": {"code": "pt_BR"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                                       {"type": "text", "text": "A-17"}]}]}
    assert outbox_rows(db)[-1]["status"] == "sent"


def test_a_bot_message_inside_the_window_goes_as_text_even_with_a_template(db, service, clock, fake_graph):
    publish(db, reminder_flow(READY))
    customer_says(service, "oi")
    clock[0] += 20 * HOUR
    customer_says(service, "e aí?", n=2)  # the customer wrote again: the window is open
    advance(service, clock, 5 * HOUR)
    assert fake_graph.texts() == ["Recebemos seu pedido.", "Seu pedido A-17 está pronto, Ana!"]


def test_a_bot_message_without_template_outside_the_window_fails_visibly(db, service, clock, fake_graph):
    publish(db, reminder_flow(READY))
    conversation_id = customer_says(service, "oi")
    sender.send_due(service, now=clock[0])
    advance(service, clock, 25 * HOUR)
    advance(service, clock, 25 * HOUR)  # "Ainda está aí?" has no template
    assert fake_graph.texts() == ["Recebemos seu pedido.", "template:pedido_pronto"]
    assert outbox_rows(db)[-1]["status"] == "failed"  # never queued forever, never sent as text
    last = service.get_conversation(conversation_id)["messages"][-1]
    assert last["text"] == "Ainda está aí?"
    assert last["delivery"]["status"] == "failed"
    assert last["delivery"]["error"]["code"] == "window_closed"
    assert last["delivery"]["at"] == "2027-01-17T10:00:00Z"
    with db.connect() as conn:
        logged = conn.execute(select(run_log.c.message).where(run_log.c.level == "error")).scalars().all()
    assert any("janela de 24 h" in line for line in logged)
    sender.send_due(service, now=clock[0] + HOUR)
    assert len(fake_graph.delivered) == 2  # it stays failed


def test_a_template_unknown_at_send_time_fails_and_is_not_sent(db, service, clock, fake_graph):
    publish(db, reminder_flow(READY))
    conversation_id = customer_says(service, "oi")
    sender.send_due(service, now=clock[0])
    fake_graph.templates = [t for t in APPROVED if t["name"] != "pedido_pronto"]
    assert whatsapp_templates.sync(db, service.settings, clock[0]).ok  # withdrawn meanwhile
    advance(service, clock, 25 * HOUR)
    assert fake_graph.texts() == ["Recebemos seu pedido."]
    last = service.get_conversation(conversation_id)["messages"][-1]
    assert last["delivery"]["error"]["code"] == "template_unknown"


# -- sync -------------------------------------------------------------------------------------

def test_sync_reads_every_page_and_keeps_approved_templates_only(db, fake_graph, clock):
    fake_graph.templates = list(APPROVED) + [
        {"name": f"extra_{n}", "language": "pt_BR", "status": "APPROVED",
         "components": [{"type": "BODY", "text": "{{1}} {{2}} {{3}}"}]} for n in range(7)]
    fake_graph.page_size = 3
    service = whatsapp_service(db, fake_graph.api_base, clock)
    result = whatsapp_templates.sync(db, service.settings, T0)
    assert (result.approved, result.skipped, result.pages) == (11, 1, 4)
    gets = [r for r in fake_graph.requests if r.method == "GET"]
    assert len(gets) == 4 and all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in gets)
    assert gets[0].path.startswith(f"/v21.0/{WABA_ID}/message_templates?")
    found = {(t["name"], t["language"]): t for t in whatsapp_templates.list_templates(db)}
    assert ("promo_rejeitada", "pt_BR") not in found
    assert found[("pedido_pronto", "pt_BR")]["param_count"] == 2
    assert found[("extra_6", "pt_BR")]["param_count"] == 3
    assert found[("sem_parametros", "pt_BR")]["param_count"] == 0
    # a second sync replaces the table: a template withdrawn at Meta is gone
    fake_graph.templates = APPROVED[:1]
    assert whatsapp_templates.sync(db, service.settings, T0).approved == 1
    assert [t["name"] for t in whatsapp_templates.list_templates(db)] == ["pedido_pronto"]


def test_a_failed_sync_changes_nothing_and_says_why(db, fake_graph, clock):
    fake_graph.templates = list(APPROVED)
    service = whatsapp_service(db, fake_graph.api_base, clock)
    assert whatsapp_templates.sync(db, service.settings, T0).ok
    broken = Settings(whatsapp_token=TOKEN, whatsapp_business_account_id=WABA_ID,
                      whatsapp_api_base=fake_graph.api_base.replace("v21.0", "v0.0"))
    result = whatsapp_templates.sync(db, broken, T0)
    assert not result.ok and "HTTP 404" in result.error
    assert len(whatsapp_templates.list_templates(db)) == 4
    unset = whatsapp_templates.sync(db, Settings(whatsapp_token=TOKEN), T0)
    assert not unset.ok and "PAPO_WHATSAPP_BUSINESS_ACCOUNT_ID" in unset.error


def test_the_cli_syncs_templates(db_url, db, fake_graph, monkeypatch):
    from editor.cli import main

    fake_graph.templates = list(APPROVED)
    fake_graph.page_size = 2
    for name, value in {"PAPO_DATABASE_URL": db_url, "PAPO_WHATSAPP_TOKEN": TOKEN,
                        "PAPO_WHATSAPP_BUSINESS_ACCOUNT_ID": WABA_ID,
                        "PAPO_WHATSAPP_API_BASE": fake_graph.api_base}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["whatsapp", "templates", "sync"])
    assert result.exit_code == 0, result.output
    assert "4 approved templates synced (1 not approved skipped, 3 pages read)" in result.output
    listed = CliRunner().invoke(main, ["whatsapp", "templates", "list"])
    assert "retomar_conversa\tpt_BR\t1" in listed.output
    monkeypatch.delenv("PAPO_WHATSAPP_BUSINESS_ACCOUNT_ID")
    refused = CliRunner().invoke(main, ["whatsapp", "templates", "sync"])
    assert refused.exit_code == 1 and "PAPO_WHATSAPP_BUSINESS_ACCOUNT_ID" in refused.output


# -- lint -------------------------------------------------------------------------------------

def codes(findings: list[dict]) -> list[tuple[str, str, str | None]]:
    return [(f["level"], f["code"], f["block_id"]) for f in findings if f["code"].startswith("template_")]


def test_lint_checks_the_template_against_the_synced_ones(db, service):
    repo = FlowRepository(db)
    assert codes(repo.lint(reminder_flow(READY))) == []
    wrong_count = {**READY, "params": ["{{ contact.name }}"]}
    findings = repo.lint(reminder_flow(wrong_count))
    assert codes(findings) == [("error", "template_param_count", "b4")]
    message = next(f["message"] for f in findings if f["code"] == "template_param_count")
    assert "pede 2 parâmetros" in message and "dá 1" in message and "Seu pedido" in message
    assert codes(repo.lint(reminder_flow({**READY, "name": "nao_existe"}))) == \
        [("error", "template_unknown", "b4")]
    language = repo.lint(reminder_flow({**READY, "language": "es"}), lang="en")
    assert codes(language) == [("error", "template_language_unknown", "b4")]
    assert "en_US, pt_BR" in language[0]["message"] and "does not exist" in language[0]["message"]


def test_a_flow_with_an_unknown_template_cannot_be_published(db, service):
    from engine.errors import PapoError

    repo = FlowRepository(db)
    repo.create(reminder_flow({**READY, "name": "nao_existe"}))
    with pytest.raises(PapoError) as refused:
        repo.publish("pedido")
    assert refused.value.code == "flow_has_errors"


def test_open_conversation_blocks_take_a_template_too(db, service, clock, fake_graph):
    doc = {"schema_version": 1, "id": "humano", "name": "Humano",
           "triggers": [{"type": "keyword", "match": "exact", "value": "ajuda"}], "start": "b1",
           "blocks": [block("b1", "open_conversation", text="Já te chamamos!",
                            template={"name": "sem_parametros", "language": "pt_BR"})],
           "edges": []}
    assert codes(publish(db, doc)) == []
    # The customer's message is 25 h old (its WhatsApp timestamp): the window is closed.
    customer_says(service, "ajuda", at=clock[0] - 25 * HOUR)
    sender.send_due(service, now=clock[0])
    [request] = fake_graph.delivered
    assert request.json["template"] == {"name": "sem_parametros", "language": {"code": "pt_BR"}}
    assert codes(FlowRepository(db).lint({**doc, "blocks": [block(
        "b1", "open_conversation", text="x", template={"name": "sem_parametros", "language": "pt_BR",
                                                        "params": ["a"]})]})) == \
        [("error", "template_param_count", "b1")]


# -- lists ------------------------------------------------------------------------------------

LABELS = ["Pizza de calabresa acebolada", "Pizza margherita", "Pizza quatro queijos especial",
          "Esfiha de carne", "Refrigerante 2 litros", "Suco natural de laranja",
          "Sobremesa do dia", "Água mineral", "Batata frita grande", "Combo família completo",
          "Falar com atendente"]


@pytest.mark.parametrize("count,kind", [(1, "button"), (3, "button"), (4, "list"), (10, "list"),
                                        (11, "text")])
def test_choices_go_as_buttons_a_list_or_numbered_text_by_count(count, kind):
    body = message_body({"to": WA_ID, "text": "O que vai ser hoje?", "buttons": LABELS[:count]})
    if kind == "text":
        assert body["type"] == "text"
        assert body["text"]["body"].splitlines()[-1] == f"11. {LABELS[10]}"
        return
    assert body["type"] == "interactive" and body["interactive"]["type"] == kind
    if kind == "button":
        titles = [b["reply"]["title"] for b in body["interactive"]["action"]["buttons"]]
        assert all(len(t) <= 20 for t in titles)
    else:
        action = body["interactive"]["action"]
        rows = action["sections"][0]["rows"]
        assert len(rows) == count and len(action["button"]) <= 20
        assert all(len(r["title"]) <= 24 and len(r.get("description", "")) <= 72 for r in rows)
        assert [r["id"] for r in rows] == [f"b{n}" for n in range(1, count + 1)]
    # a label cut to the API's limit is still read whole, in the body
    text = body["interactive"]["body"]["text"]
    assert len(text) <= 1024
    cut = [label for label in LABELS[:count] if len(label) > (20 if kind == "button" else 24)]
    assert all(label in text for label in cut)


def test_a_list_reply_is_understood_as_the_option(db, service, clock):
    options = [{"id": f"o{n}", "label": label} for n, label in enumerate(LABELS[:5], 1)]
    doc = {"schema_version": 1, "id": "cardapio", "name": "Cardápio",
           "triggers": [{"type": "keyword", "match": "exact", "value": "oi"}], "start": "q",
           "blocks": [block("q", "question", text="O que vai ser?", input="choice", options=options,
                            save_as="pedido"),
                      block("ok", "message", text="Anotado: {{ pedido }}")],
           "edges": [{"from": "q", "port": "o3", "to": "ok"}]}
    publish(db, doc)
    customer_says(service, "oi")
    [row] = outbox_rows(db)
    body = message_body(row["payload"])
    assert body["interactive"]["type"] == "list"
    picked = body["interactive"]["action"]["sections"][0]["rows"][2]
    assert picked == {"id": "b3", "title": "Pizza quatro queijos esp",
                      "description": "Pizza quatro queijos especial"}
    from engine.whatsapp import parse_delivery
    from engine.whatsapp_inbound import receive

    payload = {"entry": [{"changes": [{"field": "messages", "value": {
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": WA_ID}],
        "messages": [{"from": WA_ID, "id": "wamid.LIST", "timestamp": str(int(clock[0])),
                      "type": "interactive", "interactive": {"type": "list_reply", "list_reply": {
                          "id": picked["id"], "title": picked["title"],
                          "description": picked["description"]}}}]}}]}]}
    receive(service, parse_delivery(json.loads(json.dumps(payload))))
    conv = service.get_conversation(service.list_conversations()["items"][0]["id"])
    assert conv["variables"]["pedido"] == "Pizza quatro queijos especial"
    assert conv["messages"][-1]["text"] == "Anotado: Pizza quatro queijos especial"


# -- the inbox (HTML) -------------------------------------------------------------------------

@pytest.fixture
def agent_client(app, api_clock, fake_graph):
    """Agent ``dani`` logged in to the inbox; templates synced; the app's clock at hand."""
    from engine import accounts

    engine = app.extensions["papo"]["engine"]
    accounts.create_user(engine, "dani", "agent", password="senha-de-teste-123", name="Dani")
    fake_graph.templates = list(APPROVED)
    settings = Settings(whatsapp_token=TOKEN, whatsapp_business_account_id=WABA_ID,
                        whatsapp_api_base=fake_graph.api_base)
    assert whatsapp_templates.sync(engine, settings, api_clock.now).ok
    client = app.test_client()
    assert client.post("/login", data={"login": "dani", "password": "senha-de-teste-123"}).status_code == 302
    return client


def whatsapp_conversation(app) -> int:
    from editor.app import get_service

    with app.app_context():
        return get_service(app).handle_inbound("whatsapp", {"external_id": WA_ID, "name": "Ana"},
                                               {"id": "wamid.H1", "text": "oi"})["conversation_id"]


def test_the_inbox_shows_the_window_and_refuses_free_text_once_it_closed(app, agent_client, api_clock):
    conversation_id = whatsapp_conversation(app)
    api_clock.advance(21 * HOUR + 10)
    page = agent_client.get(f"/inbox/{conversation_id}").get_data(as_text=True)
    assert "Janela de 24 h: fecha em 2 h" in page
    assert 'id="template-form" class="reply template-form" hidden' in page
    api_clock.advance(2 * HOUR + 3580)  # 10 s left
    assert "Janela de 24 h: fecha em 1 min" in agent_client.get(f"/inbox/{conversation_id}").get_data(as_text=True)
    api_clock.advance(20)
    page = agent_client.get(f"/inbox/{conversation_id}").get_data(as_text=True)
    assert "Janela fechada" in page and "Enviar modelo" in page
    assert 'id="reply-form" class="reply" hidden' in page
    assert "retomar_conversa (pt_BR)" in page
    refused = agent_client.post(f"/inbox/{conversation_id}/messages", data={"text": "Oi?"},
                                headers={"HX-Request": "true", "HX-Target": "conv-live"})
    assert refused.status_code == 409
    assert "Envie um modelo aprovado" in refused.get_data(as_text=True)
    english = agent_client.post(f"/inbox/{conversation_id}/messages?lang=en", data={"text": "Hi?"})
    assert english.status_code == 409 and "Send an approved template" in english.get_data(as_text=True)
    sent = agent_client.post(f"/inbox/{conversation_id}/messages/template",
                             data={"template": "retomar_conversa|pt_BR", "template.params": ["Ana"]},
                             headers={"HX-Request": "true", "HX-Target": "conv-live"})
    assert sent.status_code == 200
    assert "Oi Ana! Podemos continuar seu atendimento?" in sent.get_data(as_text=True)
    missing = agent_client.post(f"/inbox/{conversation_id}/messages/template",
                                data={"template": "pedido_pronto|pt_BR", "template.params": ["Ana", ""]},
                                headers={"HX-Request": "true", "HX-Target": "conv-live"})
    assert missing.status_code == 422
    assert "Fill in every parameter of the template." in missing.get_data(as_text=True)  # lang=en stuck


def test_a_message_not_sent_for_the_window_is_explained_in_the_timeline(db, service, clock, fake_graph):
    publish(db, reminder_flow(READY))
    conversation_id = customer_says(service, "oi")
    sender.send_due(service, now=clock[0])
    advance(service, clock, 25 * HOUR)
    advance(service, clock, 25 * HOUR)
    from editor.inbox import whatsapp_extras
    from engine import queries

    msgs, _acts, _read = queries.timeline_rows(db, conversation_id)
    extras = whatsapp_extras(msgs[-1], {})
    assert extras["delivery"]["error"]["code"] == "window_closed"


def test_the_settings_page_is_for_admins(app, agent_client, api_tokens):
    assert agent_client.get("/settings/whatsapp").status_code == 403
    assert agent_client.post("/settings/whatsapp/templates/sync").status_code == 403


def test_the_live_view_follows_the_window_as_it_closes(app, agent_client, api_clock):
    from engine import queries

    conversation_id = whatsapp_conversation(app)
    live = {"HX-Request": "true", "HX-Target": "conv-live"}
    marker = queries.conversation_marker(app.extensions["papo"]["engine"], conversation_id, api_clock.now)
    assert agent_client.get(f"/inbox/{conversation_id}?since={marker}", headers=live).status_code == 204
    api_clock.advance(24 * HOUR)  # nothing was written, but the window closed
    poll = agent_client.get(f"/inbox/{conversation_id}?since={marker}", headers=live)
    assert poll.status_code == 200 and 'data-window-state="closed"' in poll.get_data(as_text=True)


def test_the_settings_page_says_why_a_sync_failed(app, api, api_tokens):
    from engine import accounts

    accounts.create_user(app.extensions["papo"]["engine"], "chefe", "admin", password="senha-de-teste-123")
    client = app.test_client()
    assert client.post("/login", data={"login": "chefe", "password": "senha-de-teste-123"}).status_code == 302
    page = client.get("/settings/whatsapp").get_data(as_text=True)
    assert "Nenhum modelo sincronizado ainda." in page and "disabled" in page
    refused = client.post("/settings/whatsapp/templates/sync")
    assert refused.status_code == 422
    assert "PAPO_WHATSAPP_BUSINESS_ACCOUNT_ID" in refused.get_data(as_text=True)
