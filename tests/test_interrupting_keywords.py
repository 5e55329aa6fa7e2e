"""Interrupting keyword triggers (DESIGN §10.3): ``"interrupts": true`` also matches while
a run waits at a question — after a choice answer (rule 0), before the answer is parsed —
ends that run with an activity entry and starts its flow. Through the REST API, both
databases; and the editor's trigger form offers it."""
from __future__ import annotations

import itertools

import pytest

_ids = itertools.count(1)

CADASTRO = {
    "schema_version": 1, "id": "cadastro", "name": "Cadastro",
    "triggers": [{"type": "keyword", "match": "exact", "value": "cadastro"}],
    "start": "nome",
    "blocks": [
        {"id": "nome", "type": "question",
         "data": {"text": "Qual é o seu nome?", "input": "text", "save_as": "nome"}},
        {"id": "idade", "type": "question",
         "data": {"text": "Quantos anos você tem?", "input": "number", "save_as": "idade",
                  "invalid_text": "Digite só o número, por favor."}},
        {"id": "cor", "type": "question",
         "data": {"text": "Qual cor?", "input": "choice", "save_as": "cor",
                  "options": [{"id": "o1", "label": "Azul"}, {"id": "o2", "label": "Menu"}]}},
        {"id": "fim", "type": "message", "data": {"text": "Obrigado, {{ nome }}!"}},
    ],
    "edges": [{"from": "nome", "port": "answered", "to": "idade"},
              {"from": "idade", "port": "answered", "to": "cor"},
              {"from": "cor", "port": "o1", "to": "fim"},
              {"from": "cor", "port": "o2", "to": "fim"}],
}
MENU = {
    "schema_version": 1, "id": "menu", "name": "Menu",
    "triggers": [{"type": "keyword", "match": "exact", "value": "menu", "interrupts": True}],
    "start": "m", "blocks": [{"id": "m", "type": "message", "data": {"text": "Menu principal: 1, 2 ou 3."}}],
    "edges": [],
}
AJUDA = {
    "schema_version": 1, "id": "ajuda", "name": "Ajuda",
    "triggers": [{"type": "keyword", "match": "exact", "value": "ajuda"}],
    "start": "a", "blocks": [{"id": "a", "type": "message", "data": {"text": "Como posso ajudar?"}}],
    "edges": [],
}


@pytest.fixture
def flows(api):
    for doc in (CADASTRO, MENU, AJUDA):
        assert api.post("/api/v1/flows", json=doc).status_code == 201
        assert api.post(f"/api/v1/flows/{doc['id']}/publish").status_code == 200


