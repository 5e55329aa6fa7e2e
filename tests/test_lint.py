"""The linter: each finding code with its block, in Portuguese and English (DESIGN §2 Lint)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from blocks.labels import block_title, port_label
from engine.lint import has_errors, jump_targets, lint
from schemas import load_document

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_FLOWS = ROOT / "sample_flows"


def block(block_id: str, kind: str, /, **data) -> dict:
    return {"id": block_id, "type": kind, "data": data}


def flow(blocks: list[dict], edges: list[tuple[str, str, str]] = (), start: str | None = None,
         flow_id: str = "teste", triggers: list[dict] | None = None) -> dict:
    doc = {"schema_version": 1, "id": flow_id, "name": "Teste", "start": start or blocks[0]["id"],
           "triggers": [{"type": "default"}] if triggers is None else triggers,
           "blocks": blocks, "edges": [{"from": f, "port": p, "to": t} for f, p, t in edges]}
    return load_document(doc)  # the linter only sees structurally valid documents


def clean_blocks() -> list[dict]:
    return [block("m", "message", text="Olá, {{ contact.name }}!"),
            block("q", "question", text="Seu nome?", input="text", save_as="nome"),
            block("fim", "message", text="Tchau, {{ nome }}."),
            block("desiste", "message", text="Tudo bem, até mais.")]


CLEAN_EDGES = [("m", "next", "q"), ("q", "answered", "fim"), ("q", "invalid", "desiste")]


def codes(findings: list[dict]) -> list[tuple[str, str, str | None]]:
    return [(f["level"], f["code"], f["block_id"]) for f in findings]


def test_a_clean_flow_has_no_findings():
    assert lint(flow(clean_blocks(), CLEAN_EDGES)) == []


# Each case: the flow with one problem, the finding expected, and a word from each language.
CASES = {
    "dangling_edge": dict(
        doc=lambda: flow(clean_blocks(), [*CLEAN_EDGES, ("fim", "next", "fantasma")]),
        level="error", block_id="fim", pt="não existe", en="does not exist"),
    "unknown_start": dict(
        doc=lambda: flow(clean_blocks(), CLEAN_EDGES, start="fantasma"),
        level="error", block_id=None, pt="bloco inicial", en="start block"),
    "unknown_jump_flow": dict(
        doc=lambda: flow([*clean_blocks(), block("j", "jump", flow_id="outro")], [*CLEAN_EDGES, ("fim", "next", "j")]),
        flows={"vendas": {"inicio"}},
        level="error", block_id="j", pt="fluxo \"outro\"", en="flow \"outro\""),
    "unknown_jump_block": dict(
        doc=lambda: flow([*clean_blocks(), block("j", "jump", flow_id="vendas", block_id="zz")],
                         [*CLEAN_EDGES, ("fim", "next", "j")]),
        flows={"vendas": {"inicio"}},
        level="error", block_id="j", pt="bloco \"zz\"", en="block \"zz\""),
    "spin_loop": dict(
        doc=lambda: flow([block("m", "message", text="Oi"), block("s1", "set_variable", name="a", value=1),
                          block("s2", "set_variable", name="b", value=2)],
                         [("m", "next", "s1"), ("s1", "next", "s2"), ("s2", "next", "s1")]),
        level="error", block_id="s1", pt="ciclo", en="loop"),
    "unknown_port": dict(
        doc=lambda: flow(clean_blocks(), [*CLEAN_EDGES, ("m", "depois", "fim")]),
        level="error", block_id="m", pt="\"depois\"", en="\"depois\""),
    "bad_template": dict(
        doc=lambda: flow([block("m", "message", text="Olá, {{ contact.name ")]),
        level="error", block_id="m", pt="erro de modelo", en="template error"),
    "bad_pattern": dict(
        doc=lambda: flow([block("q", "question", text="Placa?", input="text", save_as="placa", pattern="[A-Z"),
                          block("fim", "message", text="ok")], [("q", "answered", "fim"), ("q", "invalid", "fim")]),
        level="error", block_id="q", pt="expressão regular", en="regular expression"),
    "bad_jsonlogic": dict(
        doc=lambda: flow([block("c", "condition", rules=[{"port": "sim", "when": {"=": [1, 1]}}]),
                          block("fim", "message", text="ok")], [("c", "sim", "fim"), ("c", "else", "fim")]),
        level="error", block_id="c", pt="JSONLogic", en="JSONLogic"),
    "unreachable": dict(
        doc=lambda: flow([*clean_blocks(), block("solto", "message", text="Ninguém chega aqui")], CLEAN_EDGES),
        level="warning", block_id="solto", pt="nenhum caminho", en="no path"),
    "port_unconnected": dict(
        doc=lambda: flow([b for b in clean_blocks() if b["id"] != "fim"],
                         [("m", "next", "q"), ("q", "invalid", "desiste")]),
        level="warning", block_id="q", pt="\"Respondida\"", en="\"Answered\""),
    "var_before_set": dict(
        doc=lambda: flow([block("m", "message", text="Você mora em {{ cidade }}?")]),
        level="warning", block_id="m", pt="\"cidade\"", en="\"cidade\""),
    "too_many_buttons": dict(
        doc=lambda: flow([block("m", "message", text="Escolha", buttons=["A", "B", "C", "D"])]),
        level="warning", block_id="m", pt="4", en="4"),
    "button_too_long": dict(
        doc=lambda: flow([block("m", "message", text="Escolha", buttons=["Um rótulo bem comprido"])]),
        level="warning", block_id="m", pt="Um rótulo bem comprido", en="Um rótulo bem comprido"),
    "text_too_long": dict(
        doc=lambda: flow([block("m", "message", text="a" * 4097)]),
        level="warning", block_id="m", pt="4097", en="4097"),
    "timeout_port_unconnected": dict(
        doc=lambda: flow([block("q", "question", text="Nome?", input="text", save_as="nome", timeout_s=60),
                          block("fim", "message", text="ok")], [("q", "answered", "fim"), ("q", "invalid", "fim")]),
        level="warning", block_id="q", pt="\"Sem resposta\"", en="\"No answer\""),
    "invalid_port_unconnected": dict(
        doc=lambda: flow([block("q", "question", text="Nome?", input="text", save_as="nome"),
                          block("fim", "message", text="ok")], [("q", "answered", "fim")]),
        level="warning", block_id="q", pt="\"Resposta inválida\"", en="\"Invalid answer\""),
    "no_trigger": dict(
        doc=lambda: flow(clean_blocks(), CLEAN_EDGES, triggers=[]),
        level="warning", block_id=None, pt="gatilho", en="trigger"),
}


@pytest.mark.parametrize("code", list(CASES))
def test_each_problem_is_reported_once_with_its_code_level_and_block(code):
    case = CASES[code]
    findings = lint(case["doc"](), case.get("flows"))
    assert codes(findings) == [(case["level"], code, case["block_id"])]
    assert has_errors(findings) is (case["level"] == "error")


@pytest.mark.parametrize("code", list(CASES))
def test_findings_are_in_portuguese_by_default_and_in_english_on_request(code):
    case = CASES[code]
    doc = case["doc"]()
    [pt] = lint(doc, case.get("flows"))
    [en] = lint(doc, case.get("flows"), lang="en")
    assert case["pt"] in pt["message"]
    assert case["en"] in en["message"]
    assert pt["message"] != en["message"]
    assert {k: v for k, v in pt.items() if k != "message"} == {k: v for k, v in en.items() if k != "message"}


def test_edge_from_a_block_that_does_not_exist_is_a_dangling_edge_without_block():
    doc = flow(clean_blocks(), [*CLEAN_EDGES, ("fantasma", "next", "fim")])
    [finding] = lint(doc, lang="en")
    assert (finding["level"], finding["code"], finding["block_id"]) == ("error", "dangling_edge", None)
    assert "fantasma" in finding["message"]


def test_known_jsonlogic_operators_are_not_reported():
    rule = {"and": [{"in": ["a", {"var": "cidade"}]}, {"!": {"missing": ["cidade"]}},
                    {"some": [{"var": "lista"}, {">": [{"var": ""}, 1]}]}]}
    doc = flow([block("s", "set_variable", name="cidade", value="Recife"),
                block("l", "set_variable", name="lista", value=[1, 2]),
                block("c", "condition", rules=[{"port": "sim", "when": rule}]),
                block("fim", "message", text="ok")],
               [("s", "next", "l"), ("l", "next", "c"), ("c", "sim", "fim"), ("c", "else", "fim")])
    assert lint(doc) == []


def test_finding_has_the_documented_shape():
    [finding] = lint(CASES["unreachable"]["doc"]())
    assert set(finding) == {"level", "code", "block_id", "message"}


def test_errors_are_listed_before_warnings():
    doc = flow([block("m", "message", text="Escolha", buttons=["A", "B", "C", "D"]),
                block("solto", "message", text="x")], [("m", "next", "fantasma")])
    levels = [f["level"] for f in lint(doc)]
    assert levels == sorted(levels, key=lambda level: level != "error") and "error" in levels


def test_spin_loop_names_every_block_of_the_cycle():
    [finding] = lint(CASES["spin_loop"]["doc"](), lang="en")
    assert "s1" in finding["message"] and "s2" in finding["message"]


def test_a_block_linked_to_itself_without_waiting_is_a_spin_loop():
    doc = flow([block("s", "set_variable", name="a", value=1)], [("s", "next", "s")])
    assert codes(lint(doc)) == [("error", "spin_loop", "s")]


def test_a_condition_loop_is_a_spin_loop():
    doc = flow([block("c", "condition", rules=[{"port": "sim", "when": {"==": [1, 1]}}]),
                block("t", "add_tag", tag="x")],
               [("c", "sim", "t"), ("c", "else", "t"), ("t", "next", "c")])
    assert ("error", "spin_loop", "c") in codes(lint(doc))


@pytest.mark.parametrize("waiting", [
    block("w", "question", text="De novo?", input="choice", save_as="r",
          options=[{"id": "sim", "label": "Sim"}, {"id": "nao", "label": "Não"}]),
    block("w", "wait", seconds=60),
    block("w", "open_conversation"),
])
def test_a_cycle_through_a_question_wait_or_handoff_is_not_a_spin_loop(waiting):
    ports = {"question": ["sim"], "wait": ["next"], "open_conversation": ["next"]}[waiting["type"]]
    edges = [("s", "next", "c"), ("c", "volta", "w"), ("c", "else", "fim")]
    edges += [("w", port, "s") for port in ports]
    if waiting["type"] == "question":
        edges += [("w", "nao", "fim"), ("w", "invalid", "fim")]
    doc = flow([block("s", "set_variable", name="n", value={"+": [{"var": "n"}, 1]}),
                block("c", "condition", rules=[{"port": "volta", "when": {"<": [{"var": "n"}, 3]}}]),
                waiting, block("fim", "message", text="fim")], edges)
    assert "spin_loop" not in [f["code"] for f in lint(doc)]
    assert not has_errors(lint(doc))


def test_jump_to_a_block_of_the_same_flow_is_checked_against_its_blocks():
    ok = flow([block("m", "message", text="x"), block("j", "jump", flow_id="teste", block_id="m")],
              [("m", "next", "j")])
    bad = flow([block("m", "message", text="x"), block("j", "jump", flow_id="teste", block_id="zz")],
               [("m", "next", "j")])
    assert lint(ok) == []
    assert codes(lint(bad)) == [("error", "unknown_jump_block", "j")]


def test_jump_to_a_known_flow_is_fine():
    doc = flow([block("j", "jump", flow_id="vendas")])
    assert lint(doc, {"vendas": {"inicio"}}) == []


def test_unconnected_condition_port_is_a_warning():
    doc = flow([block("c", "condition", rules=[{"port": "sim", "when": True}]), block("fim", "message", text="x")],
               [("c", "sim", "fim")])
    assert codes(lint(doc)) == [("warning", "port_unconnected", "c")]


def test_unconnected_choice_option_is_a_warning_named_by_its_label_and_timeout_is_optional():
    doc = flow([block("q", "question", text="?", input="choice", save_as="r",
                      options=[{"id": "a", "label": "A"}, {"id": "b", "label": "Bolo de fubá"}]),
                block("fim", "message", text="x")], [("q", "a", "fim"), ("q", "invalid", "fim")])
    [finding] = lint(doc, lang="en")
    assert (finding["code"], finding["block_id"]) == ("port_unconnected", "q")
    assert '"Bolo de fubá"' in finding["message"] and '"b"' not in finding["message"]


def test_too_many_choice_options_warn_like_buttons():
    options = [{"id": f"o{i}", "label": f"Opção {i}"} for i in range(4)]
    doc = flow([block("q", "question", text="?", input="choice", save_as="r", options=options),
                block("fim", "message", text="x")],
               [*(("q", f"o{i}", "fim") for i in range(4)), ("q", "invalid", "fim")])
    assert codes(lint(doc)) == [("warning", "too_many_buttons", "q")]


def test_variables_from_contact_vars_and_earlier_blocks_are_not_reported():
    doc = flow([block("q", "question", text="Idade?", input="number", save_as="idade"),
                block("s", "set_variable", name="dobro", value={"*": [{"var": "vars.idade"}, 2]}),
                block("c", "condition", rules=[{"port": "ana", "when": {"==": [{"var": "contact.name"}, "Ana"]}}]),
                block("m", "message", text="{{ contact.name }} tem {{ idade }} ({{ vars.dobro }})"),
                block("n", "message", text="outro")],
               [("q", "answered", "s"), ("q", "invalid", "n"), ("s", "next", "c"), ("c", "ana", "m"),
                ("c", "else", "n")])
    assert lint(doc) == []


def test_variable_read_in_a_condition_before_it_is_set_is_reported():
    doc = flow([block("c", "condition", rules=[{"port": "vip", "when": {"var": "vars.plano"}}]),
                block("m", "message", text="x")], [("c", "vip", "m"), ("c", "else", "m")])
    assert codes(lint(doc)) == [("warning", "var_before_set", "c")]


def test_a_question_cannot_use_its_own_answer_in_its_text():
    doc = flow([block("q", "question", text="Confirma {{ nome }}?", input="text", save_as="nome"),
                block("fim", "message", text="ok")], [("q", "answered", "fim"), ("q", "invalid", "fim")])
    assert codes(lint(doc)) == [("warning", "var_before_set", "q")]


# -- sample flows --------------------------------------------------------------------------------


def _sample_files() -> list[Path]:
    return sorted(SAMPLE_FLOWS.glob("*.json"))


def test_there_are_at_least_three_sample_flows():
    assert len(_sample_files()) >= 3, f"expected at least 3 flows in {SAMPLE_FLOWS}"


@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: p.name)
def test_sample_flow_loads_and_has_no_lint_errors(path):
    docs = {p.name: load_document(p.read_bytes()) for p in _sample_files()}
    known = {d["id"]: {b["id"] for b in d["blocks"]} for d in docs.values()}
    doc = docs[path.name]
    errors = [f for f in lint(doc, known) if f["level"] == "error"]
    assert errors == [], json.dumps(errors, ensure_ascii=False, indent=2)


# -- titles, UI words and the second-wave codes (DESIGN §10.1, §10.6) ----------------------------


def test_a_finding_names_the_block_by_its_title_with_the_id_after_it():
    doc = flow([block("b2", "question", text="Qual sabor você quer hoje? Temos calabresa, mussarela e atum",
                      input="text", save_as="sabor"),
                block("fim", "message", text="ok")], [("b2", "answered", "fim")])
    [pt] = lint(doc)
    assert pt["message"].startswith('Bloco "Qual sabor você quer hoje? Temos…" (b2): a saída "Resposta inválida"')
    [en] = lint(doc, lang="en")
    assert en["message"].startswith('Block "Qual sabor você quer hoje? Temos…" (b2): output "Invalid answer"')


def test_a_block_without_text_is_named_by_its_kind_and_else_is_senao():
    doc = flow([block("c", "condition", rules=[{"port": "sim", "when": True}]), block("fim", "message", text="x")],
               [("c", "sim", "fim")])
    [finding] = lint(doc)
    assert finding["message"].startswith('Bloco "Condição" (c): a saída "Senão" não está ligada')
    assert "else" not in finding["message"]
    [english] = lint(doc, lang="en")
    assert english["message"].startswith('Block "Condition" (c): output "Otherwise" is not connected')


def test_no_trigger_is_not_reported_when_another_flow_jumps_into_the_flow():
    doc = flow(clean_blocks(), CLEAN_EDGES, flow_id="pos-venda", triggers=[])
    assert codes(lint(doc)) == [("warning", "no_trigger", None)]
    assert lint(doc, jumped_into={"pos-venda"}) == []
    menu = flow([block("j", "jump", flow_id="pos-venda")], flow_id="menu")
    itself = flow([block("j", "jump", flow_id="pos-venda")], flow_id="pos-venda", triggers=[])
    assert jump_targets([menu, itself]) == {"pos-venda"}
    assert jump_targets([itself]) == set()  # a flow jumping into itself still never starts


def test_a_keyword_or_default_trigger_is_enough():
    keyword = flow(clean_blocks(), CLEAN_EDGES, triggers=[{"type": "keyword", "match": "exact", "value": "oi"}])
    assert lint(keyword) == []


def test_a_timeout_port_is_only_expected_with_a_timeout():
    doc = flow([block("q", "question", text="Nome?", input="text", save_as="nome"),
                block("fim", "message", text="ok")], [("q", "answered", "fim"), ("q", "invalid", "fim")])
    assert lint(doc) == []
    assert "timeout_unconnected" not in {f["code"] for f in lint(CASES["timeout_port_unconnected"]["doc"]())}


def test_a_csat_question_needs_no_invalid_port():
    doc = flow([block("q", "question", text="Nota?", input="rating", save_as="nota", csat=True),
                block("fim", "message", text="Obrigado!")], [("q", "answered", "fim")])
    assert lint(doc) == []
    doc["blocks"][0]["data"].pop("csat")
    assert codes(lint(doc)) == [("warning", "invalid_port_unconnected", "q")]


def test_an_unconnected_block_is_unreachable_not_used_before_set():
    """The trial's case: b2 saves "sabor"; a block nobody connected reads it."""
    doc = flow([block("b1", "message", text="Oi"),
                block("b2", "question", text="Qual sabor?", input="text", save_as="sabor"),
                block("b3", "message", text="Fim"),
                block("b4", "message", text="Seu sabor: {{ sabor }}")],
               [("b1", "next", "b2"), ("b2", "answered", "b3"), ("b2", "invalid", "b3")])
    assert codes(lint(doc)) == [("warning", "unreachable", "b4")]


