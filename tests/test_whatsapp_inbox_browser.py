"""What a WhatsApp conversation looks like to an agent in Chromium (DESIGN §10.7).

The corpus' shapes arrive through the webhook's engine half (``engine.whatsapp`` reads,
``engine.whatsapp_inbound`` stores); the agent opens the conversation and sees the quote,
the ad, the media, the place, the contact card, the order, a deleted message, an edited
one with its earlier text, and a reaction, with no script of the customer's running.
"""
from __future__ import annotations

import json
import os

import pytest
from browser_support import AGENT
from playwright.sync_api import expect

from engine import whatsapp, whatsapp_inbound

pytestmark = pytest.mark.browser
NUMBER = "5511987654321"
T = 1_800_000_000


def message(n: int, kind: str, content: dict, **extra) -> dict:
    return {"from": NUMBER, "id": f"wamid.B{n}", "timestamp": str(T + n), "type": kind, kind: content, **extra}


def deliver(live_server, *msgs: dict) -> None:
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "1"},
        "contacts": [{"profile": {"name": "Dona Cida <b>Doces</b>"}, "wa_id": NUMBER}], "messages": list(msgs)}}]}]}
    service = live_server.service()
    service.clock = lambda: T + 120.0
    whatsapp_inbound.receive(service, whatsapp.parse_delivery(json.loads(json.dumps(payload))))


def test_an_agent_sees_what_the_customer_sent_and_changed(new_page, live_server, tmp_path):
    evil = "<img src=x onerror=alert(1)>"
    deliver(live_server,
            message(1, "text", {"body": "Vi o anúncio do bolo de pote"}, referral={
                "source_url": "https://fb.me/bolo", "source_type": "ad", "headline": "Bolo de pote em dobro",
                "ctwa_clid": "ARAkLk"}),
            message(2, "text", {"body": f"Quero 10 unidades {evil}"}),
            message(3, "text", {"body": "Esse aqui"}, context={"id": "wamid.B2"}),
            message(4, "image", {"id": "77", "mime_type": "image/jpeg", "caption": "Igual a este"}),
            message(5, "location", {"latitude": -23.5614, "longitude": -46.6558, "name": "Padaria Central",
                                    "address": "Rua Augusta, 100"}),
            message(6, "contacts", [{"name": {"formatted_name": "Seu Zé"},
                                     "phones": [{"phone": "+55 11 91111-2222"}]}]),
            message(7, "order", {"catalog_id": "9", "product_items": [
                {"product_retailer_id": "bolo-de-pote", "quantity": 10, "item_price": 12.5, "currency": "BRL"}]}),
            message(8, "text", {"body": "número errado, ignora"}),
            message(9, "revoke", {"original_message_id": "wamid.B8"}),
            message(10, "edit", {"original_message_id": "wamid.B3",
                                 "message": {"type": "text", "text": {"body": "Esse aqui, de chocolate"}}}),
            message(11, "reaction", {"message_id": "wamid.B4", "emoji": "😍"}))
    page = new_page(login=AGENT)
    page.goto(f"{live_server.url}/inbox?status=concluded")
    page.locator("#inbox-list .conv-item").first.click()
    timeline = page.locator("#conv-live .timeline")
    expect(timeline).to_contain_text("Veio do anúncio “Bolo de pote em dobro”")
    expect(timeline).to_contain_text(f"Quero 10 unidades {evil}")  # shown as text, not run
    expect(timeline.locator(".bubble-quote")).to_contain_text("Quero 10 unidades")
    expect(timeline).to_contain_text("Imagem")
    expect(timeline).to_contain_text("Igual a este")
    expect(timeline).to_contain_text("Padaria Central")
    expect(timeline.get_by_role("link", name="Ver no mapa")).to_have_attribute(
        "href", "https://www.openstreetmap.org/?mlat=-23.5614&mlon=-46.6558#map=17/-23.5614/-46.6558")
    expect(timeline).to_contain_text("Seu Zé")
    expect(timeline).to_contain_text("10 × bolo-de-pote — R$\xa012,50")
    expect(timeline).to_contain_text("Mensagem apagada pelo cliente")
    expect(timeline).not_to_contain_text("número errado")
    expect(timeline).to_contain_text("Esse aqui, de chocolate")
    timeline.get_by_text("editada").click()
    expect(timeline.locator(".bubble-edits li")).to_contain_text("Esse aqui")
    expect(timeline.locator(".bubble-reaction")).to_contain_text("😍")
    assert page.dialogs == []  # no customer script ran
    shots = os.environ.get("PAPO_SCREENSHOTS")
    page.screenshot(path=os.path.join(shots or str(tmp_path), "inbox-whatsapp.png"), full_page=True)
    timeline.evaluate("element => { element.scrollTop = 0; }")
    page.screenshot(path=os.path.join(shots or str(tmp_path), "inbox-whatsapp-top.png"))