def say(api, text: str) -> dict:
    body = {"channel": "api", "contact": {"external_id": "c1", "name": "Rita"},
            "message": {"id": f"ik-{next(_ids)}", "text": text}}
    response = api.post("/api/v1/inbound", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def texts(result: dict) -> list[str]:
    return [r["text"] for r in result["replies"]]


def conversation(api, result: dict) -> dict:
    return api.get(f"/api/v1/conversations/{result['conversation_id']}").get_json()


def test_an_interrupting_keyword_at_a_question_ends_the_run_and_starts_its_flow(api, flows):
    assert texts(say(api, "cadastro")) == ["Qual é o seu nome?"]
    result = say(api, "MENU")  # case-insensitive, as every keyword
    assert texts(result) == ["Menu principal: 1, 2 ou 3."]
    conv = conversation(api, result)
    assert conv["run"]["flow_id"] == "menu"
    assert "nome" not in conv["variables"]  # "menu" was not taken as the name
    entry = conv["activity"][-1]
    assert (entry["actor"], entry["action"], entry["from"], entry["to"]) == (
        "customer", "run_interrupted", "concluded", "concluded")
    assert conv["status"] == "concluded"


def test_a_keyword_that_does_not_interrupt_is_an_answer_at_a_question(api, flows):
    say(api, "cadastro")
    result = say(api, "ajuda")
    assert texts(result) == ["Quantos anos você tem?"]  # "ajuda" became the name
    conv = conversation(api, result)
    assert conv["variables"]["nome"] == "ajuda"
    assert conv["run"]["flow_id"] == "cadastro"
    assert all(a["action"] != "run_interrupted" for a in conv["activity"])
    # an invalid answer to a number question: still not a trigger, the question asks again
    assert texts(say(api, "ajuda")) == ["Digite só o número, por favor.", "Quantos anos você tem?"]


def test_outside_a_question_both_kinds_of_keyword_start_their_flow(api, flows):
    assert texts(say(api, "ajuda")) == ["Como posso ajudar?"]
    assert texts(say(api, "menu")) == ["Menu principal: 1, 2 ou 3."]
    conv = conversation(api, say(api, "oi"))
    assert all(a["action"] != "run_interrupted" for a in conv["activity"])


def test_a_choice_option_is_taken_before_an_interrupting_keyword(api, flows):
    say(api, "cadastro")
    say(api, "Rita")
    assert texts(say(api, "30")) == ["Qual cor?"]
    result = say(api, "menu")  # rule 0: "Menu" is one of the question's options
    assert texts(result) == ["Obrigado, Rita!"]
    assert conversation(api, result)["variables"]["cor"] == "Menu"


def test_the_question_timeout_of_an_interrupted_run_is_cancelled(api, flows, api_clock):
    timed = {**CADASTRO, "id": "cadastro-tempo",
             "triggers": [{"type": "keyword", "match": "exact", "value": "tempo"}],
             "blocks": [{**CADASTRO["blocks"][0], "data": {**CADASTRO["blocks"][0]["data"], "timeout_s": 60}},
                        *CADASTRO["blocks"][1:]]}
    assert api.post("/api/v1/flows", json=timed).status_code == 201
    assert api.post("/api/v1/flows/cadastro-tempo/publish").status_code == 200
    say(api, "tempo")
    result = say(api, "menu")
    assert conversation(api, result)["timers"] == []


def test_the_flow_settings_form_offers_interrupts(api, app):
    from test_editor_routes import _result, _text
    from werkzeug.datastructures import MultiDict

    assert api.post("/api/v1/flows", json=AJUDA).status_code == 201
    client = app.test_client()
    assert client.post("/login", data={"login": "admin", "password": "senha-de-teste"}).status_code == 302
    page = client.get("/flows/ajuda/settings")
    assert page.status_code == 200
    assert "funciona mesmo no meio de uma pergunta" in _text(page)
    form = MultiDict([("name", "Ajuda"), ("description", ""), ("priority", "0"),
                      ("triggers.type", "keyword"), ("triggers.match", "exact"),
                      ("triggers.value", "ajuda"), ("triggers.interrupts", ""),
                      ("triggers.type", "keyword"), ("triggers.match", "exact"),
                      ("triggers.value", "sair"), ("triggers.interrupts", "1")])
    response = client.post("/flows/ajuda/settings", data=form)
    assert response.status_code == 200
    assert _result(_text(response))["settings"]["triggers"] == [
        {"type": "keyword", "match": "exact", "value": "ajuda"},
        {"type": "keyword", "match": "exact", "value": "sair", "interrupts": True}]


def test_interrupts_must_be_true_or_false(api):
    bad = {**MENU, "triggers": [{**MENU["triggers"][0], "interrupts": "sim"}]}
    response = api.post("/api/v1/flows", json=bad)
    assert response.status_code == 422
    assert any("triggers" in d["path"] for d in response.get_json()["error"]["details"])


def test_the_simulator_honours_the_drafts_own_interrupting_keyword():
    """The editor's simulator (and ``papo chat``) run the draft: its "menu" restarts it."""
    from engine.simulator import Simulation

    draft = {**CADASTRO, "triggers": [{"type": "keyword", "match": "exact", "value": "menu",
                                       "interrupts": True}]}
    sim = Simulation(draft, start_at=1_795_168_800.0)
    assert [m["text"] for m in sim.send("oi")] == ["Qual é o seu nome?"]
    assert [m["text"] for m in sim.send("Rita")] == ["Quantos anos você tem?"]
    assert [m["text"] for m in sim.send("menu")] == ["Qual é o seu nome?"]  # started again
    assert "run_interrupted" in [a["action"] for a in sim.conversation()["activity"]]
