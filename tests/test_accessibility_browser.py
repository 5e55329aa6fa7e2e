"""WCAG 2.1 A/AA on every page, checked by axe-core in Chromium (issue 21).

axe-core comes from npm (a devDependency, pinned by package-lock.json) and is injected
only here, never served by the product. The pages forbid inline script (CSP), so the
axe contexts alone are opened with ``bypass_csp=True``; the product's own tests keep
watching the CSP. A failure lists each violation's rule, the elements and axe's help text.
docs/ACCESSIBILITY.md says what is checked and how to run it.
"""
from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import pytest
from browser_support import ADMIN, AGENT
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SAMPLE_FLOWS = ROOT / "sample_flows"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
SHOTS = os.environ.get("PAPO_SCREENSHOTS")  # a folder: keep each checked page's screenshot

_ids = itertools.count(1)


def _axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `make assets` (npm ci installs axe-core)")
    return AXE.read_text(encoding="utf-8")


def _inbound(live_server, text: str, contact: str, name: str) -> int:
    result = live_server.service().handle_inbound(
        "api", {"external_id": contact, "name": name}, {"id": f"a11y{next(_ids)}", "text": text})
    return result["conversation_id"]


@pytest.fixture
def shop(live_server):
    """A published welcome flow and an open conversation with customer, bot, agent and
    activity entries in its timeline: what an agent sees on a usual day."""
    from editor.app import get_engine
    from engine.flows import FlowRepository

    doc = json.loads((SAMPLE_FLOWS / "boas-vindas.json").read_text(encoding="utf-8"))
    repo = FlowRepository(get_engine(live_server.app))
    repo.create(doc)
    repo.publish(doc["id"])
    from engine import canned

    canned.create(get_engine(live_server.app), "pix", "Olá, {{ contact.name }}! A chave Pix é 123.")
    conversation = _inbound(live_server, "oi", "c1", "Maria Souza")
    _inbound(live_server, "Falar com atendente", "c1", "Maria Souza")
    service = live_server.service()
    service.act(conversation, "assign", "admin", user="bruno")
    other = _inbound(live_server, "atendente", "c2", "José Antônio")
    _inbound(live_server, "quero trocar o sabor do pedido", "c2", "José Antônio")
    service.act(other, "conclude", "admin")
    return {"flow": doc["id"], "conversation": conversation, "concluded": other}


@pytest.fixture
def axe_page(browser, live_server):
    """``axe_page(login, lang, viewport)`` → a page in its own context (CSP bypassed for axe)."""
    contexts = []

    def make(login=ADMIN, lang: str | None = None, viewport=DESKTOP):
        context = browser.new_context(viewport=viewport, bypass_csp=True,
                                      locale="en-US" if lang == "en" else "pt-BR")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        if login:
            page.goto(f"{live_server.url}/login" + ("?lang=en" if lang == "en" else ""))
            page.fill("input[name=login]", login[0])
            page.fill("input[name=password]", login[1])
            page.locator("form button[type=submit]").first.click()
            page.wait_for_url(lambda url: "/login" not in url)
        return page

    yield make
    for context in contexts:
        context.close()


def axe_violations(page) -> list[dict]:
    """Run axe-core (WCAG 2.0/2.1 A and AA rules) on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=_axe_source())
    return page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                                    resultTypes: ['violations']});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}));
        }""", WCAG_TAGS)


def describe(found: dict[str, list[dict]]) -> str:
    lines = []
    for where, violations in found.items():
        for v in violations:
            lines.append(f"{where}: [{v['impact']}] {v['id']} — {v['help']} ({v['helpUrl']})")
            for node in v["nodes"][:12]:
                summary = " ".join((node["summary"] or "").split())
                lines.append(f"    {node['target']}: {summary[:300]}")
            if len(v["nodes"]) > 12:
                lines.append(f"    … and {len(v['nodes']) - 12} more elements")
    return "\n".join(lines)


def check(page, url: str, found: dict, ready: str | None = None) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    if ready:
        page.locator(ready).first.wait_for()
    violations = axe_violations(page)
    where = "/" + url.split("/", 3)[3]
    if SHOTS:
        name = re.sub(r"[^a-z0-9]+", "-", f"{where}-{page.viewport_size['width']}".lower()).strip("-")
        page.screenshot(path=os.path.join(SHOTS, f"a11y-{name}.png"), caret="initial")
    if violations:
        found[where] = violations


def webchat_with_an_answer(page, url: str, lang: str | None) -> None:
    """The customer's web chat after a first message and the bot's answer (buttons)."""
    page.goto(url)
    box = page.get_by_label("Message" if lang == "en" else "Mensagem", exact=True)
    box.fill("oi")
    page.get_by_role("button", name="Send" if lang == "en" else "Enviar", exact=True).click()
    expect(page.locator(".from-bot").first).to_be_visible()


