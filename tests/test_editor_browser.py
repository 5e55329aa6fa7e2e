"""A person builds, edits, validates and publishes flows in the visual editor (Chromium).

Set ``PAPO_SCREENSHOTS=1`` to (re)write docs/screenshots/editor.png from the welcome flow.
"""
# The browser fixtures are imported here too, so the file runs with any conftest.
# ruff: noqa: F811
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from browser_support import AGENT

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
WELCOME = ROOT / "sample_flows" / "boas-vindas.json"
SCREENSHOT = ROOT / "docs" / "screenshots" / "editor.png"


def repo(live_server):
    from editor.app import get_engine
    from engine.flows import FlowRepository

    return FlowRepository(get_engine(live_server.app))


def open_editor(page, live_server, flow_id: str, lang: str | None = None):
    query = "?lang=en" if lang == "en" else ""
    page.goto(f"{live_server.url}/flows/{flow_id}/edit{query}")
    page.wait_for_function("() => window.papoEditor && window.papoEditor.ready")
    return page


def saved(page) -> int:
    """Wait until every change is saved; the revision the page now holds."""
    return page.evaluate("window.papoEditor.save()")


def card(page, block_id: str):
    return page.locator(f'#canvas [data-block-id="{block_id}"]')


def drop(page, kind: str, x: int, y: int) -> str:
    """Drag a kind from the palette onto the canvas at (x, y); the new block's id."""
    close_panel(page)  # adding a block opens its form over the canvas's right side
    before = set(page.evaluate("papoEditor.document().blocks.map(b => b.id)"))
    page.locator(f'.palette-item[data-kind="{kind}"]').drag_to(
        page.locator("#canvas"), target_position={"x": x, "y": y})
    page.wait_for_function(f"() => papoEditor.document().blocks.length === {len(before) + 1}")
    (new_id,) = set(page.evaluate("papoEditor.document().blocks.map(b => b.id)")) - before
    return new_id


def connect(page, from_id: str, output: int, to_id: str):
    page.locator(f"#node-{from_id} .output_{output}").drag_to(page.locator(f"#node-{to_id} .input_1"))


def close_panel(page):
    if page.locator("#panel").is_visible():
        page.get_by_role("button", name="Fechar painel").click()
        page.locator("#panel").wait_for(state="hidden")


def open_block(page, block_id: str):
    card(page, block_id).locator(".card-head").click()
    page.locator(f'#panel-body [data-form-block="{block_id}"]').wait_for()


def save_block(page):
    page.get_by_role("button", name="Salvar bloco").click()
    page.get_by_text("Bloco atualizado.").wait_for()
    saved(page)


def import_welcome_via_list_page(page, live_server):
    page.goto(f"{live_server.url}/flows")
    page.set_input_files("#import-file-list", str(WELCOME))
    page.get_by_role("button", name="Importar", exact=True).click()
    page.get_by_text("Fluxo “Boas-vindas” importado.").wait_for()


# ---------------------------------------------------------------------- building a flow

