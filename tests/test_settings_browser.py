"""The "Configurações" page in Chromium, as a shop owner sets business hours (DESIGN
§10.3): the week grid, a holiday, the closed message; a mistake explained and nothing
lost; an agent reads it but cannot change it."""
from __future__ import annotations

import os

import pytest
from browser_support import ADMIN, AGENT

from engine import hours_store

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("PAPO_SCREENSHOTS")  # a folder: keep the screenshots to look at


def _shot(page, name, tmp_path):
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True, caret="initial")
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True, caret="initial")


def _stored(live_server):
    from editor.app import get_engine

    return hours_store.load(get_engine(live_server.app))


def test_an_admin_sets_business_hours_fixes_a_mistake_and_saves(new_page, live_server, tmp_path):
    page = new_page(login=ADMIN)
    page.get_by_role("link", name="Configurações").click()
    page.get_by_role("heading", name="Horário de atendimento").wait_for()
    assert "sempre aberto" in page.get_by_test_id("hours-now").inner_text()
    _shot(page, "settings-empty", tmp_path)

    page.get_by_label("Segunda-feira, faixa 1: abre").fill("9:00")
    assert page.get_by_label("Usar horário de atendimento").is_checked()  # ticked by typing
    page.get_by_label("Segunda-feira, faixa 1: fecha").fill("12:00")
    page.get_by_label("Segunda-feira, faixa 2: abre").fill("11:00")  # overlaps the first
    page.get_by_label("Segunda-feira, faixa 2: fecha").fill("18:00")
    page.get_by_label("Sábado, faixa 1: abre").fill("09:00")
    page.get_by_label("Sábado, faixa 1: fecha").fill("25:00")  # not a time
    page.get_by_label("Feriados (fechado o dia todo)").fill("25/12/2026\n01/01/2027")
    page.get_by_role("button", name="Salvar").click()

    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Nada foi salvo" in alert.inner_text()
    assert "Segunda-feira, faixa 2" in alert.inner_text() and "se sobrepõe" in alert.inner_text()
    assert "25:00" in alert.inner_text()
    assert page.get_by_label("Segunda-feira, faixa 2: abre").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Sábado, faixa 1: fecha").input_value() == "25:00"  # kept as typed
    assert page.get_by_label("Feriados (fechado o dia todo)").input_value() == "25/12/2026\n01/01/2027"
    assert _stored(live_server) is None
    _shot(page, "settings-errors", tmp_path)

    page.get_by_label("Segunda-feira, faixa 2: abre").fill("13:00")
    page.get_by_role("button", name="Repetir nos dias úteis").click()
    assert page.get_by_label("Sexta-feira, faixa 2: abre").input_value() == "13:00"
    page.get_by_label("Sábado, faixa 1: fecha").fill("13:00")
    page.get_by_label("Mensagem fora do horário").fill("Voltamos {{ next_open }}!")
    page.get_by_role("button", name="Salvar").click()
    page.get_by_role("status").filter(has_text="salvo").wait_for()
    saved = _stored(live_server).to_json()
    assert saved["week"]["mon"] == [["09:00", "12:00"], ["13:00", "18:00"]]
    assert saved["week"]["fri"] == saved["week"]["mon"]
    assert saved["week"]["sat"] == [["09:00", "13:00"]] and saved["week"]["sun"] == []
    assert saved["holidays"] == ["2026-12-25", "2027-01-01"]
    assert saved["closed_message"] == "Voltamos {{ next_open }}!"
    assert saved["timezone"] == "America/Sao_Paulo"
    now = page.get_by_test_id("hours-now").inner_text()
    assert "Aberto agora" in now or "Fechado agora" in now
    _shot(page, "settings-saved", tmp_path)

    page.reload()
    assert page.get_by_label("Segunda-feira, faixa 2: fecha").input_value() == "18:00"
    assert page.get_by_label("Feriados (fechado o dia todo)").input_value() == "25/12/2026\n01/01/2027"
    assert page.csp_violations == []


def test_an_agent_reads_the_hours_but_cannot_change_them(new_page, live_server, tmp_path):
    page = new_page(login=AGENT)
    page.get_by_role("link", name="Configurações").click()
    page.get_by_text("Só administradores podem mudar").wait_for()
    assert page.get_by_role("button", name="Salvar").count() == 0
    assert page.get_by_label("Usar horário de atendimento").is_disabled()
    status = page.request.post(f"{live_server.url}/settings/business-hours",
                               form={"enabled": "on", "mon-0-start": "09:00", "mon-0-end": "18:00"})
    assert status.status in (400, 403)  # no CSRF token, and not an admin either way
    assert _stored(live_server) is None


def test_the_page_speaks_english(new_page, live_server):
    page = new_page(login=ADMIN, lang="en")
    page.goto(f"{live_server.url}/settings?lang=en")
    page.get_by_role("heading", name="Business hours").wait_for()
    page.get_by_label("Monday, range 1: opens").fill("09:00")
    assert page.get_by_role("link", name="Settings").count() == 1


def test_the_editor_offers_the_block_and_the_interrupting_trigger(new_page, live_server, tmp_path):
    from test_editor_browser import card, drop, open_block, saved

    page = new_page(login=ADMIN)
    page.goto(f"{live_server.url}/flows")
    page.get_by_label("Nome", exact=True).fill("Menu")
    page.get_by_role("button", name="Criar fluxo").click()
    page.wait_for_url("**/flows/menu/edit")
    page.wait_for_function("() => window.papoEditor && window.papoEditor.ready")

    page.locator("#btn-triggers").click()
    triggers = page.locator("#panel-body")
    triggers.get_by_role("button", name="Adicionar gatilho").wait_for()
    assert "funciona mesmo no meio de uma pergunta" in triggers.inner_text()
    triggers.get_by_role("combobox", name="No meio de uma pergunta 1").select_option(
        label="Interrompe: funciona mesmo no meio de uma pergunta")
    triggers.get_by_role("button", name="Salvar configurações").click()
    page.wait_for_function(
        "() => papoEditor.document().triggers.some(t => t.interrupts === true)")
    saved(page)

    block_id = drop(page, "business_hours", 420, 260)
    expect_ports = card(page, block_id).inner_text()
    assert "Aberto" in expect_ports and "Fechado" in expect_ports
    open_block(page, block_id)
    assert "Configurações" in page.locator("#panel-body").inner_text()
    saved(page)
    _shot(page, "editor-business-hours", tmp_path)
    from editor.app import get_engine
    from engine.flows import FlowRepository

    doc, _ = FlowRepository(get_engine(live_server.app)).get("menu")
    assert doc["triggers"][0]["interrupts"] is True
    assert any(b["type"] == "business_hours" for b in doc["blocks"])
