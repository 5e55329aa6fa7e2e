"""The pure engine, one behaviour per test: ``engine.core.step(flow, state, event)``."""
from __future__ import annotations

import copy
import json
import time

import pytest

from engine.core import (
    BLOCK_BUDGET,
    Concluded,
    HttpResult,
    Opened,
    Start,
    Timer,
    UserMessage,
    new_state,
    step,
)

T0 = 1_800_000_000.0  # event time, epoch seconds: the engine never reads the clock


def block(block_id: str, kind: str, /, **data) -> dict:
    return {"id": block_id, "type": kind, "data": data}


def flow(blocks: list[dict], edges: list[tuple[str, str, str]] = (), start: str | None = None,
         flow_id: str = "teste") -> dict:
    return {"schema_version": 1, "id": flow_id, "name": "Teste", "start": start or blocks[0]["id"],
            "blocks": blocks, "edges": [{"from": f, "port": p, "to": t} for f, p, t in edges]}


def choice(block_id: str = "q", **extra) -> dict:
    return block(block_id, "question", text="Como posso ajudar?", input="choice", save_as="escolha",
                 options=[{"id": "o1", "label": "Ver planos"}, {"id": "o2", "label": "Falar com atendente"}],
                 **extra)


def ask(input_kind: str, block_id: str = "q", **extra) -> dict:
    return block(block_id, "question", text="Responda:", input=input_kind, save_as="resposta", **extra)


def say(block_id: str, text: str, **extra) -> dict:
    return block(block_id, "message", text=text, **extra)


class Run:
    """Feeds events to one conversation's state, keeping the latest state."""

    def __init__(self, doc: dict, state: dict | None = None, contact: dict | None = None):
        self.doc = doc
        self.state = state or new_state(contact or {"name": "Ana", "external_id": "5511999990000"})

    def send(self, event) -> tuple[list[dict], list[dict]]:
        self.state, outbound, effects = step(self.doc, self.state, event)
        return outbound, effects

    def start(self, at: float = T0, block_id: str | None = None):
        return self.send(Start(at=at, run_id="r-1", block_id=block_id))

    def answer(self, text: str, at: float = T0 + 10):
        return self.send(UserMessage(at=at, text=text))

    @property
    def run(self) -> dict:
        return self.state["run"]

    @property
    def token(self) -> int:
        return self.run["token"]


def texts(outbound: list[dict]) -> list[str]:
    return [m["text"] for m in outbound]


def of_type(effects: list[dict], kind: str) -> list[dict]:
    return [e for e in effects if e["type"] == kind]


# -- messages and questions -------------------------------------------------------------------


def test_message_then_question_sends_both_and_waits_for_input():
    run = Run(flow([say("m", "Olá, {{ contact.name }}!"), choice()], [("m", "next", "q")]))
    outbound, effects = run.start()
    assert outbound == [
        {"text": "Olá, Ana!", "buttons": [], "block_id": "m"},
        {"text": "Como posso ajudar?", "buttons": ["Ver planos", "Falar com atendente"], "block_id": "q"},
    ]
    assert run.run["state"] == "waiting_input"
    assert run.run["block_id"] == "q"
    assert of_type(effects, "visit") == [{"type": "visit", "run_id": "r-1", "flow_id": "teste",
                                          "block_ids": ["m", "q"]}]


def test_message_buttons_are_sent_with_the_text():
    run = Run(flow([say("m", "Escolha", buttons=["Sim", "Não"])]))
    outbound, _ = run.start()
    assert outbound == [{"text": "Escolha", "buttons": ["Sim", "Não"], "block_id": "m"}]
    assert run.run["state"] == "ended"


@pytest.mark.parametrize("reply", ["1", "Ver planos", "ver planos", "VER PLANOS", "Vêr planos", "  ver   planos "])
def test_choice_matches_option_by_number_or_label_ignoring_case_and_accents(reply):
    run = Run(flow([choice(), say("planos", "Planos: A e B"), say("humano", "Chamando")],
                   [("q", "o1", "planos"), ("q", "o2", "humano")]))
    run.start()
    outbound, effects = run.answer(reply)
    assert texts(outbound) == ["Planos: A e B"]
    assert run.state["vars"]["escolha"] == "Ver planos"  # a choice saves the option's label
    assert of_type(effects, "answer") == [{"type": "answer", "name": "escolha", "value": "Ver planos",
                                           "csat": None}]


