"""The "Equipe" (Team) page in Chromium, as an admin running a shop would use it (DESIGN §10.5).

Also the end of a session from another browser: an agent disabled on the page is sent
to the login form on their next click.
"""
from __future__ import annotations

import os
import re

import pytest
from browser_support import ADMIN, AGENT

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("PAPO_SCREENSHOTS")  # a folder: keep the screenshots to look at


def _shot(page, name, tmp_path):
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def test_an_admin_adds_a_person_gives_a_token_and_takes_it_back(new_page, live_server, tmp_path):
    page = new_page(login=ADMIN)
    page.get_by_role("link", name="Equipe").click()
    page.get_by_role("heading", name="Equipe").wait_for()
    _shot(page, "team", tmp_path)

    form = page.locator("form.team-form")
    form.get_by_label("Login").fill("dora")
    form.get_by_label("Nome").fill("Dora Lima")
    form.get_by_label("Senha").fill("curta")
    form.get_by_role("button", name="Criar").click()
    # The browser's own check (minlength) stops it before it is even sent.
    assert page.locator("tr[data-login=dora]").count() == 0

    form.get_by_label("Senha").fill("")
    form.get_by_role("button", name="Criar").click()
    secret = page.locator("[data-secret]")
    secret.wait_for()
    assert "Senha gerada para “dora”" in page.locator(".team-secret h2").inner_text()
    password = secret.inner_text().strip()
    assert len(password) >= 10
    row = page.locator("tr[data-login=dora]")
    assert "Dora Lima" in row.inner_text() and "Ativo" in row.inner_text()

    row.get_by_placeholder("para que serve").fill("Planilha de pedidos")
    row.get_by_role("button", name="Criar token").click()
    token = page.locator("[data-secret]").inner_text().strip()
    assert token.startswith("papo_")
    _shot(page, "team-token", tmp_path)
    page.reload()
    assert token not in page.content()  # shown once
    row = page.locator("tr[data-login=dora]")
    assert "Planilha de pedidos" in row.inner_text()
    row.get_by_role("button", name=re.compile("Revogar")).click()
    assert "revogado" in page.get_by_role("status").inner_text()
    assert "Nenhum token." in page.locator("tr[data-login=dora]").inner_text()
    assert page.csp_violations == []


def test_disabling_an_agent_ends_their_open_session(new_page, live_server, tmp_path):
    agent = new_page(login=AGENT)
    agent.goto(f"{live_server.url}/inbox")
    assert "/login" not in agent.url

    admin = new_page(login=ADMIN)
    admin.goto(f"{live_server.url}/team")
    admin.locator("tr[data-login=bruno]").get_by_role("button", name=re.compile("Desativar")).click()
    row = admin.locator("tr[data-login=bruno]")
    assert "Desativado" in row.inner_text()
    _shot(admin, "team-disabled", tmp_path)

    agent.goto(f"{live_server.url}/inbox")
    assert "/login" in agent.url
    agent.fill("input[name=login]", AGENT[0])
    agent.fill("input[name=password]", AGENT[1])
    agent.locator("form button[type=submit]").first.click()
    assert "/login" in agent.url and "incorretos" in agent.get_by_role("alert").inner_text()


def test_the_team_page_in_english(new_page, live_server):
    page = new_page(login=ADMIN, lang="en")
    page.goto(f"{live_server.url}/team?lang=en")
    page.get_by_role("heading", name="Team").wait_for()
    assert "Reset password" in page.content() and "API tokens" in page.content()
