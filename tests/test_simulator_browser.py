"""A person tries flows in the simulator pane in Chromium: standalone and inside the editor."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from browser_support import ADMIN, AGENT
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SAMPLE_FLOWS = Path(__file__).resolve().parent.parent / "sample_flows"
XSS = "<img src=x onerror=alert(1)>"


def _import(live_server, name: str, change=None) -> str:
    from editor.app import get_engine
    from engine.flows import FlowRepository

    doc = json.loads((SAMPLE_FLOWS / f"{name}.json").read_text(encoding="utf-8"))
    if change:
        doc = change(copy.deepcopy(doc))
    FlowRepository(get_engine(live_server.app)).create(doc, actor="admin")
    return doc["id"]


def _open_simulator(new_page, live_server, flow_id: str, lang: str | None = None):
    page = new_page(login=ADMIN, lang=lang)
    page.goto(f"{live_server.url}/flows/{flow_id}/simulator" + ("?lang=en" if lang == "en" else ""))
    return page


def _send(page, text: str, button: str = "Enviar", box: str = "Mensagem"):
    page.get_by_label(box, exact=True).fill(text)
    page.get_by_role("button", name=button, exact=True).click()


def _chat(page):
    return page.locator(".sim-chat")


def _status(page):
    return page.locator("#sim-status")


def test_welcome_flow_menu_agent_csat_and_restart(new_page, live_server):
    _import(live_server, "boas-vindas")
    page = _open_simulator(new_page, live_server, "boas-vindas")
    _send(page, "oi")
    expect(_chat(page)).to_contain_text("Olá, Admin! 👋 Bem-vindo(a) à Loja da Ana.")
    expect(_chat(page)).to_contain_text("Como posso te ajudar hoje?")
    for option in ("Ver produtos", "Status do pedido", "Falar com atendente"):
        expect(page.get_by_role("button", name=option, exact=True)).to_be_visible()
    expect(page.locator("#sim-state")).to_have_attribute("data-current-block", "menu")
    expect(page.get_by_label("Mensagem", exact=True)).to_have_value("")

    page.get_by_role("button", name="Falar com atendente", exact=True).click()
    expect(_status(page)).to_contain_text("Atendimento aberto: o bot está em silêncio")
    expect(_chat(page)).to_contain_text("Já vou te passar para uma pessoa")
    expect(page.get_by_role("button", name="Falar com atendente", exact=True)).to_have_count(0)

    page.get_by_role("button", name="Concluir", exact=True).click()
    expect(_chat(page)).to_contain_text("De 1 a 5, como foi o atendimento?")
    expect(_status(page)).to_contain_text("Aguardando a resposta do cliente")

    _send(page, "5")
    expect(_chat(page)).to_contain_text("Obrigada pela avaliação, Admin!")
    variables = page.get_by_role("region", name="Variáveis")
    expect(variables.get_by_role("row", name="csat 5")).to_be_visible()
    expect(variables).to_contain_text("Falar com atendente")

    page.get_by_role("button", name="Reiniciar", exact=True).click()
    expect(_chat(page)).not_to_contain_text("Loja da Ana")
    expect(_chat(page)).to_contain_text("Nenhuma mensagem ainda.")
    expect(variables.get_by_role("row")).to_have_count(0)
    assert page.dialogs == []


def test_enter_sends_and_the_cursor_stays_in_the_message_box(new_page, live_server):
    _import(live_server, "boas-vindas")
    page = _open_simulator(new_page, live_server, "boas-vindas")
    box = page.get_by_label("Mensagem", exact=True)
    box.fill("menu")
    box.press("Enter")
    expect(_chat(page)).to_contain_text("Como posso te ajudar hoje?")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    expect(_chat(page)).to_contain_text("Qual é o número do seu pedido?")


def test_reminder_flow_advance_time_fires_the_wait(new_page, live_server):
    _import(live_server, "lembrete")
    page = _open_simulator(new_page, live_server, "lembrete")
    page.get_by_role("button", name="Avançar tempo", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Nada agendado")).to_be_visible()

    _send(page, "lembrete")
    page.get_by_role("button", name="Sim, em 1 hora", exact=True).click()
    expect(_chat(page)).to_contain_text("Combinado!")
    expect(_status(page)).to_contain_text("Aguardando o tempo passar")
    expect(page.locator("#sim-state")).to_have_attribute("data-current-block", "espera_1h")

    page.get_by_role("button", name="Avançar tempo", exact=True).click()
    expect(_chat(page)).to_contain_text("⏰ Lembrete da Loja da Ana")
    expect(_chat(page)).to_contain_text("⏩ 1 h depois")
    expect(_status(page)).to_contain_text("Fluxo encerrado")


def test_a_script_in_a_block_text_shows_as_text_and_never_runs(new_page, live_server):
    def poisoned(doc):
        doc["blocks"][0]["data"]["text"] = f"Olá {XSS}"
        doc["blocks"][1]["data"]["options"][0]["label"] = "<b>x</b>"
        return doc

    _import(live_server, "boas-vindas", poisoned)
    page = _open_simulator(new_page, live_server, "boas-vindas")
    _send(page, f"oi {XSS}")
    expect(_chat(page)).to_contain_text(f"Olá {XSS}")
    expect(page.get_by_role("button", name="<b>x</b>", exact=True)).to_be_visible()
    page.get_by_role("button", name="<b>x</b>", exact=True).click()
    expect(page.get_by_role("region", name="Variáveis")).to_contain_text("<b>x</b>")
    assert page.locator(".sim-chat img, .sim-chat b, .sim-vars b").count() == 0
    page.wait_for_timeout(300)
    assert page.dialogs == []


def test_english_labels(new_page, live_server):
    _import(live_server, "boas-vindas")
    page = _open_simulator(new_page, live_server, "boas-vindas", lang="en")
    for label in ("Send", "Open conversation", "Conclude", "Advance time", "Restart"):
        expect(page.get_by_role("button", name=label, exact=True)).to_be_visible()
    _send(page, "oi", button="Send", box="Message")
    expect(_status(page)).to_contain_text("Waiting for the customer's answer")
    page.get_by_role("button", name="Open conversation", exact=True).click()
    expect(_status(page)).to_contain_text("the bot is silent")
    page.get_by_role("button", name="Conclude", exact=True).click()
    expect(_status(page)).to_contain_text("Flow ended")


def test_agents_cannot_open_the_simulator(new_page, live_server):
    _import(live_server, "boas-vindas")
    page = new_page(login=AGENT)
    response = page.goto(f"{live_server.url}/flows/boas-vindas/simulator")
    assert response.status == 403
    expect(page.get_by_role("button", name="Enviar", exact=True)).to_have_count(0)


def test_inside_the_flow_editor_the_pane_runs_and_highlights_the_current_block(new_page, live_server):
    _import(live_server, "boas-vindas")
    page = new_page(login=ADMIN)
    pane = _open_editor(page, live_server, "boas-vindas")
    _send(pane, "oi")
    expect(pane.locator(".sim-chat")).to_contain_text("Como posso te ajudar hoje?")
    expect(pane.locator("#sim-state")).to_have_attribute("data-current-block", "menu")
    # the canvas marks the block once the pane's new state has settled: wait for it
    page.wait_for_function("""() => {
        const card = document.querySelector('[data-block-id="menu"]');
        const classes = card && (card.className + ' ' + (card.closest('.drawflow-node') || card).className);
        return !!classes && /highlight|current|active|running/.test(classes);
    }""", timeout=5_000)
    pane.get_by_role("button", name="Falar com atendente", exact=True).click()
    expect(pane.locator("#sim-status")).to_contain_text("o bot está em silêncio")
    assert page.dialogs == []


def _open_editor(page, live_server, flow_id: str):
    """The editor page with the simulator pane beside the canvas."""
    response = page.goto(f"{live_server.url}/flows/{flow_id}/edit")
    assert response.status == 200
    assert page.locator("aside#simulator").count() == 1
    page.wait_for_function("() => !!window.papoEditor")
    return page.locator("aside#simulator")


def test_inside_the_editor_each_action_first_saves_the_draft(new_page, live_server):
    _import(live_server, "boas-vindas")
    page = new_page(login=ADMIN)
    pane = _open_editor(page, live_server, "boas-vindas")
    page.evaluate("""() => {
        const save = window.papoEditor.save;
        window.__saves = 0;
        window.papoEditor.save = function () { window.__saves += 1; return save.apply(this, arguments); };
    }""")
    _send(pane, "oi")
    expect(pane.locator(".sim-chat")).to_contain_text("Como posso te ajudar hoje?")
    pane.get_by_role("button", name="Reiniciar", exact=True).click()
    expect(pane.locator(".sim-chat")).to_contain_text("Nenhuma mensagem ainda.")
    assert page.evaluate("window.__saves") == 2


def test_inside_the_editor_draft_errors_refresh_after_a_save_and_point_at_their_block(new_page, live_server):
    def dangling(doc):
        doc["edges"].append({"from": "produtos", "port": "next", "to": "fantasma"})
        return doc

    flow_id = _import(live_server, "boas-vindas", dangling)
    page = new_page(login=ADMIN)
    pane = _open_editor(page, live_server, flow_id)
    findings = pane.locator("#sim-findings")
    expect(findings).to_contain_text("fantasma")
    findings.get_by_role("button", name="produtos").click()
    expect(page.locator('[data-block-id="produtos"]').first).to_be_focused()

    from editor.app import get_engine
    from engine.flows import FlowRepository

    repo = FlowRepository(get_engine(live_server.app))
    doc, revision = repo.get(flow_id)
    doc["edges"] = [e for e in doc["edges"] if e["to"] != "fantasma"]
    repo.update(flow_id, doc, revision, actor="admin")
    page.evaluate("() => document.dispatchEvent(new CustomEvent('papo:saved', {detail: {}}))")
    expect(findings).not_to_contain_text("fantasma")