def test_choice_second_option_by_number():
    run = Run(flow([choice(), say("planos", "Planos"), say("humano", "Chamando")],
                   [("q", "o1", "planos"), ("q", "o2", "humano")]))
    run.start()
    outbound, _ = run.answer("2")
    assert texts(outbound) == ["Chamando"]
    assert run.state["vars"]["escolha"] == "Falar com atendente"


@pytest.mark.parametrize(("input_kind", "reply", "saved"), [
    ("text", "Maria da Silva", "Maria da Silva"),
    ("number", "42", 42),
    ("number", "12,5", 12.5),
    ("number", "12.5", 12.5),
    ("number", "-3", -3),
    ("number", "1.234,56", 1234.56),
    ("email", "ana@exemplo.com.br", "ana@exemplo.com.br"),
    ("phone", "(11) 98765-4321", "11987654321"),
    ("phone", "+55 11 98765-4321", "+5511987654321"),
    ("date", "25/12/2026", "2026-12-25"),
    ("date", "5/1/2026", "2026-01-05"),
    ("date", "2026-12-25", "2026-12-25"),
])
def test_valid_answer_is_saved_and_follows_answered(input_kind, reply, saved):
    run = Run(flow([ask(input_kind), say("ok", "Anotado: {{ resposta }}")], [("q", "answered", "ok")]))
    run.start()
    outbound, _ = run.answer(reply)
    assert run.state["vars"]["resposta"] == saved
    assert texts(outbound) == [f"Anotado: {saved}"]
    assert run.run["state"] == "ended"


@pytest.mark.parametrize(("input_kind", "reply"), [
    ("text", "   "),
    ("number", "doze"),
    ("number", "12abc"),
    ("email", "ana@"),
    ("email", "ana exemplo.com"),
    ("phone", "123"),
    ("phone", "onze nove"),
    ("date", "31/02/2026"),
    ("date", "amanhã"),
    ("date", "12/2026"),
])
def test_invalid_answer_is_not_saved_and_the_question_waits_again(input_kind, reply):
    run = Run(flow([ask(input_kind), say("ok", "Anotado")], [("q", "answered", "ok")]))
    run.start()
    outbound, _ = run.answer(reply)
    assert "resposta" not in run.state["vars"]
    assert "Anotado" not in texts(outbound)
    assert run.run["state"] == "waiting_input"
    assert run.run["attempts"] == 1


def test_a_choice_answer_of_thousands_of_digits_is_invalid_not_a_crash():
    run = Run(flow([choice()]))
    run.start()
    outbound, _ = run.answer("1" * 5000)  # int() refuses strings over 4,300 digits
    assert run.run["state"] == "waiting_input" and run.run["attempts"] == 1
    assert outbound[-1]["text"] == "Como posso ajudar?"


@pytest.mark.parametrize("reply", ["9" * 400, "-" + "9" * 400, "9" * 5000])
def test_a_number_too_large_for_a_float_is_invalid_and_the_state_stays_json(reply):
    run = Run(flow([ask("number")]))
    run.start()
    run.answer(reply)
    json.dumps(run.state, allow_nan=False)  # the state is stored as JSON (PostgreSQL refuses Infinity)
    assert "resposta" not in run.state["vars"]


@pytest.mark.parametrize(("reply", "valid"), [("ABC-1234", True), ("abc-1234", False), ("ABC1234", False)])
def test_pattern_restricts_valid_answers(reply, valid):
    run = Run(flow([ask("text", pattern=r"[A-Z]{3}-\d{4}"), say("ok", "Placa {{ resposta }}")],
                   [("q", "answered", "ok")]))
    run.start()
    outbound, _ = run.answer(reply)
    assert (texts(outbound) == [f"Placa {reply}"]) is valid
    assert ("resposta" in run.state["vars"]) is valid


