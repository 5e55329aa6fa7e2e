"""WhatsApp media and delivery ticks as an agent sees them in Chromium (DESIGN §10.4; issue 16).

A live papo whose WhatsApp API base is the fake Graph API: the customer's media are
fetched through ``/media`` by the page itself, the agent attaches a picture in the reply
box, the outbox sends it, and Meta's statuses turn into ticks.
"""
from __future__ import annotations

import json
import os
import threading

import pytest
from browser_support import AGENT, watch_csp
from playwright.sync_api import expect
from test_accessibility_browser import axe_violations, describe
from test_whatsapp_media import png

from engine import accounts, whatsapp, whatsapp_inbound
from engine import outbox as sender

pytestmark = pytest.mark.browser
NUMBER = "5511987654321"
T = 1_800_000_000
PHONE_ID = "106540352242922"


@pytest.fixture
def shop(tmp_path, fake_graph):
    """papo on a real socket with WhatsApp pointed at the fake Graph API; an agent."""
    from werkzeug.serving import make_server

    from editor import create_app
    from editor.app import ensure_schema, get_engine, get_service

    app = create_app({"PAPO_DATABASE_URL": f"sqlite:///{tmp_path / 'live.db'}", "TESTING": False,
                      "SECRET_KEY": "live-test", "PAPO_INSTANCE_PATH": str(tmp_path),
                      "PAPO_WHATSAPP_TOKEN": "token-de-teste", "PAPO_WHATSAPP_PHONE_NUMBER_ID": PHONE_ID,
                      "PAPO_WHATSAPP_API_BASE": fake_graph.api_base})
    ensure_schema(get_engine(app))
    accounts.create_user(get_engine(app), AGENT[0], "agent", password=AGENT[1], name="Bruno")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with app.app_context():
        service = get_service(app)
    service.clock = lambda: T + 120.0
    try:
        yield {"url": f"http://127.0.0.1:{server.server_port}", "service": service}
    finally:
        server.shutdown()
        thread.join(timeout=5)


def deliver(service, *, messages=(), statuses=()) -> None:
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE_ID},
             "contacts": [{"profile": {"name": "Dona Cida"}, "wa_id": NUMBER}]}
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    payload = {"object": "whatsapp_business_account",
               "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}
    whatsapp_inbound.receive(service, whatsapp.parse_delivery(json.loads(json.dumps(payload))))


def media(n: int, kind: str, content: dict) -> dict:
    return {"from": NUMBER, "id": f"wamid.B{n}", "timestamp": str(T + n), "type": kind, kind: content}


@pytest.fixture
def page_of(browser):
    """``page_of(url)`` → a page logged in as the agent (``bypass_csp`` for axe)."""
    contexts = []

    def make(url: str, bypass_csp: bool = False):
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="pt-BR",
                                      bypass_csp=bypass_csp)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        watch_csp(page)
        page.goto(f"{url}/login")
        page.fill("input[name=login]", AGENT[0])
        page.fill("input[name=password]", AGENT[1])
        page.locator("form button[type=submit]").first.click()
        page.wait_for_url(lambda u: "/login" not in u)
        return page

    yield make
    for context in contexts:
        context.close()


