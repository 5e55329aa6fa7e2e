"""The support desk in Chromium (DESIGN §10.3): the header's availability switch, the team
page's capacity, the "Respostas prontas" page and the reply box's "/" picker used with
the keyboard only."""
from __future__ import annotations

import os

import pytest
from browser_support import ADMIN, AGENT
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("PAPO_SCREENSHOTS")  # a folder: keep the screenshots to look at


def _shot(page, name, tmp_path):
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True, caret="initial")
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True, caret="initial")


def _customer(live_server, text: str, who: str, name: str) -> int:
    service = live_server.service()
    return service.handle_inbound("api", {"external_id": who, "name": name},
                                  {"id": f"{who}-{text}", "text": text})["conversation_id"]


def test_the_header_switches_between_available_and_away(new_page, live_server, tmp_path):
    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/reports")
    switch = page.locator("header").get_by_role("button", name="Ausente", exact=True)
    expect(switch).to_be_visible()
    switch.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/reports")  # back where the person was
    expect(page.locator("header").get_by_role("button", name="Disponível", exact=True)).to_be_visible()
    _shot(page, "desk-header-online", tmp_path)
    from editor.app import get_engine
    from engine import accounts

    assert accounts.get_user(get_engine(live_server.app), "bruno")["availability"] == "online"
    page.locator("header").get_by_role("button", name="Disponível", exact=True).click()
    expect(page.locator("header").get_by_role("button", name="Ausente", exact=True)).to_be_visible()
    page.goto(f"{live_server.url}/inbox?lang=en")
    expect(page.locator("header").get_by_role("button", name="Away", exact=True)).to_be_visible()
    assert page.csp_violations == []


def test_an_admin_sets_a_capacity_on_the_team_page(new_page, live_server, tmp_path):
    page = new_page(login=ADMIN)
    page.goto(f"{live_server.url}/team")
    row = page.locator("tr[data-login=bruno]")
    row.get_by_label("Máximo de atendimentos abertos de Bruno").fill("3")
    row.get_by_role("button", name="Salvar limite").click()
    expect(page.get_by_role("status")).to_contain_text("3 atendimentos abertos")
    expect(page.locator("tr[data-login=bruno]").get_by_label(
        "Máximo de atendimentos abertos de Bruno")).to_have_value("3")
    _shot(page, "desk-team-capacity", tmp_path)


def test_an_admin_writes_canned_responses(new_page, live_server, tmp_path):
    page = new_page(login=ADMIN)
    page.get_by_role("link", name="Configurações").click()
    page.get_by_role("link", name="Respostas prontas").click()
    page.get_by_role("heading", name="Respostas prontas", level=1).wait_for()
    form = page.locator("form.canned-form").first
    form.get_by_label("Atalho").fill("pix")
    form.get_by_label("Texto").fill("Olá, {{ contact.name }}! Nossa chave Pix é 12.345.678/0001-90.")
    form.get_by_role("button", name="Criar").click()
    expect(page.get_by_role("status")).to_contain_text("“/pix” criada")
    # a taken shortcut is explained and the text typed is kept
    form = page.locator("form.canned-form").first
    form.get_by_label("Atalho").fill("pix")
    form.get_by_label("Texto").fill("Outra")
    form.get_by_role("button", name="Criar").click()
    expect(page.get_by_role("alert")).to_contain_text("Já existe uma resposta pronta com o atalho \"/pix\"")
    expect(page.locator("form.canned-form").first.get_by_label("Texto")).to_have_value("Outra")
    # a template error names the field
    form = page.locator("form.canned-form").first
    form.get_by_label("Atalho").fill("prazo")
    form.get_by_label("Texto").fill("Entrega em {{ dias dias")
    form.get_by_role("button", name="Criar").click()
    expect(page.get_by_role("alert")).to_contain_text("Texto:")
    item = page.locator("li[data-shortcut=pix]")
    item.get_by_label("Texto de /pix").fill("Chave Pix: 12.345.678/0001-90")
    item.get_by_role("button", name="Salvar").click()
    expect(page.get_by_role("status")).to_contain_text("“/pix” salva")
    _shot(page, "desk-canned-page", tmp_path)
    page.locator("li[data-shortcut=pix]").get_by_role("button", name="Excluir").click()
    expect(page.get_by_role("status")).to_contain_text("excluída")
    expect(page.locator("li[data-shortcut=pix]")).to_have_count(0)
    assert page.csp_violations == []


def test_agents_do_not_get_the_canned_responses_page(new_page, live_server):
    page = new_page(login=AGENT)
    expect(page.get_by_role("link", name="Respostas prontas")).to_have_count(0)
    answer = page.request.get(f"{live_server.url}/settings/canned-responses", max_redirects=0)
    assert answer.status == 403


def test_the_slash_picker_inserts_a_rendered_response_with_the_keyboard(new_page, live_server, tmp_path):
    from editor.app import get_engine
    from engine import canned

    engine = get_engine(live_server.app)
    canned.create(engine, "pix", "Olá, {{ contact.name }}! A chave Pix é 123.")
    canned.create(engine, "prazo", "{{ contact.name }}, a entrega leva 2 dias.")
    canned.create(engine, "obrigado", "Obrigado pela compra!")
    conversation = _customer(live_server, "atendente", "c1", "Maria <Souza>")

    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/inbox/{conversation}")
    box = page.get_by_role("combobox", name="Mensagem")
    box.focus()
    page.keyboard.type("/")
    listbox = page.get_by_role("listbox", name="Respostas prontas")
    expect(listbox).to_be_visible()
    expect(listbox.get_by_role("option")).to_have_count(3)
    expect(box).to_have_attribute("aria-expanded", "true")
    page.keyboard.type("pr")  # filtering as you type: only /prazo
    expect(listbox.get_by_role("option")).to_have_count(1)
    expect(listbox.get_by_role("option").first).to_contain_text("/prazo")
    expect(listbox.get_by_role("option").first).to_have_attribute("aria-selected", "true")
    _shot(page, "desk-picker-open", tmp_path)
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")  # "/" again: all three
    expect(listbox.get_by_role("option")).to_have_count(3)
    page.keyboard.press("ArrowDown")  # obrigado → pix → prazo are sorted by shortcut
    active = box.get_attribute("aria-activedescendant")
    assert page.locator(f"#{active}").get_attribute("data-shortcut") == "pix"
    page.keyboard.press("Enter")
    expect(listbox).to_be_hidden()
    expect(box).to_have_value("Olá, Maria <Souza>! A chave Pix é 123.")  # rendered, not escaped twice
    # edited before sending, then sent as written
    page.keyboard.type(" Qualquer dúvida, chame.")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#conv-live .timeline")).to_contain_text(
        "Olá, Maria <Souza>! A chave Pix é 123. Qualquer dúvida, chame.")
    # Escape closes without inserting
    box.focus()
    page.keyboard.type("Veja: /ob")
    expect(listbox).to_be_visible()
    page.keyboard.press("Escape")
    expect(listbox).to_be_hidden()
    expect(box).to_have_value("Veja: /ob")
    _shot(page, "desk-picker-closed", tmp_path)
    assert page.csp_violations == []
