"""The flows pages and the editor's server routes, through Flask's test client."""
from __future__ import annotations

import copy
import html as html_lib
import json
import re
from functools import partial
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

import pytest
from werkzeug.datastructures import MultiDict
from werkzeug.security import generate_password_hash

from blocks import REGISTRY
from editor import create_app
from editor.flows_ui import describe_diff, flow_diff
from engine import accounts
from engine.db import create_schema
from engine.flows import FlowRepository

ROOT = Path(__file__).resolve().parent.parent
WELCOME = ROOT / "sample_flows" / "boas-vindas.json"
EVERY_KIND = ROOT / "tests" / "fixtures" / "every_kind.json"


@pytest.fixture
def web(tmp_path, monkeypatch):
    """The web app on a fresh SQLite file with admin ``ana`` and agent ``bruno``."""
    monkeypatch.setattr(accounts, "generate_password_hash",
                        partial(generate_password_hash, method="pbkdf2:sha256:1"))
    app = create_app({
        "PAPO_DATABASE_URL": f"sqlite:///{tmp_path / 'papo.db'}",
        "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
        "TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": False,
    })
    engine = app.extensions["papo"]["engine"]
    create_schema(engine)
    accounts.create_user(engine, "ana", "admin", password="senha-de-teste", name="Ana")
    accounts.create_user(engine, "bruno", "agent", password="senha-de-teste", name="Bruno")
    yield app
    engine.dispose()


def _client(app, login: str):
    client = app.test_client()
    response = client.post("/login", data={"login": login, "password": "senha-de-teste"})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def admin(web):
    return _client(web, "ana")


@pytest.fixture
def agent(web):
    return _client(web, "bruno")


@pytest.fixture
def repo(web) -> FlowRepository:
    return FlowRepository(web.extensions["papo"]["engine"])


@pytest.fixture
def welcome(repo) -> dict:
    repo.create(WELCOME.read_bytes(), actor="ana")
    return json.loads(WELCOME.read_text(encoding="utf-8"))


def _upload(client, url: str, content: bytes, name: str = "fluxo.json", **headers):
    return client.post(url, data={"file": (BytesIO(content), name)},
                       content_type="multipart/form-data", headers=headers)


def _text(response) -> str:
    return response.get_data(as_text=True)


def _result(html: str) -> dict | None:
    found = re.search(r'<script type="application/json" class="papo-result">(.*?)</script>', html, re.S)
    return json.loads(found.group(1)) if found else None


def _field_errors(html: str) -> list[str]:
    return re.findall(r'class="field-error"[^>]*>(.*?)</p>', html)


# ---------------------------------------------------------------------- list page

def test_flows_page_lists_name_triggers_published_version_and_last_edit(admin, welcome, repo):
    repo.publish("boas-vindas", actor="ana")
    html = _text(admin.get("/flows"))
    assert "Boas-vindas" in html
    assert "“oi”" in html and "contém “bom dia”" in html and "padrão (qualquer mensagem)" in html
    assert "versão 1" in html
    assert "por ana" in html
    assert 'href="/flows/boas-vindas/edit"' in html


def test_agents_get_a_403_page_on_every_flows_route(agent, welcome):
    for method, url in (("GET", "/flows"), ("GET", "/flows/boas-vindas/edit"),
                        ("GET", "/flows/boas-vindas/export"), ("POST", "/flows"),
                        ("PUT", "/flows/boas-vindas/draft"), ("POST", "/flows/boas-vindas/publish")):
        response = agent.open(url, method=method)
        assert response.status_code == 403, url
        assert "administradores" in _text(response)


