"""The editor's Tests panel and "Salvar como teste" through HTTP (Flask test client)."""
from __future__ import annotations

import json
import re
import shutil
from html import unescape

import pytest

from editor import create_app
from editor.app import get_engine
from engine import accounts
from engine.db import create_schema, make_engine
from engine.flows import FlowRepository

PASSWORD = "uma senha bem longa"
HTMX = {"HX-Request": "true"}
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def _seed_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("seed-flowtests") / "papo.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    accounts.create_user(engine, "ana", "admin", password=PASSWORD, name="Ana")
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
    FlowRepository(get_engine(app)).create(sample_flow("boas-vindas"), actor="ana")
    yield app
    get_engine(app).dispose()


def _client(app, login="ana"):
    client = app.test_client()
    assert client.post("/login", data={"login": login, "password": PASSWORD}).status_code == 302
    return client


@pytest.fixture
def client(app):
    return _client(app)


def _text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def _text(response) -> str:
    return _text_of(response.get_data(as_text=True))


def _result_tests(response) -> list[dict]:
    found = re.search(r'<script type="application/json" class="flowtests-result">(.*?)</script>',
                      response.get_data(as_text=True), re.S)
    assert found, "no tests list for the editor"
    return json.loads(found.group(1))["tests"]


def _repo(app) -> FlowRepository:
    return FlowRepository(get_engine(app))


def _simulate(client, *texts):
    for text in texts:
        assert client.post("/flows/boas-vindas/simulator/send", data={"text": text}, headers=HTMX).status_code == 200


def test_the_panel_lists_the_drafts_tests_not_yet_run(client):
    page = _text(client.get("/flows/boas-vindas/tests", headers=HTMX))
    assert "Testes" in page and "Rodar testes" in page
    assert "Menu e status do pedido" in page
    assert "não rodado" in page


def test_run_tests_shows_each_result_and_remembers_it(client, app):
    page = _text(client.post("/flows/boas-vindas/tests/run", headers=HTMX))
    assert "Todos os 3 testes passaram." in page
    assert page.count("passou") >= 3
    doc, revision = _repo(app).get("boas-vindas")
    doc["tests"][0]["steps"].append({"expect": "Qual sabor?"})
    _repo(app).update("boas-vindas", doc, revision, actor="ana")
    page = _text(client.get("/flows/boas-vindas/tests", headers=HTMX))
    assert "Todos os 3 testes passaram." in page
    assert "resultado de antes da última mudança no fluxo" in page
    page = _text(client.post("/flows/boas-vindas/tests/run", headers=HTMX))
    assert "1 teste falhou, 2 passaram." in page
    assert 'passo 12: esperado "Qual sabor?", recebido nenhuma mensagem' in page


def test_save_as_test_turns_the_simulated_conversation_into_a_test(client, app):
    _simulate(client, "oi", "2", "12345")
    html = client.get("/flows/boas-vindas/tests/save", headers=HTMX).get_data(as_text=True)
    assert 'value="Teste 4"' in html
    form = _text_of(html)
    assert "Nome do teste" in form
    assert "Cliente diz 12345" in form
    response = client.post("/flows/boas-vindas/tests/save", data={"name": "Pedido 12345"}, headers=HTMX)
    assert response.status_code == 200
    assert "Teste “Pedido 12345” salvo" in _text(response)
    tests = _result_tests(response)
    assert [t["name"] for t in tests][-1] == "Pedido 12345"
    steps = tests[-1]["steps"]
    assert steps[0] == {"say": "oi"}
    assert {"expect_buttons": ["Ver produtos", "Status do pedido", "Falar com atendente"]} in steps
    assert {"say": "12345"} in steps
    assert tests[-1]["contact"] == {"name": "Ana"}
    # Nothing is stored by the route: the editor saves the list with its revision check.
    assert len(_repo(app).get("boas-vindas")[0]["tests"]) == 3
    doc, revision = _repo(app).get("boas-vindas")
    _repo(app).update("boas-vindas", {**doc, "tests": tests}, revision, actor="ana")
    page = _text(client.post("/flows/boas-vindas/tests/run", headers=HTMX))
    assert "Todos os 4 testes passaram." in page


def test_save_as_test_refuses_an_empty_or_taken_name_and_an_empty_conversation(client):
    nothing = client.post("/flows/boas-vindas/tests/save", data={"name": "Novo"}, headers=HTMX)
    assert nothing.status_code == 422
    assert "Converse com o bot no simulador antes de salvar um teste." in _text(nothing)
    _simulate(client, "oi")
    empty = client.post("/flows/boas-vindas/tests/save", data={"name": "   "}, headers=HTMX)
    assert empty.status_code == 422 and "Dê um nome ao teste." in _text(empty)
    taken = client.post("/flows/boas-vindas/tests/save", data={"name": "Menu e status do pedido"}, headers=HTMX)
    assert taken.status_code == 422
    assert "Já existe um teste chamado “Menu e status do pedido”" in _text(taken)