def test_pattern_applies_to_numbers_too():
    run = Run(flow([ask("number", pattern="[1-5]"), say("ok", "Nota {{ resposta }}")], [("q", "answered", "ok")]))
    run.start()
    assert run.answer("6")[0][-1]["text"] == "Responda:"
    assert texts(run.answer("5")[0]) == ["Nota 5"]


def test_invalid_answer_sends_invalid_text_then_the_question_again_with_buttons():
    run = Run(flow([choice(invalid_text="Não entendi, {{ contact.name }}.")]))
    run.start()
    outbound, _ = run.answer("talvez")
    assert outbound == [
        {"text": "Não entendi, Ana.", "buttons": [], "block_id": "q"},
        {"text": "Como posso ajudar?", "buttons": ["Ver planos", "Falar com atendente"], "block_id": "q"},
    ]


def test_invalid_answer_without_invalid_text_sends_a_default_hint():
    run = Run(flow([ask("email")]))
    run.start()
    outbound, _ = run.answer("não tenho")
    assert len(outbound) == 2
    assert "e-mail" in outbound[0]["text"]
    assert outbound[1]["text"] == "Responda:"


def test_after_three_invalid_answers_the_invalid_port_is_taken():
    run = Run(flow([ask("number"), say("desisto", "Vamos chamar alguém.")], [("q", "invalid", "desisto")]))
    run.start()
    run.answer("um")
    run.answer("dois")
    assert run.run["state"] == "waiting_input"
    outbound, _ = run.answer("três")
    assert texts(outbound) == ["Vamos chamar alguém."]
    assert run.run["state"] == "ended"
    assert "resposta" not in run.state["vars"]


def test_max_attempts_changes_how_many_invalid_answers_are_allowed():
    run = Run(flow([ask("number", max_attempts=1), say("desisto", "Tudo bem.")], [("q", "invalid", "desisto")]))
    run.start()
    assert texts(run.answer("um")[0]) == ["Tudo bem."]


def test_a_valid_answer_resets_the_attempts():
    run = Run(flow([ask("number", block_id="q1"), ask("number", block_id="q2"), say("fim", "fim")],
                   [("q1", "answered", "q2"), ("q2", "answered", "fim"), ("q2", "invalid", "fim")]))
    run.start()
    run.answer("x")
    run.answer("x")
    run.answer("1")
    assert run.run["block_id"] == "q2" and run.run["attempts"] == 0
    run.answer("x")
    assert run.run["state"] == "waiting_input"


def test_message_while_no_question_waits_is_a_no_op():
    run = Run(flow([say("m", "Oi"), block("w", "wait", seconds=60)], [("m", "next", "w")]))
    run.start()
    before = copy.deepcopy(run.state)
    assert run.answer("olá") == ([], [])
    assert run.state == before


# -- timers -----------------------------------------------------------------------------------


def test_question_with_timeout_schedules_a_question_timeout_timer():
    run = Run(flow([ask("text", timeout_s=300)]))
    _, effects = run.start(at=T0)
    assert of_type(effects, "schedule_timer") == [
        {"type": "schedule_timer", "kind": "question_timeout", "due_at": T0 + 300, "block_id": "q",
         "token": run.token}]


def test_question_timeout_takes_the_timeout_port():
    run = Run(flow([ask("text", timeout_s=300), say("tarde", "Ainda está aí?")], [("q", "timeout", "tarde")]))
    _, effects = run.start()
    token = of_type(effects, "schedule_timer")[0]["token"]
    outbound, _ = run.send(Timer(at=T0 + 300, kind="question_timeout", token=token))
    assert texts(outbound) == ["Ainda está aí?"]
    assert run.run["state"] == "ended"


def test_timer_with_a_stale_token_is_a_no_op():
    run = Run(flow([ask("text", timeout_s=300), say("tarde", "Ainda está aí?")], [("q", "timeout", "tarde")]))
    run.start()
    before = copy.deepcopy(run.state)
    for stale in (run.token - 1, run.token + 1):
        assert run.send(Timer(at=T0 + 300, kind="question_timeout", token=stale)) == ([], [])
    assert run.state == before


