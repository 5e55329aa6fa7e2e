"""Import errors in plain language (issue 13): the block's title and the field's label, no
``$``-paths or parser English in messages; ``details[].path`` stays machine-readable."""
from __future__ import annotations

import copy
import json
import re

import pytest

from schemas import FlowDocumentError, load_document

FLOWS = "/api/v1/flows"


@pytest.fixture
def pizza() -> dict:
    return {"schema_version": 1, "id": "pedido-de-pizza", "name": "Pedido de pizza",
            "triggers": [{"type": "keyword", "match": "exact", "value": "pizza"}], "start": "b1",
            "blocks": [{"id": "b1", "type": "question",
                        "data": {"text": "Qual sabor?", "input": "choice", "save_as": "sabor",
                                 "options": [{"id": "o1", "label": "Calabresa"}]}},
                       {"id": "b2", "type": "condition", "data": {"rules": []}}],
            "edges": [{"from": "b1", "port": "o1", "to": "b2"}]}


def problems(doc, lang=None) -> list[dict]:
    raw = doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False, indent=2)
    with pytest.raises(FlowDocumentError) as caught:
        load_document(raw, lang)
    return caught.value.problems


def plain(message: str) -> bool:
    """No JSON paths, no Python or validator English."""
    return not re.search(r"\$[.\[]|Expecting|Unterminated|is not of type|is a required property", message)


def test_a_misspelt_field_names_the_block_by_title_and_suggests_the_field(pizza):
    pizza["blocks"][0]["data"]["txt"] = pizza["blocks"][0]["data"].pop("text")
    [problem] = problems(pizza)
    assert problem["message"] == 'Bloco "Pergunta" (b1): o campo "txt" não existe — quis dizer "text"?'
    pizza["blocks"][0]["data"]["text"] = "Qual sabor?"
    [problem] = problems(pizza)
    assert problem["message"] == 'Bloco "Qual sabor?": o campo "txt" não existe — quis dizer "text"?'
    assert problem["path"] == "$.blocks[0].data" and problem["block_id"] == "b1"
    [english] = problems(pizza, "en")
    assert english["message"] == 'Block "Qual sabor?": there is no field "txt" — did you mean "text"?'


def test_a_wrong_value_uses_the_fields_label_in_portuguese_and_its_key(pizza):
    pizza["blocks"][0]["data"]["input"] = "escolha"
    [problem] = problems(pizza)
    assert problem["message"].startswith('Bloco "Qual sabor?": "Tipo de resposta" (input) não aceita "escolha"')
    assert plain(problem["message"]) and problem["path"] == "$.blocks[0].data.input"


def test_a_block_without_text_is_named_by_its_kind_and_id(pizza):
    pizza["blocks"][1]["data"]["rules"] = [{"port": "sim"}]
    [problem] = problems(pizza)
    assert problem["message"] == ('Bloco "Condição" (b2): falta o campo obrigatório '
                                  '"Quando (JSONLogic)" (when)')


def test_an_unclosed_quote_is_told_with_its_line(pizza):
    text = json.dumps(pizza, ensure_ascii=False, indent=2).replace('"Qual sabor?"', '"Qual sabor?', 1)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if '"Qual sabor?' in row)
    [problem] = problems(text)
    assert problem["message"] == f"O arquivo não é JSON válido: falta fechar aspas na linha {line}."
    assert problem["path"] == "$"
    [english] = problems(text, "en")
    assert english["message"] == f"The file is not valid JSON: a quote is not closed on line {line}."


@pytest.mark.parametrize(("text", "words"), [
    ('{"a": 1,}', "sobrou uma vírgula"),
    ('{"a": 1 "b": 2}', "falta uma vírgula"),
    ('{"a" 1}', "falta dois-pontos"),
    ("", "o arquivo está vazio"),
    ('{"a": NaN}', "NaN não é um valor JSON"),
    ('{"a": 1} x', "mais texto depois do fim"),
])
def test_json_mistakes_are_explained_in_portuguese(text, words):
    [problem] = problems(text)
    assert problem["message"].startswith("O arquivo não é JSON válido: ")
    assert words in problem["message"] and plain(problem["message"])


def test_wrong_types_and_unknown_block_kinds_read_plainly(pizza):
    bad = copy.deepcopy(pizza)
    bad["blocks"][0]["data"]["max_attempts"] = "3"
    bad["blocks"].append({"id": "b3", "type": "mensagem", "data": {"text": "Oi"}})
    bad["triggers"][0]["match"] = "igual"
    messages = [p["message"] for p in problems(bad)]
    assert 'Bloco "Qual sabor?": "Tentativas" (max_attempts) precisa ser um número inteiro' in messages
    assert any(m.startswith('Bloco "Oi": o tipo de bloco "mensagem" não existe (tipos: message') for m in messages)
    assert any(m.startswith('Gatilho nº 1: "Comparação" (match) não aceita "igual"') for m in messages)
    assert all(plain(m) for m in messages)


def test_csat_on_a_question_that_is_not_a_rating_is_explained(pizza):
    pizza["blocks"][0]["data"]["csat"] = True
    [problem] = problems(pizza)
    assert problem["message"] == ('Bloco "Qual sabor?": só uma pergunta do tipo "Nota de 1 a 5" (rating) '
                                  'pode contar como CSAT ("csat": true)')


def test_the_api_keeps_paths_in_details_and_words_in_messages(api, pizza):
    pizza["blocks"][0]["data"]["txt"] = "oi"
    response = api.post(FLOWS, json=pizza)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"] == [{"path": "$.blocks[0].data", "block_id": "b1",
                                 "message": 'Bloco "Qual sabor?": o campo "txt" não existe — quis dizer "text"?'}]
    assert error["message"] == error["details"][0]["message"]
    english = api.post(f"{FLOWS}?lang=en", json=pizza).get_json()["error"]
    assert english["details"][0]["message"] == 'Block "Qual sabor?": there is no field "txt" — did you mean "text"?'
    assert api.get(FLOWS).get_json() == []
