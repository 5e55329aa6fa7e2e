"""The inbox at a busy hour in Chromium, two agents (DESIGN §10.8): a transfer with a note
the receiver reads, per-agent unread marks in the tab title, the question before joining
a colleague, a draft kept across navigation, and the waiting order."""
from __future__ import annotations

import itertools
import os

import pytest
from browser_support import AGENT, AGENT2
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

_ids = itertools.count(1)
SHOTS = os.environ.get("PAPO_SCREENSHOTS")  # a folder: the test saves what the agents saw


def inbound(live_server, text: str, contact: str, name: str) -> int:
    return live_server.service().handle_inbound(
        "api", {"external_id": contact, "name": name}, {"id": f"busy{next(_ids)}", "text": text}
    )["conversation_id"]


def button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def shot(page, name: str) -> None:
    if SHOTS:
        # caret="initial": hiding the caret would inject a style the page's CSP refuses
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True, caret="initial")


def test_two_agents_transfer_with_a_note_unread_per_agent_and_join_question(new_page, live_server):
    maria = inbound(live_server, "quero falar com atendente", "c1", "Maria Souza")
    inbound(live_server, "atendente, por favor", "c2", "Joana Prado")
    bruno = new_page(login=AGENT)
    carla = new_page(login=AGENT2)
    bruno.goto(f"{live_server.url}/inbox")
    carla.goto(f"{live_server.url}/inbox")
    expect(bruno).to_have_title("(2) Atendimentos · papo")
    expect(carla).to_have_title("(2) Atendimentos · papo")

    # Bruno reads Joana's conversation (nobody's yet): read for him, still unread for Carla
    bruno.locator("#inbox-list .conv-item", has_text="Joana Prado").locator("a").click()
    expect(bruno.locator("#conv-title")).to_have_text("Joana Prado")
    bruno.goto(f"{live_server.url}/inbox")
    expect(bruno).to_have_title("(1) Atendimentos · papo")
    carla.reload()
    expect(carla).to_have_title("(2) Atendimentos · papo")  # her marks are her own
    expect(carla.locator("#inbox-list .conv-item", has_text="Joana Prado")).to_have_attribute(
        "data-unread", "true")
    expect(bruno.locator("#inbox-list .conv-item", has_text="Joana Prado")).to_have_attribute(
        "data-unread", "false")

    # Bruno takes Maria
    bruno.goto(f"{live_server.url}/inbox/{maria}")
    button(bruno, "Atribuir a mim").click()
    expect(bruno.locator("#conv-live .timeline")).to_contain_text("Bruno assumiu o atendimento")

    # A draft survives going back to the list and returning
    bruno.goto(f"{live_server.url}/inbox/{maria}")
    bruno.locator("#reply-text").fill("Oi Maria, já vejo o seu pedido")
    bruno.goto(f"{live_server.url}/inbox")
    bruno.goto(f"{live_server.url}/inbox/{maria}")
    expect(bruno.locator("#reply-text")).to_have_value("Oi Maria, já vejo o seu pedido")

    # Bruno hands Maria over to Carla with a note
    bruno.locator("#transfer-user").select_option("carla")
    bruno.locator("#transfer-note").fill("Ela quer trocar o tamanho do vestido")
    shot(bruno, "inbox-transfer-before")
    button(bruno, "Transferir").click()
    expect(bruno.locator("#conv-live .timeline")).to_contain_text("Bruno transferiu para Carla")
    assert live_server.service().get_conversation(maria)["assignees"] == ["carla"]

    # Carla sees it in "Minhas" and reads Bruno's note
    carla.goto(f"{live_server.url}/inbox?mine=1")
    expect(carla.locator("#inbox-list .conv-item", has_text="Maria Souza")).to_be_visible()
    carla.locator("#inbox-list .conv-item", has_text="Maria Souza").locator("a").click()
    note = carla.locator("#conv-live .bubble-note")
    expect(note).to_contain_text("Ela quer trocar o tamanho do vestido")
    expect(note).to_contain_text("Nota privada de Bruno")
    shot(carla, "inbox-note-received")

    # Bruno wants to join Carla: he is asked first, nothing happens until he confirms
    bruno.goto(f"{live_server.url}/inbox/{maria}")
    button(bruno, "Atribuir a mim").click()
    expect(bruno.locator(".conv-notice")).to_have_text("Carla já está atendendo. Atender junto?")
    assert live_server.service().get_conversation(maria)["assignees"] == ["carla"]
    shot(bruno, "inbox-join-question")
    button(bruno, "Atender junto").click()
    expect(bruno.locator(".conv-header .assignee-chip")).to_have_text(["Carla", "Bruno"])


def test_waiting_order_and_search_in_messages(new_page, live_server):
    inbound(live_server, "atendente", "a", "Primeira Cliente")
    second = inbound(live_server, "atendente", "b", "Segunda Cliente")
    live_server.service().agent_message(second, "carla", "Oi! Já te ajudo.")
    inbound(live_server, "atendente: pedido 48219", "a", "Primeira Cliente")
    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/inbox")
    names = page.locator("#inbox-list .conv-name")
    expect(names).to_have_text(["Primeira Cliente", "Segunda Cliente"])
    page.locator("#inbox-sort").select_option("waiting")
    expect(page).to_have_url(f"{live_server.url}/inbox?sort=waiting")
    expect(names).to_have_text(["Primeira Cliente", "Segunda Cliente"])
    expect(page.locator("#inbox-list .conv-waiting")).to_have_count(1)
    expect(page.locator("#inbox-list .conv-waiting")).to_contain_text("aguardando há")
    page.locator("#inbox-q").fill("48219")
    page.locator("#inbox-q").press("Enter")
    expect(names).to_have_text(["Primeira Cliente"])
    shot(page, "inbox-waiting-search")