def test_answer_before_the_timeout_makes_the_timeout_a_no_op():
    run = Run(flow([ask("text", timeout_s=300, block_id="q1"), ask("text", block_id="q2", timeout_s=300),
                    say("tarde", "Ainda está aí?")],
                   [("q1", "answered", "q2"), ("q1", "timeout", "tarde"), ("q2", "timeout", "tarde")]))
    _, effects = run.start()
    first_timeout = of_type(effects, "schedule_timer")[0]["token"]
    run.answer("Maria")
    before = copy.deepcopy(run.state)
    assert run.send(Timer(at=T0 + 300, kind="question_timeout", token=first_timeout)) == ([], [])
    assert run.state == before
    assert run.run["block_id"] == "q2"


def test_timeout_of_a_finished_run_is_a_no_op():
    run = Run(flow([ask("text", timeout_s=300)]))
    _, effects = run.start()
    token = of_type(effects, "schedule_timer")[0]["token"]
    run.answer("Maria")
    assert run.run["state"] == "ended"
    assert run.send(Timer(at=T0 + 300, kind="question_timeout", token=token)) == ([], [])


def test_wait_schedules_a_timer_due_after_its_seconds_and_continues_on_timer():
    run = Run(flow([say("a", "Um momento"), block("w", "wait", seconds=3600), say("b", "Voltei")],
                   [("a", "next", "w"), ("w", "next", "b")]))
    outbound, effects = run.start(at=T0)
    assert texts(outbound) == ["Um momento"]
    assert run.run["state"] == "waiting_timer"
    timers = of_type(effects, "schedule_timer")
    assert timers == [{"type": "schedule_timer", "kind": "wait", "due_at": T0 + 3600, "block_id": "w",
                       "token": run.token}]
    outbound, _ = run.send(Timer(at=T0 + 3600, kind="wait", token=timers[0]["token"]))
    assert texts(outbound) == ["Voltei"]
    assert run.run["state"] == "ended"


def test_wait_timer_with_a_stale_token_is_a_no_op():
    run = Run(flow([block("w", "wait", seconds=60), say("b", "Voltei")], [("w", "next", "b")]))
    run.start()
    assert run.send(Timer(at=T0 + 60, kind="wait", token=run.token - 1)) == ([], [])
    assert run.run["state"] == "waiting_timer"


def test_a_new_start_makes_the_previous_runs_timers_no_ops():
    doc = flow([block("w", "wait", seconds=60), say("b", "Voltei")], [("w", "next", "b")])
    run = Run(doc)
    _, effects = run.start()
    old = of_type(effects, "schedule_timer")[0]["token"]
    run.send(Start(at=T0 + 1, run_id="r-2"))
    assert run.send(Timer(at=T0 + 60, kind="wait", token=old)) == ([], [])
    assert run.run["id"] == "r-2" and run.run["state"] == "waiting_timer"


# -- conditions and variables ---------------------------------------------------------------


CONDITION_FLOW = flow(
    [block("c", "condition", rules=[
        {"port": "idoso", "when": {">=": [{"var": "idade"}, 60]}},
        {"port": "adulto", "when": {">=": [{"var": "vars.idade"}, 18]}},
        {"port": "ana", "when": {"==": [{"var": "contact.name"}, "Ana"]}},
    ]),
     say("idoso", "idoso"), say("adulto", "adulto"), say("ana", "ana"), say("outro", "outro")],
    [("c", "idoso", "idoso"), ("c", "adulto", "adulto"), ("c", "ana", "ana"), ("c", "else", "outro")])


@pytest.mark.parametrize(("idade", "name", "port"), [
    (70, "Ana", "idoso"),     # the first true rule wins, though the next two are true too
    (30, "Ana", "adulto"),    # vars.idade is the same variable as idade
    (10, "Ana", "ana"),       # contact.name
    (10, "Bia", "outro"),     # no rule true: else
])
def test_condition_rules_are_evaluated_in_order_with_else_last(idade, name, port):
    state = new_state({"name": name})
    state["vars"]["idade"] = idade
    run = Run(CONDITION_FLOW, state)
    outbound, _ = run.start()
    assert texts(outbound) == [port]


