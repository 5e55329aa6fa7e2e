"""The WhatsApp webhook against what Meta really sends (DESIGN §10.7; issue 19).

The first tests are the seven defects found by replaying public payloads, one each, as
regression tests; then the inbox showing what was kept, a database that is down, and a
delivery of 1,000 messages of every type. Both databases; bodies signed like Meta's.
"""
from __future__ import annotations

import copy
import json
import re
from functools import partial

import pytest
from sqlalchemy import create_engine, func, select
from test_whatsapp import PHONE_ID, WEBHOOK, make_app, sign
from werkzeug.security import generate_password_hash

from engine import accounts
from engine import outbox as sender
from engine.service import Service
from engine.store import contacts, conversations, messages, outbox, processed_messages

T = 1_800_000_000
NUMBER = "5511987654321"
BSUID = "BR.1029384756102938475"
PASSWORD = "senha-de-teste-123"


def body(*msgs: dict, contacts_: list[dict] | None = None, statuses: list[dict] | None = None,
         errors: list[dict] | None = None) -> dict:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID}}
    if contacts_ is not None:
        value["contacts"] = contacts_
    if msgs:
        value["messages"] = list(msgs)
    if statuses is not None:
        value["statuses"] = statuses
    if errors is not None:
        value["errors"] = errors
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}]}


def person(wa_id: str = NUMBER, name: str = "Ana Souza", **extra) -> dict:
    return {"profile": {"name": name}, "wa_id": wa_id, **extra}


def text(n: int, words: str, frm: str = NUMBER, at: int = T, **extra) -> dict:
    return {"from": frm, "id": f"wamid.T{n}", "timestamp": str(at), "type": "text",
            "text": {"body": words}, **extra}


