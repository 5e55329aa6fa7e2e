"""The agent inbox in Chromium: live updates, actions by role and name, search, filters,
escaping, and every way an agent opens a concluded conversation (DESIGN §3, §8)."""
from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from browser_support import AGENT, AGENT2
from playwright.sync_api import expect

SAMPLE_FLOWS = Path(__file__).resolve().parent.parent / "sample_flows"

pytestmark = pytest.mark.browser

_ids = itertools.count(1)


def inbound(live_server, text: str, contact: str = "c1", name: str = "Maria Souza") -> int:
    result = live_server.service().handle_inbound(
        "api", {"external_id": contact, "name": name}, {"id": f"b{next(_ids)}", "text": text})
    return result["conversation_id"]


def publish_welcome(live_server) -> None:
    from editor.app import get_engine
    from engine.flows import FlowRepository

    repo = FlowRepository(get_engine(live_server.app))
    doc = json.loads((SAMPLE_FLOWS / "boas-vindas.json").read_text(encoding="utf-8"))
    repo.create(doc)
    repo.publish(doc["id"])


def button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def item(page, name: str):
    return page.locator("#inbox-list .conv-item", has_text=name)


def timeline(page):
    return page.locator("#conv-live .timeline")


def open_conversation(page, live_server, conversation_id: int, query: str = "") -> None:
    page.goto(f"{live_server.url}/inbox/{conversation_id}{query}")
    expect(page.locator("#conv-title")).to_be_visible()


def test_a_new_conversation_appears_under_abertos_without_reload(new_page, live_server):
    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/inbox")
    expect(page.get_by_role("link", name="Abertos", exact=True)).to_have_attribute("aria-current", "page")
    page.evaluate("window.__sameDocument = true")
    inbound(live_server, "quero falar com atendente", name="Joana Prado")
    expect(item(page, "Joana Prado")).to_be_visible(timeout=5_000)
    expect(item(page, "Joana Prado")).to_contain_text("quero falar com atendente")
    expect(page.locator("#count-open")).to_have_text("1")
    assert page.evaluate("window.__sameDocument") is True  # no reload happened


def test_agent_assigns_replies_concludes_and_it_moves_to_concluidos(new_page, live_server):
    publish_welcome(live_server)
    conversation = inbound(live_server, "oi")
    inbound(live_server, "Falar com atendente")  # the flow opens the conversation
    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/inbox")
    item(page, "Maria Souza").get_by_role("link").click()
    page.wait_for_url(f"**/inbox/{conversation}")
    expect(timeline(page)).to_contain_text("Bot pausado: o fluxo abriu o atendimento")

    button(page, "Atribuir a mim").click()
    expect(timeline(page)).to_contain_text("Bruno assumiu o atendimento")

    page.get_by_label("Mensagem", exact=True).fill("Oi Maria, sou o Bruno. Como posso ajudar?")
    button(page, "Enviar").click()
    expect(timeline(page).locator(".from-agent")).to_contain_text("Oi Maria, sou o Bruno")
    expect(page.get_by_label("Mensagem", exact=True)).to_have_value("")

    button(page, "Concluir").click()
    expect(timeline(page)).to_contain_text("Concluído por Bruno")
    expect(timeline(page)).to_contain_text("De 1 a 5, como foi o atendimento?")  # CSAT
    expect(button(page, "Reabrir")).to_be_visible()
    expect(item(page, "Maria Souza")).to_have_count(0)  # gone from Abertos

    page.get_by_role("link", name="Concluídos", exact=True).click()
    expect(item(page, "Maria Souza")).to_be_visible()
    expect(page).to_have_url(re.compile(r"status=concluded"))