def test_a_variable_read_where_one_path_skipped_saving_it_is_reported():
    blocks = [block("c", "condition", rules=[{"port": "pergunta", "when": {"var": "contact.name"}}]),
              block("q", "question", text="Qual sabor?", input="text", save_as="sabor"),
              block("s", "set_variable", name="sabor", value="calabresa"),
              block("m", "message", text="Anotado: {{ sabor }}"),
              block("desiste", "message", text="Até mais")]
    both = flow(blocks, [("c", "pergunta", "q"), ("c", "else", "s"), ("q", "answered", "m"),
                         ("q", "invalid", "desiste"), ("s", "next", "m")])
    assert lint(both) == []  # every path into "m" saved "sabor"
    one = flow([b for b in blocks if b["id"] != "s"],
               [("c", "pergunta", "q"), ("c", "else", "m"), ("q", "answered", "m"), ("q", "invalid", "desiste")])
    [finding] = lint(one)
    assert (finding["code"], finding["block_id"]) == ("var_before_set", "m")
    assert finding["message"].startswith('Bloco "Anotado: {{ sabor }}" (m): a variável "sabor"')


def test_an_invalid_answer_path_does_not_count_as_saving_the_answer():
    doc = flow([block("q", "question", text="Seu nome?", input="text", save_as="nome"),
                block("fim", "message", text="Tchau, {{ nome }}.")],
               [("q", "answered", "fim"), ("q", "invalid", "fim")])
    assert codes(lint(doc)) == [("warning", "var_before_set", "fim")]


