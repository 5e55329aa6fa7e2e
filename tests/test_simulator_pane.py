"""The simulator pane through HTTP (Flask test client): every action, errors, isolation."""
from __future__ import annotations

import copy
import re
import shutil
from html import unescape

import pytest

from editor import create_app
from editor.app import get_engine, get_service
from engine import accounts
from engine.db import create_schema, make_engine
from engine.flows import FlowRepository

PASSWORD = "uma senha bem longa"
HTMX = {"HX-Request": "true"}
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def _seed_db(tmp_path_factory):
    """Users made once: hashing passwords is slow."""
    path = tmp_path_factory.mktemp("seed-sim") / "papo.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    accounts.create_user(engine, "ana", "admin", password=PASSWORD, name="Ana")
    accounts.create_user(engine, "rui", "admin", password=PASSWORD, name="Rui")
    accounts.create_user(engine, "bruno", "agent", password=PASSWORD, name="Bruno")
    engine.dispose()
    return path


@pytest.fixture
def app(tmp_path, _seed_db, sample_flow):
    shutil.copyfile(_seed_db, tmp_path / "papo.db")
    app = create_app({
        "PAPO_DATABASE_URL": f"sqlite:///{tmp_path / 'papo.db'}",
        "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
        "TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": False,
    })
    repo = FlowRepository(get_engine(app))
    for name in ("boas-vindas", "lembrete"):
        repo.create(sample_flow(name), actor="ana")
    yield app
    get_engine(app).dispose()


