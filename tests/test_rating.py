"""The rating question (``input: "rating"``, 1–5) and ``csat: true`` (DESIGN §10.1, §10.6, §10.8),
and the text an ``open_conversation`` block sends (engine level: ``engine.core.step``)."""
from __future__ import annotations

import pytest

from blocks.question import parse_rating
from engine.core import Concluded, Start, UserMessage, new_state, step
from schemas import FlowDocumentError, load_document

T0 = 1_800_000_000.0


def rating_flow(csat: bool = True, extra_blocks: list[dict] = ()) -> dict:
    data = {"text": "Como você avalia o atendimento?", "input": "rating", "save_as": "nota"}
    if csat:
        data["csat"] = True
    return {"schema_version": 1, "id": "avaliacao", "name": "Avaliação", "start": "q",
            "blocks": [{"id": "q", "type": "question", "data": data},
                       {"id": "obrigado", "type": "message", "data": {"text": "Obrigado pela nota {{ nota }}!"}},
                       *extra_blocks],
            "edges": [{"from": "q", "port": "answered", "to": "obrigado"}]}


def started(doc: dict):
    state, outbound, _ = step(doc, new_state({"name": "Ana"}), Start(T0, "r-1"))
    return state, outbound


@pytest.mark.parametrize(("answer", "score"), [
    ("5", 5), ("1", 1), (" 3 ", 3), ("⭐⭐⭐", 3), ("⭐", 1), ("⭐️⭐️⭐️⭐️", 4), ("★★", 2),
    ("cinco", 5), ("Cinco!", 5), ("três", 3), ("tres", 3), ("um", 1), ("duas", 2),
    ("nota 4", 4), ("Nota: 4", 4), ("dou 5 estrelas", 5), ("4 de 5", 4), ("4/5", 4),
    ("five", 5), ("four stars", 4), ("my rating is 2", 2), ("5 ⭐", 5),
])
def test_a_rating_answer_is_understood(answer, score):
    assert parse_rating(answer) == score


@pytest.mark.parametrize("answer", [
    "4.5", "4,5", "0", "6", "10", "05", "-1", "⭐⭐⭐⭐⭐⭐", "seis", "six", "", "   ", "ótimo",
    "nota", "3 ou 4", "⭐⭐ 5", "5 estrelas e 4", "1 2", "5 de 10",
])
def test_anything_but_an_integer_from_1_to_5_is_not_a_rating(answer):
    assert parse_rating(answer) is None


def test_a_rating_question_shows_five_buttons_and_saves_an_integer():
    state, outbound = started(rating_flow(csat=False))
    assert outbound[0]["text"] == "Como você avalia o atendimento?"
    assert outbound[0]["buttons"] == ["1", "2", "3", "4", "5"]
    state, outbound, effects = step(rating_flow(csat=False), state, UserMessage(T0 + 5, "⭐⭐⭐⭐"))
    assert state["vars"]["nota"] == 4 and isinstance(state["vars"]["nota"], int)
    assert [o["text"] for o in outbound] == ["Obrigado pela nota 4!"]
    answer = next(e for e in effects if e["type"] == "answer")
    assert answer["value"] == 4 and answer["csat"] is None  # no csat question in this flow


def test_an_invalid_rating_asks_again_on_a_plain_rating_question():
    doc = rating_flow(csat=False)
    state, _ = started(doc)
    state, outbound, _ = step(doc, state, UserMessage(T0 + 5, "6"))
    assert outbound[0]["text"] == "Por favor, responda com uma nota de 1 a 5."
    assert outbound[1]["buttons"] == ["1", "2", "3", "4", "5"]
    assert state["run"]["state"] == "waiting_input" and "nota" not in state["vars"]


def test_a_csat_answer_is_marked_csat_and_other_answers_of_that_flow_are_not():
    doc = rating_flow(extra_blocks=[{"id": "nome", "type": "question",
                                     "data": {"text": "Seu nome?", "input": "text", "save_as": "csat"}}])
    doc["edges"].append({"from": "obrigado", "port": "next", "to": "nome"})
    state, _ = started(doc)
    state, _, effects = step(doc, state, UserMessage(T0 + 5, "cinco"))
    assert [e["csat"] for e in effects if e["type"] == "answer"] == [True]
    state, _, effects = step(doc, state, UserMessage(T0 + 9, "Ana"))
    assert [e["csat"] for e in effects if e["type"] == "answer"] == [False]


def test_csat_never_traps_a_customer_who_writes_something_else():
    doc = rating_flow()
    state, _ = started(doc)
    state, outbound, effects = step(doc, state, UserMessage(T0 + 5, "quero fazer outro pedido"))
    assert outbound == []  # no "responda com uma nota" nagging
    assert state["run"]["state"] == "ended"
    assert not [e for e in effects if e["type"] == "answer"]


def test_csat_true_is_only_allowed_on_a_rating_question():
    doc = rating_flow()
    doc["blocks"][0]["data"]["input"] = "number"
    with pytest.raises(FlowDocumentError):
        load_document(doc)
    doc["blocks"][0]["data"]["input"] = "rating"
    assert load_document(doc)["blocks"][0]["data"]["csat"] is True
    doc["blocks"][0]["data"].update(input="text", csat=False)
    assert load_document(doc)["blocks"][0]["data"]["csat"] is False


def test_open_conversation_text_is_sent_when_the_block_opens_the_conversation():
    doc = {"schema_version": 1, "id": "handoff", "name": "Atendente", "start": "abre",
           "blocks": [{"id": "abre", "type": "open_conversation",
                       "data": {"text": "Um momento, {{ contact.name }}, vou te passar para alguém da nossa equipe."}},
                      {"id": "tchau", "type": "message", "data": {"text": "Até logo!"}}],
           "edges": [{"from": "abre", "port": "next", "to": "tchau"}]}
    load_document(doc)  # the schema accepts it
    state, outbound, effects = step(doc, new_state({"name": "Ana"}), Start(T0, "r-1"))
    assert [o["text"] for o in outbound] == [
        "Um momento, Ana, vou te passar para alguém da nossa equipe."]
    assert [e["type"] for e in effects if e["type"] == "open"] == ["open"]
    assert state["run"]["state"] == "suspended"
    _, outbound, _ = step(doc, state, Concluded(T0 + 60))
    assert [o["text"] for o in outbound] == ["Até logo!"]


def test_open_conversation_without_text_sends_nothing():
    doc = {"schema_version": 1, "id": "handoff", "name": "Atendente", "start": "abre",
           "blocks": [{"id": "abre", "type": "open_conversation", "data": {}}], "edges": []}
    _, outbound, _ = step(doc, new_state({"name": "Ana"}), Start(T0, "r-1"))
    assert outbound == []