def test_a_loop_back_through_a_question_keeps_what_was_saved():
    doc = flow([block("q", "question", text="Seu nome?", input="text", save_as="nome"),
                block("m", "message", text="Oi {{ nome }}"),
                block("de-novo", "question", text="De novo, {{ nome }}?", input="choice", save_as="r",
                      options=[{"id": "sim", "label": "Sim"}, {"id": "nao", "label": "Não"}]),
                block("fim", "message", text="Tchau")],
               [("q", "answered", "m"), ("q", "invalid", "fim"), ("m", "next", "de-novo"),
                ("de-novo", "sim", "q"), ("de-novo", "nao", "fim"), ("de-novo", "invalid", "fim")])
    assert lint(doc) == []


@pytest.mark.parametrize(("text", "pt", "en"), [
    ("Olá, {{ contact.name ", "falta fechar as chaves", "a brace is not closed"),
    ("Olá, {{ contact.name|gritar }}", 'o filtro "gritar" não existe', 'unknown filter "gritar"'),
    ("{% if contact.name is bonito %}oi{% endif %}", 'o teste "bonito" não existe', 'unknown test "bonito"'),
])
def test_template_mistakes_and_unknown_filters_are_bad_template_in_plain_words(text, pt, en):
    doc = flow([block("m", "message", text=text)])
    [finding] = lint(doc)
    assert (finding["level"], finding["code"]) == ("error", "bad_template")
    assert pt in finding["message"] and "Jinja" not in finding["message"]
    assert en in lint(doc, lang="en")[0]["message"]


