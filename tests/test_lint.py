"""The linter: each finding code with its block, in Portuguese and English (DESIGN §2 Lint)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.lint import has_errors, lint
from schemas import load_document

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_FLOWS = ROOT / "sample_flows"


def block(block_id: str, kind: str, /, **data) -> dict:
    return {"id": block_id, "type": kind, "data": data}


def flow(blocks: list[dict], edges: list[tuple[str, str, str]] = (), start: str | None = None,
         flow_id: str = "teste") -> dict:
    doc = {"schema_version": 1, "id": flow_id, "name": "Teste", "start": start or blocks[0]["id"],
           "blocks": blocks, "edges": [{"from": f, "port": p, "to": t} for f, p, t in edges]}
    return load_document(doc)  # the linter only sees structurally valid documents


def clean_blocks() -> list[dict]:
    return [block("m", "message", text="Olá, {{ contact.name }}!"),
            block("q", "question", text="Seu nome?", input="text", save_as="nome"),
            block("fim", "message", text="Tchau, {{ nome }}.")]


CLEAN_EDGES = [("m", "next", "q"), ("q", "answered", "fim")]


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
                          block("fim", "message", text="ok")], [("q", "answered", "fim")]),
        level="error", block_id="q", pt="expressão regular", en="regular expression"),
    "bad_jsonlogic": dict(
        doc=lambda: flow([block("c", "condition", rules=[{"port": "sim", "when": {"=": [1, 1]}}]),
                          block("fim", "message", text="ok")], [("c", "sim", "fim"), ("c", "else", "fim")]),
        level="error", block_id="c", pt="JSONLogic", en="JSONLogic"),
    "unreachable": dict(
        doc=lambda: flow([*clean_blocks(), block("solto", "message", text="Ninguém chega aqui")], CLEAN_EDGES),
        level="warning", block_id="solto", pt="Nenhum caminho", en="No path"),
    "port_unconnected": dict(
        doc=lambda: flow(clean_blocks(), [("m", "next", "q"), ("q", "invalid", "fim")]),
        level="warning", block_id="q", pt="\"answered\"", en="\"answered\""),
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
    "timeout_unconnected": dict(
        doc=lambda: flow([block("q", "question", text="Nome?", input="text", save_as="nome", timeout_s=60),
                          block("fim", "message", text="ok")], [("q", "answered", "fim")]),
        level="warning", block_id="q", pt="tempo limite", en="timeout"),
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
        edges.append(("w", "nao", "fim"))
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


def test_unconnected_choice_option_is_a_warning_but_invalid_and_timeout_are_optional():
    doc = flow([block("q", "question", text="?", input="choice", save_as="r",
                      options=[{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]),
                block("fim", "message", text="x")], [("q", "a", "fim")])
    [finding] = lint(doc, lang="en")
    assert (finding["code"], finding["block_id"]) == ("port_unconnected", "q")
    assert '"b"' in finding["message"]


def test_too_many_choice_options_warn_like_buttons():
    options = [{"id": f"o{i}", "label": f"Opção {i}"} for i in range(4)]
    doc = flow([block("q", "question", text="?", input="choice", save_as="r", options=options),
                block("fim", "message", text="x")], [("q", f"o{i}", "fim") for i in range(4)])
    assert codes(lint(doc)) == [("warning", "too_many_buttons", "q")]


def test_variables_from_contact_vars_and_earlier_blocks_are_not_reported():
    doc = flow([block("q", "question", text="Idade?", input="number", save_as="idade"),
                block("s", "set_variable", name="dobro", value={"*": [{"var": "vars.idade"}, 2]}),
                block("c", "condition", rules=[{"port": "ana", "when": {"==": [{"var": "contact.name"}, "Ana"]}}]),
                block("m", "message", text="{{ contact.name }} tem {{ idade }} ({{ vars.dobro }})"),
                block("n", "message", text="outro")],
               [("q", "answered", "s"), ("s", "next", "c"), ("c", "ana", "m"), ("c", "else", "n")])
    assert lint(doc) == []


def test_variable_read_in_a_condition_before_it_is_set_is_reported():
    doc = flow([block("c", "condition", rules=[{"port": "vip", "when": {"var": "vars.plano"}}]),
                block("m", "message", text="x")], [("c", "vip", "m"), ("c", "else", "m")])
    assert codes(lint(doc)) == [("warning", "var_before_set", "c")]


def test_a_question_cannot_use_its_own_answer_in_its_text():
    doc = flow([block("q", "question", text="Confirma {{ nome }}?", input="text", save_as="nome"),
                block("fim", "message", text="ok")], [("q", "answered", "fim")])
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