def test_anonymous_visitors_are_sent_to_login(web):
    response = web.test_client().get("/flows")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_creating_a_flow_opens_the_editor_with_a_start_message(admin, repo):
    response = admin.post("/flows", data={"id": "vendas", "name": "Vendas"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/flows/vendas/edit")
    doc, revision = repo.get("vendas")
    assert revision == 1 and doc["name"] == "Vendas"
    assert doc["start"] == "b1" and doc["blocks"][0]["type"] == "message"
    assert admin.get("/flows/vendas/edit").status_code == 200


def test_creating_with_a_bad_or_taken_id_shows_the_problem_beside_the_field(admin, welcome, repo):
    bad = admin.post("/flows", data={"id": "Não Pode", "name": "X"})
    assert bad.status_code == 422
    assert "letras minúsculas" in _text(bad)
    taken = admin.post("/flows", data={"id": "boas-vindas", "name": "Outro"},
                       headers={"HX-Request": "true"})
    assert taken.status_code == 422
    assert "Já existe um fluxo com o id “boas-vindas”" in _text(taken)
    assert repo.get("boas-vindas")[0]["name"] == "Boas-vindas"


def test_import_lists_structural_problems_per_path_and_block_and_stores_nothing(admin, repo):
    doc = json.loads(WELCOME.read_text(encoding="utf-8"))
    doc["blocks"][1]["data"]["text"] = ""
    doc["blocks"][2]["data"]["bogus"] = 1
    for headers in ({}, {"HX-Request": "true"}):
        response = _upload(admin, "/flows/import", json.dumps(doc).encode(), **headers)
        assert response.status_code == 422
        html = _text(response)
        assert 'data-block-id="menu"' in html and "$.blocks[1].data.text" not in html.split("data-path")[0]
        assert "Bloco &#34;Pergunta&#34; (menu): &#34;Pergunta&#34; (text) não pode ficar vazio" in html
        assert "o campo &#34;bogus&#34; não existe" in html
    twice = json.loads(WELCOME.read_text(encoding="utf-8"))
    twice["blocks"].append(copy.deepcopy(twice["blocks"][0]))
    response = _upload(admin, "/flows/import", json.dumps(twice).encode())
    assert response.status_code == 422 and "Dois blocos têm o mesmo id &#34;saudacao&#34;" in _text(response)
    assert repo.list() == []
    not_json = _upload(admin, "/flows/import", b"{oops")
    assert not_json.status_code == 422 and "JSON" in _text(not_json)


def test_import_stores_the_draft_and_shows_lint_findings(admin, repo):
    doc = json.loads(WELCOME.read_text(encoding="utf-8"))
    doc["edges"].append({"from": "obrigado", "port": "next", "to": "sumiu"})
    response = _upload(admin, "/flows/import", json.dumps(doc).encode(), **{"HX-Request": "true"})
    assert response.status_code == 200
    html = _text(response)
    assert "importado" in html and "sumiu" in html and "Erro" in html
    assert 'id="flows-table" hx-swap-oob="true"' in html
    assert repo.get("boas-vindas")[1] == 1


def test_importing_an_existing_id_is_refused_with_a_link_to_its_editor(admin, welcome):
    response = _upload(admin, "/flows/import", WELCOME.read_bytes())
    assert response.status_code == 409
    assert "/flows/boas-vindas/edit" in _text(response)


def test_export_downloads_the_document_exactly_as_stored(admin, welcome, repo):
    response = admin.get("/flows/boas-vindas/export")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == "attachment; filename=boas-vindas.json"
    assert response.mimetype == "application/json"
    stored = repo.get("boas-vindas")[0]
    assert json.loads(response.data) == stored
    assert list(json.loads(response.data)) == list(stored)  # key order kept too
    again = _upload(admin, "/flows/import", response.data.replace(b'"boas-vindas"', b'"copia-bv"'))
    assert again.status_code == 200


def test_rename_duplicate_and_delete_with_a_confirmation_step(admin, welcome, repo):
    assert "Boas-vindas" in _text(admin.get("/flows/boas-vindas/rename"))
    assert admin.post("/flows/boas-vindas/rename", data={"name": ""}).status_code == 422
    assert admin.post("/flows/boas-vindas/rename", data={"name": "Recepção"}).status_code == 302
    assert repo.get("boas-vindas")[0]["name"] == "Recepção"

    assert admin.post("/flows/boas-vindas/duplicate", data={"new_id": "boas-vindas", "name": "X"}).status_code == 422
    response = admin.post("/flows/boas-vindas/duplicate", data={"new_id": "recepcao-2", "name": "Recepção 2"},
                          headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/flows"
    assert repo.get("recepcao-2")[0]["blocks"] == repo.get("boas-vindas")[0]["blocks"]

    confirm = admin.get("/flows/recepcao-2/delete")
    assert confirm.status_code == 200 and "Sim, excluir o fluxo" in _text(confirm)
    assert "recepcao-2" in [f["id"] for f in repo.list()]  # asking deletes nothing
    assert admin.post("/flows/recepcao-2/delete").status_code == 302
    assert [f["id"] for f in repo.list()] == ["boas-vindas"]
    assert admin.get("/flows/recepcao-2/edit").status_code == 404


# ---------------------------------------------------------------------- saving drafts

def _put(client, doc, revision, **headers):
    if revision is not None:
        headers["If-Match"] = f'"{revision}"'
    return client.put("/flows/boas-vindas/draft", data=json.dumps(doc),
                      content_type="application/json", headers=headers)


def test_saving_a_draft_answers_the_new_revision_and_findings(admin, welcome, repo):
    doc = copy.deepcopy(welcome)
    doc["blocks"][0]["position"] = {"x": 10, "y": 20}
    response = _put(admin, doc, 1)
    assert response.status_code == 200
    assert response.json["revision"] == 2 and response.json["findings"] == []
    assert repo.get("boas-vindas") == (doc, 2)


def test_a_stale_save_is_a_409_with_the_conflict_message_and_changes_nothing(admin, welcome, repo):
    assert _put(admin, welcome, 1).status_code == 200
    doc = copy.deepcopy(welcome)
    doc["name"] = "Sobrescrito?"
    response = _put(admin, doc, 1)
    assert response.status_code == 409
    assert response.json["error"]["message"].startswith(
        "Este fluxo foi alterado em outra aba ou por outra pessoa")
    assert response.json["error"]["revision"] == 2
    assert repo.get("boas-vindas")[0]["name"] == "Boas-vindas"
    english = admin.put("/flows/boas-vindas/draft?lang=en", data=json.dumps(doc),
                        content_type="application/json", headers={"If-Match": "1"})
    assert english.json["error"]["message"].startswith("This flow was changed in another tab")


def test_a_save_needs_if_match_and_a_structurally_valid_document(admin, welcome):
    assert _put(admin, welcome, None).status_code == 428
    broken = copy.deepcopy(welcome)
    broken["blocks"][0]["data"] = {}
    response = _put(admin, broken, 1)
    assert response.status_code == 422
    assert response.json["error"]["details"][0]["path"] == "$.blocks[0].data"


# ---------------------------------------------------------------------- block forms

class _FormReader(HTMLParser):
    """The (name, value) pairs a browser would submit for the first form (no <template>)."""

    def __init__(self):
        super().__init__()
        self.pairs: list[tuple[str, str]] = []
        self._template = 0
        self._textarea: str | None = None
        self._select: str | None = None
        self._option: str | None = None
        self._selected = False
        self._form_done = False
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "template":
            self._template += 1
        if self._template or self._form_done:
            return
        if tag == "form":
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
            return  # a browser submits only ticked boxes
        if tag == "input" and attrs.get("name") and attrs.get("type") not in ("submit", "button", "file"):
            self.pairs.append((attrs["name"], attrs.get("value") or ""))
        elif tag == "textarea" and attrs.get("name"):
            self._textarea = attrs["name"]
            self.pairs.append((self._textarea, ""))
        elif tag == "select":
            self._select, self._option = attrs.get("name"), None
        elif tag == "option" and self._select:
            if self._option is None or "selected" in attrs:
                self._option = attrs.get("value", "")
                self._selected = self._selected or "selected" in attrs

    def handle_endtag(self, tag):
        if tag == "template":
            self._template -= 1
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select" and self._select:
            self.pairs.append((self._select, self._option or ""))
            self._select = None
        elif tag == "form" and self._in_form:
            self._in_form, self._form_done = False, True

    def handle_data(self, data):
        if self._textarea and not self._template:
            name, value = self.pairs[-1]
            self.pairs[-1] = (name, value + data)


def _form_pairs(html: str) -> list[tuple[str, str]]:
    reader = _FormReader()
    reader.feed(html)
    return reader.pairs


def _every_kind() -> dict:
    doc = json.loads(EVERY_KIND.read_text(encoding="utf-8"))
    doc["blocks"].append({"id": "menu", "type": "question", "data": {
        "text": "Escolha", "input": "choice", "save_as": "escolha",
        "options": [{"id": "a", "label": "Sim"}, {"id": "b", "label": "Não"}]}})
    doc["blocks"].append({"id": "hello", "type": "message", "data": {
        "text": "Oi {{ contact.name }}\n  com espaços  ", "buttons": ["Sim", "Não"]}})
    doc["blocks"].append({"id": "post", "type": "http_request", "data": {
        "method": "POST", "url": "https://api.example.com/x", "headers": {"X-Token": "abc"},
        "body": {"nome": "{{ contact.name }}", "n": [1, 2]}, "timeout_s": 2.5}})
    doc["blocks"].append({"id": "rate", "type": "question", "data": {
        "text": "Como você avalia o atendimento?", "input": "rating", "save_as": "csat", "csat": True}})
    doc["blocks"].append({"id": "passa", "type": "open_conversation", "data": {
        "text": "Um momento, {{ contact.name }}.", "note": "Pediu ajuda"}})
    doc["blocks"].append({"id": "calc", "type": "set_variable", "data": {
        "name": "total", "value": {"+": [{"var": "idade"}, 1]}}})
    return doc


@pytest.fixture
def every_kind(repo) -> dict:
    doc = _every_kind()
    repo.create(doc, actor="ana")
    return doc


def test_every_block_form_shows_every_field_of_its_schema(admin, every_kind):
    seen_kinds = set()
    for block in every_kind["blocks"]:
        html = _text(admin.get(f"/flows/todos-os-blocos/blocks/{block['id']}/form"))
        declared = {value for name, value in _form_pairs(html) if name == "_fields"}
        assert declared == set(REGISTRY[block["type"]].data_schema["properties"]), block["type"]
        seen_kinds.add(block["type"])
    assert seen_kinds == set(REGISTRY)


def test_every_block_data_survives_a_trip_through_its_form(admin, every_kind):
    for block in every_kind["blocks"]:
        url = f"/flows/todos-os-blocos/blocks/{block['id']}/form"
        pairs = _form_pairs(_text(admin.get(url)))
        response = admin.post(url, data=MultiDict(pairs))
        assert response.status_code == 200, (block["id"], _field_errors(_text(response)))
        result = _result(_text(response))
        assert result["data"] == block["data"], block["id"]
        assert result["ports"] == REGISTRY[block["type"]].ports(block["data"])


def test_invalid_block_fields_come_back_with_their_errors_as_422(admin, every_kind):
    url = "/flows/todos-os-blocos/blocks/menu/form"
    response = admin.post(url, data=MultiDict([
        ("_type", "question"), ("_fields", "text"), ("text", ""), ("_fields", "input"),
        ("input", "choice"), ("_fields", "options"), ("_fields", "save_as"), ("save_as", "2x"),
        ("_fields", "max_attempts"), ("max_attempts", "três")]))
    assert response.status_code == 422
    html = _text(response)
    errors = _field_errors(html)
    assert "Este campo não pode ficar vazio." in errors
    assert "Este campo precisa de pelo menos 1 item(ns)." in errors
    assert any(e.startswith("Este campo tem um formato inválido") for e in errors)
    assert "Digite um número inteiro." in errors
    assert 'value="três"' in html  # what the person typed is kept
    assert _result(html) is None


def test_a_new_option_gets_a_fresh_id_and_a_changed_choice_changes_the_ports(admin, every_kind):
    url = "/flows/todos-os-blocos/blocks/menu/form"
    response = admin.post(url, data=MultiDict([
        ("_type", "question"), ("_fields", "text"), ("text", "Escolha"), ("_fields", "input"),
        ("input", "choice"), ("_fields", "options"), ("options.id", "b"), ("options.label", "Não"),
        ("options.id", ""), ("options.label", "Talvez"), ("options.id", ""), ("options.label", ""),
        ("_fields", "save_as"), ("save_as", "escolha")]))
    result = _result(_text(response))
    assert result["data"]["options"] == [{"id": "b", "label": "Não"}, {"id": "o1", "label": "Talvez"}]
    assert result["ports"] == ["b", "o1", "invalid", "timeout"]
    assert 'data-port="o1"' in result["html"] and ">Talvez<" in result["html"]


def test_a_text_answer_drops_the_options_instead_of_failing(admin, every_kind):
    response = admin.post("/flows/todos-os-blocos/blocks/menu/form", data=MultiDict([
        ("_type", "question"), ("_fields", "text"), ("text", "Nome?"), ("_fields", "input"),
        ("input", "text"), ("_fields", "options"), ("options.id", "a"), ("options.label", "Sim"),
        ("_fields", "save_as"), ("save_as", "nome")]))
    assert _result(_text(response))["data"] == {"text": "Nome?", "input": "text", "save_as": "nome"}


def test_card_text_is_escaped(admin, every_kind):
    attack = '<img src=x onerror=alert(1)>'
    response = admin.post("/flows/todos-os-blocos/blocks/hello/form", data=MultiDict([
        ("_type", "message"), ("_fields", "text"), ("text", attack)]))
    card = _result(_text(response))["html"]
    assert "<img" not in card and "&lt;img src=x onerror=alert(1)&gt;" in card
    assert 'data-block-id="hello"' in card


def test_the_variable_picker_lists_saved_variables_and_contact_name(admin, every_kind):
    html = _text(admin.get("/flows/todos-os-blocos/blocks/hello/form"))
    offered = re.findall(r'data-insert-var="([^"]+)"', html)
    assert offered[0] == "contact.name"
    assert {"idade", "saudacao", "cliente", "escolha", "total"} <= set(offered)


def test_the_block_form_shows_where_each_port_leads(admin, welcome):
    html = _text(admin.get("/flows/boas-vindas/blocks/menu/form"))
    selects = re.findall(r'<select id="edge-\d+" data-edge-from="menu" data-edge-port="([^"]+)">(.*?)</select>', html, re.S)
    assert [port for port, _options in selects] == ["produtos", "pedido", "atendente", "invalid", "timeout"]
    chosen = {port: re.findall(r'<option value="([^"]*)" selected', options) for port, options in selects}
    assert chosen == {"produtos": ["produtos"], "pedido": ["numero_pedido"],
                      "atendente": ["chama_atendente"], "invalid": ["menu_nao_entendi"], "timeout": []}
    assert "Saída “Ver produtos” leva a" in html


def test_settings_form_validates_and_hands_back_the_settings(admin, welcome):
    bad = admin.post("/flows/boas-vindas/settings", data={"name": "", "priority": "alta"})
    assert bad.status_code == 422
    assert {"Dê um nome ao fluxo.", "Digite um número inteiro."} <= set(_field_errors(_text(bad)))
    good = admin.post("/flows/boas-vindas/settings", data=MultiDict([
        ("name", "Recepção"), ("description", ""), ("priority", "5"),
        ("triggers.type", "keyword"), ("triggers.match", "contains"), ("triggers.value", "oi"),
        ("triggers.type", "default"), ("triggers.match", "exact"), ("triggers.value", "")]))
    assert _result(_text(good))["settings"] == {
        "name": "Recepção", "description": "", "priority": 5,
        "triggers": [{"type": "keyword", "match": "contains", "value": "oi"}, {"type": "default"}]}


def test_import_draft_reads_a_file_for_the_page_or_lists_its_problems(admin, welcome, every_kind):
    bad = _upload(admin, "/flows/boas-vindas/import-draft", b'{"schema_version": 1}')
    assert bad.status_code == 422
    assert "$.id" in _text(bad) or "obrigatório" in _text(bad)
    good = _upload(admin, "/flows/boas-vindas/import-draft", EVERY_KIND.read_bytes())
    assert good.status_code == 200
    result = _result(_text(good))
    assert result["action"] == "replace" and result["doc"]["id"] == "boas-vindas"
    assert set(result["cards"]) == {b["id"] for b in result["doc"]["blocks"]}
    assert "todos-os-blocos" in _text(good)  # "the file was flow X; imported as Y"


# ---------------------------------------------------------------------- validate, publish, versions

def test_validate_lists_findings_that_focus_their_block(admin, welcome, repo):
    doc = copy.deepcopy(welcome)
    doc["blocks"][0]["data"]["text"] = "Olá {{ contact.name"
    repo.update("boas-vindas", doc, 1, actor="ana")
    html = _text(admin.get("/flows/boas-vindas/findings"))
    assert 'data-focus-block="saudacao"' in html and "erro de modelo" in html
    assert "1 erro" in html


def test_publish_is_refused_with_the_findings_then_publishes_version_1(admin, welcome, repo):
    doc = copy.deepcopy(welcome)
    doc["edges"].append({"from": "obrigado", "port": "next", "to": "sumiu"})
    repo.update("boas-vindas", doc, 1, actor="ana")
    refused = admin.post("/flows/boas-vindas/publish")
    assert refused.status_code == 422
    assert "Não foi publicado" in _text(refused) and "sumiu" in _text(refused)
    repo.update("boas-vindas", welcome, 2, actor="ana")
    published = admin.post("/flows/boas-vindas/publish", headers={"HX-Request": "true"})
    assert published.status_code == 200
    html = _text(published)
    assert "Versão 1 publicada." in html
    assert 'id="published-badge" class="published-badge" hx-swap-oob="true"' in html
    assert repo.versions("boas-vindas")[0]["published_by"] == "ana"


def test_versions_show_what_changed_and_roll_back_by_publishing_an_old_one(admin, welcome, repo):
    repo.publish("boas-vindas", actor="ana")
    doc = copy.deepcopy(welcome)
    doc["blocks"].append({"id": "extra", "type": "message", "data": {"text": "Mais"}})
    doc["edges"].append({"from": "obrigado", "port": "next", "to": "extra"})
    doc["blocks"][0]["data"]["text"] = "Oi!"
    repo.update("boas-vindas", doc, 1, actor="ana")
    repo.publish("boas-vindas", actor="ana")
    html = html_lib.unescape(_text(admin.get("/flows/boas-vindas/versions")))
    # blocks by title (id after it), exits by their labels, and what changed, old → new
    assert '1 bloco adicionado: "Mais" (extra)' in html
    assert '1 bloco alterado: "Oi!" (saudacao)' in html
    assert '"Oi!" (saudacao): Texto: “Olá, {{ contact.name }}! 👋 Bem-vindo(a) à Loja da Ana.” → “Oi!”' in html
    assert ('1 ligação adicionada: "Obrigada pela avaliação, {{ contact.name…" (obrigado) '
            '→Em seguida→ "Mais" (extra)') in html
    assert "→next→" not in html
    assert "Publicar esta versão" in html
    rolled = admin.post("/flows/boas-vindas/publish", data={"version": "1"})
    assert "A versão 1 foi publicada de novo como versão 3 e está no rascunho." in _text(rolled)
    assert repo.published("boas-vindas") == (welcome, 3)
    # "Publicar esta versão" also put it in the draft (a new revision): the page adopts it
    result = _result(_text(rolled))
    assert result["action"] == "restored" and result["doc"] == welcome and result["revision"] == 3
    assert set(result["cards"]) == {b["id"] for b in welcome["blocks"]}
    assert repo.get("boas-vindas") == (welcome, 3)


def test_flow_diff_names_blocks_and_edges_added_removed_changed_and_moved():
    old = {"name": "A", "start": "a", "blocks": [
        {"id": "a", "type": "message", "position": {"x": 0, "y": 0}, "data": {"text": "1"}},
        {"id": "b", "type": "message", "data": {"text": "2"}},
        {"id": "c", "type": "wait", "data": {"seconds": 5}}],
        "edges": [{"from": "a", "port": "next", "to": "b"}]}
    new = {"name": "B", "start": "a", "blocks": [
        {"id": "a", "type": "message", "position": {"x": 9, "y": 0}, "data": {"text": "1"}},
        {"id": "b", "type": "message", "data": {"text": "dois"}},
        {"id": "d", "type": "wait", "data": {"seconds": 5}}],
        "edges": [{"from": "a", "port": "next", "to": "d"}]}
    diff = flow_diff(old, new)
    assert diff == {"blocks_added": ["d"], "blocks_removed": ["c"], "blocks_changed": ["b"],
                    "blocks_moved": ["a"], "edges_added": [("a", "next", "d")],
                    "edges_removed": [("a", "next", "b")], "settings_changed": ["name"]}
    assert flow_diff(new, new) == {k: [] for k in diff}
    assert flow_diff(None, new)["blocks_added"] == ["a", "b", "d"]


def test_describe_diff_speaks_portuguese_and_english(web):
    diff = {"blocks_added": ["x", "y"], "edges_removed": [("a", "next", "b")],
            "settings_changed": ["triggers"]}
    with web.test_request_context("/"):
        assert describe_diff(diff) == ["2 blocos adicionados: x, y",
                                       "1 ligação removida: a →next→ b",
                                       "Configurações alteradas: gatilhos"]
    with web.test_request_context("/?lang=en"):
        assert describe_diff(diff) == ["2 blocks added: x, y", "1 connection removed: a →next→ b",
                                       "Settings changed: triggers"]


def test_describe_diff_with_the_documents_says_what_changed_in_each_block(web):
    old = {"blocks": [{"id": "b1", "type": "question", "data": {
               "text": "Qual sabor?", "input": "choice", "save_as": "sabor",
               "options": [{"id": "o1", "label": "Calabresa"}]}},
           {"id": "b2", "type": "condition", "data": {"rules": []}}], "edges": []}
    new = copy.deepcopy(old)
    new["blocks"][0]["data"].update(text="Qual sabor você quer?", max_attempts=2)
    new["blocks"][0]["data"]["options"].append({"id": "o2", "label": "Atum"})
    new["edges"] = [{"from": "b1", "port": "o2", "to": "b2"}]
    with web.test_request_context("/"):
        lines = describe_diff(flow_diff(old, new), old, new)
    assert lines == [
        '1 bloco alterado: "Qual sabor você quer?" (b1)',
        '"Qual sabor você quer?" (b1): Pergunta: “Qual sabor?” → “Qual sabor você quer?”; '
        'Opções: + “Atum”; Tentativas: 2 (novo)',
        '1 ligação adicionada: "Qual sabor você quer?" (b1) →Atum→ "Condição" (b2)']
    with web.test_request_context("/?lang=en"):
        english = describe_diff(flow_diff(old, new), old, new)
    assert english[1].startswith('"Qual sabor você quer?" (b1): Question: “Qual sabor?” → “Qual sabor você quer?”')
    assert english[2] == '1 connection added: "Qual sabor você quer?" (b1) →Atum→ "Condition" (b2)'


# ---------------------------------------------------------------------- the editor page

def _boot(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="flow-data">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def test_editor_page_carries_the_document_cards_ports_and_the_simulator_slot(admin, welcome):
    html = _text(admin.get("/flows/boas-vindas/edit"))
    boot = _boot(html)
    assert boot["doc"] == welcome and list(boot["doc"]) == list(welcome)
    assert boot["revision"] == 1
    assert boot["cards"]["menu"]["ports"] == ["produtos", "pedido", "atendente", "invalid", "timeout"]
    assert 'data-block-id="menu"' in boot["cards"]["menu"]["html"]
    assert '<aside id="simulator"' in html
    for label in ("Validar", "Publicar", "Desfazer", "Refazer", "Exportar", "Importar"):
        assert re.search(rf"<button[^>]*>{label}</button>", html), label
    assert {item["type"] for item in boot["palette"].values()} == set(REGISTRY)


def test_palette_offers_a_csat_rating_preset_and_a_handoff_text(admin, welcome):
    html = _text(admin.get("/flows/boas-vindas/edit"))
    assert re.search(r'<li[^>]*data-kind="csat"[^>]*>Avaliação \(CSAT\)</li>', html)
    palette = _boot(html)["palette"]
    assert palette["csat"]["type"] == "question"
    assert palette["csat"]["data"]["input"] == "rating" and palette["csat"]["data"]["csat"] is True
    assert palette["open_conversation"]["data"]["text"] == (
        "Um momento, vou te passar para alguém da nossa equipe.")
    english = _text(admin.get("/flows/boas-vindas/edit?lang=en"))
    assert re.search(r'<li[^>]*data-kind="csat"[^>]*>Rating \(CSAT\)</li>', english)


def test_editor_speaks_english_with_lang_en(admin, welcome):
    html = _text(admin.get("/flows/boas-vindas/edit?lang=en"))
    for label in ("Validate", "Publish", "Undo", "Redo", "Export", "Import"):
        assert re.search(rf"<button[^>]*>{label}</button>", html), label
    assert "Fit to screen" in html
    assert _boot(html)["messages"]["conflict"].startswith("This flow was changed")
    assert "Triggers" in _text(admin.get("/flows"))
