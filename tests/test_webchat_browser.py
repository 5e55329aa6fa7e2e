"""The product end to end in Chromium: a customer on the web chat, an agent in the inbox,
the CSAT answer in the reports; and a customer flooding the chat."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from browser_support import AGENT
from playwright.sync_api import expect

SAMPLE_FLOWS = Path(__file__).resolve().parent.parent / "sample_flows"
TEAM_HINT = "Você está falando com a nossa equipe"

pytestmark = pytest.mark.browser


@pytest.fixture
def chat_server(live_server):
    """The live server with the welcome flow published."""
    from editor.app import get_engine
    from engine.flows import FlowRepository

    repo = FlowRepository(get_engine(live_server.app))
    doc = json.loads((SAMPLE_FLOWS / "boas-vindas.json").read_text(encoding="utf-8"))
    repo.create(doc)
    repo.publish(doc["id"])
    return live_server


def chat_log(page):
    return page.locator("#chat-log")


def send(page, text: str) -> None:
    page.get_by_label("Mensagem", exact=True).fill(text)
    page.get_by_role("button", name="Enviar", exact=True).click()


def test_customer_agent_and_reports_end_to_end(new_page, chat_server):
    server = chat_server
    customer = new_page(login=None)
    customer.goto(f"{server.url}/c/boas-vindas?name=Maria")
    customer.evaluate("window.__sameDocument = true")

    agent = new_page(login=AGENT)
    agent.goto(f"{server.url}/inbox")
    agent.evaluate("window.__sameDocument = true")

    # The customer says hello: the bot greets her by name and shows the menu.
    send(customer, "oi")
    expect(chat_log(customer).locator(".from-customer").last).to_contain_text("oi")
    expect(chat_log(customer)).to_contain_text("Olá, Maria! 👋 Bem-vindo(a) à Loja da Ana.")
    expect(chat_log(customer)).to_contain_text("Como posso te ajudar hoje?")
    expect(customer.get_by_label("Mensagem", exact=True)).to_have_value("")

    # She taps "Falar com atendente": the flow hands her over to the team.
    customer.get_by_role("button", name="Falar com atendente", exact=True).last.click()
    expect(chat_log(customer)).to_contain_text("Já vou te passar para uma pessoa da nossa equipe")
    expect(customer.locator("#chat-status")).to_contain_text(TEAM_HINT)

    # The agent's inbox shows her under "Abertos" without a reload.
    expect(agent.get_by_role("link", name="Abertos", exact=True)).to_have_attribute("aria-current", "page")
    entry = agent.locator("#inbox-list .conv-item", has_text="Maria")
    expect(entry).to_be_visible(timeout=6_000)
    assert agent.evaluate("window.__sameDocument") is True
    entry.get_by_role("link").first.click()
    agent.wait_for_url(re.compile(r"/inbox/\d+"))

    # The agent replies; the customer sees it without a reload, labelled with his name.
    send(agent, "Olá Maria, sou o Bruno")
    reply = chat_log(customer).locator(".from-agent", has_text="Olá Maria, sou o Bruno")
    expect(reply).to_be_visible(timeout=6_000)
    expect(reply.locator(".webchat-author")).to_have_text("Bruno")

    # The agent concludes: the customer gets the CSAT question and answers 5.
    agent.get_by_role("button", name="Concluir", exact=True).click()
    expect(chat_log(customer)).to_contain_text("De 1 a 5, como foi o atendimento?", timeout=6_000)
    expect(customer.locator("#chat-status")).not_to_contain_text(TEAM_HINT)
    send(customer, "5")
    expect(chat_log(customer)).to_contain_text("Obrigada pela avaliação, Maria!")
    assert customer.evaluate("window.__sameDocument") is True  # no reload all along

    # The reports count her answer.
    agent.goto(f"{server.url}/reports")
    csat = agent.locator('.report-card[data-metric="csat"]')
    expect(csat.locator(".report-big")).to_contain_text("5,0")
    expect(csat).to_contain_text("1 resposta")
    expect(agent.locator('.report-card[data-metric="concluded"] .report-big')).to_have_text("1")

    # Messages appear once each, and nothing anyone typed ran as script.
    texts = chat_log(customer).locator(".webchat-text").all_inner_texts()
    assert len(texts) == len(set(texts)) or texts.count("Olá Maria, sou o Bruno") == 1
    assert customer.dialogs == [] and agent.dialogs == []


def test_customer_text_is_shown_as_text(new_page, chat_server):
    customer = new_page(login=None)
    customer.goto(f"{chat_server.url}/c/boas-vindas?name=<img src=x onerror=alert(1)>")

    send(customer, "<script>alert('oi')</script><b>negrito</b>")

    expect(chat_log(customer).locator(".from-customer")).to_contain_text("<script>alert('oi')</script>")
    expect(chat_log(customer)).to_contain_text("Olá, <img src=x onerror=alert(1)>!")
    assert chat_log(customer).locator("b, img, script").count() == 0
    assert customer.dialogs == []


def test_a_customer_flooding_the_chat_gets_the_calm_down_message(new_page, chat_server):
    from editor.webchat import RateLimiter

    # A stopped clock: no token comes back during the test, however slow the machine.
    chat_server.app.extensions["papo"]["webchat_limiter"] = RateLimiter(
        {"visitor": (10, 10.0), "address": (30, 10.0)}, clock=lambda: 0.0)
    customer = new_page(login=None)
    customer.goto(f"{chat_server.url}/c/boas-vindas")
    box = customer.get_by_label("Mensagem", exact=True)

    notice = customer.locator("#chat-notice")
    sent = chat_log(customer).locator(".from-customer")
    for n in range(12):  # one after the other, each once the previous one was answered
        box.fill(f"mensagem {n}")
        box.press("Enter")
        if n < 10:
            expect(sent).to_have_count(n + 1)

    expect(notice).to_contain_text("Calma! Você está enviando mensagens rápido demais", timeout=8_000)
    expect(notice.get_by_role("alert")).to_be_visible()
    expect(sent).to_have_count(10)
    expect(sent.last).to_have_text(re.compile(r"mensagem \d+"))
    expect(box).not_to_have_value("")  # the refused text stays in the box to send again


def test_unknown_chat_is_a_friendly_page(new_page, chat_server):
    page = new_page(login=None)

    response = page.goto(f"{chat_server.url}/c/nao-existe")

    assert response.status == 404
    expect(page.get_by_role("heading")).to_have_text("Este chat não existe ou ainda não foi publicado")
