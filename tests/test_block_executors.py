"""Each block kind's executor on its own: block + context in, one Result out (no I/O).

The engine-level behaviour (ports followed, timers fired, runs resumed) is in
tests/test_core.py; here every kind's own function is held to what it promises.
"""
from __future__ import annotations

import pytest

from blocks import REGISTRY
from blocks.base import Context, Result
from engine.core import evaluate_logic
from engine.templates import render

NOW = 1_800_000_000.0


def context(variables: dict | None = None, tags: list[str] | None = None) -> Context:
    variables = dict(variables or {})
    contact = {"name": "Ana", "external_id": "5511999990000"}
    return Context(now=NOW, vars=variables, contact=contact, tags=list(tags or []),
                   render=lambda text: render(text, variables, contact)[0],
                   evaluate=lambda rule: evaluate_logic(rule, variables, contact), flow_id="f")


def run(kind: str, data: dict, variables: dict | None = None) -> Result:
    return REGISTRY[kind].execute({"id": "b1", "type": kind, "data": data}, context(variables))


def test_message_renders_its_text_and_buttons_and_goes_next():
    result = run("message", {"text": "Olá, {{ contact.name }}!", "buttons": ["Sim", "Não"]})
    assert result.port == "next" and result.wait is None
    assert result.outbound == [{"text": "Olá, Ana!", "buttons": ["Sim", "Não"], "block_id": "b1"}]


def test_question_asks_with_its_options_and_waits_for_input_with_a_timeout():
    data = {"text": "Qual, {{ contact.name }}?", "input": "choice", "save_as": "x", "timeout_s": 60,
            "options": [{"id": "a", "label": "Um"}, {"id": "b", "label": "Dois"}]}
    result = run("question", data)
    assert result.wait == "input" and result.port is None
    assert result.outbound == [{"text": "Qual, Ana?", "buttons": ["Um", "Dois"], "block_id": "b1"}]
    assert result.effects == [{"type": "schedule_timer", "kind": "question_timeout",
                               "due_at": NOW + 60, "block_id": "b1"}]
    assert REGISTRY["question"].ports(data) == ["a", "b", "invalid", "timeout"]


@pytest.mark.parametrize(("data", "answer", "valid", "value", "port"), [
    ({"input": "choice", "options": [{"id": "a", "label": "Ver planos"}]}, "VÊR PLANOS", True, "Ver planos", "a"),
    ({"input": "choice", "options": [{"id": "a", "label": "Ver planos"}]}, "1", True, "Ver planos", "a"),
    ({"input": "choice", "options": [{"id": "a", "label": "Ver planos"}]}, "2", False, None, None),
    ({"input": "number"}, "1.234,5", True, 1234.5, "answered"),
    ({"input": "email"}, "ana@loja.com", True, "ana@loja.com", "answered"),
    ({"input": "email"}, "ana@", False, None, None),
    ({"input": "phone"}, "(11) 99999-0000", True, "11999990000", "answered"),
    ({"input": "date"}, "25/12/2026", True, "2026-12-25", "answered"),
    ({"input": "text", "pattern": r"\d{5}-?\d{3}"}, "abc 01310-100", False, None, None),
])
def test_question_parses_each_kind_of_answer(data, answer, valid, value, port):
    block = {"id": "b1", "type": "question", "data": {"text": "?", "save_as": "x", **data}}
    reply = REGISTRY["question"].parse_reply(block, answer, context())
    assert (reply.valid, reply.value, reply.port) == (valid, value, port)


def test_question_kind_tells_its_default_attempts_and_timer():
    kind = REGISTRY["question"]
    assert kind.default_attempts == 3 and kind.pauses_run
    assert [(t.name, t.port) for t in kind.timers] == [("question_timeout", "timeout")]


def test_condition_takes_the_first_true_rule_else_its_else_port():
    data = {"rules": [{"port": "ouro", "when": {"==": [{"var": "plano"}, "ouro"]}},
                      {"port": "pago", "when": {"in": [{"var": "plano"}, ["ouro", "prata"]]}}]}
    assert run("condition", data, {"plano": "ouro"}).port == "ouro"  # the first true rule
    assert run("condition", data, {"plano": "prata"}).port == "pago"
    assert run("condition", data, {}).port == "else"
    assert REGISTRY["condition"].ports(data) == ["ouro", "pago", "else"]


@pytest.mark.parametrize(("value", "expected"), [
    ("{{ contact.name }} VIP", "Ana VIP"), ({"+": [{"var": "n"}, 1]}, 3), (7, 7)])
def test_set_variable_saves_a_template_a_rule_or_a_literal(value, expected):
    result = run("set_variable", {"name": "saida", "value": value}, {"n": 2})
    assert result.port == "next" and result.set_vars == {"saida": expected}


def test_wait_schedules_its_timer_and_waits():
    result = run("wait", {"seconds": 3600})
    assert result.wait == "timer" and result.port is None
    assert result.effects == [{"type": "schedule_timer", "kind": "wait", "due_at": NOW + 3600,
                               "block_id": "b1"}]
    assert [(t.name, t.port) for t in REGISTRY["wait"].timers] == [("wait", "next")]


def test_http_request_asks_for_a_rendered_call_and_waits_for_it():
    data = {"method": "POST", "url": "https://api.loja.com/c/{{ contact.external_id }}",
            "headers": {"X-Nome": "{{ contact.name }}"}, "body": {"itens": ["{{ n }}"]}, "timeout_s": 99}
    result = run("http_request", data, {"n": 2})
    assert result.wait == "http"
    assert result.effects == [{"type": "http", "block_id": "b1", "method": "POST",
                               "url": "https://api.loja.com/c/5511999990000",
                               "headers": {"X-Nome": "Ana"}, "body": {"itens": ["2"]}, "timeout_s": 30.0}]


