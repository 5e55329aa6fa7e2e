"""The shop owner's story (issue 13), in Chromium, with mouse and keyboard only.

A pizzeria's owner builds "Pedido de pizza" from an empty flow, publishes it, a customer
talks to it in the web chat, the owner answers in the inbox and concludes, the customer
rates 5, and the reports show it. Nothing here calls the API or changes the flow from
script: every change is a click, a drag or typing. With ``PAPO_SCREENSHOTS=1`` each step
(re)writes its screenshot in docs/screenshots/, which docs/GUIDE.md shows.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from browser_support import ADMIN
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def shot(page, name: str, full_page: bool = False) -> None:
    if os.environ.get("PAPO_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        # caret="initial": hiding the caret injects a style, which the CSP (rightly) refuses
        page.screenshot(path=str(SHOTS / f"{name}.png"), caret="initial", full_page=full_page)


def card(page, block_id: str):
    return page.locator(f'#canvas [data-block-id="{block_id}"]')


def saved(page) -> None:
    expect(page.locator("#save-status")).to_have_attribute("data-state", "saved")


def block_ids(page) -> list[str]:
    return page.locator("#canvas .block-card").evaluate_all(
        "cards => cards.map(c => c.getAttribute('data-block-id'))")


def add_next(page, block_id: str, port_label: str, kind_label: str) -> str:
    """Click the "+" of a free output and choose the kind: the new block's id."""
    before = set(block_ids(page))
    page.get_by_role("button", name=f"Adicionar o próximo bloco por esta saída: {port_label}") \
        .and_(page.locator(f'[data-from="{block_id}"]')).click()
    page.get_by_role("menu", name="Próximo bloco").get_by_role("menuitem", name=kind_label, exact=True).click()
    page.wait_for_function(f"document.querySelectorAll('#canvas .block-card').length === {len(before) + 1}")
    (new_id,) = set(block_ids(page)) - before
    page.locator(f'#panel-body [data-form-block="{new_id}"]').wait_for()
    return new_id


def open_block(page, block_id: str) -> None:
    card(page, block_id).locator(".card-head").click()
    page.locator(f'#panel-body [data-form-block="{block_id}"]').wait_for()


def save_block(page) -> None:
    page.locator("#panel-body").get_by_role("button", name="Salvar bloco").click()
    page.locator("#panel-body").get_by_text("Bloco atualizado.").wait_for()
    saved(page)


def connect(page, from_id: str, port: str, to_id: str) -> None:
    """Drag from an output port (by its data-port position) to a block's input."""
    ports = card(page, from_id).locator(".card-ports li").evaluate_all(
        "items => items.map(i => i.getAttribute('data-port'))")
    output = ports.index(port) + 1
    page.locator(f"#node-{from_id} .output_{output}").drag_to(page.locator(f"#node-{to_id} .input_1"))