def test_two_agents_assigned(new_page, live_server):
    conversation = inbound(live_server, "atendente")
    page = new_page(login=AGENT)
    open_conversation(page, live_server, conversation)
    page.get_by_label("Atribuir a", exact=True).select_option("carla")
    button(page, "Atribuir").click()
    expect(timeline(page)).to_contain_text("Bruno atribuiu a Carla")
    button(page, "Atribuir a mim").click()
    expect(page.locator(".conv-notice")).to_have_text("Carla já está atendendo. Atender junto?")
    button(page, "Atender junto").click()
    expect(timeline(page)).to_contain_text("Bruno assumiu o atendimento")
    expect(page.locator(".conv-header .assignee-chip")).to_have_text(["Carla", "Bruno"])
    assert live_server.service().get_conversation(conversation)["assignees"] == ["carla", "bruno"]


def test_unassign_one_agent_then_unassign_and_conclude(new_page, live_server):
    conversation = inbound(live_server, "atendente")
    service = live_server.service()
    service.act(conversation, "assign", "admin", user="carla")
    service.act(conversation, "assign", "admin", user="bruno")
    page = new_page(login=AGENT)
    open_conversation(page, live_server, conversation)
    page.get_by_label("Quem desatribuir", exact=True).select_option("carla")
    button(page, "Desatribuir").click()
    expect(timeline(page)).to_contain_text("Bruno desatribuiu Carla")
    button(page, "Desatribuir e concluir").click()
    expect(timeline(page)).to_contain_text("Desatribuído e concluído por Bruno")
    expect(page.locator(".conv-header .badge")).to_have_text("Concluído")
    conv = service.get_conversation(conversation)
    assert conv["status"] == "concluded" and conv["assignees"] == []


def test_search_by_partial_name_without_accents(new_page, live_server):
    inbound(live_server, "atendente", contact="a", name="José Antônio")
    inbound(live_server, "atendente", contact="b", name="Maria Souza")
    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/inbox")
    expect(page.locator("#inbox-list .conv-item")).to_have_count(2)
    page.get_by_label("Buscar", exact=True).fill("jose anto")
    button(page, "Buscar").click()
    expect(page.locator("#inbox-list .conv-item")).to_have_count(1)
    expect(item(page, "José Antônio")).to_be_visible()
    expect(page).to_have_url(re.compile(r"q=jose(\+|%20)anto"))


def test_filters_minhas_and_sem_atendente(new_page, live_server):
    service = live_server.service()
    mine = inbound(live_server, "atendente", contact="a", name="Cliente Meu")
    hers = inbound(live_server, "atendente", contact="b", name="Cliente Dela")
    inbound(live_server, "atendente", contact="c", name="Cliente Livre")
    service.act(mine, "assign", "bruno", user="bruno")
    service.act(hers, "assign", "carla", user="carla")
    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/inbox")
    expect(page.locator("#inbox-list .conv-item")).to_have_count(3)
    page.get_by_role("link", name="Minhas", exact=True).click()
    expect(page.locator("#inbox-list .conv-item")).to_have_count(1)
    expect(item(page, "Cliente Meu")).to_be_visible()
    page.get_by_role("link", name="Sem atendente", exact=True).click()
    expect(page.locator("#inbox-list .conv-item")).to_have_count(1)
    expect(item(page, "Cliente Livre")).to_be_visible()
    expect(page.locator("#scope-unassigned")).to_have_attribute("aria-current", "true")
    page.get_by_label("Atendente", exact=True).select_option("carla")
    expect(page.locator("#inbox-list .conv-item")).to_have_count(1)
    expect(item(page, "Cliente Dela")).to_be_visible()


def test_customer_text_shows_as_text_and_runs_nothing(new_page, live_server):
    conversation = inbound(live_server, "<img src=x onerror=alert(1)>", name="<script>alert(1)</script>")
    live_server.service().act(conversation, "reopen", "carla")
    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/inbox")
    expect(item(page, "<script>alert(1)</script>")).to_be_visible()
    expect(item(page, "<script>alert(1)</script>")).to_contain_text("<img src=x onerror=alert(1)>")
    open_conversation(page, live_server, conversation)
    expect(page.locator("#conv-title")).to_have_text("<script>alert(1)</script>")
    expect(timeline(page).locator(".from-customer")).to_contain_text("<img src=x onerror=alert(1)>")
    page.wait_for_timeout(2_500)  # a poll or two re-render the fragments
    assert page.dialogs == []
    assert page.locator("#conv-live img").count() == 0


