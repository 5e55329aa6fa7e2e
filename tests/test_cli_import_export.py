"""``papo import`` and ``papo export`` (DESIGN §5) against PAPO_DATABASE_URL."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from editor.cli import main
from engine.db import make_engine
from engine.flows import FlowRepository
from engine.service import Service

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_flows"
WELCOME = str(SAMPLES / "boas-vindas.json")


@pytest.fixture
def database(db_url, monkeypatch) -> str:
    """PAPO_DATABASE_URL set to an empty test database (no tables: import creates them)."""
    monkeypatch.setenv("PAPO_DATABASE_URL", db_url)
    return db_url


@pytest.fixture
def repo(database):
    engine = make_engine(database)
    yield FlowRepository(engine)
    engine.dispose()


def papo(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write(tmp_path: Path, doc: dict | str, name: str = "flow.json") -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False),
                    encoding="utf-8")
    return str(path)


def small_flow(flow_id: str = "pequeno", **changes) -> dict:
    doc = {"schema_version": 1, "id": flow_id, "name": "Pequeno", "triggers": [{"type": "default"}],
           "start": "m",
           "blocks": [{"id": "m", "type": "message", "position": {"x": 0, "y": 0},
                       "data": {"text": "Olá!"}}],
           "edges": []}
    doc.update(changes)
    return doc


def dangling(flow_id: str = "quebrado") -> dict:
    return small_flow(flow_id, edges=[{"from": "m", "port": "next", "to": "fantasma"}])


# ---------------------------------------------------------------------- round trip
def test_import_then_export_gives_back_the_same_document(database, sample_flow):
    imported = papo("import", WELCOME)
    assert imported.exit_code == 0, imported.output
    assert imported.stdout == f"{WELCOME}: imported boas-vindas revision 1\n"
    exported = papo("export", "boas-vindas")
    assert exported.exit_code == 0
    assert json.loads(exported.stdout) == sample_flow("boas-vindas")


def test_export_is_utf8_with_indent_2(database, sample_flow):
    papo("import", WELCOME)
    exported = papo("export", "boas-vindas")
    assert exported.stdout == json.dumps(sample_flow("boas-vindas"), ensure_ascii=False, indent=2) + "\n"
    assert "Olá, {{ contact.name }}! 👋" in exported.stdout  # not \u escapes


def test_export_to_a_file(database, sample_flow, tmp_path):
    papo("import", WELCOME)
    target = tmp_path / "out" / "bv.json"
    target.parent.mkdir()
    result = papo("export", "boas-vindas", "-o", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert json.loads(target.read_text(encoding="utf-8")) == sample_flow("boas-vindas")
    assert target.read_bytes().startswith(b'{\n  "schema_version": 1,')


def test_every_sample_flow_round_trips(database, sample_flow):
    paths = sorted(str(p) for p in SAMPLES.glob("*.json"))
    result = papo("import", *paths, "--publish")
    assert result.exit_code == 0, result.output
    for path in paths:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        assert f"{path}: imported {doc['id']} revision 1, published version 1" in result.stdout
        assert json.loads(papo("export", doc["id"]).stdout) == doc


def test_server_owned_fields_are_dropped_on_import(database, tmp_path):
    doc = small_flow(revision=9, version=3, published_version=2, updated_at="2026-01-01T00:00:00Z")
    papo("import", write(tmp_path, doc))
    assert json.loads(papo("export", "pequeno").stdout) == small_flow()


def test_export_unknown_flow_is_a_friendly_error(database):
    result = papo("export", "nao-existe")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert 'flow "nao-existe" not found' in result.stderr
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------- updating
def test_importing_twice_adds_a_draft_revision(database, repo):
    assert papo("import", WELCOME).exit_code == 0
    again = papo("import", WELCOME, "--publish")
    assert again.exit_code == 0
    assert again.stdout == f"{WELCOME}: imported boas-vindas revision 2, published version 1\n"
    assert repo.get("boas-vindas")[1] == 2
    third = papo("import", WELCOME, "--publish")
    assert third.stdout.endswith("revision 3, published version 2\n")


def test_import_updates_an_existing_flow(database, repo, tmp_path):
    papo("import", write(tmp_path, small_flow()))
    changed = small_flow(name="Pequeno v2")
    result = papo("import", write(tmp_path, changed, "v2.json"))
    assert result.exit_code == 0
    doc, revision = repo.get("pequeno")
    assert (doc["name"], revision) == ("Pequeno v2", 2)


def test_published_flow_answers_customers(database, repo):
    assert papo("import", WELCOME, "--publish").exit_code == 0
    reply = Service(repo.engine).handle_inbound(
        "api", {"external_id": "5511999990000", "name": "Ana"}, {"id": "m1", "text": "oi"})
    assert reply["replies"][0]["text"] == "Olá, Ana! 👋 Bem-vindo(a) à Loja da Ana."


def test_flows_that_jump_into_each_other_publish_together(database, tmp_path):
    first = small_flow("primeiro", blocks=[
        {"id": "j", "type": "jump", "position": {"x": 0, "y": 0}, "data": {"flow_id": "segundo"}}],
        start="j")
    second = small_flow("segundo")
    result = papo("import", write(tmp_path, first, "a.json"), write(tmp_path, second, "b.json"),
                  "--publish")
    assert result.exit_code == 0, result.output
    assert "imported primeiro revision 1, published version 1" in result.stdout


# ---------------------------------------------------------------------- problems
def test_structural_error_stores_nothing(database, tmp_path):
    doc = small_flow(blocks=[{"id": "m", "type": "message", "position": {"x": 0, "y": 0},
                              "data": {"txt": "Olá!"}}])
    path = write(tmp_path, doc)
    result = papo("import", path, "--publish")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines == [f'{path}: error [m] invalid_flow: Bloco "Mensagem" (m): o campo "txt" não existe — '
                     'quis dizer "text"?']
    assert "imported" not in result.stdout
    assert papo("export", "pequeno").exit_code == 1


def test_lint_errors_store_a_draft_and_print_findings(database, repo, tmp_path):
    path = write(tmp_path, dangling())
    result = papo("import", path)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f'{path}: error [m] dangling_edge: Bloco "Olá!" (m): a ligação da saída "Em seguida" aponta para o bloco '
        '"fantasma", que não existe.',
        f"{path}: imported quebrado revision 1",
    ]
    assert repo.get("quebrado")[0] == dangling()


def test_publish_is_refused_with_lint_errors(database, repo, tmp_path):
    path = write(tmp_path, dangling())
    result = papo("import", path, "--publish")
    assert result.exit_code == 1
    assert "dangling_edge" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        f"{path}: imported quebrado revision 1; not published: 1 lint error(s) must be fixed first")
    assert repo.draft("quebrado")["published_version"] is None
    assert papo("export", "quebrado").exit_code == 0  # the half-done work is saved


def test_not_json_exits_2_and_other_files_still_import(database, repo, tmp_path):
    broken = write(tmp_path, "{ nope", "broken.json")
    good = write(tmp_path, small_flow(), "good.json")
    bad = write(tmp_path, small_flow("outro", start=7), "bad.json")
    result = papo("import", broken, good, bad)
    assert result.exit_code == 2  # 2 wins over 1
    assert result.stdout.splitlines()[0].startswith(f"{broken}: error not_json: ")
    assert f"{good}: imported pequeno revision 1" in result.stdout
    assert f'{bad}: error invalid_flow: Fluxo: "Bloco inicial" (start) precisa ser um texto' in result.stdout
    assert repo.get("pequeno")[1] == 1


def test_missing_file_exits_2(database, tmp_path):
    missing = str(tmp_path / "nada.json")
    result = papo("import", missing)
    assert result.exit_code == 2
    assert result.stdout.startswith(f"{missing}: error unreadable: ")


def test_a_file_that_is_not_utf8_exits_2(database, tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(small_flow(name="Ação"), ensure_ascii=False).encode("utf-8").replace(b"\xc3\xa7", b"\xe7"))
    result = papo("import", str(path))
    assert result.exit_code == 2
    assert "not_json" in result.stdout


def test_an_older_schema_version_is_migrated(database, repo):
    fixture = ROOT / "tests" / "fixtures" / "v0_welcome.json"
    result = papo("import", str(fixture))
    assert result.exit_code == 0, result.output
    flow_id = json.loads(papo("export", result.stdout.split("imported ")[1].split()[0]).stdout)["id"]
    assert repo.get(flow_id)[0]["schema_version"] == 1