def test_a_shop_owner_builds_publishes_and_serves_pedido_de_pizza(new_page, live_server):
    owner = new_page(login=ADMIN)
    owner.set_viewport_size({"width": 1366, "height": 768})

    # 1. A new flow from the list: its id follows the name; the editor opens at its address.
    owner.goto(f"{live_server.url}/flows")
    owner.get_by_label("Nome", exact=True).fill("Pedido de pizza")
    expect(owner.get_by_label("Identificador (id)")).to_have_value("pedido-de-pizza")
    shot(owner, "01-novo-fluxo")
    owner.get_by_role("button", name="Criar fluxo").click()
    owner.wait_for_url("**/flows/pedido-de-pizza/edit")
    expect(owner.locator("#triggers-text")).to_have_text("Começa quando o cliente diz: pedido de pizza")

    # The triggers are one click away: add "oi" and "pizza".
    owner.locator("#btn-triggers").click()
    triggers = owner.locator("#panel-body")
    for word in ("oi", "pizza"):
        triggers.get_by_role("button", name="Adicionar gatilho").click()
        triggers.locator('[name="triggers.value"]').last.fill(word)
    triggers.get_by_role("button", name="Salvar configurações").click()
    expect(owner.locator("#triggers-text")).to_have_text(
        "Começa quando o cliente diz: pedido de pizza, oi, pizza")
    saved(owner)
    shot(owner, "02-editor-gatilhos")

    # 2. The greeting, then "+" → a question about the flavour.
    open_block(owner, "b1")
    owner.locator("#panel-body").get_by_label("Texto").fill("Olá, {{ contact.name }}! Bem-vindo à Pizzaria Bella!")
    save_block(owner)
    question = add_next(owner, "b1", "Em seguida", "Pergunta")
    form = owner.locator("#panel-body")
    form.get_by_label("Pergunta", exact=True).fill("Qual sabor você quer?")
    form.get_by_role("textbox", name="Opção 1").fill("Calabresa")
    form.get_by_role("textbox", name="Opção 2").fill("Mussarela")
    form.get_by_label("Salvar resposta em").fill("sabor")
    save_block(owner)
    expect(card(owner, question)).to_contain_text("Qual sabor você quer?")
    shot(owner, "03-pergunta-sabor")

    # 3. "+" on "Calabresa" → a condition, built from rows: sabor é igual a Calabresa.
    condition = add_next(owner, question, "Calabresa", "Condição")
    form = owner.locator("#panel-body")
    form.get_by_label("Saída da regra 1").fill("calabresa")
    form.get_by_label("Variável da condição 1 da regra 1").select_option("sabor")
    form.get_by_label("Operador da condição 1 da regra 1").select_option(label="é igual a")
    form.get_by_label("Valor da condição 1 da regra 1").fill("Calabresa")
    shot(owner, "04-condicao-construtor")
    save_block(owner)
    expect(card(owner, condition)).to_contain_text("sabor é igual a Calabresa")
    connect(owner, question, "o2", condition)  # Mussarela goes the same way
    saved(owner)

    # 4. Calabresa → a message; "Senão" → the team; the message leads to the team too.
    calabresa = add_next(owner, condition, "calabresa", "Mensagem")
    owner.locator("#panel-body").get_by_label("Texto").fill("Boa escolha! A calabresa é a mais pedida da casa.")
    save_block(owner)
    handoff = add_next(owner, condition, "Senão", "Abrir atendimento")
    save_block(owner)
    connect(owner, calabresa, "next", handoff)
    saved(owner)

    # 5. When the team concludes: a CSAT rating, then thanks.
    rating = add_next(owner, handoff, "Depois de concluído", "Avaliação (CSAT)")
    owner.locator("#panel-body").get_by_label("Pergunta", exact=True).fill("Como você avalia o atendimento?")
    save_block(owner)
    thanks = add_next(owner, rating, "Respondida", "Mensagem")
    owner.locator("#panel-body").get_by_label("Texto").fill("Obrigado pela avaliação, {{ contact.name }}!")
    save_block(owner)
    owner.get_by_role("button", name="Fechar painel").click()
    owner.get_by_role("button", name="Ajustar à tela").click()
    shot(owner, "05-fluxo-montado")

    # 6. "Validar" warns that a wrong flavour leads nowhere; connecting it fixes that.
    owner.get_by_role("button", name="Validar").click()
    findings = owner.locator(".findings-panel")
    warning = findings.locator(".finding", has_text="Qual sabor você quer?").filter(has_text="Resposta inválida")
    expect(warning).to_be_visible()
    shot(owner, "06-validar-aviso")
    owner.get_by_role("button", name="Fechar painel").click()
    connect(owner, question, "invalid", handoff)
    connect(owner, rating, "invalid", thanks)
    saved(owner)
    owner.get_by_role("button", name="Validar").click()
    expect(findings).to_contain_text("Nenhum problema encontrado")

    # 7. Publish: the header follows.
    owner.get_by_role("button", name="Publicar", exact=True).click()
    expect(owner.locator("#panel-body")).to_contain_text("Versão 1 publicada.")
    expect(owner.locator("#published-badge")).to_have_text("Publicado: versão 1", use_inner_text=True)
    expect(owner.get_by_text("Rascunho com alterações não publicadas")).to_be_hidden()
    shot(owner, "07-publicado")

    # 8. A customer talks to it in the web chat (another browser, not logged in).
    customer = new_page(login=None)
    customer.set_viewport_size({"width": 420, "height": 760})
    customer.goto(f"{live_server.url}/c/pedido-de-pizza?name=Maria")
    customer.get_by_label("Mensagem", exact=True).fill("oi")
    customer.get_by_role("button", name="Enviar", exact=True).click()
    chat = customer.locator("#chat-log")
    expect(chat).to_contain_text("Olá, Maria! Bem-vindo à Pizzaria Bella")
    expect(chat).to_contain_text("Qual sabor você quer?")
    customer.get_by_role("button", name="Calabresa", exact=True).last.click()
    expect(chat).to_contain_text("Boa escolha! A calabresa é a mais pedida da casa.")
    expect(chat).to_contain_text("Um momento, vou te passar para alguém da nossa equipe.")
    shot(customer, "08-cliente-conversa")

    # 9. The owner answers and concludes in the inbox.
    owner.goto(f"{live_server.url}/inbox")
    entry = owner.locator("#inbox-list .conv-item", has_text="Maria")
    expect(entry).to_be_visible(timeout=6_000)
    entry.get_by_role("link").first.click()
    owner.wait_for_url(re.compile(r"/inbox/\d+"))
    owner.get_by_label("Mensagem", exact=True).fill("Oi Maria! Sua calabresa já está no forno.")
    owner.get_by_role("button", name="Enviar", exact=True).click()
    expect(chat).to_contain_text("Oi Maria! Sua calabresa já está no forno.", timeout=6_000)
    shot(owner, "09-atendimento")
    owner.get_by_role("button", name="Concluir", exact=True).click()

    # 10. The customer rates 5.
    expect(chat).to_contain_text("Como você avalia o atendimento?", timeout=6_000)
    customer.get_by_role("button", name="5", exact=True).last.click()
    expect(chat).to_contain_text("Obrigado pela avaliação, Maria!")
    shot(customer, "10-cliente-avalia")

    # 11. Reports: CSAT 5,0 and the funnel by block titles.
    owner.goto(f"{live_server.url}/reports")
    csat = owner.locator('.report-card[data-metric="csat"]')
    expect(csat.locator(".report-big")).to_contain_text("5,0")
    funnel = owner.locator("#report-funnel svg")  # the chart's bars are named by block titles
    expect(funnel).to_contain_text("Qual sabor você quer?")
    expect(funnel).to_contain_text("Como você avalia o atendimento?")
    shot(owner, "11-relatorios", full_page=True)
    assert owner.dialogs == [] and customer.dialogs == []
