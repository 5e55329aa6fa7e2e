"""`papo validate FILE... [--json]` (DESIGN §5): line format, exit codes, languages."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from editor.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "sample_flows").glob("*.json"))


def flow(blocks, edges, start="b1", flow_id="teste", **extra) -> dict:
    return {"schema_version": 1, "id": flow_id, "name": "Teste", "start": start,
            "triggers": [{"type": "default"}], "blocks": blocks, "edges": edges, **extra}


def msg(block_id: str, text: str = "Olá!") -> dict:
    return {"id": block_id, "type": "message", "data": {"text": text}}


DANGLING = flow([msg("b1")], [{"from": "b1", "port": "next", "to": "b2"}])
UNKNOWN_START = flow([msg("b1")], [], start="nao_existe")
SCHEMA_ERROR = flow([msg("b1"), {"id": "b2", "type": "message", "data": {}}],
                    [{"from": "b1", "port": "next", "to": "b2"}])
WARNING_ONLY = flow([msg("b1"), msg("solto")], [])


def run(*args: str, env: dict | None = None):
    # PAPO_LANG from the surrounding shell must not change the expected (pt-BR) messages.
    return CliRunner().invoke(main, ["validate", *args], env={"PAPO_LANG": None, **(env or {})})


@pytest.fixture
def write(tmp_path, monkeypatch):
    """Write files into a temporary folder that is also the working directory."""
    monkeypatch.chdir(tmp_path)

    def write_file(name: str, content) -> str:
        data = content if isinstance(content, (str, bytes)) else json.dumps(content)
        path = tmp_path / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        return name

    return write_file


def test_sample_flows_are_valid_without_findings():
    result = run(*map(str, SAMPLES))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_dangling_edge_is_an_error_line_with_the_block_in_brackets(write):
    name = write("f.json", DANGLING)
    result = run(name)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines == ['f.json: error [b1] dangling_edge: '
                     'Bloco "Olá!" (b1): a ligação da saída "Em seguida" aponta para o bloco "b2", '
                     'que não existe.']


def test_unknown_start_line_has_no_brackets(write):
    name = write("f.json", UNKNOWN_START)
    result = run(name)
    assert result.exit_code == 1
    assert 'f.json: error unknown_start: O bloco inicial "nao_existe" não existe.' in result.stdout
    assert "[" not in result.stdout


def test_schema_error_names_the_json_path_and_block(write):
    name = write("f.json", SCHEMA_ERROR)
    result = run(name)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        'f.json: error [b2] invalid_flow: Bloco "Mensagem" (b2): falta o campo obrigatório "Texto" (text)']


def test_newer_schema_version_is_refused_with_its_code(write):
    name = write("f.json", {**UNKNOWN_START, "schema_version": 99})
    result = run(name)
    assert result.exit_code == 1
    assert result.stdout.startswith("f.json: error newer_version: Este fluxo usa o formato versão 99")


def test_warnings_alone_exit_zero(write):
    name = write("f.json", WARNING_ONLY)
    result = run(name)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        'f.json: warning [solto] unreachable: Bloco "Olá!" (solto): nenhum caminho chega a este '
        'bloco a partir do início.']


def test_not_json_exits_two(write):
    name = write("quebrado.json", '{"schema_version": 1, ')
    result = run(name)
    assert result.exit_code == 2
    assert result.stdout.startswith("quebrado.json: error not_json: ")
    assert len(result.stdout.splitlines()) == 1


def test_file_not_in_utf8_is_not_json(write):
    name = write("latin1.json", '{"id": "café"}'.encode("latin-1"))
    result = run(name)
    assert result.exit_code == 2
    assert result.stdout.startswith("latin1.json: error not_json: ")
    assert "UTF-8" in result.stdout


def test_missing_file_is_unreadable(write):
    result = run("sumiu.json")
    assert result.exit_code == 2
    assert result.stdout.splitlines() == ["sumiu.json: error unreadable: Arquivo não encontrado."]


def test_not_json_wins_over_lint_errors(write):
    broken = write("quebrado.json", "isto não é json")
    dangling = write("f.json", DANGLING)
    result = run(dangling, broken)
    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert lines[0].startswith("f.json: error [b1] dangling_edge: ")
    assert lines[1].startswith("quebrado.json: error not_json: ")


def test_byte_order_mark_is_accepted(write):
    name = write("bom.json", "\ufeff" + json.dumps(WARNING_ONLY))
    assert run(name).exit_code == 0


def test_json_output_lists_findings_with_file(write):
    dangling = write("f.json", DANGLING)
    start = write("g.json", UNKNOWN_START)
    result = run("--json", dangling, start)
    assert result.exit_code == 1
    findings = json.loads(result.stdout)
    assert {"file": "f.json", "level": "error", "code": "dangling_edge", "block_id": "b1",
            "message": 'Bloco "Olá!" (b1): a ligação da saída "Em seguida" aponta para o bloco "b2", '
                       'que não existe.'} in findings
    unknown = [f for f in findings if f["code"] == "unknown_start"]
    assert unknown == [{"file": "g.json", "level": "error", "code": "unknown_start",
                        "block_id": None, "message": 'O bloco inicial "nao_existe" não existe.'}]
    assert all(set(f) == {"file", "level", "code", "block_id", "message"} for f in findings)


def test_json_output_is_an_empty_list_for_valid_files():
    result = run("--json", *map(str, SAMPLES))
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_json_output_keeps_exit_two_for_not_json(write):
    name = write("quebrado.json", "[")
    result = run(name, "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)[0]["code"] == "not_json"


def test_english_with_lang_option(write):
    name = write("f.json", DANGLING)
    result = run("--lang", "en", name)
    assert result.stdout.splitlines() == [
        'f.json: error [b1] dangling_edge: '
        'Block "Olá!" (b1): the connection from output "Next" points to block "b2", which does not exist.']


def test_english_with_papo_lang(write):
    name = write("f.json", SCHEMA_ERROR)
    result = run(name, env={"PAPO_LANG": "en"})
    assert result.stdout.splitlines() == [
        'f.json: error [b2] invalid_flow: Block "Message" (b2): the required field "text" is missing']


def test_jump_to_a_flow_given_in_the_same_run_is_known(write):
    jumper = flow([{"id": "b1", "type": "jump", "data": {"flow_id": "destino", "block_id": "fim"}}],
                  [], flow_id="origem")
    target = flow([msg("fim")], [], start="fim", flow_id="destino")
    origem = write("origem.json", jumper)
    destino = write("destino.json", target)

    alone = run(origem)
    assert alone.exit_code == 1
    assert "origem.json: error [b1] unknown_jump_flow: " in alone.stdout

    together = run(origem, destino)
    assert together.exit_code == 0, together.stdout
    assert together.stdout == ""


def test_a_flow_without_triggers_counts_as_started_by_a_jump_from_a_file_given_with_it(write):
    jumper = flow([{"id": "b1", "type": "jump", "data": {"flow_id": "destino"}}], [], flow_id="origem")
    target = flow([msg("fim")], [], start="fim", flow_id="destino", triggers=[])
    destino = write("destino.json", target)
    alone = run(destino)
    assert alone.exit_code == 0
    assert alone.stdout.startswith("destino.json: warning no_trigger: O fluxo não tem gatilho")
    together = run(write("origem.json", jumper), destino)
    assert together.stdout == ""


def test_jump_to_a_missing_block_of_a_given_flow(write):
    jumper = flow([{"id": "b1", "type": "jump", "data": {"flow_id": "destino", "block_id": "nao"}}],
                  [], flow_id="origem")
    origem = write("origem.json", jumper)
    destino = write("destino.json", flow([msg("fim")], [], start="fim", flow_id="destino"))
    result = run(origem, destino)
    assert result.exit_code == 1
    assert "origem.json: error [b1] unknown_jump_block: " in result.stdout


def _papo_command() -> list[str]:
    installed = Path(sys.executable).with_name("papo")
    if installed.exists():
        return [str(installed)]
    found = shutil.which("papo")
    if found:
        return [found]
    return [sys.executable, "-c", "from editor.cli import main; main()"]


def test_real_process_prints_lines_and_exit_codes(tmp_path):
    (tmp_path / "f.json").write_text(json.dumps(DANGLING), encoding="utf-8")
    (tmp_path / "quebrado.json").write_text("{", encoding="utf-8")
    command = _papo_command()

    ok = subprocess.run([*command, "validate", *map(str, SAMPLES)], capture_output=True,
                        encoding="utf-8", cwd=ROOT, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == ""

    bad = subprocess.run([*command, "validate", "f.json"], capture_output=True, encoding="utf-8",
                         cwd=tmp_path, timeout=60, env={"PATH": "/usr/bin:/bin", "PAPO_LANG": "en",
                                                       "PYTHONPATH": str(ROOT)})
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.splitlines() == [
        'f.json: error [b1] dangling_edge: '
        'Block "Olá!" (b1): the connection from output "Next" points to block "b2", which does not exist.']

    broken = subprocess.run([*command, "validate", "f.json", "quebrado.json"], capture_output=True,
                            encoding="utf-8", cwd=tmp_path, timeout=60, env={"PATH": "/usr/bin:/bin",
                                                                     "PYTHONPATH": str(ROOT)})
    assert broken.returncode == 2, broken.stderr
    assert broken.stdout.splitlines()[-1].startswith("quebrado.json: error not_json: ")
