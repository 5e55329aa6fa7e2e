"""Every payload shape Meta documents, replayed signed, twice each, on both databases.

``tests/fixtures/whatsapp/`` holds webhook bodies written from Meta's webhook reference
(its README lists them). They are posted in file order to one papo, like a day of real
traffic: each twice (Meta delivers at least once and retries), each answered 200, and
after each one what a person would see is checked: the conversation, its messages, what
they carry, the activity. The second delivery of a body never changes anything.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_whatsapp import PHONE_ID, WEBHOOK, make_app, sign

from engine.service import Service
from engine.store import activity, contacts, conversations, messages, outbox, processed_messages

CORPUS = Path(__file__).parent / "fixtures" / "whatsapp"
FILES = sorted(CORPUS.glob("*.json"))
T = 1_800_000_000
SHEENA, SHEENA_NEW, ANA, RAFA_PHONE = "16505551234", "12195555358", "5511987654321", "5521998765432"
RAFA_USER_ID = "US.13491208655302741918"


def wamid(n: int) -> str:
    return f"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUFERjg0NDEzNDdFODU3MUMx{n:04d}"


class Papo:
    """The app under replay, and what a person would look at."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        papo = app.extensions["papo"]
        self.engine = papo["engine"]
        self.now = T + 200.0  # a few minutes after the corpus' messages: all fresh
        papo["service"] = self.service = Service(self.engine, papo["settings"], clock=lambda: self.now)

    def deliver(self, raw: bytes):
        return self.client.post(WEBHOOK, data=raw, content_type="application/json",
                                headers={"X-Hub-Signature-256": sign(raw)})

    def counts(self) -> dict:
        with self.engine.connect() as conn:
            tables = (contacts, conversations, messages, outbox, processed_messages, activity)
            totals = {t.name: conn.execute(select(func.count()).select_from(t)).scalar() for t in tables}
            totals["bot"] = conn.execute(select(func.count()).select_from(messages).where(
                messages.c.author == "bot")).scalar()
            totals["details"] = json.dumps(sorted(
                (r.id, r.text, json.dumps(r.details, sort_keys=True))
                for r in conn.execute(select(messages.c.id, messages.c.text, messages.c.details))))
            totals["keys"] = sorted(conn.execute(select(contacts.c.external_id, contacts.c.user_id)).all())
        return totals

    def conversation_of(self, external_id: str) -> dict:
        with self.engine.connect() as conn:
            found = conn.execute(select(conversations.c.id).join(
                contacts, contacts.c.id == conversations.c.contact_id).where(
                contacts.c.channel == "whatsapp", contacts.c.external_id == external_id)).scalar_one()
        return self.service.get_conversation(found)

    def customer_messages(self, external_id: str) -> list[dict]:
        return [m for m in self.conversation_of(external_id)["messages"] if m["direction"] == "in"]

    def message(self, external_id: str, text_or_index) -> dict:
        found = self.customer_messages(external_id)
        if isinstance(text_or_index, int):
            return found[text_or_index]
        return next(m for m in found if m["text"] == text_or_index)


