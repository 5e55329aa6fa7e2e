"""CSAT by ``csat: true`` and "CSAT never traps" through the service and the API, and the
funnel leaving out the simulator's runs (DESIGN §10.1, §10.6, §10.8; issue 13)."""
from __future__ import annotations

import html
import itertools

import pytest

from editor.app import get_engine, get_service
from engine.accounts import get_user
from engine.flows import FlowRepository
from engine.service import funnel

DAY = "2026-11-20"  # the api_clock's day
_ids = itertools.count(1)


def flow(flow_id: str, blocks: list[dict], edges: list[tuple[str, str, str]], keyword: str) -> dict:
    return {"schema_version": 1, "id": flow_id, "name": flow_id.title(),
            "triggers": [{"type": "keyword", "match": "exact", "value": keyword}],
            "start": blocks[0]["id"], "blocks": blocks,
            "edges": [{"from": f, "port": p, "to": t} for f, p, t in edges]}


def rating(block_id: str, save_as: str, csat: bool = True) -> dict:
    data = {"text": "Como você avalia o atendimento?", "input": "rating", "save_as": save_as}
    if csat:
        data["csat"] = True
    return {"id": block_id, "type": "question", "data": data}


def say(block_id: str, text: str) -> dict:
    return {"id": block_id, "type": "message", "data": {"text": text}}


@pytest.fixture
def publish(app):
    repo = FlowRepository(get_engine(app))

    def publish_flow(doc: dict) -> None:
        repo.create(doc)
        repo.publish(doc["id"])

    return publish_flow


def send(app, text: str, contact: str = "ana", channel: str = "api") -> dict:
    return get_service(app).handle_inbound(channel, {"external_id": contact, "name": contact.title()},
                                           {"id": f"m{next(_ids)}", "text": text})


def texts(result: dict) -> list[str]:
    return [reply["text"] for reply in result["replies"]]


def csat(api) -> dict:
    return api.get(f"/api/v1/reports/summary?from={DAY}&to={DAY}").get_json()["csat"]


def test_answers_to_a_csat_question_count_whatever_the_variable_is_called(app, api, api_clock, publish):
    # "nota" is not PAPO_CSAT_VARIABLE ("csat"); a text question saving "csat" in the same
    # flow is not a satisfaction score.
    publish(flow("pesquisa", [rating("q", "nota"), say("obrigado", "Obrigado!"),
                              {"id": "nome", "type": "question",
                               "data": {"text": "E seu nome?", "input": "text", "save_as": "csat"}}],
                 [("q", "answered", "obrigado"), ("obrigado", "next", "nome")], "pesquisa"))
    assert texts(send(app, "pesquisa", "ana")) == ["Como você avalia o atendimento?"]
    assert texts(send(app, "⭐⭐⭐⭐", "ana")) == ["Obrigado!", "E seu nome?"]
    send(app, "3", "ana")  # the name question: "3" is a text answer saved as "csat"
    send(app, "pesquisa", "bia")
    send(app, "cinco", "bia")
    assert csat(api) == {"avg": 4.5, "count": 2}


def test_the_csat_variable_counts_only_in_flows_without_a_csat_question(app, api, api_clock, publish):
    publish(flow("antiga", [{"id": "q", "type": "question",
                             "data": {"text": "Nota?", "input": "number", "save_as": "csat"}},
                            say("fim", "Valeu")], [("q", "answered", "fim")], "antiga"))
    publish(flow("nova", [rating("q", "nota"), {"id": "extra", "type": "question",
                                                 "data": {"text": "Outra?", "input": "number", "save_as": "csat"}}],
                 [("q", "answered", "extra")], "nova"))
    send(app, "antiga", "ana")
    send(app, "2", "ana")  # counted: the flow has no csat question, the variable is "csat"
    send(app, "nova", "bia")
    send(app, "4", "bia")  # the csat question: counted
    send(app, "1", "bia")  # saved as "csat" in a flow that has a csat question: not counted
    assert csat(api) == {"avg": 3, "count": 2}


def test_csat_never_traps_a_customer_who_writes_something_else(app, api, api_clock, publish):
    publish(flow("pesquisa", [rating("q", "nota"), say("obrigado", "Obrigado!")],
                 [("q", "answered", "obrigado")], "pesquisa"))
    publish(flow("pizza", [say("cardapio", "Nosso cardápio: calabresa, atum.")], [], "quero pizza"))
    send(app, "pesquisa")
    moved_on = send(app, "quero pizza")
    # no "responda com uma nota" nagging: the message starts the flow it triggers
    assert texts(moved_on) == ["Nosso cardápio: calabresa, atum."]
    conversation = api.get(f"/api/v1/conversations/{moved_on['conversation_id']}").get_json()
    assert conversation["run"]["flow_id"] == "pizza"
    assert csat(api) == {"avg": None, "count": 0}

    send(app, "pesquisa", "bia")
    asked_for_a_person = send(app, "quero falar com um atendente", "bia")
    assert asked_for_a_person["status"] == "open"  # handoff keywords still apply


def test_a_plain_rating_question_asks_again_but_a_csat_one_lets_go(app, api_clock, publish):
    publish(flow("nps", [rating("q", "nota", csat=False), say("ok", "Ok")], [("q", "answered", "ok")], "nps"))
    send(app, "nps")
    assert texts(send(app, "seis")) == ["Por favor, responda com uma nota de 1 a 5.",
                                        "Como você avalia o atendimento?"]


def test_simulator_runs_never_reach_the_funnel_or_the_reports(app, api, api_clock, publish, sample_flow):
    repo = FlowRepository(get_engine(app))
    repo.create(sample_flow("boas-vindas"))
    repo.publish("boas-vindas")
    send(app, "oi", "ana", channel="web")
    before = {row["block_id"]: row["runs"] for row in funnel(get_service(app), "boas-vindas")}
    assert before["saudacao"] == 1

    client = app.test_client()
    with client.session_transaction() as session:
        account = get_user(get_engine(app), "admin")
        session.update(user_id=account["id"], role=account["role"], login="admin")
    headers = {"HX-Request": "true"}
    for text in ("oi", "3"):
        answer = client.post("/flows/boas-vindas/simulator/send", data={"text": text}, headers=headers)
        assert answer.status_code == 200
    concluded = client.post("/flows/boas-vindas/simulator/conclude", headers=headers)
    assert "De 1 a 5, como foi o atendimento?" in concluded.get_data(as_text=True)
    client.post("/flows/boas-vindas/simulator/send", data={"text": "5"}, headers=headers)

    after = {row["block_id"]: row["runs"] for row in funnel(get_service(app), "boas-vindas")}
    assert after == before
    assert csat(api) == {"avg": None, "count": 0}


def test_an_empty_csat_card_says_what_it_counts(app, api_tokens, api_clock):
    client = app.test_client()
    with client.session_transaction() as session:
        account = get_user(get_engine(app), "admin")
        session.update(user_id=account["id"], role=account["role"], login="admin")
    page = client.get(f"/reports?from={DAY}&to={DAY}").get_data(as_text=True)
    assert "perguntas de nota marcadas como CSAT (“Avaliação (CSAT)” na paleta do editor)" in page
    english = client.get(f"/reports?from={DAY}&to={DAY}&lang=en").get_data(as_text=True)
    assert "rating questions marked as CSAT" in english and "“Rating (CSAT)”" in html.unescape(english)
