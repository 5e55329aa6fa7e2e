"""WhatsApp's window and templates in Chromium (DESIGN §10.4): the block form's template
picker and the inbox's window banner and "Enviar modelo" composer, as a shop would use them."""
from __future__ import annotations

import os
import time

import pytest
from browser_support import AGENT
from playwright.sync_api import expect

from engine import whatsapp_templates
from engine.settings import Settings

pytestmark = pytest.mark.browser
HOUR = 3600.0

TEMPLATES = [
    {"name": "pedido_pronto", "language": "pt_BR", "status": "APPROVED", "category": "UTILITY",
     "components": [{"type": "BODY", "text": "Olá {{1}}, seu pedido {{2}} está pronto!"}]},
    {"name": "retomar_conversa", "language": "pt_BR", "status": "APPROVED", "category": "UTILITY",
     "components": [{"type": "BODY", "text": "Oi {{1}}! Podemos continuar seu atendimento?"}]},
]


def synced(live_server, fake_graph) -> None:
    from editor.app import get_engine

    fake_graph.templates = list(TEMPLATES)
    fake_graph.page_size = 1
    settings = Settings(whatsapp_token="t", whatsapp_business_account_id="1",
                        whatsapp_api_base=fake_graph.api_base)
    assert whatsapp_templates.sync(get_engine(live_server.app), settings, time.time()).ok


def shot(page, tmp_path, name: str) -> None:
    page.screenshot(path=os.path.join(os.environ.get("PAPO_SCREENSHOTS") or str(tmp_path), name),
                    full_page=True, caret="initial")


def test_the_block_form_picks_a_template_and_shows_its_body_filled(new_page, live_server, fake_graph,
                                                                   tmp_path):
    from editor.app import get_engine
    from engine.flows import FlowRepository

    synced(live_server, fake_graph)
    doc = {"schema_version": 1, "id": "pedido", "name": "Pedido",
           "triggers": [{"type": "keyword", "match": "exact", "value": "oi"}], "start": "b1",
           "blocks": [{"id": "b1", "type": "message", "position": {"x": 80, "y": 80},
                       "data": {"text": "Seu pedido está pronto!"}}], "edges": []}
    repo = FlowRepository(get_engine(live_server.app))
    repo.create(doc)
    page = new_page()
    page.goto(f"{live_server.url}/flows/pedido/edit")
    page.wait_for_function("() => window.papoEditor && window.papoEditor.ready")
    page.locator('#canvas [data-block-id="b1"] .card-head').click()
    page.locator('#panel-body [data-form-block="b1"]').wait_for()
    page.get_by_label("Modelo do WhatsApp (fora da janela de 24 h)").select_option("pedido_pronto|pt_BR")
    page.get_by_label("Parâmetro {{1}}").fill("{{ contact.name }}")
    page.get_by_label("Parâmetro {{2}}").fill("A-17")
    preview = page.locator("#panel-body [data-template-preview]")
    expect(preview).to_have_text("Olá {{ contact.name }}, seu pedido A-17 está pronto!")
    shot(page, tmp_path, "template-picker-block.png")
    page.get_by_role("button", name="Salvar bloco").click()
    page.get_by_text("Bloco atualizado.").wait_for()
    page.evaluate("window.papoEditor.save()")
    data = repo.get("pedido")[0]["blocks"][0]["data"]
    assert data["template"] == {"name": "pedido_pronto", "language": "pt_BR",
                                "params": ["{{ contact.name }}", "A-17"]}
    # the form opens again with the choice, its parameters and the preview
    page.locator('#canvas [data-block-id="b1"] .card-head').click()
    expect(page.locator("#panel-body [data-template-preview]")).to_have_text(
        "Olá {{ contact.name }}, seu pedido A-17 está pronto!")


def test_the_inbox_shows_the_window_and_sends_a_template_once_it_closed(new_page, live_server,
                                                                       fake_graph, tmp_path):
    synced(live_server, fake_graph)
    service = live_server.service()
    now = time.time()
    fresh = service.handle_inbound("whatsapp", {"external_id": "5511900000001", "name": "Bia"},
                                   {"id": "wamid.W1", "text": "oi"}, at=now - HOUR + 60)["conversation_id"]
    late = service.handle_inbound("whatsapp", {"external_id": "5511900000002", "name": "Cida"},
                                  {"id": "wamid.W2", "text": "ainda tem bolo?"},
                                  at=now - 30 * HOUR)["conversation_id"]
    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/inbox/{fresh}")
    expect(page.locator("#window-banner")).to_have_text("Janela de 24 h: fecha em 23 h")
    expect(page.get_by_role("button", name="Enviar", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Enviar modelo")).to_be_hidden()

    page.goto(f"{live_server.url}/inbox/{late}")
    expect(page.locator("#window-banner")).to_contain_text("Janela fechada")
    expect(page.get_by_role("button", name="Enviar", exact=True)).to_be_hidden()
    page.get_by_label("Modelo", exact=True).select_option("retomar_conversa|pt_BR")
    page.get_by_label("Parâmetro {{1}}").fill("Cida")
    expect(page.locator("#template-form [data-template-preview]")).to_have_text(
        "Oi Cida! Podemos continuar seu atendimento?")
    shot(page, tmp_path, "inbox-window-closed.png")
    page.get_by_role("button", name="Enviar modelo").click()
    expect(page.locator("#conv-live .timeline")).to_contain_text("Oi Cida! Podemos continuar seu atendimento?")
    conv = service.get_conversation(late)
    assert conv["messages"][-1]["author"] == AGENT[0] and conv["status"] == "open"


def test_the_settings_page_syncs_templates_with_its_button(new_page, live_server, fake_graph, tmp_path):
    from editor.app import get_settings

    fake_graph.templates = list(TEMPLATES)
    fake_graph.page_size = 1
    settings = get_settings(live_server.app)
    object.__setattr__(settings, "whatsapp_business_account_id", "1")
    object.__setattr__(settings, "whatsapp_token", "t")
    object.__setattr__(settings, "whatsapp_api_base", fake_graph.api_base)
    page = new_page()
    page.goto(f"{live_server.url}/inbox")
    page.get_by_role("link", name="Configurações").click()
    page.get_by_role("navigation", name="Seções das configurações").get_by_role("link", name="WhatsApp").click()
    expect(page.get_by_role("heading", name="WhatsApp", exact=True)).to_be_visible()
    expect(page.get_by_text("Nenhum modelo sincronizado ainda.")).to_be_visible()
    page.get_by_role("button", name="Sincronizar modelos").click()
    expect(page.get_by_role("status")).to_have_text(
        "2 modelos aprovados sincronizados (0 ainda não aprovados ficaram de fora).")
    expect(page.locator("#templates-table")).to_contain_text("retomar_conversa")
    shot(page, tmp_path, "settings-whatsapp.png")
    agent = new_page(login=AGENT)
    response = agent.goto(f"{live_server.url}/settings/whatsapp")
    assert response.status == 403