def test_a_person_builds_validates_and_publishes_a_flow_from_the_palette(new_page, live_server):
    page = new_page()
    page.goto(f"{live_server.url}/flows")
    page.get_by_label("Nome", exact=True).fill("Atendimento teste")
    page.get_by_label("Identificador (id)").fill("atendimento-teste")
    page.get_by_role("button", name="Criar fluxo").click()
    page.wait_for_url("**/flows/atendimento-teste/edit")
    page.wait_for_function("() => window.papoEditor && window.papoEditor.ready")
    assert page.locator("#canvas [data-block-id]").count() == 1  # the start message
    assert "is-start" in card(page, "b1").get_attribute("class")

    message = drop(page, "message", 60, 60)
    question = drop(page, "question", 60, 330)
    handoff = drop(page, "open_conversation", 620, 520)
    assert page.locator("#canvas [data-block-id]").count() == 4
    close_panel(page)

    connect(page, "b1", 1, message)
    connect(page, message, 1, question)
    connect(page, question, 1, handoff)  # the first option
    saved(page)
    assert {(e["from"], e["port"], e["to"]) for e in repo(live_server).get("atendimento-teste")[0]["edges"]} == {
        ("b1", "next", message), (message, "next", question), (question, "o1", handoff)}

    open_block(page, message)
    page.get_by_label("Texto").fill("Olá {{ contact.name")  # a broken template
    save_block(page)
    open_block(page, question)
    page.get_by_label("Pergunta", exact=True).fill("Como posso ajudar?")
    page.get_by_label("Opção 1", exact=True).fill("Ver planos")
    page.get_by_label("Opção 2", exact=True).fill("Falar com atendente")
    save_block(page)
    assert card(page, question).locator('.card-ports li[data-port="o1"]').inner_text() == "Ver planos"

    page.get_by_role("button", name="Validar").click()
    error = page.locator(".finding-error").first
    error.wait_for()
    assert "erro de modelo" in error.inner_text()
    # the unconnected option warns, named as the card shows it
    assert 'a saída "Falar com atendente" não está ligada' in page.locator(".findings-panel").inner_text()
    assert "has-error" in card(page, message).get_attribute("class")
    error.get_by_role("button").click()
    assert "is-focused" in card(page, message).get_attribute("class")

    page.get_by_role("button", name="Publicar", exact=True).click()
    page.get_by_text("Não foi publicado.").wait_for()
    assert repo(live_server).versions("atendimento-teste") == []

    open_block(page, message)
    page.get_by_label("Texto").fill("Olá, {{ contact.name }}!")
    save_block(page)
    page.get_by_role("button", name="Validar").click()
    page.get_by_text("0 erros").wait_for()
    assert "has-error" not in card(page, message).get_attribute("class")

    page.get_by_role("button", name="Publicar", exact=True).click()
    # the unconnected option is a warning: shown, and publishing asks once more
    page.get_by_role("button", name="Publicar mesmo assim").click()
    page.get_by_text("Versão 1 publicada.").wait_for()
    assert page.locator("#published-badge").inner_text().strip() == "Publicado: versão 1"
    doc, version = repo(live_server).published("atendimento-teste")
    assert version == 1
    assert [b["data"].get("options") for b in doc["blocks"] if b["id"] == question] == [
        [{"id": "o1", "label": "Ver planos"}, {"id": "o2", "label": "Falar com atendente"}]]
    assert page.dialogs == []


def test_clicking_a_palette_item_adds_the_block_for_keyboard_users(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    item = page.locator('.palette-item[data-kind="wait"]')
    item.focus()
    page.keyboard.press("Enter")
    page.locator('#panel-body [data-form-block="b1"]').wait_for()
    assert card(page, "b1").count() == 1
    saved(page)
    assert any(b["type"] == "wait" for b in repo(live_server).get("boas-vindas")[0]["blocks"])


# ---------------------------------------------------------------------- files

def test_export_then_import_gives_back_the_same_document(new_page, live_server, tmp_path):
    page = new_page()
    import_welcome_via_list_page(page, live_server)
    open_editor(page, live_server, "boas-vindas")
    if os.environ.get("PAPO_SCREENSHOTS"):
        page.wait_for_timeout(400)  # let the simulator pane load
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))

    with page.expect_download() as download:
        page.get_by_role("button", name="Exportar").click()
    assert download.value.suggested_filename == "boas-vindas.json"
    exported = tmp_path / "boas-vindas.json"
    download.value.save_as(exported)
    first = json.loads(exported.read_text(encoding="utf-8"))
    assert first == json.loads(WELCOME.read_text(encoding="utf-8"))

    revision = page.evaluate("papoEditor.revision()")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Importar").click()
    chooser.value.set_files(str(exported))
    page.get_by_text("o rascunho foi substituído").wait_for()
    assert saved(page) == revision + 1
    doc, _revision = repo(live_server).get("boas-vindas")
    assert doc == first
    assert list(doc) == list(first)

    with page.expect_download() as again:
        page.get_by_role("button", name="Exportar").click()
    assert json.loads(Path(again.value.path()).read_text(encoding="utf-8")) == first