def test_condition_with_a_bare_string_rule_treats_it_as_a_truthy_literal():
    # JSONLogic: a non-empty string is a literal and truthy (official suite: "apple" → "apple").
    run = Run(flow([block("c", "condition", rules=[{"port": "sim", "when": "sim"}]),
                    say("sim", "sim"), say("nao", "não")],
                   [("c", "sim", "sim"), ("c", "else", "nao")]))
    outbound, effects = run.start()
    assert texts(outbound) == ["sim"]
    assert of_type(effects, "log") == []


def test_condition_with_a_broken_rule_logs_an_error_and_takes_else():
    run = Run(flow([block("c", "condition", rules=[{"port": "a", "when": {"no_such_op": [1]}}]),
                    say("a", "a"), say("b", "else")],
                   [("c", "a", "a"), ("c", "else", "b")]))
    outbound, effects = run.start()
    assert texts(outbound) == ["else"]
    assert [e["level"] for e in of_type(effects, "log")] == ["error"]


def test_set_variable_with_a_template():
    run = Run(flow([block("s", "set_variable", name="saudacao", value="Olá, {{ contact.name }}")]))
    run.start()
    assert run.state["vars"]["saudacao"] == "Olá, Ana"


def test_set_variable_with_jsonlogic():
    state = new_state({"name": "Ana"})
    state["vars"]["idade"] = 30
    run = Run(flow([block("s", "set_variable", name="dobro", value={"*": [{"var": "idade"}, 2]})]), state)
    run.start()
    assert run.state["vars"]["dobro"] == 60


@pytest.mark.parametrize("literal", [42, 3.5, True, None, ["a", "b"]])
def test_set_variable_with_a_literal(literal):
    run = Run(flow([block("s", "set_variable", name="x", value=literal)]))
    run.start()
    assert run.state["vars"]["x"] == literal


def test_set_variable_is_visible_to_later_blocks():
    run = Run(flow([block("s", "set_variable", name="plano", value="Completo"), say("m", "Plano {{ plano }}")],
                   [("s", "next", "m")]))
    assert texts(run.start()[0]) == ["Plano Completo"]


def test_add_tag_and_remove_tag_change_the_tags():
    state = new_state({"name": "Ana"})
    state["tags"] = ["novo", "lead"]
    run = Run(flow([block("a", "add_tag", tag="vip"), block("a2", "add_tag", tag="vip"),
                    block("r", "remove_tag", tag="novo"), block("r2", "remove_tag", tag="ausente")],
                   [("a", "next", "a2"), ("a2", "next", "r"), ("r", "next", "r2")]), state)
    _, effects = run.start()
    assert run.state["tags"] == ["lead", "vip"]
    assert {"type": "add_tag", "tag": "vip"} in effects
    assert {"type": "remove_tag", "tag": "novo"} in effects


# -- jumps, conversations, http -------------------------------------------------------------


def test_jump_yields_a_jump_effect_and_ends_the_run():
    run = Run(flow([say("m", "Vou te passar"), block("j", "jump", flow_id="vendas", block_id="inicio"),
                    say("nunca", "nunca")],
                   [("m", "next", "j")]))
    outbound, effects = run.start()
    assert texts(outbound) == ["Vou te passar"]
    assert of_type(effects, "jump") == [{"type": "jump", "flow_id": "vendas", "block_id": "inicio"}]
    assert run.run["state"] == "ended"


CSAT_FLOW = flow(
    [say("m", "Vou chamar alguém"),
     block("abrir", "open_conversation", assign_to="ana", note="Cliente pediu atendente"),
     ask("number", block_id="csat"), say("obrigado", "Obrigado!")],
    [("m", "next", "abrir"), ("abrir", "next", "csat"), ("csat", "answered", "obrigado")])


def test_open_conversation_suspends_the_run_at_that_block():
    run = Run(CSAT_FLOW)
    outbound, effects = run.start()
    assert texts(outbound) == ["Vou chamar alguém"]
    assert of_type(effects, "open") == [{"type": "open", "block_id": "abrir", "assign_to": "ana",
                                         "note": "Cliente pediu atendente"}]
    assert run.run["state"] == "suspended"
    assert run.run["block_id"] == "abrir"


