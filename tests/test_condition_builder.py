"""The condition builder: rows ⇄ JSONLogic (DESIGN §10.1), and its form in the editor."""
from __future__ import annotations

import json
import re

from hypothesis import given
from hypothesis import strategies as st
from test_editor_routes import _text, admin, repo, web  # noqa: F401  (fixtures)
from werkzeug.datastructures import MultiDict

from blocks.condition.builder import OPERATORS, UNARY, rows_to_rule, rule_to_rows
from engine.core import evaluate_logic

variables = st.sampled_from(["sabor", "idade", "contact.name", "contact.phone", "contact.tags",
                             "vars.total", "a_b"])
values = st.one_of(st.text(max_size=12), st.integers(-10**6, 10**6),
                   st.floats(allow_nan=False, allow_infinity=False, width=32))


@st.composite
def rows(draw):
    op = draw(st.sampled_from(OPERATORS))
    return {"var": draw(variables), "op": op, "value": None if op in UNARY else draw(values)}


@given(st.sampled_from(["all", "any"]), st.lists(rows(), min_size=1, max_size=5))
def test_builder_rows_survive_the_trip_through_jsonlogic(join, built):
    rule = rows_to_rule(join, built)
    assert json.loads(json.dumps(rule)) == rule  # plain JSON, as stored
    assert rule_to_rows(rule) == (join if len(built) > 1 else "all", built)


def test_the_exact_subset_of_the_design_is_written():
    assert rows_to_rule("all", [{"var": "sabor", "op": "==", "value": "Calabresa"}]) == \
        {"==": [{"var": "sabor"}, "Calabresa"]}
    assert rows_to_rule("any", [{"var": "contact.tags", "op": "in", "value": "vip"},
                                {"var": "idade", "op": ">=", "value": 18},
                                {"var": "email", "op": "filled", "value": None},
                                {"var": "cep", "op": "empty", "value": None}]) == \
        {"or": [{"in": ["vip", {"var": "contact.tags"}]}, {">=": [{"var": "idade"}, 18]},
                {"!!": {"var": "email"}}, {"!": {"var": "cep"}}]}


def test_other_jsonlogic_is_an_advanced_rule():
    for rule in ({"and": [{"==": [{"var": "a"}, 1]}]},            # a join of one
                 {"==": [{"var": ["a", 0]}, 1]},                   # var with a default
                 {"==": [1, {"var": "a"}]},                        # value first
                 {"==": [{"var": "a"}, True]},                     # booleans
                 {"!!": [{"var": "a"}]},                           # unary written as a list
                 {"and": [{"or": [{"==": [{"var": "a"}, 1]}, {"==": [{"var": "b"}, 2]}]},
                          {"==": [{"var": "c"}, 3]}]},             # nested joins
                 {"if": [True, 1, 2]}, True, "texto", None, []):
        assert rule_to_rows(rule) is None, rule


def test_tags_and_phone_are_readable_by_conditions():
    contact = {"name": "Ana", "external_id": "5511999990000"}
    assert evaluate_logic({"in": ["vip", {"var": "contact.tags"}]}, {}, contact, ["vip"]) is True
    assert evaluate_logic({"in": ["vip", {"var": "contact.tags"}]}, {}, contact, []) is False
    assert evaluate_logic({"==": [{"var": "contact.phone"}, "5511999990000"]}, {}, contact) is True
    web_visitor = {"name": "Visitante", "external_id": "w-3f2a"}
    assert evaluate_logic({"!": {"var": "contact.phone"}}, {}, web_visitor) is True


# ---------------------------------------------------------------------- the form

PIZZA = {
    "schema_version": 1, "id": "pizza", "name": "Pizza", "triggers": [{"type": "default"}],
    "start": "b1",
    "blocks": [
        {"id": "b1", "type": "question", "position": {"x": 0, "y": 0},
         "data": {"text": "Qual sabor?", "input": "choice", "save_as": "sabor",
                  "options": [{"id": "o1", "label": "Calabresa"}, {"id": "o2", "label": "Mussarela"}]}},
        {"id": "b2", "type": "condition", "position": {"x": 300, "y": 0},
         "data": {"rules": [{"port": "calabresa", "when": {"==": [{"var": "sabor"}, "Calabresa"]}},
                            {"port": "avancada", "when": {"if": [{"var": "sabor"}, True, False]}}]}},
    ],
    "edges": [{"from": "b1", "port": "o1", "to": "b2"}],
}