def test_a_spin_loop_names_its_blocks_by_title():
    [finding] = lint(CASES["spin_loop"]["doc"]())
    assert '"Definir variável" (s1) → "Definir variável" (s2)' in finding["message"]


@pytest.mark.parametrize(("block_data", "title"), [
    ({"id": "a", "type": "message", "data": {"text": "Olá!"}}, "Olá!"),
    ({"id": "a", "type": "message", "data": {"text": "Bem-vindo à Pizzaria do Zé, a melhor pizza do bairro"}},
     "Bem-vindo à Pizzaria do Zé, a melhor…"),
    ({"id": "a", "type": "message", "data": {"text": "Linha um\n\n  linha   dois"}}, "Linha um linha dois"),
    ({"id": "a", "type": "message", "data": {"text": "x" * 50}}, "x" * 40 + "…"),
    ({"id": "a", "type": "condition", "data": {"rules": []}}, "Condição"),
    ({"id": "a", "type": "wait", "data": {"seconds": 5}}, "Esperar"),
])
def test_block_title_is_the_texts_first_words_or_the_kind(block_data, title):
    assert block_title(block_data) == title
    assert len(block_title(block_data)) <= 41


def test_block_title_and_port_labels_speak_english_on_request():
    assert block_title({"id": "c", "type": "condition", "data": {}}, "en") == "Condition"
    choice = {"id": "q", "type": "question", "data": {"options": [{"id": "o1", "label": "Calabresa"}]}}
    assert port_label(choice, "o1") == "Calabresa"
    assert port_label(choice, "invalid") == "Resposta inválida"
    assert port_label(choice, "invalid", "en") == "Invalid answer"