def test_conclusion_resumes_after_open_block():
    run = Run(CSAT_FLOW)
    run.start()
    outbound, _ = run.send(Concluded(at=T0 + 600))
    assert outbound == [{"text": "Responda:", "buttons": [], "block_id": "csat"}]
    assert run.run["state"] == "waiting_input"
    assert texts(run.answer("5", at=T0 + 700)[0]) == ["Obrigado!"]


def test_customer_messages_while_suspended_are_ignored_by_the_run():
    run = Run(CSAT_FLOW)
    run.start()
    before = copy.deepcopy(run.state)
    assert run.answer("alô?") == ([], [])
    assert run.state == before


def test_agent_opening_suspends_the_run_and_a_later_conclusion_ends_it():
    run = Run(flow([choice(timeout_s=60), say("planos", "Planos")], [("q", "o1", "planos")]))
    _, effects = run.start()
    timeout_token = of_type(effects, "schedule_timer")[0]["token"]
    assert run.send(Opened(at=T0 + 5)) == ([], [])
    assert run.run["state"] == "suspended"
    assert run.run["suspended_by"] == "agent"
    assert run.send(Timer(at=T0 + 60, kind="question_timeout", token=timeout_token)) == ([], [])
    outbound, _ = run.send(Concluded(at=T0 + 600))
    assert outbound == []
    assert run.run["state"] == "ended"


def test_opened_with_interrupt_ends_the_run():
    run = Run(flow([choice()]))
    run.start()
    assert run.send(Opened(at=T0 + 5, interrupt=True)) == ([], [])
    assert run.run["state"] == "ended"


def test_http_request_yields_an_http_effect_with_the_rendered_url():
    state = new_state({"name": "Ana"})
    state["vars"]["cpf"] = "12345678900"
    run = Run(flow([block("h", "http_request", method="POST", url="https://api.example.com/c/{{ cpf }}",
                          headers={"X-Nome": "{{ contact.name }}"}, body={"cpf": "{{ cpf }}", "n": 1},
                          save_as="resposta", timeout_s=5)]), state)
    outbound, effects = run.start()
    assert outbound == []
    assert of_type(effects, "http") == [{
        "type": "http", "block_id": "h", "method": "POST", "url": "https://api.example.com/c/12345678900",
        "headers": {"X-Nome": "Ana"}, "body": {"cpf": "12345678900", "n": 1}, "timeout_s": 5.0}]
    assert run.run["state"] == "running"


def test_http_request_timeout_defaults_to_10_seconds():
    run = Run(flow([block("h", "http_request", method="GET", url="https://example.com")]))
    _, effects = run.start()
    assert of_type(effects, "http")[0]["timeout_s"] == 10


HTTP_FLOW = flow([block("h", "http_request", method="GET", url="https://example.com/x", save_as="api"),
                  say("ok", "Status {{ api.status }}: {{ api.body.nome }}"), say("erro", "Falhou ({{ api.status }})")],
                 [("h", "ok", "ok"), ("h", "error", "erro")])


def test_http_result_ok_follows_ok_and_saves_status_and_body():
    run = Run(HTTP_FLOW)
    run.start()
    outbound, _ = run.send(HttpResult(at=T0 + 1, ok=True, status=200, body={"nome": "Ana"}))
    assert texts(outbound) == ["Status 200: Ana"]
    assert run.state["vars"]["api"] == {"status": 200, "body": {"nome": "Ana"}}
    assert run.run["state"] == "ended"


def test_http_result_error_follows_error():
    run = Run(HTTP_FLOW)
    run.start()
    outbound, _ = run.send(HttpResult(at=T0 + 1, ok=False, status=503, body="indisponível"))
    assert texts(outbound) == ["Falhou (503)"]
    assert run.state["vars"]["api"] == {"status": 503, "body": "indisponível"}


def test_http_result_when_no_request_is_pending_is_a_no_op():
    run = Run(flow([choice()]))
    run.start()
    before = copy.deepcopy(run.state)
    assert run.send(HttpResult(at=T0 + 1, ok=True, status=200, body={})) == ([], [])
    assert run.state == before