def test_importing_a_broken_file_in_the_editor_lists_the_problems_and_keeps_the_draft(
        new_page, live_server, tmp_path):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    broken = tmp_path / "quebrado.json"
    doc = json.loads(WELCOME.read_text(encoding="utf-8"))
    doc["blocks"][1]["data"]["input"] = "telepatia"
    broken.write_text(json.dumps(doc), encoding="utf-8")
    page.set_input_files("#import-draft-file", str(broken))
    problems = page.locator("#panel-body .problems")
    problems.wait_for()
    assert ('Bloco "Como posso te ajudar hoje?": "Tipo de resposta" (input) não aceita "telepatia"'
            in problems.inner_text())
    assert repo(live_server).get("boas-vindas")[1] == 1


# ---------------------------------------------------------------------- editing

def test_undo_brings_a_deleted_block_back_and_redo_removes_it_again(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    original = repo(live_server).get("boas-vindas")[0]
    page = open_editor(new_page(), live_server, "boas-vindas")
    open_block(page, "produtos")
    page.get_by_role("button", name="Excluir bloco").click()
    card(page, "produtos").wait_for(state="detached")
    saved(page)
    doc = repo(live_server).get("boas-vindas")[0]
    assert "produtos" not in [b["id"] for b in doc["blocks"]]
    assert ("menu", "produtos", "produtos") not in [(e["from"], e["port"], e["to"]) for e in doc["edges"]]

    page.get_by_role("button", name="Desfazer").click()
    card(page, "produtos").wait_for()
    saved(page)
    assert repo(live_server).get("boas-vindas")[0] == original
    assert page.locator('.connection.node_out_node-menu.node_in_node-produtos').count() == 1

    page.get_by_role("button", name="Refazer").click()
    card(page, "produtos").wait_for(state="detached")
    page.locator("#canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")
    card(page, "produtos").wait_for()
    saved(page)
    assert repo(live_server).get("boas-vindas")[0] == original


def test_the_start_block_cannot_be_deleted(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    card(page, "saudacao").click()
    page.keyboard.press("Delete")
    page.get_by_text("Este é o bloco inicial e não pode ser excluído").wait_for()
    assert card(page, "saudacao").count() == 1
    page.get_by_role("button", name="Excluir bloco").click()
    assert card(page, "saudacao").count() == 1
    assert page.evaluate("papoEditor.document().start") == "saudacao"


def test_connecting_a_port_that_is_already_connected_replaces_its_edge(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    page.evaluate("papoEditor.focusBlock('saudacao')")
    connect(page, "saudacao", 1, "menu")  # the same edge again: nothing changes
    connect(page, "chama_atendente", 1, "atendente")
    page.evaluate("papoEditor.focusBlock('obrigado')")
    connect(page, "obrigado", 1, "csat")
    connect(page, "obrigado", 1, "atendente")
    page.get_by_text("a ligação anterior desta saída foi substituída").first.wait_for()
    saved(page)
    edges = [(e["from"], e["port"], e["to"]) for e in repo(live_server).get("boas-vindas")[0]["edges"]]
    assert [e for e in edges if e[0] == "obrigado"] == [("obrigado", "next", "atendente")]
    assert page.locator(".connection.node_out_node-obrigado").count() == 1


def test_a_stale_tab_gets_the_conflict_message_instead_of_overwriting(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    first = open_editor(new_page(), live_server, "boas-vindas")
    second = open_editor(new_page(), live_server, "boas-vindas")

    open_block(first, "produtos")
    first.get_by_label("Texto").fill("Promoção da semana!")
    save_block(first)

    open_block(second, "produtos")
    second.get_by_label("Texto").fill("Texto da outra aba")
    second.get_by_role("button", name="Salvar bloco").click()
    alert = second.locator("#conflict")
    alert.wait_for()
    assert "Este fluxo foi alterado em outra aba ou por outra pessoa" in alert.inner_text()
    assert repo(live_server).get("boas-vindas")[0]["blocks"][2]["data"]["text"] == "Promoção da semana!"

    second.get_by_role("button", name="Recarregar").click()
    second.wait_for_function("() => window.papoEditor && window.papoEditor.ready && !document.querySelector('#conflict:not([hidden])')")
    assert "Promoção da semana!" in card(second, "produtos").inner_text()


def test_a_network_error_keeps_the_changes_and_saves_them_on_retry(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    page.route("**/flows/boas-vindas/draft", lambda route: route.abort())
    open_block(page, "csat")
    page.get_by_role("button", name="Definir como início").click()
    offline = page.locator("#offline")
    offline.wait_for()
    assert "sem conexão" in offline.inner_text()
    assert page.evaluate("papoEditor.document().start") == "csat"
    page.unroute("**/flows/boas-vindas/draft")
    page.get_by_role("button", name="Tentar de novo").click()
    offline.wait_for(state="hidden")
    assert page.locator("#save-status").inner_text() == "Salvo"
    assert repo(live_server).get("boas-vindas")[0]["start"] == "csat"


def test_customer_style_text_in_a_block_shows_as_text(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    attack = "<img src=x onerror=alert(1)>"
    open_block(page, "produtos")
    page.get_by_label("Texto").fill(attack)
    save_block(page)
    assert attack in card(page, "produtos").inner_text()
    assert card(page, "produtos").locator("img").count() == 0
    page.reload()
    page.wait_for_function("() => window.papoEditor && window.papoEditor.ready")
    assert attack in card(page, "produtos").inner_text()
    page.wait_for_timeout(300)
    assert page.dialogs == []


def test_the_simulator_contract_highlight_focus_save_and_saved_event(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    if page.locator("#simulator section.sim").count():
        # the pane clears the mark when its state loads
        page.locator("#sim-state:not([aria-busy='true'])").wait_for()
    assert page.evaluate("papoEditor.flowId") == "boas-vindas"
    assert page.evaluate("papoEditor.revision()") == 1
    page.evaluate("papoEditor.highlight('menu')")
    assert "is-current" in card(page, "menu").get_attribute("class")
    page.evaluate("papoEditor.highlight('csat')")
    assert "is-current" not in card(page, "menu").get_attribute("class")
    assert "is-current" in card(page, "csat").get_attribute("class")
    page.evaluate("papoEditor.clearHighlight()")
    assert page.locator("#canvas .is-current").count() == 0
    assert page.evaluate("papoEditor.focusBlock('obrigado')") is True
    assert "is-focused" in card(page, "obrigado").get_attribute("class")

    page.evaluate("""() => { window.savedEvents = [];
        document.addEventListener('papo:saved', e => window.savedEvents.push(e.detail.revision)); }""")
    page.evaluate("papoEditor.setStart('menu')")
    assert page.evaluate("papoEditor.save()") == 2
    assert page.evaluate("window.savedEvents") == [2]
    assert page.evaluate("papoEditor.save()") == 2  # nothing pending: resolves at once


# ---------------------------------------------------------------------- access and language

def test_agents_get_a_403_page_on_the_flows_pages(new_page, live_server):
    page = new_page(login=AGENT)
    response = page.goto(f"{live_server.url}/flows")
    assert response.status == 403
    assert "administradores" in page.content()
    assert page.goto(f"{live_server.url}/flows/boas-vindas/edit").status == 403


def test_the_editor_speaks_english_with_lang_en(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(lang="en"), live_server, "boas-vindas", lang="en")
    for name in ("Validate", "Publish", "Undo", "Redo", "Export", "Import", "Fit to screen"):
        assert page.get_by_role("button", name=name, exact=True).is_visible(), name
    page.get_by_role("button", name="Validate", exact=True).click()
    page.get_by_text("No problems found. The flow can be published.").wait_for()
    open_block(page, "menu")
    assert page.get_by_role("button", name="Save block").is_visible()


def test_a_port_can_be_connected_from_the_block_form_without_dragging(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    open_block(page, "produtos")
    page.get_by_label("Saída “Em seguida” leva a").select_option("obrigado")
    saved(page)
    assert page.locator(".connection.node_out_node-produtos.node_in_node-obrigado").count() == 1
    edges = repo(live_server).get("boas-vindas")[0]["edges"]
    assert {"from": "produtos", "port": "next", "to": "obrigado"} in edges
    page.get_by_label("Saída “Em seguida” leva a").select_option("")
    saved(page)
    assert page.locator(".connection.node_out_node-produtos").count() == 0
    assert all(e["from"] != "produtos" for e in repo(live_server).get("boas-vindas")[0]["edges"])


def test_a_connection_is_removed_by_selecting_it_and_pressing_delete(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    path = page.locator(".connection.node_out_node-csat.node_in_node-obrigado path")
    path.dispatch_event("mousedown", {"button": 0})
    path.dispatch_event("mouseup", {"button": 0})
    page.locator("#canvas").press("Delete")
    path.wait_for(state="detached")
    saved(page)
    assert all(e["from"] != "csat" for e in repo(live_server).get("boas-vindas")[0]["edges"])
    page.get_by_role("button", name="Desfazer").click()
    path.wait_for()


def test_the_flows_list_renames_duplicates_and_deletes_after_confirming(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = new_page()
    page.goto(f"{live_server.url}/flows")
    row = page.locator('tr[data-flow-id="boas-vindas"]')
    row.get_by_role("link", name="Renomear").click()
    page.get_by_label("Novo nome").fill("Recepção")
    page.get_by_role("button", name="Salvar nome").click()
    page.locator('tr[data-flow-id="boas-vindas"] .flow-name', has_text="Recepção").wait_for()

    page.locator('tr[data-flow-id="boas-vindas"]').get_by_role("link", name="Duplicar").click()
    page.get_by_label("Identificador (id) da cópia").fill("recepcao-2")
    page.get_by_role("button", name="Criar cópia").click()
    copy_row = page.locator('tr[data-flow-id="recepcao-2"]')
    copy_row.wait_for()
    assert "Recepção (cópia)" in copy_row.inner_text()

    copy_row.get_by_role("link", name="Excluir").click()
    page.get_by_role("alertdialog").wait_for()
    assert page.locator('tr[data-flow-id="recepcao-2"]').count() == 1  # nothing deleted yet
    page.get_by_role("button", name="Sim, excluir o fluxo").click()
    page.locator('tr[data-flow-id="recepcao-2"]').wait_for(state="detached")
    assert [f["id"] for f in repo(live_server).list()] == ["boas-vindas"]
    assert page.dialogs == []


def test_removing_an_option_drops_its_edge_and_renaming_a_rule_keeps_it(new_page, live_server):
    doc = json.loads(WELCOME.read_text(encoding="utf-8"))
    doc["blocks"].append({"id": "regra", "type": "condition", "position": {"x": 40, "y": 500},
                          "data": {"rules": [{"port": "vip", "when": {"==": [{"var": "escolha"}, "x"]}}]}})
    doc["edges"] += [{"from": "obrigado", "port": "next", "to": "regra"},
                     {"from": "regra", "port": "vip", "to": "chama_atendente"}]
    repo(live_server).create(doc, actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")

    open_block(page, "menu")
    page.get_by_role("button", name="Remover opção 1").click()
    save_block(page)
    page.get_by_text("Ligações de saídas que não existem mais foram removidas.").wait_for()
    edges = {(e["from"], e["port"], e["to"]) for e in repo(live_server).get("boas-vindas")[0]["edges"]}
    assert ("menu", "produtos", "produtos") not in edges
    assert {("menu", "pedido", "numero_pedido"), ("menu", "atendente", "chama_atendente")} <= edges
    assert page.locator(".connection.node_out_node-menu").count() == 3  # with "Resposta inválida"

    open_block(page, "regra")
    page.get_by_label("Saída da regra 1").fill("cliente_vip")
    save_block(page)
    edges = {(e["from"], e["port"], e["to"]) for e in repo(live_server).get("boas-vindas")[0]["edges"]}
    assert ("regra", "cliente_vip", "chama_atendente") in edges
    assert card(page, "regra").locator('.card-ports li[data-port="cliente_vip"]').count() == 1
