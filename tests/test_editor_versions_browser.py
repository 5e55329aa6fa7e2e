"""Drafts and versions in the editor (DESIGN §10.1), in Chromium, as a person uses them."""
# ruff: noqa: F811
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect
from test_editor_browser import WELCOME, card, open_editor, repo

pytestmark = pytest.mark.browser


def _published_twice(live_server) -> None:
    """Version 1: the welcome flow; version 2: its greeting says "Versão dois"."""
    doc = json.loads(WELCOME.read_text(encoding="utf-8"))
    flows = repo(live_server)
    flows.create(doc, actor="admin")
    flows.publish("boas-vindas", actor="admin")
    doc["blocks"][0]["data"]["text"] = "Versão dois"
    flows.update("boas-vindas", doc, 1, actor="admin")
    flows.publish("boas-vindas", actor="admin")


def test_restore_to_draft_shows_the_version_and_undo_brings_the_draft_back(new_page, live_server):
    _published_twice(live_server)
    page = open_editor(new_page(), live_server, "boas-vindas")
    draft_changes = page.get_by_text("Rascunho com alterações não publicadas")
    expect(draft_changes).to_be_hidden()
    expect(card(page, "saudacao")).to_contain_text("Versão dois")

    page.get_by_role("button", name="Versões").click()
    page.get_by_role("button", name="Restaurar no rascunho (1)").click()
    expect(page.locator("#panel-body")).to_contain_text("A versão 1 foi copiada para o rascunho.")
    expect(card(page, "saudacao")).not_to_contain_text("Versão dois")
    expect(draft_changes).to_be_visible()
    expect(page.locator("#save-status")).to_have_attribute("data-state", "saved")
    assert repo(live_server).get("boas-vindas")[0]["blocks"][0]["data"]["text"] != "Versão dois"
    assert repo(live_server).published("boas-vindas")[1] == 2  # nothing was published

    page.get_by_role("button", name="Desfazer").click()
    expect(card(page, "saudacao")).to_contain_text("Versão dois")
    expect(draft_changes).to_be_hidden()


def test_publish_this_version_publishes_it_and_puts_it_in_the_draft(new_page, live_server):
    _published_twice(live_server)
    page = open_editor(new_page(), live_server, "boas-vindas")
    page.get_by_role("button", name="Versões").click()
    page.get_by_role("button", name="Publicar esta versão (1)").click()
    panel = page.locator("#panel-body")  # the welcome flow has no warnings: no second question
    expect(panel).to_contain_text("A versão 1 foi publicada de novo como versão 3")
    expect(page.locator("#published-badge")).to_have_text("Publicado: versão 3", use_inner_text=True)
    expect(card(page, "saudacao")).not_to_contain_text("Versão dois")
    expect(page.get_by_text("Rascunho com alterações não publicadas")).to_be_hidden()
    expect(page.locator("#save-status")).to_have_attribute("data-state", "saved")
    flows = repo(live_server)
    assert flows.get("boas-vindas")[0] == flows.published("boas-vindas")[0]
    # the next "Publicar" ships version 1's content, not the rolled-back change
    page.get_by_role("button", name="Publicar", exact=True).click()
    expect(panel).to_contain_text("Versão 4 publicada.")
    assert flows.published("boas-vindas")[0]["blocks"][0]["data"]["text"] != "Versão dois"