@pytest.mark.parametrize("lang", [None, "en"], ids=["pt-BR", "en"])
def test_every_page_meets_wcag_21_aa(axe_page, live_server, shop, lang):
    q = "?lang=en" if lang == "en" else ""
    base = live_server.url
    found: dict[str, list[dict]] = {}

    page = axe_page(login=None, lang=lang)
    check(page, f"{base}/login{q}", found, "input[name=login]")

    page = axe_page(login=ADMIN, lang=lang)
    check(page, f"{base}/flows{q}", found, "main")
    check(page, f"{base}/flows/{shop['flow']}/edit{q}", found, "#canvas .block-card")
    check(page, f"{base}/inbox{q}", found, "#inbox-list .conv-item")
    check(page, f"{base}/inbox/{shop['conversation']}{q}", found, "#conv-live .timeline li")
    check(page, f"{base}/inbox?status=concluded{q.replace('?', '&')}", found, "#inbox-list .conv-item")
    check(page, f"{base}/inbox/{shop['concluded']}{q}", found, "#conv-live .timeline li")
    check(page, f"{base}/reports{q}", found, "main")
    check(page, f"{base}/team{q}", found, "main")
    check(page, f"{base}/settings/whatsapp{q}", found, "main")

    check(page, f"{base}/settings/canned-responses{q}", found, "main")
    # the reply box's "/" picker, open
    page.goto(f"{base}/inbox/{shop['conversation']}{q}")
    page.locator("#reply-text").focus()
    page.keyboard.type("/")
    page.locator("#canned-list [role=option]").first.wait_for()
    violations = axe_violations(page)
    if violations:
        found[f"/inbox/{shop['conversation']}{q} (the / picker open)"] = violations

    check(page, f"{base}/settings{q}", found, "#f-timezone")

    chat = axe_page(login=None, lang=lang)
    check(chat, f"{base}/c/no-such-flow{q}", found, "main")
    check(chat, f"{base}/c/{shop['flow']}{q}", found, "form")
    webchat_with_an_answer(chat, f"{base}/c/{shop['flow']}{q}", lang)
    violations = axe_violations(chat)
    if violations:
        found[f"/c/{shop['flow']}{q} (after a first message)"] = violations

    assert not found, "WCAG 2.1 A/AA violations found by axe-core:\n" + describe(found)


@pytest.mark.parametrize("lang", [None, "en"], ids=["pt-BR", "en"])
def test_inbox_and_web_chat_meet_wcag_21_aa_on_a_phone(axe_page, live_server, shop, lang):
    q = "?lang=en" if lang == "en" else ""
    base = live_server.url
    found: dict[str, list[dict]] = {}

    page = axe_page(login=AGENT, lang=lang, viewport=PHONE)
    check(page, f"{base}/inbox{q}", found, "#inbox-list .conv-item")
    check(page, f"{base}/inbox/{shop['conversation']}{q}", found, "#conv-live .timeline li")
    page.locator("#conv-more-toggle").click()  # "Mais ações" open
    page.locator("#conv-more.is-open").wait_for()
    run_axe_here(page, f"/inbox/{shop['conversation']}{q} (phone, more actions open)", found)

    chat = axe_page(login=None, lang=lang, viewport=PHONE)
    webchat_with_an_answer(chat, f"{base}/c/{shop['flow']}{q}", lang)
    violations = axe_violations(chat)
    if violations:
        found[f"/c/{shop['flow']}{q} (phone, after a first message)"] = violations

    assert not found, "WCAG 2.1 A/AA violations found by axe-core at 390×844:\n" + describe(found)


def run_axe_here(page, where: str, found: dict) -> None:
    violations = axe_violations(page)
    if SHOTS:
        name = re.sub(r"[^a-z0-9]+", "-", where.lower()).strip("-")
        page.screenshot(path=os.path.join(SHOTS, f"a11y-{name}.png"), caret="initial")
    if violations:
        found[where] = violations


@pytest.mark.parametrize("lang", [None, "en"], ids=["pt-BR", "en"])
def test_the_editors_panels_and_flow_pages_meet_wcag_21_aa(axe_page, live_server, shop, lang):
    """What the editor shows beside the canvas (settings, versions, tests, validation, a
    block form, the condition builder) and the flow list's own pages."""
    q = "?lang=en" if lang == "en" else ""
    base, flow = live_server.url, shop["flow"]
    found: dict[str, list[dict]] = {}
    page = axe_page(login=ADMIN, lang=lang)
    page.goto(f"{base}/flows/{flow}/edit{q}")
    page.locator("#canvas .block-card").first.wait_for()
    panel = page.locator("#panel-body")

    for button, shown, name in (("#btn-settings", ".settings-form", "settings"),
                                ("#btn-versions", ".versions-panel", "versions"),
                                ("#btn-validate", ".findings-panel", "validation")):
        page.locator(button).click()
        panel.locator(shown).wait_for()
        run_axe_here(page, f"/flows/{flow}/edit{q} ({name} panel)", found)

    page.locator("#btn-tests").click()
    expect(page.locator("#flowtests")).to_be_visible()
    run_axe_here(page, f"/flows/{flow}/edit{q} (tests panel)", found)

    first = page.locator("#canvas .block-card").first
    first_id = first.get_attribute("data-block-id")
    first.locator(".card-head").click()
    panel.locator(f'[data-form-block="{first_id}"]').wait_for()
    run_axe_here(page, f"/flows/{flow}/edit{q} (block form)", found)

    first.focus()  # "C": the keyboard's connection dialog
    page.keyboard.press("c")
    page.locator("#connect-menu").wait_for()
    run_axe_here(page, f"/flows/{flow}/edit{q} (connection dialog)", found)
    page.keyboard.press("Escape")

    page.locator('.palette-item[data-kind="condition"]').focus()
    page.keyboard.press("Enter")
    panel.locator(".block-form .rule-row").first.wait_for()
    run_axe_here(page, f"/flows/{flow}/edit{q} (condition builder)", found)

    for action in ("rename", "duplicate", "delete"):
        check(page, f"{base}/flows/{flow}/{action}{q}", found, "main form")

    assert not found, "WCAG 2.1 A/AA violations found by axe-core:\n" + describe(found)