def check(name: str, papo: Papo) -> None:  # noqa: C901 - one branch per corpus file, in order
    """What a person sees after ``name`` was delivered (twice)."""
    sheena = lambda: papo.customer_messages(SHEENA if name < "35" else SHEENA_NEW)  # noqa: E731
    if name == "01_text":
        conv = papo.conversation_of(SHEENA)
        assert conv["contact"] == {"external_id": SHEENA, "name": "Sheena Nelson"}
        first = conv["messages"][0]
        assert (first["text"], first["at"]) == ("Olá! Vocês abrem no sábado?", "2027-01-15T08:00:00Z")
        assert [m["author"] for m in conv["messages"]] == ["customer", "bot", "bot"]  # the bot answered
    elif name == "02_text_from_with_plus":  # "+16505551234" and "16505551234" are one customer
        assert [m["text"] for m in sheena()][-1] == "Queria saber o preço da entrega"
        with papo.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(contacts)).scalar() == 1
    elif name == "03_reply_with_context":
        first = sheena()[0]
        assert sheena()[-1]["reply_to"] == {"id": first["id"], "text": "Olá! Vocês abrem no sábado?"}
    elif name == "04_forwarded":
        assert sheena()[-1]["forwarded"] is True
    elif name == "05_referred_product":
        assert sheena()[-1]["referred_product"] == {"catalog_id": "2729063490586005",
                                                    "product_retailer_id": "camiseta-azul-m"}
        assert sheena()[-1]["reply_to"] == {"id": None, "text": None}  # a message papo never had
    elif name == "06_referral_ad":
        ad = papo.message(ANA, 0)["referral"]
        assert ad["headline"] == "Promoção de Natal" and ad["source_type"] == "ad"
        assert ad["source_url"] == "https://fb.me/3cr4Wqqkv" and ad["ctwa_clid"].startswith("ARAkLkA8")
    elif name == "07_image":
        shown = sheena()[-1]
        assert shown["text"] == "Foto do comprovante"  # the caption, exactly
        assert shown["media"] == {"type": "image", "mime": "image/jpeg", "id": "2754859441498128",
                                  "caption": "Foto do comprovante"}
    elif name == "08_image_no_caption":
        assert (sheena()[-1]["text"], sheena()[-1]["media"]["caption"]) == ("[imagem]", None)
    elif name == "09_audio_voice":
        assert sheena()[-1]["text"] == "[áudio]"
        assert sheena()[-1]["media"] == {"type": "audio", "mime": "audio/ogg; codecs=opus",
                                         "id": "1003383421387256", "caption": None}
    elif name == "10_video":
        assert (sheena()[-1]["text"], sheena()[-1]["media"]["type"]) == ("Chegou assim", "video")
    elif name == "11_document":
        assert sheena()[-1]["media"] == {"type": "document", "mime": "application/pdf",
                                         "id": "1020304050607080", "caption": "Segue a nota fiscal",
                                         "filename": "nota-fiscal-1234.pdf"}
    elif name == "12_sticker":
        assert (sheena()[-1]["text"], sheena()[-1]["media"]["mime"]) == ("[figurinha]", "image/webp")
    elif name == "13_location":
        assert sheena()[-1]["text"] == "[localização]"
        assert sheena()[-1]["media"] == {
            "type": "location", "latitude": -23.561414, "longitude": -46.655881, "name": "MASP",
            "address": "Av. Paulista, 1578 - Bela Vista, São Paulo - SP", "url": "https://masp.org.br"}
    elif name == "14_contacts":
        assert sheena()[-1]["text"] == "[contato]"
        assert sheena()[-1]["contacts"] == [{
            "name": "João Pereira", "org": "Oficina do João", "emails": ["joao.pereira@example.com"],
            "phones": [{"phone": "+55 11 91234-5678", "wa_id": "5511912345678", "type": "CELL"}]}]
    elif name == "15_order":
        order = sheena()[-1]["order"]
        assert sheena()[-1]["text"] == "Pode embrulhar para presente?"
        assert order["catalog_id"] == "2729063490586005"
        assert [(i["product_retailer_id"], i["quantity"], i["item_price"], i["currency"])
                for i in order["items"]] == [("camiseta-azul-m", 2, 59.9, "BRL"), ("bone-preto", 1, 39.0, "BRL")]
    elif name == "16_interactive_button_reply":
        assert sheena()[-1]["text"] == "Status do pedido"
    elif name == "17_interactive_list_reply":
        assert sheena()[-1]["text"] == "Entrega expressa"
    elif name == "18_interactive_nfm_reply":
        assert sheena()[-1]["text"] == "[mensagem não suportada]"
    elif name == "19_interactive_without_object":  # the unreadable one never refuses its sibling
        assert [m["text"] for m in sheena()[-2:]] == ["[mensagem não suportada]",
                                                      "Vocês receberam minha mensagem?"]
    elif name == "20_button_template_reply":
        assert sheena()[-1]["text"] == "Quero saber mais"
    elif name == "21_reaction":
        assert papo.message(SHEENA, 0)["reaction"] == {"emoji": "👍", "at": "2027-01-15T08:01:40Z"}
    elif name == "22_reaction_removed":
        assert "reaction" not in papo.message(SHEENA, 0)
        assert papo.message(SHEENA, "Foto do comprovante")["reaction"]["emoji"] == "❤️"
    elif name == "23_edit_text":
        edited = papo.message(SHEENA, 1)
        assert edited["text"] == "Queria saber o preço da entrega para Campinas"
        assert edited["edited"] is True
        assert edited["edits"] == [{"text": "Queria saber o preço da entrega", "at": "2027-01-15T08:00:05Z"}]
    elif name == "24_edit_caption":
        edited = papo.message(SHEENA, "Chegou assim, amassado")
        assert edited["media"]["caption"] == "Chegou assim, amassado" and edited["edited"] is True
    elif name == "25_revoke":
        gone = papo.message(SHEENA, 3)
        assert gone["deleted"] is True and gone["text"] == "[mensagem apagada]"
        assert "forwarded" not in gone  # nothing of what was deleted is kept
    elif name == "26_unsupported":
        assert sheena()[-1]["text"] == "[mensagem não suportada]"
    elif name == "28_username_bsuid":
        conv = papo.conversation_of(RAFA_USER_ID)
        assert conv["contact"]["name"] == "Rafa Lima"
        assert [m["text"] for m in conv["messages"] if m["direction"] == "in"] == [
            "Oi, tudo bem? Quero fazer um pedido"]
    elif name == "29_username_then_phone":  # the same person: one contact, keyed on the number now
        conv = papo.conversation_of(RAFA_PHONE)
        assert [m["text"] for m in conv["messages"] if m["direction"] == "in"] == [
            "Oi, tudo bem? Quero fazer um pedido", "Meu número é este"]
        assert (RAFA_PHONE, RAFA_USER_ID) in papo.counts()["keys"]
    elif name == "35_system_number_change":
        conv = papo.conversation_of(SHEENA_NEW)
        assert conv["contact"]["external_id"] == SHEENA_NEW
        changed = [a for a in conv["activity"] if a["action"] == "number_changed"]
        assert len(changed) == 1 and changed[0]["detail"] == {"from": SHEENA, "to": SHEENA_NEW}
        assert changed[0]["actor"] == "customer"
    elif name == "36_after_number_change":
        texts = [m["text"] for m in papo.customer_messages(SHEENA_NEW)]
        assert texts[0] == "Olá! Vocês abrem no sábado?" and texts[-1] == "Agora estou com este número"
    elif name == "38_batch_several_contacts":
        assert [m["text"] for m in papo.customer_messages("5531987650001")] == ["Bom dia", "Vocês entregam em BH?"]
        assert [m["text"] for m in papo.customer_messages("5531987650002")] == ["Boa tarde"]