def _client(app, login="ana"):
    client = app.test_client()
    response = client.post("/login", data={"login": login, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def client(app):
    return _client(app)


def _post(client, flow_id, action, **data):
    response = client.post(f"/flows/{flow_id}/simulator/{action}", data=data, headers=HTMX)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def _send(client, text, flow_id="boas-vindas"):
    return _post(client, flow_id, "send", text=text)


def _texts(html: str, css_class: str) -> list[str]:
    """Texts of the chat: bubbles of a kind (``sim-msg-bot``...) or the notes (``sim-note-line``)."""
    if css_class == "sim-note-line":
        found = re.findall(r'<li class="sim-note-line [^"]*">(.*?)</li>', html, re.S)
    else:
        found = re.findall(rf'<li class="sim-msg {css_class}">.*?<div class="sim-text">(.*?)</div>', html, re.S)
    return [unescape(text).strip() for text in found]


def _status(html: str) -> str:
    found = re.search(r'<p id="sim-status" class="sim-status sim-status-(\w+)"', html)
    return found.group(1) if found else ""


def _option_buttons(html: str) -> list[str]:
    return [unescape(b) for b in re.findall(r'<button type="submit" class="btn btn-small sim-option">(.*?)</button>', html)]


def _variables(html: str) -> dict[str, str]:
    return {unescape(name): unescape(value) for name, value in re.findall(
        r'<th scope="row"><code>(.*?)</code></th><td class="sim-value">(.*?)</td>', html, re.S)}


# ---------------------------------------------------------------------- access

def test_agents_get_403_on_every_simulator_route(app):
    agent = _client(app, "bruno")
    assert agent.get("/flows/boas-vindas/simulator").status_code == 403
    for action in ("send", "open", "conclude", "advance", "restart"):
        assert agent.post(f"/flows/boas-vindas/simulator/{action}", data={"text": "oi"},
                          headers=HTMX).status_code == 403


def test_anonymous_visitors_are_sent_to_login(app):
    response = app.test_client().get("/flows/boas-vindas/simulator")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_unknown_flow_is_a_friendly_404(client):
    response = client.get("/flows/nao-existe/simulator")
    assert response.status_code == 404
    assert "nao-existe" in response.get_data(as_text=True)


def test_posts_need_a_csrf_token(tmp_path, _seed_db, sample_flow):
    shutil.copyfile(_seed_db, tmp_path / "papo.db")
    app = create_app({"PAPO_DATABASE_URL": f"sqlite:///{tmp_path / 'papo.db'}",
                      "PAPO_INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "test"})
    FlowRepository(get_engine(app)).create(sample_flow("boas-vindas"), actor="ana")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"login": "ana", "password": PASSWORD, "csrf_token": token})
    page = client.get("/flows/boas-vindas/simulator").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert client.post("/flows/boas-vindas/simulator/send", data={"text": "oi"},
                       headers=HTMX).status_code == 400
    ok = client.post("/flows/boas-vindas/simulator/send", data={"text": "oi"},
                     headers={**HTMX, "X-CSRFToken": token})
    assert ok.status_code == 200 and "Loja da Ana" in ok.get_data(as_text=True)
    get_engine(app).dispose()


# ---------------------------------------------------------------------- the page

def test_page_shows_the_pane_with_its_buttons_and_message_box(client):
    response = client.get("/flows/boas-vindas/simulator")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for label in ("Enviar", "Abrir atendimento", "Concluir", "Avançar tempo", "Reiniciar"):
        assert f">{label}</button>" in html
    assert '<label for="sim-text">Mensagem</label>' in html
    assert "simulator.js" in html and "simulator.css" in html
    assert _status(html) == "idle"


def test_an_htmx_get_answers_only_the_state_fragment(client):
    html = client.get("/flows/boas-vindas/simulator", headers=HTMX).get_data(as_text=True)
    assert html.lstrip().startswith('<div id="sim-state"') and "<html" not in html


def test_english_labels_with_lang_en(client):
    html = client.get("/flows/boas-vindas/simulator?lang=en").get_data(as_text=True)
    for label in ("Send", "Open conversation", "Conclude", "Advance time", "Restart"):
        assert f">{label}</button>" in html
    assert '<label for="sim-text">Message</label>' in html
    assert ">Enviar<" not in html and ">Concluir<" not in html


# ---------------------------------------------------------------------- the welcome flow

def test_sending_oi_shows_the_greeting_and_the_menu_as_buttons(client):
    html = _send(client, "oi")
    assert _texts(html, "sim-msg-customer") == ["oi"]
    bot = _texts(html, "sim-msg-bot")
    assert bot[0] == "Olá, Ana! 👋 Bem-vindo(a) à Loja da Ana."
    assert bot[1].startswith("Como posso te ajudar hoje?")
    assert _option_buttons(html) == ["Ver produtos", "Status do pedido", "Falar com atendente"]
    assert _status(html) == "waiting_input"
    assert 'data-current-block="menu"' in html


def test_the_talk_to_an_agent_option_opens_the_conversation_and_silences_the_bot(client):
    _send(client, "oi")
    html = _send(client, "Falar com atendente")
    assert _status(html) == "open"
    assert "o bot está em silêncio" in html
    assert any("abriu o atendimento" in note for note in _texts(html, "sim-note-line"))
    assert _option_buttons(html) == []  # the menu's buttons are history now
    quiet = _send(client, "alguém aí?")
    assert _texts(quiet, "sim-msg-bot") == _texts(html, "sim-msg-bot")


def test_conclude_resumes_the_flow_with_the_csat_question_and_the_answer_is_saved(client):
    _send(client, "oi")
    _send(client, "Falar com atendente")
    html = _post(client, "boas-vindas", "conclude")
    assert _texts(html, "sim-msg-bot")[-1] == "De 1 a 5, como foi o atendimento?"
    assert _status(html) == "waiting_input"
    notes = _texts(html, "sim-note-line")
    assert notes[-1].startswith("ana concluiu o atendimento")
    html = _send(client, "5")
    assert _texts(html, "sim-msg-bot")[-1].startswith("Obrigada pela avaliação, Ana!")
    assert _variables(html) == {"escolha": "Falar com atendente", "csat": "5"}
    assert _status(html) == "ended"


def test_open_button_takes_over_as_the_current_user(client, app):
    _send(client, "oi")
    html = _post(client, "boas-vindas", "open")
    assert _status(html) == "open"
    assert _texts(html, "sim-note-line") == ["ana abriu o atendimento: o bot fica em silêncio."]
    conversation_id = _conversation_ids(app)[0]
    conversation = get_service(app).get_conversation(conversation_id)
    assert conversation["status"] == "open" and conversation["channel"] == "test"
    assert conversation["activity"][-1]["actor"] == "ana"
    # An agent stepped in (not the flow): concluding ends the run instead of resuming it.
    html = _post(client, "boas-vindas", "conclude")
    assert _status(html) == "ended"


def test_open_as_the_very_first_action_works(client):
    html = _post(client, "boas-vindas", "open")
    assert _status(html) == "open"
    html = _post(client, "boas-vindas", "conclude")
    assert _status(html) != "open"


def test_concluding_or_opening_twice_is_a_friendly_no_op(client):
    _send(client, "oi")
    html = _post(client, "boas-vindas", "conclude")
    assert "Não há atendimento aberto para concluir" in html and _status(html) == "waiting_input"
    _post(client, "boas-vindas", "open")
    html = _post(client, "boas-vindas", "open")
    assert "O atendimento já está aberto." in html
    assert len(_texts(html, "sim-note-line")) == 1


def test_an_invalid_answer_gets_the_flows_hint_and_the_buttons_again(client):
    _send(client, "oi")
    html = _send(client, "talvez")
    assert "Não entendi" in " ".join(_texts(html, "sim-msg-bot"))
    assert _option_buttons(html) == ["Ver produtos", "Status do pedido", "Falar com atendente"]


def test_restart_starts_a_new_empty_conversation(client, app):
    _send(client, "oi")
    html = _post(client, "boas-vindas", "restart")
    assert _texts(html, "sim-msg-bot") == [] and "Nenhuma mensagem ainda." in html
    assert _variables(html) == {}
    assert _status(html) == "idle"
    html = _send(client, "menu")
    assert _texts(html, "sim-msg-customer") == ["menu"]
    assert len(_conversation_ids(app)) == 2


def test_an_empty_message_gets_a_friendly_note(client):
    html = _send(client, "   ")
    assert "Escreva uma mensagem antes de enviar." in html


def test_without_javascript_a_post_redirects_back_to_the_page(client):
    response = client.post("/flows/boas-vindas/simulator/send", data={"text": "oi"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/flows/boas-vindas/simulator")
    assert "Loja da Ana" in client.get("/flows/boas-vindas/simulator").get_data(as_text=True)


# ---------------------------------------------------------------------- time

def test_advance_time_fires_the_wait_and_shows_how_much_time_was_skipped(client):
    html = _send(client, "lembrete", "lembrete")
    assert _option_buttons(html)[0] == "Sim, em 1 hora"
    html = _send(client, "Sim, em 1 hora", "lembrete")
    assert _status(html) == "waiting_timer"
    assert "Aguardando o tempo passar" in html and "daqui a 1 h" in html
    assert 'data-current-block="espera_1h"' in html
    html = _post(client, "lembrete", "advance")
    assert _texts(html, "sim-msg-bot")[-1].startswith("⏰ Lembrete da Loja da Ana")
    assert "⏩ 1 h depois" in _texts(html, "sim-note-line")
    assert "Relógio da simulação" in html
    assert _status(html) == "ended"


def test_advance_time_on_a_question_fires_its_timeout(client):
    _send(client, "lembrete", "lembrete")
    html = _post(client, "lembrete", "advance")
    assert "⏩ 30 min depois" in _texts(html, "sim-note-line")
    assert _texts(html, "sim-msg-bot")[-1].startswith("Como não tive resposta")


def test_advance_time_with_nothing_scheduled_says_so(client):
    html = _post(client, "boas-vindas", "advance")
    assert "Nada agendado" in html
    _send(client, "oi")
    html = _post(client, "boas-vindas", "advance")
    assert "Nada agendado" in html and _status(html) == "waiting_input"


def test_the_simulated_clock_survives_requests_and_restart_resets_it(client, app):
    _send(client, "lembrete", "lembrete")
    _send(client, "Sim, amanhã", "lembrete")
    _post(client, "lembrete", "advance")
    html = _send(client, "lembrete", "lembrete")
    assert "1 dia à frente" in html
    conversation = get_service(app).get_conversation(_conversation_ids(app)[0])
    first, last = conversation["messages"][0]["at"], conversation["messages"][-1]["at"]
    assert last[:10] > first[:10]  # the new message is stamped a day later
    html = _post(client, "lembrete", "restart")
    assert "Relógio da simulação" not in html


# ---------------------------------------------------------------------- isolation and safety

def test_each_user_has_a_simulation_of_their_own(app):
    ana, rui = _client(app, "ana"), _client(app, "rui")
    _send(ana, "oi")
    html = rui.get("/flows/boas-vindas/simulator", headers=HTMX).get_data(as_text=True)
    assert _texts(html, "sim-msg-customer") == []
    _send(rui, "menu")
    html = ana.get("/flows/boas-vindas/simulator", headers=HTMX).get_data(as_text=True)
    assert _texts(html, "sim-msg-customer") == ["oi"]


def test_each_flow_has_a_simulation_of_its_own(client):
    _send(client, "oi")
    html = client.get("/flows/lembrete/simulator", headers=HTMX).get_data(as_text=True)
    assert _texts(html, "sim-msg-customer") == []


def test_test_conversations_stay_out_of_the_inbox_lists(client, app):
    _send(client, "oi")
    _send(client, "Falar com atendente")
    service = get_service(app)
    assert service.list_conversations()["items"] == []
    assert service.count_by_status() == {"open": 0, "concluded": 0}


def test_customer_and_author_text_is_escaped(client, app, sample_flow):
    doc = copy.deepcopy(sample_flow("boas-vindas"))
    doc["blocks"][0]["data"]["text"] = f"Olá {XSS}"
    doc["blocks"][1]["data"]["options"][0]["label"] = "<b>negrito</b>"
    repo = FlowRepository(get_engine(app))
    _, revision = repo.get("boas-vindas")
    repo.update("boas-vindas", doc, revision, actor="ana")
    html = _send(client, f"oi {XSS}")
    assert "<img" not in html and "<b>negrito" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    html = _send(client, "<b>negrito</b>")
    assert _variables(html)["escolha"] == "<b>negrito</b>"
    assert "<b>negrito" not in html


def test_the_run_uses_the_latest_draft_and_says_when_a_newer_one_exists(client, app, sample_flow):
    repo = FlowRepository(get_engine(app))
    _send(client, "oi")
    doc = copy.deepcopy(sample_flow("boas-vindas"))
    doc["blocks"][0]["data"]["text"] = "Oi de novo, {{ contact.name }}!"
    _, revision = repo.get("boas-vindas")
    repo.update("boas-vindas", doc, revision, actor="ana")
    html = client.get("/flows/boas-vindas/simulator", headers=HTMX).get_data(as_text=True)
    assert "Clique em Reiniciar para testar a nova" in html
    _post(client, "boas-vindas", "restart")
    html = _send(client, "qualquer coisa")  # the draft runs whatever its triggers
    assert _texts(html, "sim-msg-bot")[0] == "Oi de novo, Ana!"


def test_a_broken_draft_shows_its_errors_and_the_run_log_in_the_pane(client, app, sample_flow):
    doc = copy.deepcopy(sample_flow("boas-vindas"))
    doc["id"] = "quebrado"
    doc["start"] = "nao-existe"
    doc["edges"].append({"from": "saudacao", "port": "next", "to": "fantasma"})
    doc["edges"] = [e for e in doc["edges"] if not (e["from"] == "saudacao" and e["to"] == "menu")]
    FlowRepository(get_engine(app)).create(doc, actor="ana")
    page = client.get("/flows/quebrado/simulator")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Erros no rascunho (2)" in html and "nao-existe" in html and "fantasma" in html
    html = _send(client, "oi", "quebrado")
    assert "Problemas durante a execução" in html
    assert "nao-existe" in html
    assert _status(html) == "ended"


def test_a_runtime_warning_of_the_run_log_is_shown(client, app, sample_flow):
    doc = copy.deepcopy(sample_flow("boas-vindas"))
    doc["blocks"][0]["data"]["text"] = "Oi {{ sumido }}!"
    repo = FlowRepository(get_engine(app))
    _, revision = repo.get("boas-vindas")
    repo.update("boas-vindas", doc, revision, actor="ana")
    html = _send(client, "oi")
    assert "Problemas durante a execução" in html and "sumido" in html
    assert _texts(html, "sim-msg-bot")[0] == "Oi !"


def test_an_unexpected_failure_is_a_notice_not_a_500(client, monkeypatch):
    from engine.service import Service

    def explode(*args, **kwargs):
        raise RuntimeError("disco cheio")

    monkeypatch.setattr(Service, "handle_inbound", explode)
    html = _send(client, "oi")
    assert "erro inesperado" in html and "disco cheio" in html


def test_the_findings_fragment_lists_the_drafts_errors(client, app, sample_flow):
    doc = copy.deepcopy(sample_flow("boas-vindas"))
    doc["id"] = "sem-inicio"
    doc["start"] = "nenhum"
    FlowRepository(get_engine(app)).create(doc, actor="ana")
    html = client.get("/flows/sem-inicio/simulator/findings", headers=HTMX).get_data(as_text=True)
    assert html.lstrip().startswith('<div id="sim-findings"') and "nenhum" in html
    clean = client.get("/flows/boas-vindas/simulator/findings", headers=HTMX).get_data(as_text=True)
    assert "notice" not in clean


# ---------------------------------------------------------------------- helpers

def _conversation_ids(app) -> list[int]:
    from sqlalchemy import select

    from engine.store import conversations

    with get_engine(app).connect() as conn:
        return list(conn.execute(select(conversations.c.id).order_by(conversations.c.id)).scalars())


@pytest.mark.parametrize(("seconds", "text"), [
    (5, "5 s"), (119, "119 s"), (1800, "30 min"), (3597, "1 h"), (5400, "1 h 30 min"),
    (36000, "10 h"), (86398, "1 dia"), (90000, "1 dia 1 h"), (172800, "2 dias"),
])
def test_skipped_time_reads_the_way_people_say_it(app, seconds, text):
    from editor.simulator import human_duration

    with app.test_request_context("/"):
        assert human_duration(seconds) == text
