"""The main story with the keyboard only (issue 21): log in, open a flow, add a message
block after the start, publish, answer a conversation in the inbox.

Nothing is clicked: focus moves with Tab / Shift+Tab (never by script), actions are
Enter and typing, and every control reached must show that it has the focus.
"""
from __future__ import annotations

import re

import pytest
from browser_support import ADMIN
from playwright.sync_api import expect

from editor.app import get_engine
from engine.flows import FlowRepository

pytestmark = pytest.mark.browser

FOCUS_SHOWN = """() => {
    const el = document.activeElement;
    const s = getComputedStyle(el);
    const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
    return el.matches(':focus-visible') && (outline || s.boxShadow !== 'none');
}"""


def tab_to(page, target, backwards: bool = False, limit: int = 250) -> int:
    """Press Tab (or Shift+Tab) until ``target`` has the focus; returns the presses.
    Fails if it is never reached, or is reached without a visible focus indicator."""
    target.wait_for(state="attached")
    key = "Shift+Tab" if backwards else "Tab"
    for presses in range(1, limit + 1):
        page.keyboard.press(key)
        if target.evaluate("el => el === document.activeElement"):
            assert page.evaluate(FOCUS_SHOWN), f"focus is not visible on {target}"
            return presses
    pytest.fail(f"{target} cannot be reached with {key} ({limit} presses)")