def test_http_request_result_hook_picks_the_port_and_saves_the_answer():
    hook = REGISTRY["http_request"].on_http_result
    block = {"id": "b1", "type": "http_request", "data": {"method": "GET", "url": "x", "save_as": "r"}}
    ok = hook(block, True, 200, {"a": 1})
    assert ok.port == "ok" and ok.set_vars == {"r": {"status": 200, "body": {"a": 1}}}
    failed = hook({**block, "data": {"method": "GET", "url": "x"}}, False, None, None)
    assert failed.port == "error" and failed.set_vars == {}


@pytest.mark.parametrize("kind", ["add_tag", "remove_tag"])
def test_tags_are_effects_and_the_run_goes_on(kind):
    result = run(kind, {"tag": "vip"})
    assert result.port == "next" and result.effects == [{"type": kind, "tag": "vip"}]


def test_jump_asks_for_another_flow_and_ends_here():
    result = run("jump", {"flow_id": "vendas", "block_id": "b9"})
    assert result.wait == "jump" and result.port is None
    assert result.effects == [{"type": "jump", "flow_id": "vendas", "block_id": "b9"}]
    assert REGISTRY["jump"].ports({"flow_id": "vendas"}) == []


def test_open_conversation_opens_and_pauses_until_the_conclusion():
    result = run("open_conversation", {"assign_to": "bruno", "note": "VIP"})
    assert result.wait == "suspended"
    assert result.effects == [{"type": "open", "block_id": "b1", "assign_to": "bruno", "note": "VIP"}]
    kind = REGISTRY["open_conversation"]
    assert kind.pauses_run and kind.resume_on_conclude == "next"


def test_conclude_conversation_concludes_and_goes_on():
    result = run("conclude_conversation", {"reason": "resolvido"})
    assert result.port == "next"
    assert result.effects == [{"type": "conclude", "block_id": "b1", "reason": "resolvido"}]


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_kind_offers_a_valid_palette_preset_with_named_ports(kind):
    """What the editor drops on the canvas validates, and each port has a name."""
    from jsonschema import Draft202012Validator

    block_kind = REGISTRY[kind]
    data = block_kind.preset(lambda text, **params: text, "fluxo") if block_kind.preset else {}
    assert list(Draft202012Validator(block_kind.data_schema).iter_errors(data)) == []
    labels = block_kind.port_labels(lambda text, **params: text, data)
    assert [p for p in block_kind.ports(data) if p not in labels and kind != "condition"] == []


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_palette_variant_of_a_kind_is_valid(kind):
    from jsonschema import Draft202012Validator

    block_kind = REGISTRY[kind]
    for variant in block_kind.variants(lambda text, **params: text):
        assert variant["key"] not in REGISTRY and variant["label"]
        assert list(Draft202012Validator(block_kind.data_schema).iter_errors(variant["data"])) == []


@pytest.mark.parametrize(("answer_kind", "start"), [
    ("email", "Por favor, informe um e-mail válido"), ("rating", "Por favor, responda com uma nota"),
    ("choice", "Por favor, escolha uma das opções"), ("text", "Não entendi sua resposta")])
def test_question_kind_says_what_an_invalid_answer_gets_by_default(answer_kind, start):
    assert REGISTRY["question"].invalid_text({"input": answer_kind}).startswith(start)


def _lint_context(connected=(), flows=None):
    from blocks.base import LintContext
    from engine.lint import unknown_operators

    return LintContext(connected=lambda port: port in connected, flows=flows or {},
                       unknown_operators=unknown_operators)


def test_message_kind_warns_about_whatsapp_limits():
    data = {"text": "x" * 4097, "buttons": ["Um", "Dois", "Três", "Uma opção longa demais aqui"]}
    codes = [code for _level, code, _params in REGISTRY["message"].lint(data, _lint_context())]
    assert codes == ["text_too_long", "too_many_buttons", "button_too_long"]
    assert REGISTRY["message"].lint({"text": "Oi"}, _lint_context()) == []


def test_question_kind_checks_its_answers_timeout_and_pattern():
    data = {"text": "?", "input": "text", "save_as": "x", "timeout_s": 60, "pattern": "(["}
    found = REGISTRY["question"].lint(data, _lint_context(connected={"answered"}))
    assert [(level, code, params.get("port")) for level, code, params in found] == [
        ("warning", "invalid_port_unconnected", "invalid"),
        ("warning", "timeout_port_unconnected", "timeout"),
        ("error", "bad_pattern", None)]
    fine = {"text": "?", "input": "text", "save_as": "x", "csat": False}
    assert REGISTRY["question"].lint(fine, _lint_context(connected={"answered", "invalid"})) == []


def test_condition_and_jump_kinds_check_their_rules_and_targets():
    rules = {"rules": [{"port": "sim", "when": {"igual": [1, 1]}}]}
    found = REGISTRY["condition"].lint(rules, _lint_context(connected={"sim"}))
    assert found == [("error", "bad_jsonlogic", {"error": "igual"}),
                     ("warning", "port_unconnected", {"port": "else"})]
    jump = REGISTRY["jump"]
    assert jump.lint({"flow_id": "vendas"}, _lint_context())[0][1] == "unknown_jump_flow"
    assert jump.lint({"flow_id": "vendas", "block_id": "b9"},
                     _lint_context(flows={"vendas": {"b1"}}))[0][1] == "unknown_jump_block"
    assert jump.lint({"flow_id": "vendas"}, _lint_context(flows={"vendas": {"b1"}})) == []
    assert jump.jumps_to({"flow_id": "vendas"}) == "vendas"