def _form_fields(html: str) -> MultiDict:
    """The form's fields as a browser would send them (inputs, selected options, textareas)."""
    fields = MultiDict()
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if name and (not kind or kind.group(1) in ("hidden", "text")):
            value = re.search(r'value="([^"]*)"', tag)
            fields.add(name.group(1), value.group(1) if value else "")
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body) or re.search(r'<option value="([^"]*)"', body)
        fields.add(name, chosen.group(1) if chosen else "")
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        fields.add(name, body.replace("&#34;", '"').replace("&quot;", '"').replace("&amp;", "&"))
    return fields


def test_the_form_shows_rows_and_an_advanced_rule_and_saves_them_unchanged(admin, repo):  # noqa: F811
    repo.create(PIZZA, actor="ana")
    html = _text(admin.get("/flows/pizza/blocks/b2/form"))
    assert "é igual a" in html and "Regra avançada (JSONLogic)" in html
    assert re.search(r'<option value="sabor" selected>sabor</option>', html)
    assert "Etiquetas do contato" in html and "Telefone do contato" in html
    response = admin.post("/flows/pizza/blocks/b2/form", data=_form_fields(html))
    assert response.status_code == 200, _text(response)
    result = json.loads(re.search(r'class="papo-result">(.*?)</script>', _text(response), re.S).group(1))
    assert result["data"] == PIZZA["blocks"][1]["data"]


def test_a_rule_built_from_rows_becomes_jsonlogic(admin, repo):  # noqa: F811
    repo.create(PIZZA, actor="ana")
    form = MultiDict([("_type", "condition"), ("_fields", "rules"), ("_builder", "rules"),
                      ("rules.key", "k"), ("rules.mode", "builder"), ("rules.port", "grande"),
                      ("rules.when", ""), ("cond.k.join", "any"),
                      ("cond.k.var", "sabor"), ("cond.k.op", "=="), ("cond.k.value", "Calabresa"),
                      ("cond.k.type", ""),
                      ("cond.k.var", "idade"), ("cond.k.op", ">"), ("cond.k.value", "17"),
                      ("cond.k.type", "")])
    response = admin.post("/flows/pizza/blocks/b2/form", data=form)
    assert response.status_code == 200
    result = json.loads(re.search(r'class="papo-result">(.*?)</script>', _text(response), re.S).group(1))
    assert result["data"]["rules"] == [{"port": "grande", "when": {"or": [
        {"==": [{"var": "sabor"}, "Calabresa"]}, {">": [{"var": "idade"}, 17]}]}}]
    assert "sabor é igual a Calabresa ou idade é maior que 17" in result["html"]


def test_a_row_without_a_variable_is_refused_with_a_clear_message(admin, repo):  # noqa: F811
    repo.create(PIZZA, actor="ana")
    form = MultiDict([("_type", "condition"), ("_fields", "rules"), ("_builder", "rules"),
                      ("rules.key", "k"), ("rules.mode", "builder"), ("rules.port", "sim"),
                      ("rules.when", ""), ("cond.k.var", ""), ("cond.k.op", "=="),
                      ("cond.k.value", "Calabresa"), ("cond.k.type", "")])
    response = admin.post("/flows/pizza/blocks/b2/form", data=form)
    assert response.status_code == 422
    assert "Escolha a variável de cada condição." in _text(response)
    assert repo.get("pizza")[1] == 1  # nothing stored


def test_adding_a_condition_and_switching_to_advanced_rerender_without_saving(admin, repo):  # noqa: F811
    repo.create(PIZZA, actor="ana")
    html = _text(admin.get("/flows/pizza/blocks/b2/form"))
    fields = _form_fields(html)
    fields.add("_add_row", "r0")
    added = _text(admin.post("/flows/pizza/blocks/b2/form", data=fields))
    assert added.count('name="cond.r0.var"') == 2
    assert "papo-result" not in added
    fields = _form_fields(html)
    fields.add("_switch", "r0")
    switched = _text(admin.post("/flows/pizza/blocks/b2/form", data=fields))
    assert '"Calabresa"' in switched.replace("&#34;", '"') and 'name="cond.r0.var"' not in switched
    fields = _form_fields(html)
    fields.add("_switch", "r1")  # the advanced rule does not fit the builder: it stays
    kept = _text(admin.post("/flows/pizza/blocks/b2/form", data=fields))
    assert "continua como regra avançada" in kept
    assert repo.get("pizza")[1] == 1


def test_a_new_condition_block_names_no_variable_that_does_not_exist(admin, repo):  # noqa: F811
    repo.create(PIZZA, actor="ana")
    boot = re.search(r'id="flow-data">(.*?)</script>', _text(admin.get("/flows/pizza/edit")), re.S)
    preset = json.loads(boot.group(1))["palette"]["condition"]["data"]
    assert preset == {"rules": []}
