"""Flow tests (DESIGN §10.2, §10.6): the runner, the document's shape and the linter.

Every step kind passes and fails with a message that says which step, what was expected
and what came; HTTP requests are answered by the test's mocks only; ``wait`` fires timers.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.flowtests import recorded_test, run_tests, summary, transcript
from engine.lint import lint
from engine.settings import Settings
from engine.simulator import Simulation
from schemas import FlowDocumentError, load_document

SAMPLE_FLOWS = Path(__file__).resolve().parent.parent / "sample_flows"


def _flow(blocks, edges, start="b1", tests=(), flow_id="teste"):
    return load_document({"schema_version": 1, "id": flow_id, "name": "Teste", "start": start,
                          "triggers": [{"type": "default"}], "blocks": blocks, "edges": edges,
                          "tests": list(tests)})


def _welcome(tests) -> dict:
    doc = json.loads((SAMPLE_FLOWS / "boas-vindas.json").read_text(encoding="utf-8"))
    doc["tests"] = tests
    return load_document(doc)


def _one(doc: dict, steps: list[dict], **options) -> dict:
    """The result of running one test made of ``steps`` against ``doc``."""
    doc = {**doc, "tests": [{"name": "t", "steps": steps, **options}]}
    (result,) = summary(run_tests(load_document(doc)))["results"]
    return result


WELCOME = _welcome([])
GREETING = "Olá, Visitante! 👋 Bem-vindo(a) à Loja da Ana."
MENU = ["Ver produtos", "Status do pedido", "Falar com atendente"]
ORDER_QUESTION = "Qual é o número do seu pedido? (só os números, ex.: 12345)"


# ---------------------------------------------------------------------- each step kind

def test_a_conversation_that_goes_as_expected_passes():
    result = _one(WELCOME, [{"say": "oi"}, {"expect": GREETING},
                            {"expect": "Como posso te ajudar hoje?"}, {"expect_buttons": MENU},
                            {"expect_end": True}, {"expect_status": "concluded"}])
    assert result == {"name": "t", "passed": True, "step": None, "message": None}


def test_expect_names_the_step_what_was_expected_and_what_came():
    result = _one(WELCOME, [{"say": "oi"}, {"expect": GREETING}, {"expect": "Qual sabor?"}])
    assert result["passed"] is False
    assert result["step"] == 3
    assert result["message"] == 'passo 3: esperado "Qual sabor?", recebido "Como posso te ajudar hoje?"'


def test_failure_messages_are_in_english_under_lang_en():
    doc = {**WELCOME, "tests": [{"name": "t", "steps": [{"say": "oi"}, {"expect": "Qual sabor?"}]}]}
    (result,) = run_tests(load_document(doc), lang="en")
    assert result.message == f'step 2: expected "Qual sabor?", got "{GREETING}"'


def test_expect_with_no_message_left_says_so():
    result = _one(WELCOME, [{"say": "oi"}, {"expect": GREETING}, {"expect": "Como posso te ajudar hoje?"},
                            {"expect": "Mais alguma coisa?"}])
    assert result["message"] == 'passo 4: esperado "Mais alguma coisa?", recebido nenhuma mensagem'


def test_expect_contains_passes_on_part_of_the_text_and_fails_otherwise():
    assert _one(WELCOME, [{"say": "oi"}, {"expect_contains": "Loja da Ana"}])["passed"] is True
    result = _one(WELCOME, [{"say": "oi"}, {"expect_contains": "Loja do João"}])
    assert result["message"] == f'passo 2: esperado uma mensagem contendo "Loja do João", recebido "{GREETING}"'


def test_expect_buttons_reads_the_last_bot_message():
    passed = _one(WELCOME, [{"say": "oi"}, {"expect": GREETING}, {"expect_buttons": MENU}])
    assert passed["passed"] is True
    failed = _one(WELCOME, [{"say": "oi"}, {"expect_buttons": ["Ver produtos", "Falar com atendente"]}])
    assert failed["message"] == ('passo 2: esperado os botões ["Ver produtos", "Falar com atendente"], '
                                 'recebido ["Ver produtos", "Status do pedido", "Falar com atendente"]')
    none = _one(WELCOME, [{"say": "oi"}, {"say": "2"}, {"expect_buttons": MENU}])
    assert none["message"] == 'passo 3: esperado os botões ["Ver produtos", "Status do pedido", "Falar com atendente"], recebido nenhum botão'
    nothing_yet = _one(WELCOME, [{"open": True}, {"expect_buttons": []}])
    assert nothing_yet["message"] == "passo 2: esperado nenhum botão, recebido nenhuma mensagem"


def test_expect_buttons_after_an_open_still_reads_the_last_bot_message():
    assert _one(WELCOME, [{"say": "oi"}, {"open": True}, {"expect_buttons": MENU}])["passed"] is True


def test_expect_buttons_without_an_expect_reads_the_newest_message():
    assert _one(WELCOME, [{"say": "oi"}, {"expect_buttons": MENU}])["passed"] is True


def test_expect_status_and_open_and_conclude():
    steps = [{"say": "oi"}, {"open": True}, {"expect_status": "open"}, {"say": "1"}, {"expect_end": True},
             {"conclude": True}, {"expect_status": "concluded"}]
    assert _one(WELCOME, steps)["passed"] is True
    result = _one(WELCOME, [{"say": "oi"}, {"expect_status": "open"}])
    assert result["message"] == 'passo 2: esperado o status "open", recebido "concluded"'


def test_conclude_resumes_the_flow_and_its_replies_are_expected():
    steps = [{"say": "oi"}, {"say": "3"}, {"expect_status": "open"}, {"conclude": True},
             {"expect": "De 1 a 5, como foi o atendimento?"}, {"say": "4"},
             {"expect_contains": "Obrigada pela avaliação, Visitante!"}, {"expect_vars": {"csat": 4}}]
    assert _one(WELCOME, steps)["passed"] is True


def test_expect_vars_compares_values_and_reports_unset_ones():
    steps = [{"say": "oi"}, {"say": "2"}, {"say": "12345"}]
    assert _one(WELCOME, [*steps, {"expect_vars": {"pedido": "12345", "escolha": "Status do pedido"}}])["passed"]
    wrong = _one(WELCOME, [*steps, {"expect_vars": {"pedido": "54321"}}])
    assert wrong["message"] == 'passo 4: esperado pedido valendo "54321", recebido pedido valendo "12345"'
    unset = _one(WELCOME, [*steps, {"expect_vars": {"csat": 5}}])
    assert unset["message"] == "passo 4: esperado csat valendo 5, recebido csat sem valor"


def test_expect_vars_tells_a_number_from_text_and_true_from_one():
    doc = _flow([{"id": "b1", "type": "set_variable", "data": {"name": "ok", "value": {"==": [1, 1]}}}], [])
    assert _one(doc, [{"say": "oi"}, {"expect_vars": {"ok": True}}])["passed"] is True
    assert _one(doc, [{"say": "oi"}, {"expect_vars": {"ok": 1}}])["passed"] is False
    assert _one(WELCOME, [{"say": "oi"}, {"say": "2"}, {"say": "12345"},
                          {"expect_vars": {"pedido": 12345}}])["passed"] is False


def test_expect_end_fails_when_a_message_nobody_expected_came():
    result = _one(WELCOME, [{"say": "oi"}, {"expect": GREETING}, {"expect_end": True}])
    assert result["message"] == 'passo 3: esperado o fim (nenhuma mensagem a mais), recebido "Como posso te ajudar hoje?"'


def test_a_new_customer_message_lets_go_of_messages_nobody_expected():
    steps = [{"say": "oi"}, {"say": "2"}, {"expect_contains": "número do seu pedido"}, {"expect_end": True}]
    assert _one(WELCOME, steps)["passed"] is True


def test_the_first_say_starts_the_flow_whatever_its_triggers():
    doc = json.loads((SAMPLE_FLOWS / "lembrete.json").read_text(encoding="utf-8"))
    doc["tests"] = [{"name": "t", "steps": [{"say": "bom dia"}, {"expect_contains": "Quer que eu te lembre"}]}]
    (result,) = run_tests(load_document(doc))
    assert result.passed


def test_a_test_that_starts_with_a_handoff_keyword_opens_the_conversation():
    steps = [{"say": "quero falar com atendente"}, {"expect_end": True}, {"expect_status": "open"}]
    assert _one(WELCOME, steps)["passed"] is True


def test_handoff_keywords_follow_the_setting():
    doc = {**WELCOME, "tests": [{"name": "t", "steps": [{"say": "socorro"}, {"expect_status": "open"}]}]}
    settings = Settings.from_env({"PAPO_HANDOFF_KEYWORDS": "socorro"})
    assert run_tests(load_document(doc), settings=settings)[0].passed
    assert not run_tests(load_document(doc), settings=Settings.from_env({}))[0].passed


def test_each_test_starts_a_fresh_conversation():
    doc = {**WELCOME, "tests": [
        {"name": "a", "steps": [{"say": "oi"}, {"say": "2"}, {"say": "12345"}, {"expect_vars": {"pedido": "12345"}}]},
        {"name": "b", "steps": [{"say": "oi"}, {"expect": GREETING}]},
        {"name": "c", "steps": [{"say": "oi"}, {"expect_vars": {"pedido": "12345"}}]},
    ]}
    results = run_tests(load_document(doc))
    assert [r.passed for r in results] == [True, True, False]
    assert results[2].message == "passo 2: esperado pedido valendo \"12345\", recebido pedido sem valor"


def test_the_contact_name_of_a_test():
    assert _one(WELCOME, [{"say": "oi"}, {"expect_contains": "Olá, Ana!"}], contact={"name": "Ana"})["passed"]


def test_only_the_named_tests_run():
    doc = load_document({**WELCOME, "tests": [{"name": "a", "steps": [{"say": "oi"}]},
                                              {"name": "b", "steps": [{"say": "oi"}]}]})
    assert [r.name for r in run_tests(doc, names=["b"])] == ["b"]
    assert run_tests(load_document(WELCOME)) == []


# ---------------------------------------------------------------------- wait and timers

REMINDER = [{"id": "b1", "type": "message", "data": {"text": "Te aviso em 1 hora."}},
            {"id": "b2", "type": "wait", "data": {"seconds": 3600}},
            {"id": "b3", "type": "message", "data": {"text": "Chegou a hora!"}}]
REMINDER_EDGES = [{"from": "b1", "port": "next", "to": "b2"}, {"from": "b2", "port": "next", "to": "b3"}]


def test_a_timer_due_exactly_at_the_end_of_a_wait_fires():
    doc = _flow(REMINDER, REMINDER_EDGES)
    steps = [{"say": "oi"}, {"expect": "Te aviso em 1 hora."}, {"wait": 3600}, {"expect": "Chegou a hora!"}]
    assert _one(doc, steps)["passed"] is True


def test_a_wait_too_short_fires_nothing():
    doc = _flow(REMINDER, REMINDER_EDGES)
    result = _one(doc, [{"say": "oi"}, {"expect": "Te aviso em 1 hora."}, {"wait": 3599}, {"expect": "Chegou a hora!"}])
    assert result["message"] == 'passo 4: esperado "Chegou a hora!", recebido nenhuma mensagem'


def test_waits_add_up_and_a_question_timeout_fires():
    doc = json.loads((SAMPLE_FLOWS / "lembrete.json").read_text(encoding="utf-8"))
    doc["tests"] = [{"name": "t", "steps": [{"say": "lembrete"}, {"expect_contains": "lembre"},
                                            {"wait": 1000}, {"expect_end": True},
                                            {"wait": 800}, {"expect_contains": "não vou agendar"}]}]
    assert run_tests(load_document(doc))[0].passed


# ---------------------------------------------------------------------- HTTP mocks

def _http_flow(url="https://api.loja.com.br/pedidos/{{ pedido }}?v=1", method="GET"):
    blocks = [
        {"id": "b1", "type": "question", "data": {"text": "Número?", "input": "text", "save_as": "pedido"}},
        {"id": "b2", "type": "http_request", "data": {"method": method, "url": url, "save_as": "resposta"}},
        {"id": "b3", "type": "message", "data": {"text": "Status: {{ resposta.body.status }}"}},
        {"id": "b4", "type": "message", "data": {"text": "Falhou ({{ resposta.status }}): {{ resposta.body }}"}},
    ]
    edges = [{"from": "b1", "port": "answered", "to": "b2"}, {"from": "b2", "port": "ok", "to": "b3"},
             {"from": "b2", "port": "error", "to": "b4"}]
    return _flow(blocks, edges)


def test_a_mock_answers_the_request_with_its_json_saved_as_a_real_response():
    mocks = [{"method": "get", "url": "https://api.loja.com.br/pedidos/42?v=1", "status": 200,
              "json": {"status": "enviado"}}]
    steps = [{"say": "oi"}, {"say": "42"}, {"expect": "Status: enviado"},
             {"expect_vars": {"resposta": {"status": 200, "body": {"status": "enviado"}}}}]
    assert _one(_http_flow(), steps, http_mocks=mocks)["passed"] is True


def test_a_text_mock_with_an_error_status_follows_the_error_port():
    mocks = [{"method": "GET", "url": "https://api.loja.com.br/pedidos/42?v=1", "status": 503, "text": "fora do ar"}]
    steps = [{"say": "oi"}, {"say": "42"}, {"expect": "Falhou (503): fora do ar"}]
    assert _one(_http_flow(), steps, http_mocks=mocks)["passed"] is True


def test_an_unmocked_request_fails_the_test_without_touching_the_network(monkeypatch):
    import engine.http

    def no_network(*args, **kwargs):
        raise AssertionError("a flow test made a real request")

    monkeypatch.setattr(engine.http, "perform", no_network)
    mocks = [{"method": "GET", "url": "https://api.loja.com.br/pedidos/42", "status": 200, "json": {}}]
    result = _one(_http_flow(), [{"say": "oi"}, {"say": "42"}, {"expect_contains": "Status"}], http_mocks=mocks)
    assert result["step"] == 2
    assert result["message"] == ("passo 2: requisição HTTP sem resposta simulada em http_mocks: "
                                 "GET https://api.loja.com.br/pedidos/42?v=1")


def test_a_mock_for_another_method_does_not_answer():
    mocks = [{"method": "POST", "url": "https://api.loja.com.br/pedidos/42?v=1", "status": 200, "json": {}}]
    result = _one(_http_flow(), [{"say": "oi"}, {"say": "42"}], http_mocks=mocks)
    assert "GET https://api.loja.com.br/pedidos/42?v=1" in result["message"]


def test_mocks_are_matched_before_any_address_check():
    flow = _http_flow(url="http://127.0.0.1:8080/interno", method="POST")
    mocks = [{"method": "post", "url": "http://127.0.0.1:8080/interno", "status": 200, "json": {"status": "ok"}}]
    assert _one(flow, [{"say": "oi"}, {"say": "1"}, {"expect": "Status: ok"}], http_mocks=mocks)["passed"]


def test_several_mocks_for_one_request_answer_in_turn():
    flow = _http_flow(url="https://api.loja.com.br/status")
    flow["edges"].append({"from": "b3", "port": "next", "to": "b1"})
    flow = load_document(flow)
    mocks = [{"method": "GET", "url": "https://api.loja.com.br/status", "status": 200, "json": {"status": "a"}},
             {"method": "GET", "url": "https://api.loja.com.br/status", "status": 200, "json": {"status": "b"}}]
    steps = [{"say": "oi"}, {"say": "1"}, {"expect": "Status: a"}, {"say": "2"}, {"expect": "Status: b"},
             {"say": "3"}, {"expect": "Status: b"}]
    assert _one(flow, steps, http_mocks=mocks)["passed"] is True


# ---------------------------------------------------------------------- jumps

def test_a_jump_into_another_flow_reaches_it_when_it_is_given():
    other = {"schema_version": 1, "id": "outro", "name": "Outro", "start": "x", "triggers": [],
             "blocks": [{"id": "x", "type": "message", "data": {"text": "Aqui é o outro fluxo."}}], "edges": []}
    doc = _flow([{"id": "b1", "type": "jump", "data": {"flow_id": "outro"}}], [],
                tests=[{"name": "t", "steps": [{"say": "oi"}, {"expect": "Aqui é o outro fluxo."}]}])
    assert run_tests(doc, others=[other])[0].passed
    assert not run_tests(doc)[0].passed


# ---------------------------------------------------------------------- the document

def _problems(doc) -> list[dict]:
    with pytest.raises(FlowDocumentError) as caught:
        load_document(doc)
    return caught.value.problems


def test_an_unknown_step_is_a_schema_error_naming_it():
    doc = {**WELCOME, "tests": [{"name": "t", "steps": [{"say": "oi"}, {"expct": "Olá"}]}]}
    (problem,) = _problems(doc)
    assert problem["path"] == "$.tests[0].steps[1]"
    assert problem["message"].startswith('Passo de teste desconhecido: "expct"')


def test_a_step_with_two_actions_is_a_schema_error():
    doc = {**WELCOME, "tests": [{"name": "t", "steps": [{"say": "oi", "expect": "Olá"}]}]}
    (problem,) = _problems(doc)
    assert problem["message"].startswith("Cada passo de teste tem exatamente uma ação")


def test_bad_step_values_and_mocks_are_schema_errors():
    for bad in ({"wait": -5}, {"expect_status": "fechado"}, {"open": False}, {"expect_buttons": "Sim"}):
        doc = {**WELCOME, "tests": [{"name": "t", "steps": [bad]}]}
        assert _problems(doc), bad
    doc = {**WELCOME, "tests": [{"name": "t", "steps": [{"say": "oi"}],
                                 "http_mocks": [{"method": "GET", "url": "https://x", "status": 200,
                                                 "json": {}, "text": "a"}]}]}
    assert _problems(doc)


def test_two_tests_with_one_name_are_refused():
    doc = {**WELCOME, "tests": [{"name": "t", "steps": [{"say": "oi"}]}, {"name": "t", "steps": [{"say": "a"}]}]}
    (problem,) = _problems(doc)
    assert problem == {"path": "$.tests[1].name", "message": 'Há mais de um teste chamado "t".'}


def test_a_document_without_tests_is_still_valid_and_stays_without_them():
    doc = copy.deepcopy(WELCOME)
    doc.pop("tests")
    assert "tests" not in load_document(doc)


def test_lint_warns_of_expect_buttons_on_a_message_that_never_has_buttons():
    doc = _welcome([{"name": "Menu", "steps": [{"say": "oi"}, {"expect": "Como posso te ajudar hoje?"},
                                               {"expect_buttons": MENU}]},
                    {"name": "Saudação", "steps": [{"say": "oi"}, {"expect": GREETING}, {"expect_buttons": MENU}]},
                    {"name": "Pedido", "steps": [{"say": "oi"}, {"say": "2"},
                                                 {"expect": ORDER_QUESTION},
                                                 {"expect_buttons": ["1", "2"]}]}])
    (finding,) = [f for f in lint(doc) if f["code"] == "test_buttons_none"]
    assert finding["level"] == "warning"
    assert finding["block_id"] == "numero_pedido"
    assert finding["message"] == ('O teste "Pedido" (passo 4) espera botões, mas a mensagem '
                                  '"Qual é o número do seu pedido? (só os…" nunca tem botões.')


def test_lint_warns_when_no_block_of_the_flow_sends_buttons():
    doc = _flow(REMINDER, REMINDER_EDGES,
                tests=[{"name": "t", "steps": [{"say": "oi"}, {"expect_buttons": ["Sim"]}]}])
    (finding,) = [f for f in lint(doc, lang="en") if f["code"] == "test_buttons_none"]
    assert finding["message"] == 'Test "t" (step 2) expects buttons, but no block of this flow sends buttons.'


# ---------------------------------------------------------------------- recording

def test_a_simulated_conversation_becomes_a_test_that_passes():
    sim = Simulation(WELCOME, contact_name="Ana")
    sim.send("oi")
    sim.now += 5  # the simulated clock stands still between actions unless moved
    sim.send("3")
    sim.now += 5
    sim.conclude()
    sim.now += 5
    sim.send("5")
    test = recorded_test(transcript(sim.db, sim.conversation_id), "Gravado")
    assert test["contact"] == {"name": "Ana"}
    assert test["steps"] == [
        {"say": "oi"},
        {"expect": "Olá, Ana! 👋 Bem-vindo(a) à Loja da Ana."},
        {"expect": "Como posso te ajudar hoje?"},
        {"expect_buttons": MENU},
        {"say": "3"},
        {"expect": "Certo! Já vou te passar para uma pessoa da nossa equipe. Aguarde um instante, por favor. 🙂"},
        {"expect_status": "open"},
        {"conclude": True},
        {"expect": "De 1 a 5, como foi o atendimento?"},
        {"expect_buttons": ["1", "2", "3", "4", "5"]},
        {"say": "5"},
        {"expect": "Obrigada pela avaliação, Ana! 💛 Volte sempre à Loja da Ana."},
        {"expect_status": "concluded"},
    ]
    assert run_tests(load_document({**WELCOME, "tests": [test]}))[0].passed


def test_time_skipped_before_the_bot_spoke_becomes_a_wait():
    sim = Simulation(_flow(REMINDER, REMINDER_EDGES))
    sim.send("oi")
    sim.advance()
    test = recorded_test(transcript(sim.db, sim.conversation_id), "Espera")
    assert test["steps"] == [{"say": "oi"}, {"expect": "Te aviso em 1 hora."}, {"wait": 3600},
                             {"expect": "Chegou a hora!"}, {"expect_status": "concluded"}]
    assert "contact" not in test or test["contact"] == {"name": "Você"}


def test_a_handoff_and_an_open_by_a_person_are_recorded():
    sim = Simulation(WELCOME)
    sim.send("atendente")
    steps = recorded_test(transcript(sim.db, sim.conversation_id), "x")["steps"]
    assert steps == [{"say": "atendente"}, {"expect_status": "open"}]
    sim = Simulation(WELCOME)
    sim.open()
    sim.now += 2
    sim.send("oi")
    steps = recorded_test(transcript(sim.db, sim.conversation_id), "x")["steps"]
    assert steps == [{"open": True}, {"say": "oi"}, {"expect_status": "open"}]


def test_a_message_the_service_refuses_fails_the_test_at_that_step():
    result = _one(WELCOME, [{"say": "oi"}, {"say": "   "}])
    assert result["step"] == 2
    assert result["message"].startswith("passo 2: o passo foi recusado: ")


def test_a_crash_inside_papo_fails_that_test_and_not_the_run(monkeypatch):
    from engine.simulator import Simulation as Sim

    def broken(self, text):
        raise RuntimeError("bug")

    monkeypatch.setattr(Sim, "send", broken)
    doc = load_document({**WELCOME, "tests": [{"name": "a", "steps": [{"say": "oi"}]},
                                              {"name": "b", "steps": [{"expect_status": "concluded"}]}]})
    results = run_tests(doc)
    assert results[0].message == "passo 1: erro interno do papo ao rodar este passo (RuntimeError); veja o log"
    assert results[1].passed


def test_block_kinds_say_which_buttons_their_message_carries():
    from blocks import REGISTRY

    assert REGISTRY["message"].buttons({"text": "a", "buttons": ["Sim", "Não"]}) == ["Sim", "Não"]
    assert REGISTRY["message"].buttons({"text": "a"}) == []
    assert REGISTRY["question"].buttons({"input": "rating"}) == ["1", "2", "3", "4", "5"]
    assert REGISTRY["question"].buttons({"input": "choice", "options": [{"id": "a", "label": "A"}]}) == ["A"]
    assert REGISTRY["question"].buttons({"input": "text"}) == []
    assert REGISTRY["wait"].buttons({"seconds": 5}) == []