def test_the_main_story_with_the_keyboard_only(new_page, live_server):
    page = new_page(login=None)
    page.set_viewport_size({"width": 1366, "height": 768})

    # Log in.
    page.goto(f"{live_server.url}/login")
    tab_to(page, page.get_by_label("Login", exact=True))
    page.keyboard.type(ADMIN[0])
    tab_to(page, page.get_by_label("Senha", exact=True))
    page.keyboard.type(ADMIN[1])
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)

    # Open the flows page from the menu and create a flow: the editor opens.
    tab_to(page, page.get_by_role("navigation").get_by_role("link", name="Fluxos", exact=True))
    page.keyboard.press("Enter")
    page.wait_for_url("**/flows")
    tab_to(page, page.get_by_label("Nome", exact=True))
    page.keyboard.type("Pedido")
    tab_to(page, page.get_by_role("button", name="Criar fluxo"))
    page.keyboard.press("Enter")
    page.wait_for_url("**/flows/pedido/edit")
    expect(page.locator("#canvas .block-card")).to_have_count(1)

    # "+" after the start block → Mensagem; write it and save it.
    plus = page.locator('#canvas .port-add[data-from="b1"]')
    tab_to(page, plus)
    page.keyboard.press("Enter")
    menu = page.get_by_role("menu", name="Próximo bloco")
    expect(menu).to_be_visible()
    message_item = menu.get_by_role("menuitem", name="Mensagem", exact=True)
    for _ in range(20):
        if message_item.evaluate("el => el === document.activeElement"):
            break
        page.keyboard.press("ArrowDown")
    expect(message_item).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#canvas .block-card")).to_have_count(2)
    new_form = page.locator("#panel-body [data-form-block]").filter(has_not=page.locator('[data-form-block="b1"]'))
    new_form.wait_for()
    new_id = new_form.get_attribute("data-form-block")
    assert new_id != "b1"
    tab_to(page, new_form.get_by_label("Texto"))
    page.keyboard.type("Obrigado! Já volto com seu pedido.")
    tab_to(page, page.locator("#panel-body").get_by_role("button", name="Salvar bloco"))
    page.keyboard.press("Enter")
    expect(page.locator("#panel-body")).to_contain_text("Bloco atualizado.")
    card = page.locator(f'#canvas [data-block-id="{new_id}"]')
    expect(card).to_contain_text("Obrigado! Já volto com seu pedido.")

    # A second block from the palette, then connect the two with the keyboard ("C" on the
    # focused block: the chooser names blocks by their titles), disconnect, connect again.
    tab_to(page, page.locator(".palette-item", has_text="Mensagem").first, backwards=True)
    page.keyboard.press("Enter")
    expect(page.locator("#canvas .block-card")).to_have_count(3)
    last_form = page.locator(f'#panel-body [data-form-block]:not([data-form-block="{new_id}"])')
    last_form.wait_for()
    last_id = last_form.get_attribute("data-form-block")
    tab_to(page, last_form.get_by_label("Texto"))
    page.keyboard.press("Control+A")  # in place of the preset text
    page.keyboard.type("Até logo!")
    tab_to(page, page.locator("#panel-body").get_by_role("button", name="Salvar bloco"))
    page.keyboard.press("Enter")
    expect(page.locator(f'#canvas [data-block-id="{last_id}"]')).to_contain_text("Até logo!")

    def connect_with_keys(choice: str) -> None:
        tab_to(page, card, backwards=True)
        page.keyboard.press("c")
        chooser = page.get_by_role("dialog", name=re.compile("^Ligar “Obrigado! Já volto com seu pedido"))
        expect(chooser).to_be_visible()
        target = chooser.get_by_label("Leva a")
        expect(target).to_be_focused()  # a message block has one output: straight to the target
        for _ in range(10):
            if target.evaluate("el => el.options[el.selectedIndex].text") == choice:
                break
            page.keyboard.press("ArrowDown" if choice != "— nada (desligar esta saída) —" else "ArrowUp")
        tab_to(page, chooser.get_by_role("button", name="Ligar"))
        page.keyboard.press("Enter")
        expect(chooser).to_be_hidden()
        expect(card).to_be_focused()

    def saved_edges_from(block_id: str) -> list:
        """The saved draft's edges from ``block_id`` (once the page says "Salvo")."""
        expect(page.locator("#save-status")).to_have_attribute("data-state", "saved")
        draft = FlowRepository(get_engine(live_server.app)).draft("pedido")
        return [e for e in draft["document"]["edges"] if e["from"] == block_id]

    connect_with_keys("Até logo!")
    expect(page.locator("#toasts")).to_contain_text(re.compile(
        "“Obrigado! Já volto com seu pedido[^”]*”, saída “Em seguida”, agora leva a “Até logo!”."))
    assert saved_edges_from(new_id) == [{"from": new_id, "port": "next", "to": last_id}]
    connect_with_keys("— nada (desligar esta saída) —")
    expect(page.locator("#toasts")).to_contain_text(re.compile(
        "A saída “Em seguida” de “Obrigado! Já volto com seu pedido[^”]*” não leva mais a nenhum bloco."))
    assert saved_edges_from(new_id) == []
    connect_with_keys("Até logo!")
    assert saved_edges_from(new_id) == [{"from": new_id, "port": "next", "to": last_id}]

    # Publish (the toolbar comes before the panel: Shift+Tab back to it).
    tab_to(page, page.get_by_role("button", name="Publicar", exact=True), backwards=True)
    page.keyboard.press("Enter")
    expect(page.locator("#panel-body")).to_contain_text("Versão 1 publicada.")
    expect(page.locator("#published-badge")).to_have_text("Publicado: versão 1", use_inner_text=True)

    # A customer asks for a person; answer in the inbox.
    live_server.service().handle_inbound(
        "api", {"external_id": "k1", "name": "Joana Prado"}, {"id": "k-1", "text": "atendente"})
    tab_to(page, page.get_by_role("navigation").get_by_role("link", name="Atendimentos", exact=True),
           backwards=True)
    page.keyboard.press("Enter")
    page.wait_for_url("**/inbox")
    tab_to(page, page.locator("#inbox-list .conv-item", has_text="Joana Prado").get_by_role("link"))
    page.keyboard.press("Enter")
    page.wait_for_url("**/inbox/*")
    tab_to(page, page.get_by_label("Mensagem", exact=True))
    page.keyboard.type("Oi Joana, sou a Admin. Como posso ajudar?")
    tab_to(page, page.get_by_role("button", name="Enviar", exact=True))
    page.keyboard.press("Enter")
    expect(page.locator("#conv-live .timeline .from-agent")).to_contain_text("Oi Joana, sou a Admin.")
    assert page.dialogs == []
