"""The agent inbox through the Flask test client (DESIGN §3, §8; docs/INBOX.md).

Pages, fragments, filters, search, every action as a form POST, stale views, 404s,
live-update markers, unread marks, languages and escaping.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from functools import partial

import pytest
from werkzeug.security import generate_password_hash

from editor import create_app
from editor.app import get_service
from engine import accounts
from engine.db import create_schema
from engine.flows import FlowRepository

USERS = (("ana", "admin", "Ana"), ("bruno", "agent", "Bruno"), ("carla", "agent", "Carla"))
PASSWORD = "senha-de-teste-123"
LIST = {"HX-Request": "true", "HX-Target": "inbox-list"}
PANE = {"HX-Request": "true", "HX-Target": "inbox-pane"}
LIVE = {"HX-Request": "true", "HX-Target": "conv-live"}
_ids = itertools.count(1)


class Inbox:
    """The app with three users; ``login(name)`` gives a logged-in test client."""

    def __init__(self, app):
        self.app = app
        self.engine = app.extensions["papo"]["engine"]

    @property
    def service(self):
        with self.app.app_context():
            return get_service(self.app)

    def login(self, login: str, lang: str | None = None):
        client = self.app.test_client()
        response = client.post("/login" + (f"?lang={lang}" if lang else ""),
                               data={"login": login, "password": PASSWORD})
        assert response.status_code == 302, response.data[:300]
        return client

    def inbound(self, text: str, contact: str = "c1", name: str = "José Silva") -> int:
        result = self.service.handle_inbound(
            "api", {"external_id": contact, "name": name}, {"id": f"m{next(_ids)}", "text": text})
        return result["conversation_id"]

    def conversation(self, conversation_id: int) -> dict:
        return self.service.get_conversation(conversation_id)

    def actions(self, conversation_id: int) -> list[tuple]:
        return [(a["actor"], a["action"], a["from"], a["to"])
                for a in self.conversation(conversation_id)["activity"]]

    def publish(self, doc: dict) -> None:
        repo = FlowRepository(self.engine)
        repo.create(doc)
        repo.publish(doc["id"])


@pytest.fixture
def inbox(app, monkeypatch) -> Inbox:
    # scrypt costs ~0.25 s a user; a one-round hash keeps the suite quick.
    monkeypatch.setattr(accounts, "generate_password_hash",
                        partial(generate_password_hash, method="pbkdf2:sha256:1"))
    engine = app.extensions["papo"]["engine"]
    for login, role, name in USERS:
        accounts.create_user(engine, login, role, password=PASSWORD, name=name)
    return Inbox(app)


@pytest.fixture
def bruno(inbox):
    return inbox.login("bruno")


@pytest.fixture
def welcome(inbox, sample_flow):
    inbox.publish(sample_flow("boas-vindas"))


def text_of(response) -> str:
    return response.get_data(as_text=True)


def names_in_list(html: str) -> list[str]:
    return re.findall(r'<span class="conv-name">([^<]*)</span>', html)


def buttons(html: str) -> list[str]:
    return [b.strip() for b in re.findall(r"<button[^>]*>([^<]*)</button>", html)]


def activity_lines(html: str) -> list[str]:
    return re.findall(r'<span class="activity-text">([^<]*)</span>', html)


def notice(html: str) -> str | None:
    found = re.search(r'class="notice notice-\w+ conv-notice"[^>]*>([^<]*)<', html)
    return found.group(1) if found else None


def marker(html: str) -> str:
    return re.search(r'"since": "([^"]*)"', html).group(1)


# ---------------------------------------------------------------------- access

def test_inbox_needs_a_login(inbox):
    response = inbox.app.test_client().get("/inbox")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_agents_and_admins_both_use_the_inbox(inbox):
    inbox.inbound("atendente")
    for login in ("ana", "bruno"):
        response = inbox.login(login).get("/inbox")
        assert response.status_code == 200
        assert names_in_list(text_of(response)) == ["José Silva"]


# ---------------------------------------------------------------------- the list

def test_default_tab_is_open_with_counts_for_both_tabs(inbox, bruno):
    inbox.inbound("atendente", contact="a", name="Aberta Um")
    closed = inbox.inbound("atendente", contact="b", name="Fechada Dois")
    inbox.service.act(closed, "conclude", "carla")
    html = text_of(bruno.get("/inbox"))
    assert names_in_list(html) == ["Aberta Um"]
    assert re.search(r'id="tab-open"[^>]*aria-current="page"', html)
    assert 'id="count-open">1<' in html and 'id="count-concluded">1<' in html
    assert names_in_list(text_of(bruno.get("/inbox?status=concluded"))) == ["Fechada Dois"]


def test_list_is_newest_activity_first_with_last_message_preview(inbox, bruno):
    first = inbox.inbound("atendente", contact="a", name="Primeira")
    inbox.inbound("atendente", contact="b", name="Segunda")
    inbox.service.agent_message(first, "bruno", "Já vou ver seu pedido")
    html = text_of(bruno.get("/inbox"))
    assert names_in_list(html) == ["Primeira", "Segunda"]
    assert re.search(r'<span class="conv-author">Bruno:</span>\s*Já vou ver seu pedido', html)


@pytest.mark.parametrize("query", ["jose", "JOSÉ", "sé sil", "silva", "  Silv  "])
def test_search_is_partial_and_ignores_case_and_accents(inbox, bruno, query):
    inbox.inbound("atendente", contact="a", name="José Silva")
    inbox.inbound("atendente", contact="b", name="Maria Souza")
    response = bruno.get("/inbox", query_string={"q": query})
    assert names_in_list(text_of(response)) == ["José Silva"]


def test_search_keeps_the_query_in_the_box_and_the_tab_links(inbox, bruno):
    inbox.inbound("atendente", name="José Silva")
    html = text_of(bruno.get("/inbox?q=jos%C3%A9"))
    assert 'name="q" value="josé"' in html
    assert 'href="/inbox?status=concluded&amp;q=jos%C3%A9"' in html


def test_filters_mine_unassigned_and_by_agent(inbox, bruno):
    mine = inbox.inbound("atendente", contact="a", name="Minha")
    hers = inbox.inbound("atendente", contact="b", name="Dela")
    inbox.inbound("atendente", contact="c", name="Ninguém")
    inbox.service.act(mine, "assign", "bruno", user="bruno")
    inbox.service.act(hers, "assign", "carla", user="carla")
    assert names_in_list(text_of(bruno.get("/inbox?mine=1"))) == ["Minha"]
    assert names_in_list(text_of(bruno.get("/inbox?unassigned=1"))) == ["Ninguém"]
    assert names_in_list(text_of(bruno.get("/inbox?assignee=carla"))) == ["Dela"]
    html = text_of(bruno.get("/inbox?mine=1"))
    assert 'id="count-open">1<' in html  # the tab counts follow the filters
    assert re.search(r'id="scope-mine"[^>]*aria-current="true"', html)


def test_an_agent_chosen_in_the_select_replaces_the_mine_scope(inbox, bruno):
    hers = inbox.inbound("atendente", contact="b", name="Dela")
    inbox.service.act(hers, "assign", "carla", user="carla")
    assert names_in_list(text_of(bruno.get("/inbox?mine=1&assignee=carla"))) == ["Dela"]


def test_unknown_status_falls_back_to_open(inbox, bruno):
    inbox.inbound("atendente")
    assert names_in_list(text_of(bruno.get("/inbox?status=nope"))) == ["José Silva"]


def test_htmx_gets_only_the_list_or_the_pane(inbox, bruno):
    inbox.inbound("atendente")
    list_html = text_of(bruno.get("/inbox", headers=LIST))
    # a root-level <title> first: htmx puts it in the tab's title (this agent's unread count)
    assert list_html.lstrip().startswith("<title>(1) Atendimentos · papo</title><div id=\"inbox-list\"")
    assert "<html" not in list_html and 'role="search"' not in list_html
    pane = text_of(bruno.get("/inbox", headers=PANE))
    assert pane.lstrip().startswith('<title>(1) Atendimentos · papo</title><section id="inbox-pane"')
    assert 'role="search"' in pane


def test_list_poll_answers_204_until_something_changes(inbox, bruno):
    inbox.inbound("atendente", contact="a", name="Antiga")
    since = marker(text_of(bruno.get("/inbox", headers=LIST)))
    unchanged = bruno.get("/inbox", query_string={"since": since}, headers=LIST)
    assert unchanged.status_code == 204 and unchanged.data == b""
    inbox.inbound("atendente", contact="b", name="Nova")
    changed = bruno.get("/inbox", query_string={"since": since}, headers=LIST)
    assert changed.status_code == 200
    assert names_in_list(text_of(changed)) == ["Nova", "Antiga"]


def test_list_poll_sees_status_changes_and_new_messages(inbox, bruno):
    conversation = inbox.inbound("atendente")
    since = marker(text_of(bruno.get("/inbox", headers=LIST)))
    inbox.service.act(conversation, "conclude", "carla")
    response = bruno.get("/inbox", query_string={"since": since}, headers=LIST)
    assert response.status_code == 200 and names_in_list(text_of(response)) == []
    since = marker(text_of(response))
    inbox.service.handle_inbound("api", {"external_id": "c1", "name": "José Silva"},
                                 {"id": "late", "text": "mais uma coisa"})
    assert bruno.get("/inbox", query_string={"since": since}, headers=LIST).status_code == 200


def test_unread_marks_are_per_agent(inbox, bruno):
    conversation = inbox.inbound("atendente")
    assert 'data-unread="true"' in text_of(bruno.get("/inbox"))
    assert bruno.get(f"/inbox/{conversation}").status_code == 200
    assert 'data-unread="false"' in text_of(bruno.get("/inbox"))
    carla = inbox.login("carla")
    # Bruno's reading is not Carla's (DESIGN §10.8: read marks are per agent)
    page = text_of(carla.get("/inbox"))
    assert 'data-unread="true"' in page and "<title>(1) Atendimentos · papo</title>" in page
    assert carla.get(f"/inbox/{conversation}").status_code == 200
    assert "<title>Atendimentos · papo</title>" in text_of(carla.get("/inbox"))
    inbox.service.handle_inbound("api", {"external_id": "c1", "name": "José Silva"},
                                 {"id": "again", "text": "alô?"})
    assert 'data-unread="true"' in text_of(carla.get("/inbox"))
    assert 'data-unread="true"' in text_of(bruno.get("/inbox"))


def title_of(client, path: str = "/inbox") -> str:
    return re.search(r"<title>([^<]*)</title>", text_of(client.get(path))).group(1)


def test_the_title_count_follows_assignment_reading_and_conclusion(inbox, bruno):
    carla = inbox.login("carla")
    first = inbox.inbound("atendente", contact="c1", name="José Silva")
    inbox.inbound("atendente", contact="c2", name="Rita Lopes")
    assert title_of(bruno) == title_of(carla) == "(2) Atendimentos · papo"  # nobody's yet
    inbox.service.act(first, "assign", "carla", user="carla")
    assert title_of(bruno) == "(1) Atendimentos · papo"  # Carla's now, not his
    assert title_of(carla) == "(2) Atendimentos · papo"
    carla.get(f"/inbox/{first}")  # read
    assert title_of(carla) == "(1) Atendimentos · papo"
    inbox.service.handle_inbound("api", {"external_id": "c1", "name": "José Silva"},
                                 {"id": "late-1", "text": "ainda aí?"})
    assert title_of(carla) == "(2) Atendimentos · papo"
    inbox.service.act(first, "unassign", "carla", user="carla")  # nobody's again: Bruno's too
    assert title_of(bruno) == "(2) Atendimentos · papo"
    inbox.service.act(first, "conclude", "carla")
    assert title_of(carla) == "(1) Atendimentos · papo"
    assert title_of(bruno) == "(1) Atendimentos · papo"


def test_a_conversation_chosen_in_the_list_is_the_pane_alone(inbox, bruno):
    conversation = inbox.inbound("atendente")
    pane = {"HX-Request": "true", "HX-Target": "conv-pane"}
    response = bruno.get(f"/inbox/{conversation}?sort=waiting", headers=pane)
    html = text_of(response)
    assert response.headers["HX-Push-Url"] == f"/inbox/{conversation}?sort=waiting"
    assert html.startswith("<title>José Silva · Atendimentos · papo</title>")  # read now: no count
    assert 'id="conv-pane"' in html and 'id="reply-form"' in html and "Voltar à lista" in html
    assert 'id="inbox-list"' not in html and "<html" not in html
    back = bruno.get("/inbox?sort=waiting", headers=pane)
    assert back.headers["HX-Push-Url"] == "/inbox?sort=waiting"
    assert 'id="conv-pane"' in text_of(back) and 'id="conversation"' not in text_of(back)


def test_agent_messages_do_not_make_a_conversation_unread(inbox, bruno):
    conversation = inbox.inbound("atendente")
    bruno.get(f"/inbox/{conversation}")
    inbox.service.agent_message(conversation, "carla", "Oi!")
    assert 'data-unread="false"' in text_of(bruno.get("/inbox"))


def test_simulator_conversations_never_show(inbox, bruno):
    inbox.service.handle_inbound("api", {"external_id": "x", "name": "Real"},
                                 {"id": "r1", "text": "atendente"})
    from sqlalchemy import update

    from engine.store import conversations
    hidden = inbox.inbound("atendente", contact="t", name="Teste do simulador")
    with inbox.engine.begin() as conn:
        conn.execute(update(conversations).where(conversations.c.id == hidden).values(channel="test"))
    assert names_in_list(text_of(bruno.get("/inbox"))) == ["Real"]
    assert bruno.get(f"/inbox/{hidden}").status_code == 404


# ---------------------------------------------------------------------- the conversation

def test_conversation_page_shows_list_and_timeline(inbox, bruno):
    conversation = inbox.inbound("atendente")
    html = text_of(bruno.get(f"/inbox/{conversation}"))
    assert '<h2 id="conv-title" tabindex="-1">José Silva</h2>' in html
    assert re.search(rf'<a class="conv-link" href="/inbox/{conversation}"[^>]*aria-current="page"', html)
    assert activity_lines(html) == ["Cliente pediu atendimento humano"]
    assert html.index(">atendente<") < html.index("Cliente pediu atendimento humano")


def test_conversation_fragment_for_htmx(inbox, bruno):
    conversation = inbox.inbound("atendente")
    live = text_of(bruno.get(f"/inbox/{conversation}", headers=LIVE))
    assert live.lstrip().startswith('<div id="conv-live"') and "reply-form" not in live
    whole = text_of(bruno.get(f"/inbox/{conversation}", headers={"HX-Request": "true"}))
    assert whole.lstrip().startswith('<section id="conversation"') and "reply-form" in whole
    assert "<html" not in whole


def test_timeline_interleaves_bot_customer_agent_and_activity(inbox, bruno, welcome):
    conversation = inbox.inbound("oi")
    inbox.inbound("3")  # "Falar com atendente": the flow opens the conversation
    bruno.post(f"/inbox/{conversation}/assign", data={"user": "bruno"}, headers=LIVE)
    bruno.post(f"/inbox/{conversation}/messages", data={"text": "Oi, José! Em que posso ajudar?"},
               headers=LIVE)
    html = text_of(bruno.post(f"/inbox/{conversation}/conclude", headers=LIVE))
    order = ["Bem-vindo(a) à Loja da Ana", "Como posso te ajudar hoje?", ">3<",
             "Já vou te passar", "Bot pausado: o fluxo abriu o atendimento",
             "Bruno assumiu o atendimento", "Oi, José! Em que posso ajudar?",
             "Concluído por Bruno", "De 1 a 5, como foi o atendimento?"]
    history = html[html.index('<ol class="chat timeline"'):]  # the banner above names blocks too
    positions = [history.index(piece) for piece in order]
    assert positions == sorted(positions)
    assert 'class="bubble bubble-out from-bot"' in html and 'class="bubble bubble-out from-agent"' in html


def test_driver_banner_bot_waiting_for_an_answer(inbox, bruno, welcome):
    conversation = inbox.inbound("oi")
    html = text_of(bruno.get(f"/inbox/{conversation}"))
    assert "Bot aguardando resposta do cliente" in html
    assert "Fluxo “Boas-vindas” · bloco &#34;Como posso te ajudar hoje?&#34; (menu)" in html
    assert buttons(html)[2:5] == ["Buscar", "Reabrir", "Atribuir a mim"]  # one way to reopen (after "Sair" and "Avisos")


def test_driver_banner_agent_in_charge_with_assignees(inbox, bruno):
    conversation = inbox.inbound("atendente")
    inbox.service.act(conversation, "assign", "ana", user="carla")
    html = text_of(bruno.get(f"/inbox/{conversation}"))
    assert "Bot pausado — atendimento humano" in html and "Com Carla." in html


def test_driver_banner_lists_pending_timers_with_due_time(app, inbox, bruno):
    from engine.service import Service

    papo = app.extensions["papo"]
    settings = dataclasses.replace(papo["settings"], auto_conclude_after=3600.0)
    papo["service"] = Service(papo["engine"], settings, clock=lambda: 1_795_168_800.0)
    conversation = inbox.inbound("atendente")
    html = text_of(bruno.get(f"/inbox/{conversation}"))
    assert "Conclusão automática por inatividade em" in html
    assert 'datetime="2026-11-20T11:00:00Z"' in html


def test_unknown_conversation_is_a_friendly_404(inbox, bruno):
    response = bruno.get("/inbox/999")
    assert response.status_code == 404
    html = text_of(response)
    assert "Esta conversa não existe ou foi removida." in html and "Traceback" not in html
    assert bruno.get("/inbox/999?lang=en").status_code == 404
    assert "This conversation does not exist" in text_of(bruno.get("/inbox/999"))


def test_polling_a_conversation_that_is_gone_stops_the_poll(inbox, bruno):
    response = bruno.get("/inbox/999", query_string={"since": "1.0"}, headers=LIVE)
    assert response.status_code == 286  # htmx stops polling on 286
    assert "não existe mais" in text_of(response)


def test_conversation_poll_answers_204_until_it_changes(inbox, bruno):
    conversation = inbox.inbound("atendente")
    since = marker(text_of(bruno.get(f"/inbox/{conversation}", headers=LIVE)))
    assert bruno.get(f"/inbox/{conversation}", query_string={"since": since},
                     headers=LIVE).status_code == 204
    inbox.service.handle_inbound("api", {"external_id": "c1", "name": "José Silva"},
                                 {"id": "new", "text": "ainda estou aqui"})
    response = bruno.get(f"/inbox/{conversation}", query_string={"since": since}, headers=LIVE)
    assert response.status_code == 200 and "ainda estou aqui" in text_of(response)


# ---------------------------------------------------------------------- actions

def test_reopen_opens_a_concluded_conversation(inbox, bruno):
    conversation = inbox.inbound("oi")
    response = bruno.post(f"/inbox/{conversation}/reopen", headers=LIVE)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "inbox-changed"
    assert inbox.actions(conversation)[-1] == ("bruno", "reopened", "concluded", "open")
    assert activity_lines(text_of(response))[-1] == "Reaberto por Bruno"
    assert "Concluir" in buttons(text_of(response))


def test_open_switches_status_without_assigning(inbox, bruno):
    conversation = inbox.inbound("oi")
    html = text_of(bruno.post(f"/inbox/{conversation}/open", headers=LIVE))
    assert inbox.actions(conversation)[-1] == ("bruno", "opened", "concluded", "open")
    assert inbox.conversation(conversation)["assignees"] == []
    assert activity_lines(html)[-1] == "Marcado como aberto por Bruno"


def test_assign_to_me_and_to_another_agent(inbox, bruno):
    conversation = inbox.inbound("oi")
    html = text_of(bruno.post(f"/inbox/{conversation}/assign", data={"user": "carla"}, headers=LIVE))
    assert activity_lines(html)[-1] == "Bruno atribuiu a Carla"
    # Carla handles it now: joining her is confirmed first (DESIGN §10.8, "Atender junto")
    html = text_of(bruno.post(f"/inbox/{conversation}/assign", data={"user": "bruno", "join": "1"},
                              headers=LIVE))
    assert activity_lines(html)[-1] == "Bruno assumiu o atendimento"
    conv = inbox.conversation(conversation)
    assert conv["status"] == "open" and conv["assignees"] == ["carla", "bruno"]
    assert "Atribuir a mim" not in buttons(html)  # already assigned
    assert [a[1] for a in inbox.actions(conversation)] == ["assigned", "assigned"]


def test_assign_without_a_user_or_with_an_unknown_one_is_422(inbox, bruno):
    conversation = inbox.inbound("oi")
    response = bruno.post(f"/inbox/{conversation}/assign", headers=LIVE)
    assert response.status_code == 422 and notice(text_of(response))
    response = bruno.post(f"/inbox/{conversation}/assign", data={"user": "zeca"}, headers=LIVE)
    assert response.status_code == 422
    assert notice(text_of(response)) == "O usuário zeca não existe."
    assert inbox.actions(conversation) == []


def test_unassign_one_assignee_keeps_the_status(inbox, bruno):
    conversation = inbox.inbound("atendente")
    inbox.service.act(conversation, "assign", "ana", user="carla")
    inbox.service.act(conversation, "assign", "ana", user="bruno")
    html = text_of(bruno.post(f"/inbox/{conversation}/unassign", data={"user": "carla"}, headers=LIVE))
    conv = inbox.conversation(conversation)
    assert conv["assignees"] == ["bruno"] and conv["status"] == "open"
    assert activity_lines(html)[-1] == "Bruno desatribuiu Carla"
    bruno.post(f"/inbox/{conversation}/unassign", headers=LIVE)  # no choice: the agent leaves
    assert inbox.conversation(conversation)["assignees"] == []


def test_conclude_keeps_assignees_and_shows_the_csat_question(inbox, bruno, welcome):
    conversation = inbox.inbound("oi")
    inbox.inbound("3")
    inbox.service.act(conversation, "assign", "bruno", user="bruno")
    html = text_of(bruno.post(f"/inbox/{conversation}/conclude", headers=LIVE))
    conv = inbox.conversation(conversation)
    assert conv["status"] == "concluded" and conv["assignees"] == ["bruno"]
    assert "De 1 a 5, como foi o atendimento?" in html
    assert "Reabrir" in buttons(html) and "Concluir" not in buttons(html)


def test_unassign_and_conclude_removes_the_actor(inbox, bruno):
    conversation = inbox.inbound("atendente")
    inbox.service.act(conversation, "assign", "ana", user="carla")
    inbox.service.act(conversation, "assign", "ana", user="bruno")
    html = text_of(bruno.post(f"/inbox/{conversation}/unassign_and_conclude", headers=LIVE))
    conv = inbox.conversation(conversation)
    assert conv["status"] == "concluded" and conv["assignees"] == ["carla"]
    assert activity_lines(html)[-1] == "Desatribuído e concluído por Bruno"


def test_sending_a_message_opens_the_conversation(inbox, bruno):
    conversation = inbox.inbound("oi")
    html = text_of(bruno.post(f"/inbox/{conversation}/messages", data={"text": "Olá! Posso ajudar?"},
                              headers=LIVE))
    conv = inbox.conversation(conversation)
    assert conv["status"] == "open"
    assert conv["messages"][-1] == {**conv["messages"][-1], "author": "bruno",
                                    "text": "Olá! Posso ajudar?", "direction": "out"}
    assert activity_lines(html)[-1] == "Aberto por Bruno ao responder ao cliente"
    assert "Olá! Posso ajudar?" in html


def test_an_empty_message_is_refused_and_nothing_changes(inbox, bruno):
    conversation = inbox.inbound("oi")
    response = bruno.post(f"/inbox/{conversation}/messages", data={"text": "   "}, headers=LIVE)
    assert response.status_code == 422
    assert notice(text_of(response)) == "Escreva uma mensagem antes de enviar."
    assert inbox.conversation(conversation)["status"] == "concluded"


def test_unknown_action_and_unknown_conversation_are_404(inbox, bruno):
    conversation = inbox.inbound("oi")
    assert bruno.post(f"/inbox/{conversation}/explode").status_code == 404
    assert bruno.post("/inbox/999/conclude").status_code == 404
    assert bruno.post("/inbox/999/messages", data={"text": "oi"}).status_code == 404


def test_without_htmx_an_action_redirects_back_with_the_filters(inbox, bruno):
    conversation = inbox.inbound("atendente")
    response = bruno.post(f"/inbox/{conversation}/conclude?status=open&q=jos")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/inbox/{conversation}?q=jos")
    assert inbox.conversation(conversation)["status"] == "concluded"


def test_without_htmx_a_no_op_is_flashed_on_the_next_page(inbox, bruno):
    conversation = inbox.inbound("oi")  # concluded: the bot is in charge
    bruno.post(f"/inbox/{conversation}/conclude")
    html = text_of(bruno.get(f"/inbox/{conversation}"))
    assert "Esta conversa já estava concluída." in html


# ---------------------------------------------------------------------- stale views

def _seen(client, conversation: int) -> str:
    html = text_of(client.get(f"/inbox/{conversation}", headers=LIVE))
    return re.search(r'name="seen" value="(\d+)"', html).group(1)


def test_concluding_what_another_agent_just_concluded(inbox, bruno):
    conversation = inbox.inbound("atendente")
    seen = _seen(bruno, conversation)
    inbox.service.act(conversation, "conclude", "carla")
    response = bruno.post(f"/inbox/{conversation}/conclude", data={"seen": seen}, headers=LIVE)
    assert response.status_code == 200
    assert notice(text_of(response)) == "Esta conversa já estava concluída por Carla."
    assert [a[1] for a in inbox.actions(conversation)] == ["handoff_requested", "concluded"]
    assert "Reabrir" in buttons(text_of(response))  # the fresh state


def test_concluding_after_an_automatic_conclusion(app, inbox, bruno):
    from engine.service import Service

    papo = app.extensions["papo"]
    clock = [1_795_168_800.0]
    settings = dataclasses.replace(papo["settings"], auto_conclude_after=60.0)
    papo["service"] = service = Service(papo["engine"], settings, clock=lambda: clock[0])
    conversation = inbox.inbound("atendente")
    seen = _seen(bruno, conversation)
    clock[0] += 61
    service.fire_due_timers()
    assert inbox.actions(conversation)[-1] == ("system", "auto_concluded", "open", "concluded")
    response = bruno.post(f"/inbox/{conversation}/unassign_and_conclude", data={"seen": seen},
                          headers=LIVE)
    assert notice(text_of(response)) == \
        "Esta conversa já estava concluída automaticamente por inatividade."
    assert "Concluído automaticamente por inatividade" in activity_lines(text_of(response))


def test_reopening_what_another_agent_just_reopened(inbox, bruno):
    conversation = inbox.inbound("oi")
    seen = _seen(bruno, conversation)
    inbox.service.act(conversation, "reopen", "carla")
    response = bruno.post(f"/inbox/{conversation}/reopen", data={"seen": seen}, headers=LIVE)
    assert response.status_code == 200
    assert notice(text_of(response)) == "Esta conversa já estava aberta (Reaberto por Carla)."
    assert [a[0] for a in inbox.actions(conversation)] == ["carla"]


def test_assigning_someone_already_assigned(inbox, bruno):
    conversation = inbox.inbound("atendente")
    seen = _seen(bruno, conversation)
    inbox.service.act(conversation, "assign", "carla", user="carla")
    response = bruno.post(f"/inbox/{conversation}/assign", data={"user": "carla", "seen": seen},
                          headers=LIVE)
    assert notice(text_of(response)) == "Carla já estava entre os atendentes desta conversa."


def test_unassigning_someone_who_already_left(inbox, bruno):
    conversation = inbox.inbound("atendente")
    inbox.service.act(conversation, "assign", "carla", user="carla")
    seen = _seen(bruno, conversation)
    inbox.service.act(conversation, "unassign", "carla", user="carla")
    response = bruno.post(f"/inbox/{conversation}/unassign", data={"user": "carla", "seen": seen},
                          headers=LIVE)
    assert response.status_code == 200
    assert notice(text_of(response)) == "Carla não estava entre os atendentes desta conversa."


def test_an_action_on_a_changed_conversation_applies_to_the_fresh_state(inbox, bruno):
    conversation = inbox.inbound("atendente")
    seen = _seen(bruno, conversation)
    inbox.service.act(conversation, "assign", "carla", user="carla")
    response = bruno.post(f"/inbox/{conversation}/conclude", data={"seen": seen}, headers=LIVE)
    assert response.status_code == 200
    assert notice(text_of(response)).startswith(
        "Esta conversa mudou enquanto você a via (Carla assumiu o atendimento)")
    conv = inbox.conversation(conversation)
    assert conv["status"] == "concluded" and conv["assignees"] == ["carla"]


def test_an_up_to_date_view_gets_no_notice(inbox, bruno):
    conversation = inbox.inbound("atendente")
    seen = _seen(bruno, conversation)
    response = bruno.post(f"/inbox/{conversation}/conclude", data={"seen": seen}, headers=LIVE)
    assert notice(text_of(response)) is None


# ---------------------------------------------------------------------- languages, escaping, CSRF

def test_english_names(inbox):
    conversation = inbox.inbound("atendente")
    client = inbox.login("bruno", lang="en")
    html = text_of(client.get(f"/inbox/{conversation}?lang=en"))
    # the tabs are named by their text; the count is their description (WCAG 2.5.3)
    assert '>Open <span class="tab-count"' in html and '>Concluded <span class="tab-count"' in html
    assert {"Search", "Conclude", "Unassign and conclude", "Assign to me", "Assign", "Send"} \
        <= set(buttons(html))
    assert "Customer asked for a human" in html and '<label for="inbox-q">Search</label>' in html
    inbox.service.act(conversation, "conclude", "carla")
    html = text_of(client.get(f"/inbox/{conversation}"))
    assert "Reopen" in buttons(html) and "Open" not in buttons(html) and "Concluded by Carla" in html


def test_customer_text_is_always_escaped(inbox, bruno):
    conversation = inbox.inbound("<img src=x onerror=alert(1)>", name="<script>alert(1)</script>")
    inbox.service.act(conversation, "reopen", "bruno")
    for html in (text_of(bruno.get("/inbox")), text_of(bruno.get(f"/inbox/{conversation}"))):
        assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_forms_need_the_csrf_token(tmp_path, db_url, monkeypatch):
    monkeypatch.setattr(accounts, "generate_password_hash",
                        partial(generate_password_hash, method="pbkdf2:sha256:1"))
    app = create_app({"PAPO_DATABASE_URL": db_url, "PAPO_INSTANCE_PATH": str(tmp_path / "i"),
                      "TESTING": True, "SECRET_KEY": "csrf-test"})
    engine = app.extensions["papo"]["engine"]
    create_schema(engine)
    accounts.create_user(engine, "bruno", "agent", password=PASSWORD, name="Bruno")
    client = app.test_client()
    login_page = text_of(client.get("/login"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
    client.post("/login", data={"login": "bruno", "password": PASSWORD, "csrf_token": token})
    with app.app_context():
        conversation = get_service(app).handle_inbound(
            "api", {"external_id": "c", "name": "Cliente"}, {"id": "1", "text": "atendente"}
        )["conversation_id"]
    page = text_of(client.get(f"/inbox/{conversation}"))
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    refused = client.post(f"/inbox/{conversation}/conclude", headers=LIVE)
    assert refused.status_code == 400
    accepted = client.post(f"/inbox/{conversation}/conclude",
                           headers={**LIVE, "X-CSRFToken": token})
    assert accepted.status_code == 200
    form = client.post(f"/inbox/{conversation}/reopen", data={"csrf_token": token})
    assert form.status_code == 303
    engine.dispose()
