"""Debounce in the simulator pane, in Chromium: a burst waits for "Avançar tempo"."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from browser_support import ADMIN
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SAMPLE_FLOWS = Path(__file__).resolve().parent.parent / "sample_flows"


@pytest.fixture(autouse=True)
def _debounce_on(monkeypatch):
    """Before the live server's app reads its settings: long enough that the pane's running
    clock never ends a burst between two clicks."""
    monkeypatch.setenv("PAPO_DEBOUNCE_SECONDS", "30")


def test_a_burst_in_the_simulator_is_answered_once_by_advance_time(new_page, live_server, tmp_path):
    from editor.app import get_engine
    from engine.flows import FlowRepository

    doc = json.loads((SAMPLE_FLOWS / "boas-vindas.json").read_text(encoding="utf-8"))
    FlowRepository(get_engine(live_server.app)).create(doc, actor="admin")
    page = new_page(login=ADMIN)
    page.goto(f"{live_server.url}/flows/boas-vindas/simulator")
    box = page.get_by_label("Mensagem", exact=True)
    for text in ("oi", "tudo bem?"):
        box.fill(text)
        page.get_by_role("button", name="Enviar", exact=True).click()
        expect(page.locator(".sim-msg-customer .sim-text").last).to_have_text(text)
    status = page.locator("#sim-status")
    expect(status).to_contain_text("Juntando as mensagens do cliente")
    expect(status).to_contain_text("Use Avançar tempo para responder já.")
    expect(page.locator(".sim-msg-bot")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "debounce-waiting.png"), caret="initial")

    page.get_by_role("button", name="Avançar tempo", exact=True).click()
    expect(page.locator(".sim-msg-bot")).to_have_count(2)  # the greeting and the menu, once
    expect(page.locator(".sim-chat")).to_contain_text("Olá, Admin! 👋 Bem-vindo(a) à Loja da Ana.")
    expect(page.locator(".sim-chat")).to_contain_text(re.compile(r"⏩ \d+ s depois"))  # the quiet time skipped
    expect(status).to_contain_text("Aguardando a resposta do cliente")
    page.screenshot(path=str(tmp_path / "debounce-answered.png"), caret="initial")
    assert page.dialogs == []
