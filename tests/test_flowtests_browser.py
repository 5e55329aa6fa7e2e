"""An author saves a simulated conversation as a test, breaks the flow, runs the tests,
and is asked before publishing a flow whose tests fail (Chromium).

Set ``PAPO_SCREENSHOTS=1`` to keep screenshots of each stage in ``/tmp/papo-flowtests-*.png``
and rewrite docs/screenshots/flow-tests.png (a failing test in the Testes panel).
"""
# The browser fixtures are imported here too, so the file runs with any conftest.
# ruff: noqa: F811
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
WELCOME = ROOT / "sample_flows" / "boas-vindas.json"


def _repo(live_server):
    from editor.app import get_engine
    from engine.flows import FlowRepository

    return FlowRepository(get_engine(live_server.app))


def _shot(page, name: str, area: bool = False) -> None:
    if os.environ.get("PAPO_SCREENSHOTS"):
        # caret="initial": Playwright's default hides the caret with an injected <style>,
        # which the page's Content-Security-Policy refuses (and new_page fails the test).
        page.screenshot(path=f"/tmp/papo-flowtests-{name}.png", full_page=True, caret="initial")
        if area:
            page.locator("#flowtests-area").screenshot(path=f"/tmp/papo-flowtests-{name}-area.png",
                                                       caret="initial")


def _send(page, text: str):
    page.get_by_label("Mensagem", exact=True).fill(text)
    page.get_by_role("button", name="Enviar", exact=True).click()


def test_save_as_test_then_a_change_breaks_it_and_publish_asks_first(new_page, live_server):
    import json

    doc = json.loads(WELCOME.read_text(encoding="utf-8"))
    doc.pop("tests", None)
    _repo(live_server).create(doc, actor="admin")
    page = new_page()
    page.goto(f"{live_server.url}/flows/boas-vindas/edit")
    page.wait_for_function("window.papoEditor && window.papoEditor.ready")
    tests = page.get_by_role("region", name="Testes")
    expect(tests).to_contain_text("Nenhum teste ainda")

    # A conversation in the simulator: the menu, then the order status.
    chat = page.locator(".sim-chat")
    _send(page, "oi")
    expect(chat).to_contain_text("Como posso te ajudar hoje?")
    page.get_by_role("button", name="Status do pedido", exact=True).click()
    expect(chat).to_contain_text("Qual é o número do seu pedido?")
    _send(page, "12345")
    expect(chat).to_contain_text("Seu pedido 12345 está em separação")

    page.get_by_role("button", name="Salvar como teste").click()
    name = page.get_by_label("Nome do teste")
    expect(name).to_have_value("Teste 1")
    expect(page.locator(".flowtests-save-form")).to_contain_text("Cliente diz")
    _shot(page, "1-save-form", area=True)
    name.fill("Status do pedido")
    page.get_by_role("button", name="Salvar teste").click()
    expect(tests).to_contain_text("Teste “Status do pedido” salvo")
    expect(tests.locator(".flowtests-name")).to_have_text(["Status do pedido"])
    page.wait_for_function("papoEditor.document().tests && papoEditor.document().tests.length === 1")
    page.evaluate("papoEditor.save()")
    stored = _repo(live_server).get("boas-vindas")[0]["tests"]
    assert stored[0]["name"] == "Status do pedido"
    assert {"say": "12345"} in stored[0]["steps"]
    assert {"expect": "Como posso te ajudar hoje?"} in stored[0]["steps"]

    page.get_by_role("button", name="Rodar testes").click()
    expect(tests).to_contain_text("O teste passou.")
    _shot(page, "2-passed")

    # The author rewrites the question: the saved conversation no longer holds.
    page.locator('#canvas [data-block-id="numero_pedido"] .card-head').click()
    page.locator('#panel-body [data-form-block="numero_pedido"]').wait_for()
    page.get_by_label("Pergunta", exact=True).fill("Me passa o número do pedido?")
    page.get_by_role("button", name="Salvar bloco").click()
    page.get_by_text("Bloco atualizado.").wait_for()
    page.evaluate("papoEditor.save()")
    page.get_by_role("button", name="Testes", exact=True).click()  # the block form covered them
    expect(page.locator("#panel")).to_be_hidden()

    page.get_by_role("button", name="Rodar testes").click()
    expect(tests).to_contain_text("1 teste falhou")
    failure = tests.locator(".flowtests-failure")
    expect(failure).to_contain_text('esperado "Qual é o número do seu pedido? (só os números, ex.: 12345)", '
                                    'recebido "Me passa o número do pedido?"')
    expect(failure).to_contain_text("passo ")
    _shot(page, "3-failed", area=True)
    if os.environ.get("PAPO_SCREENSHOTS"):
        page.screenshot(path=str(ROOT / "docs" / "screenshots" / "flow-tests.png"), caret="initial")
    expect(tests.get_by_role("button", name="Usar a resposta nova")).to_be_visible()

    page.get_by_role("button", name="Publicar", exact=True).click()
    panel = page.locator("#panel-body")
    expect(panel).to_contain_text("Não foi publicado.")
    expect(panel).to_contain_text("Status do pedido")
    _shot(page, "4-publish-refused")
    assert _repo(live_server).versions("boas-vindas") == []

    page.get_by_role("button", name="Publicar mesmo assim").click()
    expect(panel).not_to_contain_text("Não foi publicado.")
    page.wait_for_function("true")
    expect(page.get_by_role("button", name="Publicar mesmo assim")).to_have_count(0)
    _shot(page, "5-published")
    assert [v["version"] for v in _repo(live_server).versions("boas-vindas")] == [1]
    assert page.dialogs == []