def test_conclude_conversation_yields_a_conclude_effect_and_goes_on():
    run = Run(flow([block("fim", "conclude_conversation", reason="resolvido"), say("m", "Até mais")],
                   [("fim", "next", "m")]))
    outbound, effects = run.start()
    assert of_type(effects, "conclude")[0]["reason"] == "resolvido"
    assert texts(outbound) == ["Até mais"]


def test_unconnected_port_ends_the_run_there():
    run = Run(flow([say("m", "Oi"), say("nunca", "nunca")]))
    outbound, _ = run.start()
    assert texts(outbound) == ["Oi"]
    assert run.run["state"] == "ended" and run.run["block_id"] == "m"


def test_start_at_a_given_block():
    run = Run(flow([say("a", "A"), say("b", "B")], [("a", "next", "b")]))
    assert texts(run.start(block_id="b")[0]) == ["B"]


# -- templates --------------------------------------------------------------------------------


def test_missing_variable_renders_empty_and_is_logged():
    run = Run(flow([say("m", "Seu pedido: {{ pedido }}.")]))
    outbound, effects = run.start()
    assert texts(outbound) == ["Seu pedido: ."]
    logs = of_type(effects, "log")
    assert len(logs) == 1
    assert logs[0]["block_id"] == "m" and logs[0]["level"] == "warning" and "pedido" in logs[0]["message"]


@pytest.mark.parametrize("payload", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ config }}{{ request }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ contact.__class__ }}{{ vars.__class__.__dict__ }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ (1).__class__.__mro__ }}",
    "{{ range.__self__ }}",
])
def test_template_injection_payloads_are_inert(payload):
    run = Run(flow([say("m", f"Olá {payload}!"), say("depois", "continua")], [("m", "next", "depois")]))
    outbound, _ = run.start()
    text = outbound[0]["text"]
    for leak in ("class", "module", "function", "built-in", "global", "subprocess", "uid=", "<"):
        assert leak not in text
    assert texts(outbound)[-1] == "continua"
    assert run.run["state"] == "ended"


def test_templates_cannot_modify_variables_or_contact():
    run = Run(flow([say("m", "{{ vars.update({'x': 1}) }}{{ contact.update({'name': 'Hacker'}) }}"
                              "{% set _ = vars.__setitem__('y', 2) %}ok")]))
    run.start()
    assert "x" not in run.state["vars"] and "y" not in run.state["vars"]
    assert run.state["contact"]["name"] == "Ana"


def test_rendered_text_is_capped_at_4096_characters():
    state = new_state({"name": "Ana"})
    state["vars"]["longo"] = "x" * 10_000
    run = Run(flow([say("m", "{{ longo }}{{ longo }}"), say("n", "{{ 'ab' * 2000 }}")], [("m", "next", "n")]),
              state)
    outbound, _ = run.start()
    assert [len(t) for t in texts(outbound)] == [4096, 4000]


def test_a_string_built_past_the_cap_stops_the_render_keeping_the_text_before_it():
    # DESIGN §10.5: `*` may not build more than 4,096 characters; the render stops there
    # with a logged error and the customer gets what was rendered up to it.
    run = Run(flow([say("m", "Oi {{ contact.name }}! {{ 'ab' * 3000 }} fim"), say("n", "depois")],
                   [("m", "next", "n")]), new_state({"name": "Ana"}))
    outbound, effects = run.start()
    assert texts(outbound) == ["Oi Ana! ", "depois"]
    assert any(e["type"] == "log" and e["level"] == "error" and "4096" in e["message"]
               for e in effects)


def test_template_syntax_error_at_run_time_is_logged_not_raised():
    run = Run(flow([say("m", "Olá {{ contact.name "), say("n", "depois")], [("m", "next", "n")]))
    outbound, effects = run.start()
    assert texts(outbound) == ["", "depois"]
    assert [e["level"] for e in of_type(effects, "log")] == ["error"]


# -- the budget and purity --------------------------------------------------------------------