def test_a_refresh_does_not_reset_a_choice_in_progress(new_page, live_server):
    conversation = inbound(live_server, "atendente", "r1", "Rosa Lima")
    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/inbox/{conversation}")
    page.evaluate("""window.__deferred = 0;
        document.addEventListener('htmx:beforeSwap', function (e) {
          setTimeout(function () { if (!e.detail.shouldSwap && e.detail.xhr.status === 200) window.__deferred++; });
        });""")
    choice = page.get_by_label("Atribuir a", exact=True)
    choice.select_option("carla")
    choice.focus()
    inbound(live_server, "ainda estou aqui", "r1", "Rosa Lima")

    for _ in range(100):  # a poll brought news and was held back (wait_for_function needs eval)
        if page.evaluate("window.__deferred") > 0:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("window.__deferred") > 0
    expect(choice).to_have_value("carla")
    expect(page.locator("#conv-live .timeline")).not_to_contain_text("ainda estou aqui")

    page.locator("#conv-title").click()  # the agent lets go of the select
    expect(page.locator("#conv-live .timeline")).to_contain_text("ainda estou aqui")


def test_the_alerts_toggle_is_remembered_per_agent(new_page, live_server):
    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/inbox")
    toggle = page.get_by_role("button", name="Avisos")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    page.reload()
    expect(page.get_by_role("button", name="Avisos")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("localStorage.getItem('papo.alerts.bruno')") == "on"
    page.get_by_role("button", name="Avisos").click()
    expect(page.get_by_role("button", name="Avisos")).to_have_attribute("aria-pressed", "false")


PHONE = {"width": 390, "height": 844}


def test_on_a_phone_list_and_conversation_switch_without_a_page_load(new_page, live_server):
    maria = inbound(live_server, "quero falar com atendente", "p1", "Maria Souza")
    inbound(live_server, "atendente, por favor", "p2", "Joana Prado")
    page = new_page(login=AGENT)

    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/inbox")
    page.evaluate("window.__sameDocument = 'yes'")  # a full page load would forget it
    expect(page.locator("#inbox-list")).to_be_visible()
    expect(page.get_by_text("Escolha uma conversa na lista")).to_be_hidden()  # no empty card
    shot(page, "inbox-phone-list")

    page.locator("#inbox-list .conv-item", has_text="Maria Souza").locator("a").click()
    expect(page.locator("#conv-title")).to_have_text("Maria Souza")
    expect(page).to_have_url(f"{live_server.url}/inbox/{maria}")
    expect(page).to_have_title("(1) Maria Souza · Atendimentos · papo")
    expect(page.locator("#inbox-pane")).to_be_hidden()
    expect(page.get_by_text("Ctrl+Enter envia.")).to_be_hidden()
    assert page.evaluate("window.__sameDocument") == "yes"

    # The actions fit one row inside the screen; the rest wait behind "Mais ações"
    row = [button(page, "Concluir"), button(page, "Atribuir a mim"), button(page, "Mais ações")]
    boxes = [b.bounding_box() for b in row]
    assert all(box is not None for box in boxes)
    assert max(b["y"] for b in boxes) - min(b["y"] for b in boxes) < 4, boxes
    actions = page.locator(".conv-actions").bounding_box()
    assert max(b["x"] + b["width"] for b in boxes) <= actions["x"] + actions["width"], (boxes, actions)
    expect(button(page, "Desatribuir e concluir")).to_be_hidden()
    shot(page, "inbox-phone-conversation")

    # "Mais ações" with the keyboard: Enter opens it, Tab reaches its actions, Escape closes
    more = button(page, "Mais ações")
    more.focus()
    page.keyboard.press("Enter")
    expect(more).to_have_attribute("aria-expanded", "true")
    expect(button(page, "Desatribuir e concluir")).to_be_visible()
    page.keyboard.press("Tab")
    expect(button(page, "Desatribuir e concluir")).to_be_focused()
    shot(page, "inbox-phone-more-actions")
    page.keyboard.press("Escape")
    expect(more).to_have_attribute("aria-expanded", "false")
    expect(more).to_be_focused()
    expect(button(page, "Desatribuir e concluir")).to_be_hidden()

    # A reply being typed survives going back to the list and coming back
    page.locator("#reply-text").fill("Oi Maria, já vejo o seu pedido")
    page.get_by_role("link", name="Voltar à lista").click()
    expect(page.locator("#inbox-list")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/inbox")
    expect(page.locator("#conversation")).to_have_count(0)
    page.locator("#inbox-list .conv-item", has_text="Maria Souza").locator("a").click()
    expect(page.locator("#reply-text")).to_have_value("Oi Maria, já vejo o seu pedido")

    # The browser's back button goes to the list, still without a page load
    page.go_back()
    expect(page).to_have_url(f"{live_server.url}/inbox")
    expect(page.locator("#inbox-list")).to_be_visible()
    page.locator("#inbox-list .conv-item", has_text="Maria Souza").locator("a").click()
    expect(page.locator("#reply-text")).to_have_value("Oi Maria, já vejo o seu pedido")
    # no copy of a conversation is kept in the browser's storage by htmx's history
    assert page.evaluate("localStorage.getItem('htmx-history-cache')") is None
    # the page htmx put back behaves as before: one click, one toggle (inbox.js set up once)
    button(page, "Mais ações").click()
    expect(button(page, "Mais ações")).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")
    button(page, "Enviar").click()
    expect(page.locator("#conv-live .timeline")).to_contain_text("Oi Maria, já vejo o seu pedido")
    expect(page.locator("#reply-text")).to_have_value("")
    assert page.evaluate("window.__sameDocument") == "yes"