def test_delete_answers_the_list_without_that_test(client):
    response = client.post("/flows/boas-vindas/tests/delete", data={"name": "Menu e status do pedido"},
                           headers=HTMX)
    assert [t["name"] for t in _result_tests(response)] == [
        "Atendente e avaliação depois de concluir", "Pedir atendente na primeira mensagem"]


def test_test_names_and_steps_are_escaped(client, app):
    doc, revision = _repo(app).get("boas-vindas")
    doc["tests"] = [{"name": XSS, "steps": [{"say": XSS}, {"expect": XSS}]}]
    _repo(app).update("boas-vindas", doc, revision, actor="ana")
    html = client.post("/flows/boas-vindas/tests/run", headers=HTMX).get_data(as_text=True)
    assert XSS not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_publishing_from_the_editor_lists_failing_tests_and_offers_to_publish_anyway(client, app):
    doc, revision = _repo(app).get("boas-vindas")
    doc["tests"][0]["steps"].append({"expect": "Qual sabor?"})
    _repo(app).update("boas-vindas", doc, revision, actor="ana")
    refused = client.post("/flows/boas-vindas/publish", headers=HTMX)
    assert refused.status_code == 422
    page = _text(refused)
    assert "Não foi publicado." in page and "Menu e status do pedido" in page
    assert "Publicar mesmo assim" in page
    assert _repo(app).versions("boas-vindas") == []
    forced = client.post("/flows/boas-vindas/publish", data={"force": "1"}, headers=HTMX)
    assert forced.status_code == 200
    assert [v["version"] for v in _repo(app).versions("boas-vindas")] == [1]


def test_the_panel_speaks_english(client):
    page = _text(client.get("/flows/boas-vindas/tests?lang=en", headers=HTMX))
    assert "Tests" in page and "Run tests" in page and "not run" in page


def test_agents_cannot_use_the_tests_routes(app):
    agent = _client(app, "bruno")
    assert agent.get("/flows/boas-vindas/tests", headers=HTMX).status_code == 403
    assert agent.post("/flows/boas-vindas/tests/run", headers=HTMX).status_code == 403


def test_rename_answers_the_list_with_the_new_name_and_refuses_a_taken_one(client):
    response = client.post("/flows/boas-vindas/tests/rename",
                           data={"name": "Menu e status do pedido", "new_name": "  Menu  principal "}, headers=HTMX)
    assert "Teste “Menu e status do pedido” renomeado para “Menu principal”." in _text(response)
    assert [t["name"] for t in _result_tests(response)][0] == "Menu principal"
    taken = client.post("/flows/boas-vindas/tests/rename",
                        data={"name": "Menu e status do pedido",
                              "new_name": "Pedir atendente na primeira mensagem"}, headers=HTMX)
    assert taken.status_code == 422
    assert "Já existe um teste chamado" in _text(taken)
    assert "flowtests-result" not in taken.get_data(as_text=True)


def test_remove_step_answers_the_test_without_that_step(client, app):
    steps = _repo(app).get("boas-vindas")[0]["tests"][2]["steps"]
    response = client.post("/flows/boas-vindas/tests/remove-step",
                           data={"name": "Pedir atendente na primeira mensagem", "step": "2"}, headers=HTMX)
    assert "Passo 2 removido do teste “Pedir atendente na primeira mensagem”." in _text(response)
    assert _result_tests(response)[2]["steps"] == [steps[0], *steps[2:]]
    gone = client.post("/flows/boas-vindas/tests/remove-step", data={"name": "Nenhum", "step": "1"}, headers=HTMX)
    assert gone.status_code == 422 and "flowtests-result" not in gone.get_data(as_text=True)


def test_edit_steps_as_lines_of_json_checked_like_the_document(client, app):
    form = client.get("/flows/boas-vindas/tests/edit", query_string={"name": "Pedir atendente na primeira mensagem"},
                      headers=HTMX).get_data(as_text=True)
    assert "{&#34;say&#34;: &#34;quero falar com um atendente&#34;}" in form or '{"say": "quero' in unescape(form)
    lines = '{"say": "atendente"}\n\n{"expect_status": "open"}\n'
    saved = client.post("/flows/boas-vindas/tests/edit",
                        data={"name": "Pedir atendente na primeira mensagem", "steps": lines}, headers=HTMX)
    assert "Passos do teste “Pedir atendente na primeira mensagem” salvos." in _text(saved)
    assert _result_tests(saved)[2]["steps"] == [{"say": "atendente"}, {"expect_status": "open"}]
    bad = client.post("/flows/boas-vindas/tests/edit",
                      data={"name": "Pedir atendente na primeira mensagem",
                            "steps": '{"say": "oi"}\n{"sya": "oi"}\nnot json\n{"wait": -1}'}, headers=HTMX)
    assert bad.status_code == 422
    page = _text(bad)
    assert 'Linha 3: escreva como {"say": "oi"}.' in page
    bad = client.post("/flows/boas-vindas/tests/edit",
                      data={"name": "Pedir atendente na primeira mensagem",
                            "steps": '{"say": "oi"}\n\n{"sya": "oi"}'}, headers=HTMX)
    assert 'Linha 3: Passo de teste desconhecido: "sya"' in _text(bad)
    assert "flowtests-result" not in bad.get_data(as_text=True)