def test_a_loop_without_waiting_ends_after_the_200_block_budget_with_an_error():
    increment = {"+": [{"var": "n"}, 1]}
    state = new_state({"name": "Ana"})
    state["vars"]["n"] = 0
    # Two set_variable blocks feeding each other: the linter would refuse this (spin_loop).
    run = Run(flow([block("a", "set_variable", name="n", value=increment),
                    block("b", "set_variable", name="n", value=increment)],
                   [("a", "next", "b"), ("b", "next", "a")]), state)
    _, effects = run.start()
    assert run.state["vars"]["n"] == BLOCK_BUDGET == 200  # each visit added one
    assert run.run["state"] == "ended"
    errors = [e for e in of_type(effects, "log") if e["level"] == "error"]
    assert len(errors) == 1 and "200" in errors[0]["message"]


def test_the_budget_is_per_event():
    blocks = [block(f"s{i}", "set_variable", name="i", value=i) for i in range(150)]
    edges = [(f"s{i}", "next", f"s{i + 1}") for i in range(149)]
    blocks.append(ask("text"))
    edges.append(("s149", "next", "q"))
    blocks += [block(f"t{i}", "set_variable", name="j", value=i) for i in range(150)]
    edges += [("q", "answered", "t0")] + [(f"t{i}", "next", f"t{i + 1}") for i in range(149)]
    run = Run(flow(blocks, edges))
    _, effects = run.start()
    assert run.run["state"] == "waiting_input"
    _, effects = run.answer("oi")
    assert run.run["state"] == "ended" and run.state["vars"]["j"] == 149
    assert not of_type(effects, "log")


def _scenario(doc: dict) -> list:
    """Every kind of event through PURITY_FLOW; each step checked not to touch its input."""
    events = [lambda s: Start(at=T0, run_id="r-1"), lambda s: UserMessage(at=T0 + 1, text="talvez"),
              lambda s: UserMessage(at=T0 + 2, text="1"),
              lambda s: HttpResult(at=T0 + 3, ok=True, status=200, body={"a": [1]}),
              lambda s: Timer(at=T0 + 63, kind="wait", token=s["run"]["token"]),
              lambda s: Concluded(at=T0 + 99)]
    state = new_state({"name": "Ana"})
    state["vars"]["lista"] = [1, 2]
    state["tags"] = ["novo"]
    results = []
    for make_event in events:
        event = make_event(state)
        frozen = copy.deepcopy(state)
        new, outbound, effects = step(doc, state, event)
        assert state == frozen, f"step modified its input state on {event}"
        results.append((copy.deepcopy(new), outbound, effects))
        state = new
    return results


PURITY_FLOW = flow(
    [choice(), block("tag", "add_tag", tag="vip"), block("untag", "remove_tag", tag="novo"),
     block("h", "http_request", method="GET", url="https://x.example/{{ escolha }}", save_as="api"),
     block("s", "set_variable", name="lista", value={"merge": [{"var": "lista"}, [3]]}),
     block("w", "wait", seconds=60), block("abrir", "open_conversation"), say("fim", "Fim {{ lista }}")],
    [("q", "o1", "tag"), ("tag", "next", "untag"), ("untag", "next", "h"), ("h", "ok", "s"),
     ("s", "next", "w"), ("w", "next", "abrir"), ("abrir", "next", "fim")])


def test_step_never_mutates_the_input_state():
    results = _scenario(PURITY_FLOW)
    assert results[-1][1] == [{"text": "Fim [1, 2, 3]", "buttons": [], "block_id": "fim"}]


def test_step_never_mutates_the_flow_document():
    doc = copy.deepcopy(PURITY_FLOW)
    _scenario(doc)
    assert doc == PURITY_FLOW


def test_same_input_gives_the_same_output():
    assert _scenario(PURITY_FLOW) == _scenario(copy.deepcopy(PURITY_FLOW))


def test_step_does_not_read_the_clock(monkeypatch):
    def no_clock(*args, **kwargs):
        raise AssertionError("the engine read the clock")

    monkeypatch.setattr(time, "time", no_clock)
    monkeypatch.setattr(time, "monotonic", no_clock)
    results = _scenario(PURITY_FLOW)
    wait_timer = next(e for _, _, effects in results for e in effects if e.get("kind") == "wait")
    assert wait_timer["due_at"] == T0 + 3 + 60  # time comes from the event (the HttpResult's at)
