"""The inbox at a busy hour through the Flask test client (DESIGN §10.8): transfer with a
note, private notes, waiting time and order, search in message text, the join question,
the contact panel. Both databases."""
from __future__ import annotations

import re
from functools import partial

import pytest
from test_inbox_routes import (
    LIVE,
    PASSWORD,
    USERS,
    Inbox,
    activity_lines,
    names_in_list,
    notice,
    text_of,
)
from werkzeug.security import generate_password_hash

from engine import accounts


@pytest.fixture
def inbox(app, monkeypatch) -> Inbox:
    monkeypatch.setattr(accounts, "generate_password_hash",
                        partial(generate_password_hash, method="pbkdf2:sha256:1"))
    engine = app.extensions["papo"]["engine"]
    for login, role, name in USERS:
        accounts.create_user(engine, login, role, password=PASSWORD, name=name)
    return Inbox(app)


@pytest.fixture
def bruno(inbox):
    return inbox.login("bruno")


def note_bubbles(html: str) -> list[str]:
    return re.findall(r'data-kind="note"[^>]*>\s*<span class="bubble-author">[^<]*</span>\s*'
                      r'<span class="bubble-text">([^<]*)</span>', html)


def test_transfer_with_a_note_reads_as_one_sentence_and_the_receiver_sees_the_note(inbox: Inbox, bruno):
    conversation = inbox.inbound("atendente")
    inbox.service.act(conversation, "assign", "bruno", user="bruno")

    html = text_of(bruno.post(f"/inbox/{conversation}/transfer", headers=LIVE,
                              data={"user": "carla", "note": "Quer trocar o tamanho <P>"}))

    assert activity_lines(html)[-1] == "Bruno transferiu para Carla"
    assert inbox.conversation(conversation)["assignees"] == ["carla"]
    carla_view = text_of(inbox.login("carla").get(f"/inbox/{conversation}"))
    assert note_bubbles(carla_view) == ["Quer trocar o tamanho &lt;P&gt;"]  # escaped
    assert "Nota privada de Bruno" in carla_view


def test_transfer_without_a_choice_or_to_an_unknown_user_changes_nothing(inbox: Inbox, bruno):
    conversation = inbox.inbound("atendente")
    before = inbox.conversation(conversation)
    response = bruno.post(f"/inbox/{conversation}/transfer", headers=LIVE, data={"user": ""})
    assert response.status_code == 422 and notice(text_of(response)) == "Escolha para quem transferir."
    response = bruno.post(f"/inbox/{conversation}/transfer", headers=LIVE, data={"user": "zeca"})
    assert response.status_code == 422 and notice(text_of(response)) == "O usuário zeca não existe."
    assert inbox.conversation(conversation) == before


def test_a_private_note_is_shown_to_agents_and_not_to_the_customer(inbox: Inbox, bruno):
    conversation = inbox.inbound("oi")
    html = text_of(bruno.post(f"/inbox/{conversation}/notes", headers=LIVE,
                              data={"text": "Cliente VIP, tratar com carinho"}))
    assert note_bubbles(html) == ["Cliente VIP, tratar com carinho"]
    assert inbox.conversation(conversation)["status"] == "concluded"  # a note opens nothing
    response = bruno.post(f"/inbox/{conversation}/notes", headers=LIVE, data={"text": "  "})
    assert response.status_code == 422
    assert notice(text_of(response)) == "Escreva a nota antes de salvar."


def test_waiting_order_and_minutes(inbox: Inbox, bruno, app):
    from engine.service import Service

    papo = app.extensions["papo"]
    now = [1_795_168_800.0]
    papo["service"] = Service(papo["engine"], papo["settings"], clock=lambda: now[0])
    first = inbox.inbound("atendente", contact="a", name="Primeira")
    now[0] += 60
    inbox.inbound("atendente", contact="b", name="Segunda")
    now[0] += 60
    answered = inbox.inbound("atendente", contact="c", name="Respondida")
    inbox.service.agent_message(answered, "bruno", "Oi!")
    now[0] += 120
    inbox.inbound("de novo", contact="a", name="Primeira")  # newest activity, waiting longest

    assert names_in_list(text_of(bruno.get("/inbox"))) == ["Primeira", "Respondida", "Segunda"]
    html = text_of(bruno.get("/inbox?sort=waiting"))
    assert names_in_list(html) == ["Primeira", "Segunda", "Respondida"]
    assert re.findall(r'class="conv-waiting"[^>]*>([^<]*)<', html) == [
        "aguardando há 4 min", "aguardando há 3 min"]
    assert 'value="waiting" selected' in html
    assert first


def test_the_search_box_finds_names_and_words_in_messages(inbox: Inbox, bruno):
    inbox.inbound("Meu pedido 48219 atrasou", contact="a", name="Maria")
    inbox.inbound("A ração do Caramelo acabou", contact="b", name="Maria")
    inbox.inbound("atendente", contact="c", name="Caramelo Silva")
    assert names_in_list(text_of(bruno.get("/inbox?status=concluded&q=48219"))) == ["Maria"]
    assert sorted(names_in_list(text_of(bruno.get("/inbox?status=concluded&q=caramelo")))) == ["Maria"]
    assert names_in_list(text_of(bruno.get("/inbox?q=caramelo"))) == ["Caramelo Silva"]


def test_assign_to_me_asks_first_when_someone_else_handles_it(inbox: Inbox, bruno):
    conversation = inbox.inbound("atendente")
    inbox.service.act(conversation, "assign", "carla", user="carla")

    html = text_of(bruno.post(f"/inbox/{conversation}/assign", headers=LIVE, data={"user": "bruno"}))

    assert notice(html) == "Carla já está atendendo. Atender junto?"
    assert inbox.conversation(conversation)["assignees"] == ["carla"]  # nothing done yet
    assert 'id="act-assign-me-join"' in html
    html = text_of(bruno.post(f"/inbox/{conversation}/assign", headers=LIVE,
                              data={"user": "bruno", "join": "1"}))
    assert inbox.conversation(conversation)["assignees"] == ["carla", "bruno"]
    assert activity_lines(html)[-1] == "Bruno assumiu o atendimento"


def test_assign_to_me_on_a_free_conversation_asks_nothing(inbox: Inbox, bruno):
    conversation = inbox.inbound("atendente")
    bruno.post(f"/inbox/{conversation}/assign", headers=LIVE, data={"user": "bruno"})
    assert inbox.conversation(conversation)["assignees"] == ["bruno"]


def test_the_contact_panel_shows_channel_id_tags_variables_and_earlier_attendances(inbox: Inbox, bruno):
    wa = inbox.service.handle_inbound("whatsapp", {"external_id": "5511987654321", "name": "Rita"},
                                      {"id": "wamid.1", "text": "atendente"})["conversation_id"]
    inbox.service.act(wa, "conclude", "bruno")
    html = text_of(bruno.get(f"/inbox/{wa}"))
    panel = html[html.index('class="contact-panel"'):html.index('class="chat timeline"')]
    assert "Telefone" in panel and "+5511987654321" in panel
    assert "Atendimentos anteriores" in panel and "Bruno" in panel