def test_the_version_history_says_when_only_the_tests_changed(client, app):
    _repo(app).publish("boas-vindas", actor="ana")
    doc, revision = _repo(app).get("boas-vindas")
    doc["tests"] = doc["tests"][:1]
    _repo(app).update("boas-vindas", doc, revision, actor="ana")
    page = _text(client.get("/flows/boas-vindas/versions", headers=HTMX))
    assert "Configurações alteradas: testes do fluxo" in page


def test_advance_time_in_the_simulator_is_recorded_as_a_wait_that_replays(client, app, sample_flow):
    doc = sample_flow("lembrete")
    doc.pop("tests")
    _repo(app).create(doc, actor="ana")
    assert client.post("/flows/lembrete/simulator/send", data={"text": "lembrete"}, headers=HTMX).status_code == 200
    assert client.post("/flows/lembrete/simulator/advance", headers=HTMX).status_code == 200
    response = client.post("/flows/lembrete/tests/save", data={"name": "Sem resposta"}, headers=HTMX)
    (test,) = _result_tests(response)
    waits = [step["wait"] for step in test["steps"] if "wait" in step]
    assert len(waits) == 1 and 1800 <= waits[0] <= 1810
    assert test["steps"][-2]["expect"].startswith("Como não tive resposta")
    doc, revision = _repo(app).get("lembrete")
    _repo(app).update("lembrete", {**doc, "tests": [test]}, revision, actor="ana")
    assert "O teste passou." in _text(client.post("/flows/lembrete/tests/run", headers=HTMX))


def test_edit_http_mocks_beside_the_steps(client, app):
    name = "Pedir atendente na primeira mensagem"
    mock = {"method": "GET", "url": "https://api.loja.com.br/x", "status": 200, "json": {"ok": True}}
    saved = client.post("/flows/boas-vindas/tests/edit",
                        data={"name": name, "steps": '{"say": "atendente"}', "mocks": json.dumps(mock)},
                        headers=HTMX)
    assert _result_tests(saved)[2] == {"name": name, "steps": [{"say": "atendente"}], "http_mocks": [mock]}
    bad = client.post("/flows/boas-vindas/tests/edit",
                      data={"name": name, "steps": '{"say": "atendente"}',
                            "mocks": '\n{"method": "GET", "url": "https://x", "status": 99}'}, headers=HTMX)
    assert bad.status_code == 422
    page = _text(bad)
    assert "Respostas simuladas: Linha 2: " in page and "100" in page


def test_the_last_results_kept_in_the_session_cookie_stay_small(client, app):
    doc, revision = _repo(app).get("boas-vindas")
    long_text = "x" * 4000
    doc["tests"] = [{"name": f"{i:03d} " + "n" * 96, "steps": [{"say": "oi"}, {"expect": long_text}]}
                    for i in range(100)]
    _repo(app).update("boas-vindas", doc, revision, actor="ana")
    response = client.post("/flows/boas-vindas/tests/run", headers=HTMX)
    assert "100 testes falharam" in _text(response)
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert len(cookie) < 4000
    page = _text(client.get("/flows/boas-vindas/tests", headers=HTMX))
    assert "100 testes falharam, 0 passaram." in page
    assert "Falhou no passo 2; rode os testes de novo para ver o detalhe." in page


def test_use_the_new_answer_replaces_the_failing_expect(client, app):
    doc, revision = _repo(app).get("boas-vindas")
    doc["tests"] = [{"name": "Menu", "steps": [{"say": "oi"}, {"expect": "Olá!"}]}]
    _repo(app).update("boas-vindas", doc, revision, actor="ana")
    ran = client.post("/flows/boas-vindas/tests/run", headers=HTMX).get_data(as_text=True)
    assert "Usar a resposta nova" in ran
    greeting = "Olá, Visitante! 👋 Bem-vindo(a) à Loja da Ana."
    assert f'name="text" value="{greeting}"' in ran
    response = client.post("/flows/boas-vindas/tests/accept",
                           data={"name": "Menu", "step": "2", "text": greeting}, headers=HTMX)
    assert _result_tests(response)[0]["steps"] == [{"say": "oi"}, {"expect": greeting}]
    said = client.post("/flows/boas-vindas/tests/accept",
                       data={"name": "Menu", "step": "1", "text": "x"}, headers=HTMX)
    assert said.status_code == 422  # step 1 is a "say": nothing to accept
