"""``papo test FILE_OR_FLOW_ID... [--junit FILE] [--json]`` (DESIGN §10.2, §10.6) and
``papo import --publish`` with failing tests."""
from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from editor.cli import main
from engine.db import make_engine
from engine.flows import FlowRepository

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(str(p) for p in (ROOT / "sample_flows").glob("*.json"))
WELCOME = ROOT / "sample_flows" / "boas-vindas.json"


def papo(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)


def welcome(tests=None) -> dict:
    doc = json.loads(WELCOME.read_text(encoding="utf-8"))
    if tests is not None:
        doc["tests"] = tests
    return doc


def write(tmp_path: Path, doc: dict | str, name: str = "flow.json") -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return str(path)


GOOD = {"name": "Saudação", "steps": [{"say": "oi"}, {"expect_contains": "Bem-vindo(a)"}]}
BAD = {"name": "Sabor", "steps": [{"say": "oi"}, {"expect_contains": "Bem-vindo(a)"}, {"expect": "Qual sabor?"}]}


@pytest.fixture
def database(db_url, monkeypatch) -> str:
    monkeypatch.setenv("PAPO_DATABASE_URL", db_url)
    return db_url


def test_the_sample_flows_pass_their_own_tests():
    result = papo("test", *SAMPLES)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) >= 6
    assert all(line.startswith("PASS ") for line in lines)
    assert "PASS lembrete: Lembrete em 1 hora" in lines


def test_one_line_per_test_and_exit_1_when_one_fails(tmp_path):
    result = papo("test", write(tmp_path, welcome([GOOD, BAD])))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "PASS boas-vindas: Saudação",
        'FAIL boas-vindas: Sabor: passo 3: esperado "Qual sabor?", recebido "Como posso te ajudar hoje?"',
    ]


def test_english_failure_lines_with_lang_en(tmp_path):
    result = papo("test", "--lang", "en", write(tmp_path, welcome([BAD])))
    assert result.output == 'FAIL boas-vindas: Sabor: step 3: expected "Qual sabor?", got "Como posso te ajudar hoje?"\n'


def test_a_flow_without_tests_exits_0_and_prints_nothing(tmp_path):
    doc = welcome()
    doc.pop("tests", None)
    result = papo("test", write(tmp_path, doc))
    assert (result.exit_code, result.output) == (0, "")


def test_an_unreadable_or_invalid_file_exits_2_and_2_wins_over_1(tmp_path):
    failing = write(tmp_path, welcome([BAD]), "failing.json")
    broken = write(tmp_path, "{not json", "broken.json")
    invalid = write(tmp_path, welcome([{"name": "x", "steps": [{"sya": "oi"}]}]), "invalid.json")
    for args in ((broken,), (str(tmp_path / "missing.json"),), (invalid,), (failing, broken)):
        result = CliRunner().invoke(main, ["test", *args])
        assert result.exit_code == 2, (args, result.output, result.stderr)
    result = CliRunner().invoke(main, ["test", failing, invalid])
    assert "FAIL boas-vindas: Sabor" in result.stdout
    assert 'Passo de teste desconhecido: "sya"' in result.stderr


def test_json_output(tmp_path):
    result = papo("test", "--json", write(tmp_path, welcome([GOOD, BAD])))
    assert result.exit_code == 1
    body = json.loads(result.output)
    assert body["passed"] == 1 and body["failed"] == 1
    assert body["results"][0] == {"flow_id": "boas-vindas", "name": "Saudação", "passed": True,
                                  "step": None, "message": None}
    assert body["results"][1]["step"] == 3
    assert body["results"][1]["message"].startswith('passo 3: esperado "Qual sabor?"')


def test_junit_xml_has_a_testcase_per_test_and_the_failure(tmp_path):
    report = tmp_path / "junit.xml"
    result = papo("test", "--junit", str(report), write(tmp_path, welcome([GOOD, BAD])))
    assert result.exit_code == 1
    root = ElementTree.parse(report).getroot()
    assert (root.tag, root.get("tests"), root.get("failures")) == ("testsuites", "2", "1")
    (suite,) = root
    assert suite.get("name") == "boas-vindas"
    cases = {case.get("name"): case for case in suite}
    assert set(cases) == {"Saudação", "Sabor"}
    assert cases["Saudação"].find("failure") is None
    assert "esperado \"Qual sabor?\"" in cases["Sabor"].find("failure").get("message")


def test_a_flow_id_runs_the_latest_draft_from_the_database(database):
    engine = make_engine(database)
    try:
        from engine.db import create_schema

        create_schema(engine)
        repo = FlowRepository(engine)
        repo.create(welcome([GOOD]), actor="t")
        assert papo("test", "boas-vindas").output == "PASS boas-vindas: Saudação\n"
        _, revision = repo.get("boas-vindas")
        repo.update("boas-vindas", welcome([GOOD, BAD]), revision, actor="t")
        result = papo("test", "boas-vindas")
        assert result.exit_code == 1
        assert "FAIL boas-vindas: Sabor: passo 3" in result.output
    finally:
        engine.dispose()


def test_an_unknown_flow_id_exits_2(database):
    result = CliRunner().invoke(main, ["test", "nao-existe"])
    assert result.exit_code == 2
    assert "nao-existe" in result.stderr


def test_import_publish_with_failing_tests_stores_the_draft_and_does_not_publish(database, tmp_path):
    result = papo("import", "--publish", write(tmp_path, welcome([GOOD, BAD])))
    assert result.exit_code == 1
    assert "not published" in result.output
    assert "Sabor" in result.output
    engine = make_engine(database)
    try:
        repo = FlowRepository(engine)
        assert [t["name"] for t in repo.get("boas-vindas")[0]["tests"]] == ["Saudação", "Sabor"]
        assert repo.versions("boas-vindas") == []
    finally:
        engine.dispose()
    result = papo("import", "--publish", write(tmp_path, welcome([GOOD])))
    assert result.exit_code == 0, result.output
    assert "published version 1" in result.output