def test_the_tests_area_speaks_english_and_runs_the_sample_tests(new_page, live_server):
    _repo(live_server).create(WELCOME.read_bytes(), actor="admin")
    page = new_page(lang="en")
    page.goto(f"{live_server.url}/flows/boas-vindas/edit?lang=en")
    page.wait_for_function("window.papoEditor && window.papoEditor.ready")
    page.get_by_role("button", name="Simulator", exact=True).click()  # hide the column…
    tests = page.get_by_role("region", name="Tests")
    expect(tests).to_be_hidden()
    page.get_by_role("button", name="Tests", exact=True).click()  # …"Tests" brings it back
    expect(tests).to_be_visible()
    expect(tests.locator(".flowtests-name")).to_have_count(3)
    expect(tests).to_contain_text("not run")
    page.get_by_role("button", name="Run tests").click()
    expect(tests).to_contain_text("All 3 tests passed.")
    tests.locator(".flowtests-steps summary").first.click()
    expect(tests).to_contain_text("Customer says")
    _shot(page, "6-english", area=True)
    tests.get_by_role("button", name="Edit steps").first.click()
    steps = page.get_by_label("Steps of “Menu e status do pedido”, one per line")
    expect(steps).to_have_value(re.compile(r'^\{"say": "oi"\}\n'))
    steps.scroll_into_view_if_needed()
    _shot(page, "6b-edit-form")
    steps.fill('{"say": "oi"}\n{"expect_buttons": ["Ver produtos", "Status do pedido", "Falar com atendente"]}')
    page.get_by_role("button", name="Save steps").click()
    expect(tests).to_contain_text("Steps of the test “Menu e status do pedido” saved.")
    page.wait_for_function("papoEditor.document().tests[0].steps.length === 2")
    _shot(page, "7-edited", area=True)
    page.get_by_role("button", name="Save as test").click()
    expect(page.locator(".flowtests-save-form")).to_contain_text("Chat with the bot in the simulator before saving a test.")
    page.get_by_role("button", name="Close").click()
    expect(page.locator(".flowtests-save-form")).to_have_count(0)