class Hook:
    """papo with the WhatsApp channel, a clock moved by hand and an agent ``ana``."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        papo = app.extensions["papo"]
        self.engine = papo["engine"]
        self.now = T + 60.0
        papo["service"] = self.service = Service(self.engine, papo["settings"], clock=lambda: self.now)

    def deliver(self, payload: dict | bytes):
        raw = payload if isinstance(payload, bytes) else json.dumps(payload, indent=1).encode()
        return self.client.post(WEBHOOK, data=raw, content_type="application/json",
                                headers={"X-Hub-Signature-256": sign(raw)})

    def conversation(self, external_id: str = NUMBER) -> dict:
        with self.engine.connect() as conn:
            found = conn.execute(select(conversations.c.id).join(
                contacts, contacts.c.id == conversations.c.contact_id).where(
                contacts.c.external_id == external_id)).scalar_one()
        return self.service.get_conversation(found)

    def said(self, external_id: str = NUMBER) -> list[str]:
        return [m["text"] for m in self.conversation(external_id)["messages"] if m["direction"] == "in"]

    def bot_said(self, external_id: str = NUMBER) -> list[str]:
        return [m["text"] for m in self.conversation(external_id)["messages"] if m["author"] == "bot"]

    def count(self, table, *where) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()

    def inbox_page(self, conversation_id: int, lang: str | None = None) -> str:
        client = self.app.test_client()
        assert client.post("/login", data={"login": "ana", "password": PASSWORD}).status_code == 302
        page = client.get(f"/inbox/{conversation_id}" + (f"?lang={lang}" if lang else ""))
        assert page.status_code == 200
        return page.get_data(as_text=True)


@pytest.fixture
def hook(db_url, tmp_path, fake_graph, monkeypatch):
    app = make_app(db_url, tmp_path, fake_graph, WTF_CSRF_ENABLED=False)
    monkeypatch.setattr(accounts, "generate_password_hash",
                        partial(generate_password_hash, method="pbkdf2:sha256:1"))
    accounts.create_user(app.extensions["papo"]["engine"], "ana", "agent", password=PASSWORD, name="Ana")
    yield Hook(app)
    app.extensions["papo"]["engine"].dispose()


# -- the seven defects ------------------------------------------------------------------------

def test_defect_1_a_customer_with_a_username_is_answered_and_replied_to_by_user_id(hook, fake_graph):
    username_only = body({"from": "", "from_user_id": BSUID, "id": "wamid.U1", "timestamp": str(T),
                          "type": "text", "text": {"body": "oi"}},
                         contacts_=[{"profile": {"name": "Bia", "username": "bia.doces"}, "user_id": BSUID}])

    answer = hook.deliver(username_only)

    assert answer.status_code == 200
    conv = hook.conversation(BSUID)
    assert conv["contact"] == {"external_id": BSUID, "name": "Bia"}
    assert hook.said(BSUID) == ["oi"] and len(hook.bot_said(BSUID)) == 2
    assert sender.send_due(hook.service, now=hook.now) == 2
    first = fake_graph.delivered[0].json
    assert first["recipient"] == BSUID and "to" not in first  # how Meta addresses a user id


def test_defect_1_a_customer_who_adopts_a_username_stays_the_same_customer(hook):
    hook.deliver(body(text(1, "oi"), contacts_=[person()]))  # before usernames: the number only
    hook.deliver(body(text(2, "sou eu", from_user_id=BSUID),
                      contacts_=[person(user_id=BSUID)]))  # both ids: the user id is stored
    hook.deliver(body({"from": "", "from_user_id": BSUID, "id": "wamid.U3", "timestamp": str(T),
                       "type": "text", "text": {"body": "agora com nome de usuário"}},
                      contacts_=[{"profile": {"name": "Ana Souza", "username": "ana.souza"}, "user_id": BSUID}]))

    assert hook.count(contacts) == 1 and hook.count(conversations) == 1
    assert hook.said() == ["oi", "sou eu", "agora com nome de usuário"]
    with hook.engine.connect() as conn:
        assert conn.execute(select(contacts.c.external_id, contacts.c.user_id)).one() == (NUMBER, BSUID)


def test_defect_2_an_unreadable_message_never_refuses_its_siblings(hook, caplog):
    batch = body(
        text(1, "Bom dia, quero um orçamento"),
        {"from": "", "from_user_id": BSUID, "id": "wamid.U2", "timestamp": str(T), "type": "text",
         "text": {"body": "sou eu de novo"}},
        {"from": NUMBER, "id": "wamid.I3", "timestamp": str(T), "type": "interactive",
         "errors": [{"code": 131000, "title": "Something went wrong"}]},
        {"id": "wamid.NOBODY", "timestamp": str(T), "type": "text", "text": {"body": "de quem?"}},
        contacts_=[person(), {"profile": {"name": "Bia"}, "user_id": BSUID}])

    answer = hook.deliver(batch)

    assert answer.status_code == 200
    assert hook.said() == ["Bom dia, quero um orçamento", "[mensagem não suportada]"]
    assert hook.bot_said()[:2] == ["Olá, Ana Souza! 👋 Bem-vindo(a) à Loja da Ana.", "Como posso te ajudar hoje?"]
    assert hook.said(BSUID) == ["sou eu de novo"]
    assert "wamid.I3 stored as unsupported: interactive sem conteúdo não é suportado" in caplog.text
    assert "messages[3] skipped: remetente ausente" in caplog.text


def test_defect_3_a_number_written_with_plus_is_the_same_customer(hook):
    hook.deliver(body(text(1, "oi", frm="+55 11 98765-4321"), contacts_=[person()]))
    hook.deliver(body(text(2, "tudo bem?", frm="+5511987654321")))  # no contacts array this time
    hook.deliver(body(text(3, "?", frm="5511987654321"), contacts_=[person("+5511987654321")]))

    assert hook.count(contacts) == 1 and hook.count(conversations) == 1
    assert hook.said() == ["oi", "tudo bem?", "?"]


def test_defect_4_the_whatsapp_timestamp_is_the_message_time(hook):
    hook.now = T + 3 * 3600.0
    hook.deliver(body(text(2, "segunda", at=T + 3600), contacts_=[person()]))
    hook.deliver(body(text(1, "primeira", at=T), contacts_=[person()]))  # Meta's retry, hours late

    messages_ = hook.conversation()["messages"]
    said = [(m["text"], m["at"]) for m in messages_ if m["direction"] == "in"]
    assert said == [("primeira", "2027-01-15T08:00:00Z"), ("segunda", "2027-01-15T09:00:00Z")]
    future = body(text(3, "do futuro", at=T + 5 * 3600), contacts_=[person()])  # a clock ahead
    hook.deliver(future)
    assert hook.conversation()["messages"][-1]["at"] <= "2027-01-15T11:00:00Z"


def test_defect_4_a_message_over_24_hours_old_is_stored_and_shown_but_not_answered(hook, caplog):
    caplog.set_level("INFO", logger="papo")
    hook.now = T + 25 * 3600.0
    answer = hook.deliver(body(text(1, "oi"), contacts_=[person()]))

    assert answer.status_code == 200
    assert hook.said() == ["oi"] and hook.bot_said() == []
    assert hook.count(outbox) == 0
    assert "sent more than 24 hours ago" in caplog.text
    assert ">oi<" in hook.inbox_page(hook.conversation()["id"])
    hook.deliver(body(text(2, "oi de novo", at=int(hook.now) - 60), contacts_=[person()]))
    assert len(hook.bot_said()) == 2  # a fresh message is answered as usual


def test_defect_4_a_message_delivered_late_is_unread_even_if_the_agent_read_since(hook):
    hook.deliver(body(text(1, "oi"), contacts_=[person()]))
    conversation_id = hook.conversation()["id"]
    agent = hook.app.test_client()
    agent.post("/login", data={"login": "ana", "password": PASSWORD})
    agent.get(f"/inbox/{conversation_id}")  # read at T + 60
    listed = agent.get("/inbox?status=concluded").get_data(as_text=True)
    assert f'data-conversation-id="{conversation_id}"\n        data-status="concluded" data-unread="false"' in listed

    hook.now = T + 7200.0  # Meta delivers a message sent at T + 30 only now (retries)
    hook.deliver(body(text(2, "esqueci de dizer", at=T + 30), contacts_=[person()]))

    listed = agent.get("/inbox?status=concluded").get_data(as_text=True)
    assert f'data-conversation-id="{conversation_id}"\n        data-status="concluded" data-unread="true"' in listed


def test_a_late_message_in_an_open_conversation_counts_in_the_agents_title(hook):
    hook.deliver(body(text(1, "quero falar com atendente"), contacts_=[person()]))
    conversation_id = hook.conversation()["id"]
    assert hook.conversation()["status"] == "open"
    agent = hook.app.test_client()
    agent.post("/login", data={"login": "ana", "password": PASSWORD})
    agent.get(f"/inbox/{conversation_id}")  # read at T + 60
    assert "<title>Atendimentos · papo</title>" in agent.get("/inbox").get_data(as_text=True)

    hook.now = T + 7200.0  # sent at T + 30, delivered now: before the read mark
    hook.deliver(body(text(2, "esqueci de dizer", at=T + 30), contacts_=[person()]))

    assert "<title>(1) Atendimentos · papo</title>" in agent.get("/inbox").get_data(as_text=True)


def test_defect_5_a_changed_number_keeps_the_customer_and_the_conversation(hook):
    hook.deliver(body(text(1, "oi"), contacts_=[person()]))
    change = body({"from": NUMBER, "id": "wamid.SYS1", "timestamp": str(T + 10), "type": "system",
                   "system": {"body": "User Ana Souza changed from 5511987654321 to 5511912345678",
                              "wa_id": "5511912345678", "type": "user_changed_number"}})
    assert hook.deliver(change).status_code == 200
    assert hook.deliver(change).status_code == 200
    hook.deliver(body(text(2, "mudei de número", frm="5511912345678", at=T + 20),
                      contacts_=[person("5511912345678")]))

    assert hook.count(contacts) == 1 and hook.count(conversations) == 1
    conv = hook.conversation("5511912345678")
    assert [m["text"] for m in conv["messages"] if m["direction"] == "in"] == ["oi", "mudei de número"]
    assert [(a["actor"], a["action"], a["detail"]) for a in conv["activity"]] == [
        ("customer", "number_changed", {"from": NUMBER, "to": "5511912345678"})]
    assert "O cliente trocou de número no WhatsApp: de +5511987654321 para +5511912345678" in \
        hook.inbox_page(conv["id"])
    sender.send_due(hook.service, now=hook.now)
    assert {r["payload"]["to"] for r in outbox_rows(hook)[2:]} == {"5511912345678"}  # replies follow


def outbox_rows(hook) -> list:
    with hook.engine.connect() as conn:
        return conn.execute(select(outbox.c.payload).order_by(outbox.c.id)).mappings().all()


def test_defect_6_revoke_and_edit_change_the_original_and_never_run_the_bot(hook):
    hook.deliver(body(text(1, "quero cancelar"), text(2, "pedido 123"), contacts_=[person()]))
    replies = hook.bot_said()

    hook.deliver(body({"from": NUMBER, "id": "wamid.R1", "timestamp": str(T + 5), "type": "revoke",
                       "revoke": {"original_message_id": "wamid.T1"}}, contacts_=[person()]))
    hook.deliver(body({"from": NUMBER, "id": "wamid.E1", "timestamp": str(T + 6), "type": "edit",
                       "edit": {"original_message_id": "wamid.T2",
                                "message": {"type": "text", "text": {"body": "pedido 1234"}}}},
                      contacts_=[person()]))

    assert hook.bot_said() == replies  # neither is customer input
    first, second = [m for m in hook.conversation()["messages"] if m["direction"] == "in"]
    assert (first["deleted"], first["text"]) == (True, "[mensagem apagada]")
    assert (second["text"], second["edited"]) == ("pedido 1234", True)
    assert second["edits"] == [{"text": "pedido 123", "at": "2027-01-15T08:00:00Z"}]
    page = hook.inbox_page(hook.conversation()["id"])
    assert "Mensagem apagada pelo cliente" in page and "quero cancelar" not in page
    assert "editada" in page and "pedido 1234" in page
    english = hook.inbox_page(hook.conversation()["id"], lang="en")
    assert "Message deleted by the customer" in english and ">edited<" in english


def test_defect_6_an_edit_whose_new_content_cannot_be_read_leaves_the_original(hook, caplog):
    hook.deliver(body(text(1, "pedido 123"), contacts_=[person()]))
    hook.deliver(body({"from": NUMBER, "id": "wamid.E2", "timestamp": str(T + 6), "type": "edit",
                       "edit": {"original_message_id": "wamid.T1", "message": {"type": "poll"}}},
                      contacts_=[person()]))

    assert hook.said() == ["pedido 123"]
    assert "edited" not in hook.conversation()["messages"][0]
    assert "edit.message skipped: tipo de mensagem desconhecido: poll" in caplog.text


def test_defect_6_nobody_can_delete_or_edit_another_customers_message(hook):
    hook.deliver(body(text(1, "meu pedido é o 55"), contacts_=[person()]))
    intruder = "5521900000000"
    hook.deliver(body({"from": intruder, "id": "wamid.R5", "timestamp": str(T + 5), "type": "revoke",
                       "revoke": {"original_message_id": "wamid.T1"}},
                      {"from": intruder, "id": "wamid.E5", "timestamp": str(T + 6), "type": "edit",
                       "edit": {"original_message_id": "wamid.T1",
                                "message": {"type": "text", "text": {"body": "pedido 66"}}}},
                      contacts_=[person(intruder, "Outra Pessoa")]))

    assert hook.said() == ["meu pedido é o 55"]
    assert "deleted" not in hook.conversation()["messages"][0]
    assert hook.count(contacts) == 1  # nothing was stored for the intruder either


def test_defect_6_a_revoke_of_a_message_not_yet_received_hides_it_when_it_comes(hook):
    hook.deliver(body({"from": NUMBER, "id": "wamid.R9", "timestamp": str(T + 5), "type": "revoke",
                       "revoke": {"original_message_id": "wamid.T9"}}, contacts_=[person()]))
    hook.deliver(body(text(9, "algo que me arrependi de mandar"), contacts_=[person()]))  # late

    assert hook.said() == ["[mensagem apagada]"] and hook.bot_said() == []


def test_defect_7_what_a_message_carries_is_kept_with_it(hook):
    ad = {"source_url": "https://fb.me/anuncio", "source_id": "120200", "source_type": "ad",
          "headline": "Frete grátis", "body": "Só em dezembro", "media_type": "image",
          "ctwa_clid": "ARAkLkA8rmlFeiCk"}
    hook.deliver(body(
        text(1, "vi o anúncio", referral=ad),
        text(2, "essa aqui", context={"from": NUMBER, "id": "wamid.T1"}),
        {"from": NUMBER, "id": "wamid.L3", "timestamp": str(T), "type": "location",
         "location": {"latitude": -22.9519, "longitude": -43.2105, "name": "Cristo Redentor",
                      "address": "Parque Nacional da Tijuca, Rio de Janeiro"}},
        {"from": NUMBER, "id": "wamid.C4", "timestamp": str(T), "type": "contacts",
         "contacts": [{"name": {"formatted_name": "Zé da Entrega", "first_name": "Zé"},
                       "phones": [{"phone": "+55 21 99999-0000", "wa_id": "5521999990000", "type": "CELL"}]}]},
        {"from": NUMBER, "id": "wamid.O5", "timestamp": str(T), "type": "order",
         "order": {"catalog_id": "77", "text": "sem cebola",
                   "product_items": [{"product_retailer_id": "pizza-g", "quantity": 1, "item_price": 70,
                                      "currency": "BRL"}]}},
        {"from": NUMBER, "id": "wamid.D6", "timestamp": str(T), "type": "document",
         "document": {"filename": "orcamento.pdf", "mime_type": "application/pdf", "id": "998877",
                      "sha256": "abc"}},
        contacts_=[person()]))

    inbound = [m for m in hook.conversation()["messages"] if m["direction"] == "in"]
    assert inbound[0]["referral"]["headline"] == "Frete grátis"
    assert inbound[0]["referral"]["ctwa_clid"] == "ARAkLkA8rmlFeiCk"
    assert inbound[1]["reply_to"] == {"id": inbound[0]["id"], "text": "vi o anúncio"}
    assert inbound[2]["media"] == {"type": "location", "latitude": -22.9519, "longitude": -43.2105,
                                   "name": "Cristo Redentor",
                                   "address": "Parque Nacional da Tijuca, Rio de Janeiro"}
    assert inbound[3]["contacts"][0]["name"] == "Zé da Entrega"
    assert inbound[3]["contacts"][0]["phones"][0]["wa_id"] == "5521999990000"
    assert inbound[4]["text"] == "sem cebola"
    assert inbound[4]["order"]["items"] == [{"product_retailer_id": "pizza-g", "quantity": 1,
                                             "item_price": 70, "currency": "BRL"}]
    assert (inbound[5]["text"], inbound[5]["media"]) == ("[documento]", {
        "type": "document", "mime": "application/pdf", "id": "998877", "caption": None,
        "filename": "orcamento.pdf"})


def test_defect_7_reactions_errors_and_refusals_leave_a_log_line(hook, caplog):
    hook.deliver(body(text(1, "oi"), contacts_=[person()]))
    hook.deliver(body({"from": NUMBER, "id": "wamid.X1", "timestamp": str(T), "type": "reaction",
                       "reaction": {"message_id": "wamid.T1", "emoji": "🙏"}}, contacts_=[person()]))
    hook.deliver(body(errors=[{"code": 131000, "title": "Something went wrong",
                               "error_data": {"details": "Unknown error"}}]))
    raw = json.dumps(body(text(2, "oi"))).encode()
    refused = hook.client.post(WEBHOOK, data=raw, content_type="application/json",
                               headers={"X-Hub-Signature-256": sign(raw, "other-secret")})

    assert refused.status_code == 403
    assert hook.conversation()["messages"][0]["reaction"]["emoji"] == "🙏"
    assert "code 131000, Something went wrong: Unknown error" in caplog.text
    assert "refused (403): X-Hub-Signature-256 does not match" in caplog.text


# -- more of the same contract ----------------------------------------------------------------

def test_an_unreadable_status_is_skipped_and_logged_and_its_siblings_still_apply(hook, caplog):
    hook.deliver(body(text(1, "oi"), contacts_=[person()]))
    sender.send_due(hook.service, now=hook.now)
    menu_id = outbox_rows(hook)[1]["payload"]["wamid"]
    failed = {"id": menu_id, "status": "failed", "timestamp": str(T + 9), "recipient_id": NUMBER,
              "errors": [{"code": 131026, "title": "Message undeliverable"}]}

    answer = hook.deliver(body(statuses=[{"status": "read", "timestamp": str(T + 8)}, "lixo", failed]))

    assert answer.status_code == 200
    assert [r["status"] for r in sender.outbox_status(hook.service, hook.conversation()["id"])] == [
        "sent", "failed"]
    assert "statuses[0] skipped: status sem id ou sem status" in caplog.text
    assert "statuses[1] skipped" in caplog.text


def test_a_customer_reacting_to_a_bot_message_shows_on_that_message(hook):
    hook.deliver(body(text(1, "oi"), contacts_=[person()]))
    sender.send_due(hook.service, now=hook.now)  # the Graph API gives the bot's messages ids
    menu_id = outbox_rows(hook)[1]["payload"]["wamid"]

    hook.deliver(body({"from": NUMBER, "id": "wamid.X2", "timestamp": str(T + 9), "type": "reaction",
                       "reaction": {"message_id": menu_id, "emoji": "❤️"}}, contacts_=[person()]))

    menu = [m for m in hook.conversation()["messages"] if m["author"] == "bot"][1]
    assert menu["reaction"] == {"emoji": "❤️", "at": "2027-01-15T08:00:09Z"}
    assert 'Reação do cliente' in hook.inbox_page(hook.conversation()["id"])


def test_the_inbox_shows_what_whatsapp_messages_carry_escaped(hook):
    evil = '<script>alert("x")</script>'
    hook.deliver(body(
        text(1, evil, referral={"source_url": "javascript:alert(1)", "source_type": "ad",
                                "headline": f"Promo {evil}"}),
        text(2, "essa", context={"id": "wamid.T1"}),
        {"from": NUMBER, "id": "wamid.L3", "timestamp": str(T), "type": "location",
         "location": {"latitude": -23.5614, "longitude": -46.6558, "name": "MASP", "address": "Av. Paulista"}},
        {"from": NUMBER, "id": "wamid.I4", "timestamp": str(T), "type": "image",
         "image": {"id": "55", "mime_type": "image/png", "caption": "a foto"}},
        contacts_=[person(name=f"Ana {evil}")]))

    page = hook.inbox_page(hook.conversation()["id"])

    assert evil not in page and "&lt;script&gt;" in page
    assert "Veio do anúncio" in page and "javascript:" not in page
    assert re.search(r'<blockquote class="bubble-quote">.*&lt;script&gt;', page, re.S)
    assert "MASP" in page and "Av. Paulista" in page and "https://www.openstreetmap.org/?mlat=-23.5614" in page
    assert "Imagem" in page and "a foto" in page
    assert " style=" not in page.split('id="conv-live"')[1]  # no inline styles (a CSP is coming)


def test_a_database_that_is_down_is_a_503_so_meta_delivers_again(hook, caplog, tmp_path):
    papo = hook.app.extensions["papo"]
    down = create_engine(f"sqlite:///{tmp_path}/no-such-folder/papo.db")
    papo["service"] = Service(down, papo["settings"], clock=lambda: hook.now)

    answer = hook.deliver(body(text(1, "oi"), contacts_=[person()]))

    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "30"
    assert answer.get_json()["error"]["code"] == "unavailable"
    assert "database unavailable" in caplog.text
    papo["service"] = hook.service
    assert hook.deliver(body(text(1, "oi"), contacts_=[person()])).status_code == 200  # the retry
    assert hook.said() == ["oi"]


def test_a_papo_bug_met_by_one_message_does_not_hold_back_the_others(hook, monkeypatch, caplog):
    from engine import whatsapp_inbound

    def broken(*args, **kwargs):
        raise RuntimeError("a bug reading button titles")

    monkeypatch.setattr(whatsapp_inbound, "full_reply_title", broken)
    tap = {"from": NUMBER, "id": "wamid.B2", "timestamp": str(T), "type": "interactive",
           "interactive": {"type": "button_reply", "button_reply": {"id": "b1", "title": "Ver produtos"}}}

    answer = hook.deliver(body(text(1, "oi"), tap, text(3, "alguém aí?"), contacts_=[person()]))

    assert answer.status_code == 200
    assert hook.said() == ["oi", "alguém aí?"]
    assert "InboundMessage wamid.B2 not processed (a papo bug)" in caplog.text
    assert "RuntimeError: a bug reading button titles" in caplog.text  # the stack is in the log


# -- a delivery of 1,000 messages -------------------------------------------------------------

def thousand_messages(count: int = 1000) -> tuple[dict, set[str]]:
    """``count`` messages of every type from 40 customers, and the ids of the readable ones."""
    shapes = {
        "text": {"type": "text", "text": {"body": "mensagem {n}"}},
        "image": {"type": "image", "image": {"id": "m{n}", "mime_type": "image/jpeg", "caption": "foto {n}"}},
        "audio": {"type": "audio", "audio": {"id": "m{n}", "mime_type": "audio/ogg", "voice": True}},
        "video": {"type": "video", "video": {"id": "m{n}", "mime_type": "video/mp4"}},
        "document": {"type": "document", "document": {"id": "m{n}", "filename": "f{n}.pdf",
                                                      "mime_type": "application/pdf"}},
        "sticker": {"type": "sticker", "sticker": {"id": "m{n}", "mime_type": "image/webp"}},
        "location": {"type": "location", "location": {"latitude": -23.5, "longitude": -46.6, "name": "L{n}"}},
        "contacts": {"type": "contacts", "contacts": [{"name": {"formatted_name": "C{n}"},
                                                       "phones": [{"phone": "+55 11 90000-0000"}]}]},
        "order": {"type": "order", "order": {"catalog_id": "1", "product_items": [
            {"product_retailer_id": "p{n}", "quantity": 1, "item_price": 9.9, "currency": "BRL"}]}},
        "button_reply": {"type": "interactive", "interactive": {
            "type": "button_reply", "button_reply": {"id": "b1", "title": "Ver produtos"}}},
        "list_reply": {"type": "interactive", "interactive": {
            "type": "list_reply", "list_reply": {"id": "r1", "title": "Opção {n}"}}},
        "template_button": {"type": "button", "button": {"text": "Quero", "payload": "p"}},
        "unsupported": {"type": "unsupported", "unsupported": {"type": "poll_creation"},
                        "errors": [{"code": 131051, "title": "Message type unknown"}]},
        "broken_interactive": {"type": "interactive"},
        "reaction": {"type": "reaction", "reaction": {"message_id": "wamid.K{prev}", "emoji": "👍"}},
        "edit": {"type": "edit", "edit": {"original_message_id": "wamid.K{prev}",
                                          "message": {"type": "text", "text": {"body": "editada {n}"}}}},
        "revoke": {"type": "revoke", "revoke": {"original_message_id": "wamid.K{prev}"}},
        "welcome": {"type": "request_welcome"},
    }
    kinds = list(shapes)
    changes = {"reaction", "edit", "revoke", "welcome"}
    people = [f"55119{n:08d}" for n in range(40)]
    msgs, readable = [], set()
    for n in range(count):
        kind = kinds[n % len(kinds)]
        frm = people[n % len(people)]
        target = f"wamid.K{n - len(people)}"  # the same customer's message, 40 messages before
        message = json.loads(json.dumps(shapes[kind]).replace("{n}", str(n)).replace(
            "wamid.K{prev}", target))
        message.update({"from": frm, "id": f"wamid.K{n}", "timestamp": str(T + n // 10)})
        msgs.append(message)
        if kind not in changes:
            readable.add(f"wamid.K{n}")
        elif kind in ("edit", "revoke") and target not in readable:
            readable.add(target)  # a change to a message papo never had keeps its content
    payload = body(*msgs, contacts_=[person(p, f"Cliente {p[-3:]}") for p in people])
    return payload, readable


def test_a_delivery_of_1000_messages_of_every_type_stores_each_readable_one_once(hook, caplog):
    payload, readable = thousand_messages()
    raw = json.dumps(payload).encode()
    hook.now = T + 200.0

    first = hook.deliver(raw)
    after_first = (hook.count(messages), hook.count(outbox), hook.count(contacts))
    second = hook.deliver(raw)  # Meta's retry of the whole batch

    assert (first.status_code, second.status_code) == (200, 200)
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert (hook.count(messages), hook.count(outbox), hook.count(contacts)) == after_first
    assert hook.count(contacts) == 40 and hook.count(conversations) == 40
    with hook.engine.connect() as conn:
        stored = conn.execute(select(messages.c.external_id).where(messages.c.direction == "in")).scalars().all()
        processed = set(conn.execute(select(processed_messages.c.external_id)).scalars())
    assert sorted(stored) == sorted(readable)  # each readable message once, nothing else
    assert processed == readable
    edited = [m for m in hook.conversation("5511900000001")["messages"] if m.get("edited")]
    assert edited  # the changes in the batch reached the messages they name


def test_a_retry_arriving_while_the_first_delivery_is_still_processed_stores_nothing_twice(hook):
    import threading

    payload, readable = thousand_messages(200)  # every kind, 40 customers, changes included
    raw = json.dumps(payload).encode()
    answers = []

    def deliver():
        answers.append(hook.deliver(raw).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(2)]  # Meta's retry overlaps
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert answers == [200, 200]
    with hook.engine.connect() as conn:
        stored = conn.execute(select(messages.c.external_id).where(messages.c.direction == "in")).scalars().all()
    assert sorted(stored) == sorted(readable)
    assert hook.count(contacts) == 40 and hook.count(conversations) == 40


def test_the_corpus_shapes_survive_being_copied_into_one_delivery(hook):
    """Every corpus body's messages and statuses, merged into one change: still 200."""
    from test_whatsapp_corpus import FILES

    merged = body(contacts_=[])
    value = merged["entry"][0]["changes"][0]["value"]
    for path in FILES:
        for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            for change in entry["changes"]:
                part = change["value"]
                for key in ("contacts", "messages", "statuses", "errors"):
                    value.setdefault(key, []).extend(copy.deepcopy(part.get(key, [])))
    assert hook.deliver(merged).status_code == 200
    assert hook.count(messages, messages.c.direction == "in") > 20