# What each file adds: (contacts, conversations, customer messages); changes, statuses,
# errors and other fields add none.
ADDS = {"01": (1, 1, 1), "06": (1, 1, 1), "19": (0, 0, 2), "28": (1, 1, 1), "29": (0, 0, 1),
        "38": (2, 2, 3), "36": (0, 0, 1)}
NOTHING_NEW = {"21", "22", "23", "24", "25", "27", "30", "31", "32", "33", "34", "35", "37", "39", "40"}


def inbound_count(papo: Papo) -> int:
    with papo.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(messages).where(
            messages.c.direction == "in")).scalar()


@pytest.fixture
def papo(db_url, tmp_path, fake_graph):
    app = make_app(db_url, tmp_path, fake_graph)
    yield Papo(app)
    app.extensions["papo"]["engine"].dispose()


def test_the_corpus_has_every_documented_shape():
    kinds = set()
    for path in FILES:
        for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            for change in entry["changes"]:
                value = change["value"]
                kinds.update(m["type"] for m in value.get("messages", []))
                kinds.update(f"status:{s['status']}" for s in value.get("statuses", []))
                kinds.update("errors" for _ in value.get("errors", []))
    assert kinds >= {"text", "image", "audio", "video", "document", "sticker", "location", "contacts",
                     "order", "interactive", "button", "reaction", "revoke", "edit", "system",
                     "unsupported", "request_welcome", "status:sent", "status:delivered",
                     "status:read", "status:failed", "errors"}
    assert len(FILES) == 40


def test_each_payload_is_answered_200_twice_and_stored_once(papo, caplog):
    caplog.set_level("INFO", logger="papo")
    for path in FILES:
        name, number = path.stem, path.stem[:2]
        raw = path.read_bytes()
        before = papo.counts()
        inbound_before = inbound_count(papo)

        first = papo.deliver(raw)
        assert first.status_code == 200, (name, first.get_data(as_text=True))
        after = papo.counts()
        second = papo.deliver(raw)  # Meta's retry of the same delivery

        assert second.status_code == 200, name
        assert second.get_json() == {"ok": True}
        assert papo.counts() == after, f"{name}: the second delivery changed something"
        if number in NOTHING_NEW:
            assert (after["contacts"], after["conversations"], inbound_count(papo), after["bot"]) == (
                before["contacts"], before["conversations"], inbound_before, before["bot"]), name
        else:
            contacts_added, conversations_added, inbound_added = ADDS.get(number, (0, 0, 1))
            assert after["contacts"] - before["contacts"] == contacts_added, name
            assert after["conversations"] - before["conversations"] == conversations_added, name
            assert inbound_count(papo) - inbound_before == inbound_added, name
        check(name, papo)

    assert [r.getMessage() for r in caplog.records if r.exc_info] == []  # no part crashed
    # Every skipped part and every error Meta reported left a line saying why.
    assert "code 130429, Rate limit hit" in caplog.text
    assert "stored as unsupported: interactive sem conteúdo não é suportado" in caplog.text
    assert "WhatsApp não entregou o conteúdo: Message type unknown (131051)" in caplog.text
    assert "aviso do sistema não tratado: customer_identity_changed" in caplog.text
    assert PHONE_ID  # the corpus is addressed to the configured business number
