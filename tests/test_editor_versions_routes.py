"""The editor's draft and versions routes (DESIGN §10.1 "Drafts and versions")."""
from __future__ import annotations

import copy
import json
import re

from test_editor_routes import WELCOME, _text, admin, repo, web  # noqa: F401  (fixtures)


def _result(html: str) -> dict:
    return json.loads(re.search(r'class="papo-result">(.*?)</script>', html, re.S).group(1))


def _welcome(repo):  # noqa: F811
    doc = json.loads(WELCOME.read_text(encoding="utf-8"))
    repo.create(doc, actor="ana")
    return doc


def test_the_header_says_when_the_draft_differs_from_the_published_version(admin, repo):  # noqa: F811
    doc = _welcome(repo)
    repo.publish("boas-vindas", actor="ana")
    page = _text(admin.get("/flows/boas-vindas/edit"))
    assert re.search(r'id="draft-changes"[^>]*hidden', page)
    changed = copy.deepcopy(doc)
    changed["blocks"][0]["data"]["text"] = "Oi de novo!"
    saved = admin.put("/flows/boas-vindas/draft", data=json.dumps(changed),
                      headers={"If-Match": '"1"', "Content-Type": "application/json"})
    assert saved.status_code == 200 and saved.get_json()["unpublished"] is True
    page = _text(admin.get("/flows/boas-vindas/edit"))
    assert "Rascunho com alterações não publicadas" in page
    assert not re.search(r'id="draft-changes"[^>]*hidden', page)
    back = admin.put("/flows/boas-vindas/draft", data=json.dumps(doc),
                     headers={"If-Match": '"2"', "Content-Type": "application/json"})
    assert back.get_json()["unpublished"] is False


def test_restore_to_draft_makes_a_new_draft_revision_and_publishes_nothing(admin, repo):  # noqa: F811
    doc = _welcome(repo)
    repo.publish("boas-vindas", actor="ana")
    changed = copy.deepcopy(doc)
    changed["blocks"][0]["data"]["text"] = "Versão dois"
    repo.update("boas-vindas", changed, 1, actor="ana")
    response = admin.post("/flows/boas-vindas/versions/1/restore")
    html = _text(response)
    assert response.status_code == 200
    assert "A versão 1 foi copiada para o rascunho." in html
    result = _result(html)  # the page adopts the new draft and its revision
    assert result["action"] == "restored" and result["doc"] == doc and result["revision"] == 3
    assert set(result["cards"]) == {b["id"] for b in doc["blocks"]}
    assert repo.get("boas-vindas") == (doc, 3)
    assert repo.published("boas-vindas")[1] == 1
    assert admin.post("/flows/boas-vindas/versions/9/restore").status_code == 404
    assert repo.get("boas-vindas")[1] == 3  # nothing stored for an unknown version


def test_publishing_with_warnings_asks_first_then_publishes_anyway(admin, repo):  # noqa: F811
    doc = _welcome(repo)
    doc["blocks"].append({"id": "solto", "type": "message", "data": {"text": "Ninguém chega aqui"}})
    repo.update("boas-vindas", doc, 1, actor="ana")
    asked = admin.post("/flows/boas-vindas/publish")
    html = _text(asked)
    assert asked.status_code == 200
    assert "Publicar mesmo assim" in html and 'data-focus-block="solto"' in html
    assert repo.versions("boas-vindas") == []
    done = admin.post("/flows/boas-vindas/publish", data={"confirm": "1"})
    assert "Versão 1 publicada." in _text(done)
    assert repo.published("boas-vindas")[1] == 1


def test_the_header_says_what_starts_the_flow_and_a_new_flow_starts_on_its_name(admin, repo):  # noqa: F811
    created = admin.post("/flows", data={"id": "pedido-de-pizza", "name": "Pedido de Pizza"})
    assert created.headers["Location"].endswith("/flows/pedido-de-pizza/edit")
    # from the list page (htmx): the browser goes to the flow's own address at once
    again = admin.post("/flows", data={"id": "pizza-2", "name": "Pizza 2"}, headers={"HX-Request": "true"})
    assert again.headers["HX-Redirect"].endswith("/flows/pizza-2/edit")
    assert repo.get("pedido-de-pizza")[0]["triggers"] == [
        {"type": "keyword", "match": "exact", "value": "pedido de pizza"}]
    page = _text(admin.get("/flows/pedido-de-pizza/edit"))
    assert "Começa quando o cliente diz: pedido de pizza" in page
    doc = _welcome(repo)
    doc["triggers"] = [{"type": "keyword", "match": "exact", "value": "oi"},
                       {"type": "keyword", "match": "exact", "value": "olá"}, {"type": "default"}]
    repo.update("boas-vindas", doc, 1, actor="ana")
    assert "Começa quando o cliente diz: oi, olá · ou por padrão" in _text(admin.get("/flows/boas-vindas/edit"))
    doc["triggers"] = []
    repo.update("boas-vindas", doc, 2, actor="ana")
    assert "Nenhum gatilho: este fluxo não começa sozinho" in _text(admin.get("/flows/boas-vindas/edit"))
    english = _text(admin.get("/flows/boas-vindas/edit?lang=en"))
    assert "No trigger: this flow never starts on its own" in english


def test_the_builder_and_the_versions_panel_speak_english_under_lang_en(admin, repo):  # noqa: F811
    _welcome(repo)
    repo.publish("boas-vindas", actor="ana")
    versions = _text(admin.get("/flows/boas-vindas/versions?lang=en"))
    assert "Restore to draft" in versions
    page = _text(admin.get("/flows/boas-vindas/edit?lang=en"))
    assert "Rating (CSAT)" in page and "Draft with unpublished changes" in page
    doc = repo.get("boas-vindas")[0]
    doc["blocks"].append({"id": "regra", "type": "condition",
                          "data": {"rules": [{"port": "sim", "when": {"==": [{"var": "escolha"}, "x"]}}]}})
    repo.update("boas-vindas", doc, 1, actor="ana")
    form = _text(admin.get("/flows/boas-vindas/blocks/regra/form?lang=en"))
    assert "Advanced rule (JSONLogic)" in form and ">equals</option>" in form and "Add condition" in form