def test_an_agent_sees_the_customers_media_attaches_a_picture_and_sees_it_read(shop, fake_graph, page_of,
                                                                             tmp_path):
    fake_graph.add_media("m.foto", png(120, 80, (200, 80, 40)), "image/png")
    fake_graph.add_media("m.audio", b"OggS fake", "audio/ogg")
    fake_graph.add_media("m.pdf", b"%PDF-1.4", "application/pdf")
    deliver(shop["service"], messages=[
        media(1, "image", {"id": "m.foto", "mime_type": "image/png", "caption": "O bolo que eu quero"}),
        media(2, "audio", {"id": "m.audio", "mime_type": "audio/ogg; codecs=opus", "voice": True}),
        media(3, "video", {"id": "m.video", "mime_type": "video/mp4"}),
        media(4, "document", {"id": "m.pdf", "mime_type": "application/pdf", "filename": "pedido.pdf"}),
        media(5, "sticker", {"id": "m.foto", "mime_type": "image/png"}),
        media(6, "location", {"latitude": -23.5614, "longitude": -46.6558, "name": "Padaria Central",
                              "address": "Rua Augusta, 100"})])
    page = page_of(shop["url"])
    page.goto(f"{shop['url']}/inbox?status=concluded")
    page.locator("#inbox-list .conv-item").first.click()
    timeline = page.locator("#conv-live .timeline")

    picture = timeline.get_by_role("img", name="Imagem: O bolo que eu quero")
    expect(picture).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 120", arg=picture.element_handle())
    expect(timeline.locator("audio[aria-label='Áudio sem legenda']")).to_have_count(1)
    expect(timeline.locator("video[aria-label='Vídeo sem legenda']")).to_have_count(1)
    expect(timeline.get_by_role("link", name="pedido.pdf")).to_have_attribute("href", "/media/4")
    expect(timeline.get_by_role("img", name="Figurinha sem legenda")).to_be_visible()
    expect(timeline.get_by_role("link", name="Ver no mapa (-23.56140, -46.65580)")).to_have_attribute(
        "href", "https://www.openstreetmap.org/?mlat=-23.5614&mlon=-46.6558#map=17/-23.5614/-46.6558")

    # A type WhatsApp does not take is refused before anything is uploaded.
    page.set_input_files("#reply-file", files=[{"name": "anim.gif", "mimeType": "image/gif", "buffer": b"GIF89a"}])
    expect(page.locator("#reply-file-problem")).to_have_text("O WhatsApp não aceita este tipo de arquivo.")
    assert fake_graph.uploads() == []

    page.set_input_files("#reply-file", files=[{"name": "vitrine.png", "mimeType": "image/png",
                                                "buffer": png(60, 60, (20, 90, 200))}])
    expect(page.locator("#reply-file-problem")).to_have_text("")
    page.fill("#reply-text", "Temos este aqui também")
    page.get_by_role("button", name="Enviar", exact=True).click()
    mine = timeline.locator(".bubble.from-agent").last
    expect(mine).to_contain_text("Temos este aqui também")
    expect(mine.get_by_role("img", name="Imagem: Temos este aqui também")).to_be_visible()
    assert len(fake_graph.uploads()) == 1

    assert sender.send_due(shop["service"], now=T + 130) == 1
    deliver(shop["service"], statuses=fake_graph.statuses("delivered", at=T + 131))
    deliver(shop["service"], statuses=fake_graph.statuses("read", at=T + 132))
    page.reload()
    expect(timeline.locator(".bubble.from-agent").last.get_by_role("img", name="Lida")).to_be_visible()

    shots = os.environ.get("PAPO_SCREENSHOTS") or str(tmp_path)
    page.screenshot(path=os.path.join(shots, "inbox-whatsapp-media.png"), full_page=True, caret="initial")
    timeline.screenshot(path=os.path.join(shots, "inbox-whatsapp-media-timeline.png"), caret="initial")
    assert page.csp_violations == []

    checked = page_of(shop["url"], bypass_csp=True)
    checked.goto(page.url)
    checked.locator("#conv-live .timeline li").first.wait_for()
    violations = axe_violations(checked)
    assert not violations, describe({"/inbox (WhatsApp media)": violations})


def test_a_failed_delivery_is_explained_in_portuguese(shop, fake_graph, page_of):
    deliver(shop["service"], messages=[{"from": NUMBER, "id": "wamid.X1", "timestamp": str(T + 1),
                                        "type": "text", "text": {"body": "oi"}}])
    page = page_of(shop["url"])
    page.goto(f"{shop['url']}/inbox?status=concluded")
    page.locator("#inbox-list .conv-item").first.click()
    page.fill("#reply-text", "Bom dia! Seu pedido saiu.")
    page.get_by_role("button", name="Enviar", exact=True).click()
    expect(page.locator("#conv-live .timeline")).to_contain_text("Bom dia! Seu pedido saiu.")
    assert sender.send_due(shop["service"], now=T + 130) == 1
    deliver(shop["service"], statuses=fake_graph.statuses(
        "failed", at=T + 131, messages=fake_graph.delivered[-1:],
        error={"code": 131047, "title": "Re-engagement message"}))

    page.reload()

    expect(page.locator(".bubble-failed")).to_have_text(
        "⚠ O WhatsApp recusou: fora da janela de 24 h: o cliente não escreve há mais de 24 horas; "
        "envie um modelo aprovado")
    shots = os.environ.get("PAPO_SCREENSHOTS")
    if shots:
        page.locator("#conversation").screenshot(path=os.path.join(shots, "inbox-whatsapp-failed.png"),
                                                 caret="initial")
