"""The canvas as a person uses it (DESIGN §10.1 "Canvas"), in Chromium, mouse and keyboard."""
# ruff: noqa: F811
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect
from test_editor_browser import WELCOME, card, open_editor, repo

pytestmark = pytest.mark.browser


def edges_of(live_server, flow_id: str) -> set[tuple[str, str, str]]:
    return {(e["from"], e["port"], e["to"]) for e in repo(live_server).get(flow_id)[0]["edges"]}


def wait_saved(page):
    expect(page.locator("#save-status")).to_have_attribute("data-state", "saved")


def test_clicking_a_connection_and_pressing_delete_or_backspace_removes_it(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    page.get_by_role("button", name="Validar").click()  # a button of the page has the focus
    for key, (source, target) in (("Delete", ("csat", "obrigado")), ("Backspace", ("atendente", "csat"))):
        path = page.locator(f".connection.node_out_node-{source}.node_in_node-{target} path")
        page.mouse.click(*middle_of(path))
        expect(path).to_have_class("main-path selected")
        page.keyboard.press(key)
        expect(path).to_have_count(0)
        wait_saved(page)
        assert all(not (e[0] == source and e[2] == target) for e in edges_of(live_server, "boas-vindas"))
    page.get_by_role("button", name="Desfazer").click()
    expect(page.locator(".connection.node_out_node-atendente.node_in_node-csat")).to_have_count(1)


def middle_of(path) -> tuple[float, float]:
    """Where a person clicks a connection: the middle of the curve, in page coordinates
    (read only; the click itself is a real mouse click)."""
    return tuple(path.evaluate(
        "p => { const m = p.getPointAtLength(p.getTotalLength() / 2);"
        " const q = new DOMPoint(m.x, m.y).matrixTransform(p.getScreenCTM()); return [q.x, q.y]; }"))


def test_a_selected_block_is_deleted_with_the_keyboard_and_undo_brings_it_back(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    card(page, "produtos").locator(".card-head").click()
    page.keyboard.press("Backspace")
    expect(card(page, "produtos")).to_have_count(0)
    expect(page.get_by_text("Bloco excluído.")).to_be_visible()
    wait_saved(page)
    assert "produtos" not in {b["id"] for b in repo(live_server).get("boas-vindas")[0]["blocks"]}
    page.get_by_role("button", name="Desfazer").click()
    expect(card(page, "produtos")).to_have_count(1)


def test_the_plus_of_a_free_output_adds_the_next_block_already_connected(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    plus = page.locator('#node-obrigado .port-add[data-port="next"]')
    expect(plus).to_have_attribute("aria-label", "Adicionar o próximo bloco por esta saída: Em seguida")
    assert page.locator('#node-saudacao .port-add').count() == 0  # connected: no "+"
    # "Sem resposta" without a time limit never happens: no "+" there either
    assert page.locator('#node-menu .port-add[data-port="timeout"]').count() == 0
    plus.click()
    page.get_by_role("menu", name="Próximo bloco").get_by_role("menuitem", name="Mensagem").click()
    form = page.locator("#panel-body [data-form-block]")
    form.wait_for()
    new_id = form.get_attribute("data-form-block")
    wait_saved(page)
    assert ("obrigado", "next", new_id) in edges_of(live_server, "boas-vindas")
    expect(page.locator('#node-obrigado .port-add')).to_have_count(0)
    # the new block is in view, left of the side panel
    box, panel = card(page, new_id).bounding_box(), page.locator("#panel").bounding_box()
    assert box["x"] + box["width"] <= panel["x"]
    # one undo takes back the block and its connection
    page.get_by_role("button", name="Desfazer").click()
    expect(card(page, new_id)).to_have_count(0)
    wait_saved(page)
    assert all(e[0] != "obrigado" for e in edges_of(live_server, "boas-vindas"))


def test_a_deleted_blocks_id_is_never_given_to_a_new_block(new_page, live_server):
    doc = json.loads(WELCOME.read_text(encoding="utf-8"))
    doc["blocks"].append({"id": "b7", "type": "message", "position": {"x": 900, "y": 600},
                          "data": {"text": "Apagar depois"}})
    repo(live_server).create(doc, actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    card(page, "b7").locator(".card-head").click()
    page.keyboard.press("Delete")
    wait_saved(page)
    page.reload()
    page.wait_for_function("window.papoEditor && window.papoEditor.ready")
    page.locator('.palette-item[data-kind="message"]').click()
    form = page.locator("#panel-body [data-form-block]")
    form.wait_for()
    assert form.get_attribute("data-form-block") == "b8"


def test_at_1366_by_768_the_canvas_stays_usable_with_the_panel_open(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = new_page()
    page.set_viewport_size({"width": 1366, "height": 768})
    open_editor(page, live_server, "boas-vindas")
    card(page, "menu").locator(".card-head").click()
    page.locator("#panel-body [data-form-block]").wait_for()
    canvas, panel = page.locator("#canvas").bounding_box(), page.locator("#panel").bounding_box()
    assert panel["x"] - canvas["x"] >= 800  # the panel covers the simulator, not the canvas
    expect(page.get_by_role("button", name="Publicar", exact=True)).to_be_in_viewport()
    # the palette folds away, and stays folded after a reload
    page.get_by_role("button", name="Recolher ou mostrar os blocos").click()
    expect(page.locator(".palette-item").first).to_be_hidden()
    page.reload()
    expect(page.locator(".palette-item").first).to_be_hidden()
    page.get_by_role("button", name="Recolher ou mostrar os blocos").click()
    expect(page.locator(".palette-item").first).to_be_visible()
    legend = page.get_by_role("list", name="Legenda das bordas")
    expect(legend).to_contain_text("Erro: impede publicar")
    expect(legend).to_contain_text("Aviso")


def test_a_block_dropped_where_the_panel_opens_lands_beside_it(new_page, live_server):
    repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = new_page()
    page.set_viewport_size({"width": 1366, "height": 768})
    open_editor(page, live_server, "boas-vindas")
    page.get_by_role("button", name="Simulador").click()  # the panel now opens over the canvas
    canvas = page.locator("#canvas").bounding_box()
    page.locator('.palette-item[data-kind="message"]').drag_to(
        page.locator("#canvas"), target_position={"x": canvas["width"] - 40, "y": 200})
    form = page.locator("#panel-body [data-form-block]")
    form.wait_for()
    box = card(page, form.get_attribute("data-form-block")).bounding_box()
    assert box["x"] + box["width"] <= page.locator("#panel").bounding_box()["x"]


def test_the_condition_builder_adds_rows_and_switches_to_advanced_in_the_panel(new_page, live_server):
    doc = json.loads(WELCOME.read_text(encoding="utf-8"))
    doc["blocks"].append({"id": "regra", "type": "condition", "position": {"x": 40, "y": 600},
                          "data": {"rules": [{"port": "vip", "when": {"==": [{"var": "escolha"}, "Ver planos"]}}]}})
    repo(live_server).create(doc, actor="admin")
    page = open_editor(new_page(), live_server, "boas-vindas")
    card(page, "regra").locator(".card-head").click()
    form = page.locator("#panel-body")
    form.get_by_role("button", name="Adicionar condição").click()
    form.get_by_label("Variável da condição 2 da regra 1").select_option("contact.tags")
    form.get_by_label("Operador da condição 2 da regra 1").select_option(label="contém")
    form.get_by_label("Valor da condição 2 da regra 1").fill("vip")
    form.get_by_label("Segue por esta saída quando").select_option(label="qualquer")
    form.get_by_role("button", name="Regra avançada (JSONLogic)").click()
    advanced = form.get_by_label("Regra avançada (JSONLogic), regra 1")
    expect(advanced).to_be_visible()
    assert json.loads(advanced.input_value()) == {"or": [
        {"==": [{"var": "escolha"}, "Ver planos"]}, {"in": ["vip", {"var": "contact.tags"}]}]}
    form.get_by_role("button", name="Usar o construtor").click()
    expect(form.get_by_label("Valor da condição 2 da regra 1")).to_have_value("vip")
    form.get_by_role("button", name="Salvar bloco").click()
    expect(card(page, "regra")).to_contain_text("escolha é igual a Ver planos ou Etiquetas do contato contém vip")
    wait_saved(page)
    rule = next(b for b in repo(live_server).get("boas-vindas")[0]["blocks"] if b["id"] == "regra")
    assert rule["data"]["rules"][0]["when"]["or"][1] == {"in": ["vip", {"var": "contact.tags"}]}