@pytest.mark.parametrize("path, sentence", [
    ("reopen", "Reaberto por Bruno"),
    ("assign", "Bruno atribuiu a Carla"),
    ("message", "Aberto por Bruno ao responder ao cliente"),
])
def test_each_way_to_open_a_concluded_conversation(new_page, live_server, path, sentence):
    conversation = inbound(live_server, "bom dia")  # nothing published: concluded, bot idle
    page = new_page(login=AGENT)
    open_conversation(page, live_server, conversation)
    expect(page.locator(".conv-header .badge")).to_have_text("Concluído")
    if path == "reopen":
        button(page, "Reabrir").click()
    elif path == "assign":
        page.get_by_label("Atribuir a", exact=True).select_option("carla")
        button(page, "Atribuir").click()
    else:
        page.get_by_label("Mensagem", exact=True).fill("Olá, posso ajudar?")
        button(page, "Enviar").click()
    expect(timeline(page).locator(".activity").last).to_contain_text(sentence)
    expect(page.locator(".conv-header .badge")).to_have_text("Aberto")
    expect(button(page, "Concluir")).to_be_visible()
    assert live_server.service().get_conversation(conversation)["status"] == "open"


def test_another_agents_change_reaches_an_open_conversation_within_seconds(new_page, live_server):
    conversation = inbound(live_server, "atendente")
    bruno = new_page(login=AGENT)
    open_conversation(bruno, live_server, conversation)
    carla = new_page(login=AGENT2)
    open_conversation(carla, live_server, conversation)
    button(carla, "Concluir").click()
    expect(timeline(carla)).to_contain_text("Concluído por Carla")
    expect(timeline(bruno)).to_contain_text("Concluído por Carla", timeout=5_000)
    expect(button(bruno, "Reabrir")).to_be_visible()
    inbound(live_server, "ainda preciso de ajuda")
    expect(timeline(bruno)).to_contain_text("ainda preciso de ajuda", timeout=5_000)


def test_a_stale_click_shows_the_fresh_state_and_what_happened(new_page, live_server):
    conversation = inbound(live_server, "atendente")
    page = new_page(login=AGENT)
    # The page misses the live update (as when another agent acts between two polls).
    page.route(re.compile(r"/inbox/\d+\?since="), lambda route: route.fulfill(status=204))
    open_conversation(page, live_server, conversation)
    live_server.service().act(conversation, "conclude", "carla")
    button(page, "Concluir").click()
    expect(page.locator(".conv-notice")).to_have_text("Esta conversa já estava concluída por Carla.")
    expect(button(page, "Reabrir")).to_be_visible()
    expect(timeline(page)).to_contain_text("Concluído por Carla")
    assert [a["action"] for a in live_server.service().get_conversation(conversation)["activity"]] \
        == ["handoff_requested", "concluded"]


def test_english_inbox(new_page, live_server):
    conversation = inbound(live_server, "atendente")
    page = new_page(login=AGENT, lang="en")
    page.goto(f"{live_server.url}/inbox/{conversation}?lang=en")
    expect(page.get_by_role("link", name="Open", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Concluded", exact=True)).to_be_visible()
    expect(page.get_by_label("Search", exact=True)).to_be_visible()
    for name in ("Search", "Assign to me", "Assign", "Conclude", "Unassign and conclude", "Send"):
        expect(button(page, name)).to_be_visible()
    button(page, "Assign to me").click()
    expect(timeline(page)).to_contain_text("Bruno took over the conversation")
    button(page, "Conclude").click()
    expect(button(page, "Reopen")).to_be_visible()
    expect(timeline(page)).to_contain_text("Concluded by Bruno")
