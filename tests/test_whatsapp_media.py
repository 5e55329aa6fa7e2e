"""WhatsApp media (in and out) and delivery statuses (DESIGN §10.4, §10.6; issue 16).

Webhooks signed like Meta's, the fake Graph API on a real socket, both databases.
"""
from __future__ import annotations

import base64
import io
import itertools
from functools import partial

import pytest
from sqlalchemy import select
from test_whatsapp import make_app
from test_whatsapp_webhook import NUMBER, PASSWORD, Hook, T, body, person, text
from werkzeug.security import generate_password_hash

from engine import accounts
from engine import outbox as sender
from engine.store import conversations, outbox


@pytest.fixture
def hook(db_url, tmp_path, fake_graph, monkeypatch):
    """papo with WhatsApp on the fake Graph API, a clock moved by hand and an agent ``ana``."""
    app = make_app(db_url, tmp_path, fake_graph, WTF_CSRF_ENABLED=False)
    monkeypatch.setattr(accounts, "generate_password_hash",
                        partial(generate_password_hash, method="pbkdf2:sha256:1"))
    accounts.create_user(app.extensions["papo"]["engine"], "ana", "agent", password=PASSWORD, name="Ana")
    yield Hook(app)
    app.extensions["papo"]["engine"].dispose()


def _bot_messages(hook) -> list[dict]:
    return [m for m in hook.conversation()["messages"] if m["author"] == "bot"]


def _sent_replies(hook, fake_graph) -> list[dict]:
    """The customer says "oi", the bot answers, the outbox sends it: the bot's messages."""
    assert hook.deliver(body(text(1, "oi"), contacts_=[person()])).status_code == 200
    assert sender.send_due(hook.service, now=hook.now) == 2
    return _bot_messages(hook)


def _version(hook) -> int:
    with hook.engine.connect() as conn:
        return conn.execute(select(conversations.c.version).where(
            conversations.c.id == hook.conversation()["id"])).scalar_one()


# -- delivery statuses ------------------------------------------------------------------------

def test_every_message_of_a_conversation_has_an_id_and_no_delivery_before_a_status(hook, fake_graph):
    replies = _sent_replies(hook, fake_graph)

    messages = hook.conversation()["messages"]
    assert all(isinstance(m["id"], int) for m in messages)
    assert all("delivery" not in m for m in replies)


@pytest.mark.parametrize("order", list(itertools.permutations(["sent", "delivered", "read"])))
def test_statuses_in_any_order_end_at_read_and_never_move_back(hook, fake_graph, order):
    _sent_replies(hook, fake_graph)
    at = {"sent": T + 61, "delivered": T + 62, "read": T + 63}

    for status in order:
        assert hook.deliver(body(statuses=fake_graph.statuses(status, at=at[status]))).status_code == 200

    deliveries = [m["delivery"] for m in _bot_messages(hook)]
    assert deliveries == [{"status": "read", "at": "2027-01-15T08:01:03Z", "error": None}] * 2


def test_a_repeated_or_late_status_changes_nothing(hook, fake_graph):
    _sent_replies(hook, fake_graph)
    hook.deliver(body(statuses=fake_graph.statuses("delivered", at=T + 62)))
    version = _version(hook)

    hook.deliver(body(statuses=fake_graph.statuses("delivered", at=T + 70)))
    hook.deliver(body(statuses=fake_graph.statuses("sent", at=T + 61)))

    assert [m["delivery"]["status"] for m in _bot_messages(hook)] == ["delivered"] * 2
    assert [m["delivery"]["at"] for m in _bot_messages(hook)] == ["2027-01-15T08:01:02Z"] * 2
    assert _version(hook) == version  # nothing written


def test_a_failed_status_keeps_its_error_and_nothing_moves_it_afterwards(hook, fake_graph):
    _sent_replies(hook, fake_graph)
    error = {"code": 131047, "title": "Re-engagement message",
             "error_data": {"details": "Message failed to send because more than 24 hours have passed"}}
    first = fake_graph.delivered[:1]

    hook.deliver(body(statuses=fake_graph.statuses("failed", at=T + 65, error=error, messages=first)))
    hook.deliver(body(statuses=fake_graph.statuses("read", at=T + 66)))

    failed, other = _bot_messages(hook)
    assert failed["delivery"] == {"status": "failed", "at": "2027-01-15T08:01:05Z",
                                  "error": {"code": 131047, "title": "Re-engagement message"}}
    assert other["delivery"]["status"] == "read"
    assert hook.count(outbox, outbox.c.status == "failed") == 1


def test_a_status_about_a_message_papo_never_sent_is_ignored(hook, fake_graph):
    _sent_replies(hook, fake_graph)
    stranger = [{"id": "wamid.SOMEONE-ELSE", "status": "read", "timestamp": str(T + 70),
                 "recipient_id": NUMBER}]

    assert hook.deliver(body(statuses=stranger)).status_code == 200

    assert all("delivery" not in m for m in _bot_messages(hook))


def test_the_inbox_shows_ticks_and_a_failure_explained_in_portuguese(hook, fake_graph):
    _sent_replies(hook, fake_graph)
    first, second = fake_graph.delivered[:2]
    hook.deliver(body(statuses=fake_graph.statuses("read", at=T + 63, messages=[second])))
    hook.deliver(body(statuses=fake_graph.statuses(
        "failed", at=T + 64, messages=[first], error={"code": 131047, "title": "Re-engagement message"}))
    )

    page = hook.inbox_page(hook.conversation()["id"])

    assert 'class="ticks ticks-read" role="img" aria-label="Lida"' in page
    assert "O WhatsApp recusou: fora da janela de 24 h" in page
    english = hook.inbox_page(hook.conversation()["id"], lang="en")
    assert 'aria-label="Read"' in english
    assert "WhatsApp refused it: outside the 24-hour window" in english


def test_an_unknown_error_code_is_shown_with_meta_title(hook, fake_graph):
    _sent_replies(hook, fake_graph)
    hook.deliver(body(statuses=fake_graph.statuses(
        "failed", at=T + 64, messages=fake_graph.delivered[:1],
        error={"code": 999999, "title": "Something new went wrong"})))

    page = hook.inbox_page(hook.conversation()["id"])

    assert "O WhatsApp recusou: Something new went wrong" in page


# -- inbound media ----------------------------------------------------------------------------

def png(width: int = 40, height: int = 30, rgb: tuple[int, int, int] = (11, 116, 104)) -> bytes:
    """A real PNG picture (a coloured rectangle), for a browser to show."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + \
        chunk(b"IEND", b"")


MEDIA_MESSAGES = {
    "image": ({"id": "m.img", "mime_type": "image/jpeg", "sha256": "x"}, "[imagem]"),
    "audio": ({"id": "m.aud", "mime_type": "audio/ogg; codecs=opus", "voice": True}, "[áudio]"),
    "video": ({"id": "m.vid", "mime_type": "video/mp4"}, "[vídeo]"),
    "document": ({"id": "m.doc", "mime_type": "application/pdf", "filename": "boleto.pdf"}, "[documento]"),
    "sticker": ({"id": "m.stk", "mime_type": "image/webp", "animated": False}, "[figurinha]"),
}


def media_message(n: int, kind: str, content: dict, at: int = T) -> dict:
    return {"from": NUMBER, "id": f"wamid.M{n}", "timestamp": str(at), "type": kind, kind: content}


def _customer_messages(hook) -> list[dict]:
    return [m for m in hook.conversation()["messages"] if m["direction"] == "in"]


@pytest.mark.parametrize("kind", list(MEDIA_MESSAGES))
def test_each_inbound_media_type_is_stored_with_its_media_and_a_placeholder(hook, kind):
    content, placeholder = MEDIA_MESSAGES[kind]

    assert hook.deliver(body(media_message(1, kind, content), contacts_=[person()])).status_code == 200

    message = _customer_messages(hook)[0]
    assert message["text"] == placeholder
    assert message["media"]["type"] == kind
    assert message["media"]["id"] == content["id"]
    assert message["media"]["mime"] == content["mime_type"]
    assert message["media"]["caption"] is None


def test_a_captioned_media_message_reads_as_its_caption_exactly(hook):
    caption = "  Comprovante do Pix 💸 "
    image = media_message(1, "image", {"id": "m.1", "mime_type": "image/png", "caption": caption})

    hook.deliver(body(image, contacts_=[person()]))

    message = _customer_messages(hook)[0]
    assert message["text"] == caption
    assert message["media"] == {"type": "image", "mime": "image/png", "id": "m.1", "caption": caption}


def test_a_location_is_stored_and_shown_with_an_openstreetmap_link(hook):
    place = {"latitude": -23.5614, "longitude": -46.6559, "name": "Loja Paulista",
             "address": "Av. Paulista, 1000"}
    hook.deliver(body(media_message(1, "location", place), contacts_=[person()]))

    message = _customer_messages(hook)[0]
    assert message["text"] == "[localização]"
    assert message["media"] == {"type": "location", **place}
    page = hook.inbox_page(hook.conversation()["id"])
    assert "https://www.openstreetmap.org/?mlat=-23.5614&amp;mlon=-46.6559" in page
    assert "Loja Paulista" in page and "<script src=\"http" not in page


def test_an_unknown_message_type_is_stored_as_unsupported_with_its_raw_type(hook):
    hologram = {"from": NUMBER, "id": "wamid.H1", "timestamp": str(T), "type": "hologram",
                "hologram": {"id": "h.1"}}

    answer = hook.deliver(body(hologram, text(2, "oi"), contacts_=[person()]))

    assert answer.status_code == 200
    first, second = _customer_messages(hook)
    assert first["text"] == "[mensagem não suportada]" and first["unsupported_type"] == "hologram"
    assert second["text"] == "oi"


def test_the_inbox_shows_an_image_an_audio_player_a_video_and_a_file_link(hook):
    hook.deliver(body(*[media_message(n, kind, content)
                        for n, (kind, (content, _p)) in enumerate(MEDIA_MESSAGES.items(), 1)],
                      contacts_=[person()]))
    ids = {m["media"]["type"]: m["id"] for m in _customer_messages(hook)}

    page = hook.inbox_page(hook.conversation()["id"])

    assert f'src="/media/{ids["image"]}" alt="Imagem sem legenda"' in page
    assert f'<audio controls preload="none" src="/media/{ids["audio"]}" aria-label="Áudio sem legenda">' in page
    assert f'<video controls preload="metadata" src="/media/{ids["video"]}"' in page
    assert f'href="/media/{ids["document"]}"' in page and "boleto.pdf" in page
    assert f'src="/media/{ids["sticker"]}" alt="Figurinha sem legenda"' in page


# -- /media -----------------------------------------------------------------------------------

def _agent(hook):
    client = hook.app.test_client()
    assert client.post("/login", data={"login": "ana", "password": PASSWORD}).status_code == 302
    return client


def _stored_image(hook, fake_graph, data: bytes, mime: str = "image/png", content: dict | None = None) -> int:
    fake_graph.add_media("m.photo", data, mime)
    hook.deliver(body(media_message(1, "image", content or {"id": "m.photo", "mime_type": mime}),
                      contacts_=[person()]))
    return _customer_messages(hook)[0]["id"]


def test_media_needs_a_login(hook, fake_graph):
    message_id = _stored_image(hook, fake_graph, png())

    answer = hook.app.test_client().get(f"/media/{message_id}")

    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    assert fake_graph.downloads == 0


def test_media_is_fetched_once_then_served_from_the_cache(hook, fake_graph):
    picture = png()
    message_id = _stored_image(hook, fake_graph, picture)
    agent = _agent(hook)

    first = agent.get(f"/media/{message_id}")
    asked = len(fake_graph.requests)
    second = agent.get(f"/media/{message_id}")

    assert first.status_code == second.status_code == 200
    assert first.data == second.data == picture
    assert first.headers["Content-Type"] == "image/png"
    assert first.headers["Cache-Control"] == "no-store"
    assert "sandbox" in first.headers["Content-Security-Policy"]
    assert fake_graph.downloads == 1 and len(fake_graph.requests) == asked  # the Graph API not asked again
    token = fake_graph.requests[-1].headers["authorization"]
    assert token.startswith("Bearer ")


def test_media_of_an_unknown_or_text_message_is_404(hook, fake_graph):
    hook.deliver(body(text(1, "oi"), contacts_=[person()]))
    agent = _agent(hook)

    assert agent.get(f"/media/{_customer_messages(hook)[0]['id']}").status_code == 404
    assert agent.get("/media/999999").status_code == 404
    assert "Este arquivo não existe" in agent.get("/media/999999").get_data(as_text=True)


def test_media_over_the_cache_cap_is_refused_with_a_clear_message(db_url, tmp_path, fake_graph, monkeypatch):
    from test_whatsapp import make_app as make

    app = make(db_url, tmp_path, fake_graph, WTF_CSRF_ENABLED=False, PAPO_MEDIA_CACHE_MB="1")
    monkeypatch.setattr(accounts, "generate_password_hash",
                        partial(generate_password_hash, method="pbkdf2:sha256:1"))
    accounts.create_user(app.extensions["papo"]["engine"], "ana", "agent", password=PASSWORD, name="Ana")
    big = Hook(app)
    message_id = _stored_image(big, fake_graph, b"\x00" * (1024 * 1024 + 10))

    answer = _agent(big).get(f"/media/{message_id}")

    assert answer.status_code == 413
    assert "grande demais para o limite de mídia" in answer.get_data(as_text=True)
    assert fake_graph.downloads == 0  # refused on the size the Graph API announced
    assert list((tmp_path / "instance").glob("media/*")) == []  # nothing kept
    app.extensions["papo"]["engine"].dispose()


def test_a_media_url_outside_the_api_base_is_never_fetched(hook, fake_graph):
    message_id = _stored_image(hook, fake_graph, png())
    fake_graph.media_url_host = "169.254.169.254"

    answer = _agent(hook).get(f"/media/{message_id}")

    assert answer.status_code == 502
    assert fake_graph.downloads == 0


def test_a_document_is_served_as_a_download_with_a_safe_name(hook, fake_graph):
    fake_graph.add_media("m.page", b"<script>alert(1)</script>", "text/html")
    hook.deliver(body(media_message(1, "document", {"id": "m.page", "mime_type": "text/html",
                                                    "filename": '../../"x\r\ny".html'}),
                      contacts_=[person()]))

    answer = _agent(hook).get(f"/media/{_customer_messages(hook)[0]['id']}")

    assert answer.status_code == 200
    disposition = answer.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "\r" not in disposition and "\n" not in disposition
    assert "/" not in disposition and '"x' not in disposition


# -- an agent's attachment --------------------------------------------------------------------

def _open_conversation(hook) -> int:
    hook.deliver(body(text(1, "oi"), contacts_=[person()]))
    assert sender.send_due(hook.service, now=hook.now) == 2  # the bot's greeting, out of the way
    return hook.conversation()["id"]


def _attach(agent, conversation_id: int, data: bytes, name: str, mime: str, text: str = ""):
    return agent.post(f"/inbox/{conversation_id}/messages", headers={"HX-Request": "true"},
                      data={"text": text, "file": (io.BytesIO(data), name, mime)},
                      content_type="multipart/form-data")


def test_an_agent_attaches_a_picture_uploaded_once_and_sent_by_id_exactly_once(hook, fake_graph):
    conversation_id = _open_conversation(hook)
    picture = png()

    answer = _attach(_agent(hook), conversation_id, picture, "vitrine.png", "image/png", "Olha a vitrine")

    assert answer.status_code == 200
    assert len(fake_graph.uploads()) == 1
    sent = [m for m in hook.conversation()["messages"] if m["author"] == "ana"]
    assert len(sent) == 1 and sent[0]["text"] == "Olha a vitrine"
    media_id = sent[0]["media"]["id"]
    assert fake_graph.media[media_id] == (picture, "image/png", "vitrine.png")
    assert sent[0]["media"] == {"type": "image", "mime": "image/png", "id": media_id,
                                "caption": "Olha a vitrine"}
    assert sender.send_due(hook.service, now=hook.now) == 1
    assert sender.send_due(hook.service, now=hook.now + 120) == 0  # exactly once
    out = fake_graph.delivered[-1].json
    assert out["type"] == "image" and out["image"] == {"id": media_id, "caption": "Olha a vitrine"}
    # The agent's own copy is shown at once, without asking the Graph API.
    downloads = fake_graph.downloads
    assert _agent(hook).get(f"/media/{sent[0]['id']}").data == picture
    assert fake_graph.downloads == downloads


def test_an_audio_attachment_sends_the_text_first_as_audio_takes_no_caption(hook, fake_graph):
    conversation_id = _open_conversation(hook)

    _attach(_agent(hook), conversation_id, b"ID3audio", "recado.mp3", "audio/mpeg", "Segue o áudio")
    assert sender.send_due(hook.service, now=hook.now) == 2

    first, second = (r.json for r in fake_graph.delivered[-2:])
    assert first["type"] == "text" and first["text"]["body"] == "Segue o áudio"
    assert second["type"] == "audio" and set(second["audio"]) == {"id"}


@pytest.mark.parametrize(("name", "mime", "size", "expected"), [
    ("foto.gif", "image/gif", 10, "O WhatsApp não aceita este tipo de arquivo (image/gif)"),
    ("foto.jpg", "image/jpeg", 5 * 1024 * 1024 + 1, "O arquivo tem 5,0 MB; o WhatsApp aceita imagens de até 5 MB."),
    ("filme.mp4", "video/mp4", 16 * 1024 * 1024 + 1, "o WhatsApp aceita vídeos de até 16 MB"),
])
def test_a_wrong_type_or_size_is_refused_in_portuguese_before_any_upload(hook, fake_graph, name, mime,
                                                                         size, expected):
    conversation_id = _open_conversation(hook)
    before = len(hook.conversation()["messages"])

    answer = _attach(_agent(hook), conversation_id, b"x" * size, name, mime)

    assert answer.status_code == 422
    assert expected in answer.get_data(as_text=True)
    assert fake_graph.uploads() == []
    assert len(hook.conversation()["messages"]) == before


def test_a_failed_upload_stores_nothing_and_says_so(hook, fake_graph):
    conversation_id = _open_conversation(hook)
    fake_graph.token = "another-token"  # the Graph API refuses ours

    answer = _attach(_agent(hook), conversation_id, png(), "a.png", "image/png")

    assert answer.status_code == 422
    assert "O WhatsApp não recebeu o arquivo (HTTP 401" in answer.get_data(as_text=True)
    assert not [m for m in hook.conversation()["messages"] if m["author"] == "ana"]


def test_the_api_sends_an_attachment_in_base64(hook, fake_graph):
    conversation_id = _open_conversation(hook)
    token = accounts.create_token(hook.engine, "ana", name="integração")
    headers = {"Authorization": f"Bearer {token}"}
    document = b"%PDF-1.4 boleto"

    answer = hook.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=headers, json={
        "text": "Seu boleto", "attachment": {"filename": "boleto.pdf", "mime_type": "application/pdf",
                                             "data": base64.b64encode(document).decode()}})

    assert answer.status_code == 200, answer.get_data(as_text=True)
    last = answer.get_json()["conversation"]["messages"][-1]
    assert last["media"]["type"] == "document" and last["media"]["filename"] == "boleto.pdf"
    assert last["text"] == "Seu boleto"
    wrong = hook.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=headers, json={
        "attachment": {"filename": "x.exe", "mime_type": "application/x-msdownload", "data": "TVo="}})
    assert wrong.status_code == 422
    assert wrong.get_json()["error"]["details"][0]["path"] == "$.attachment"
    bad = hook.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=headers, json={
        "attachment": {"filename": "x.pdf", "mime_type": "application/pdf", "data": "não é base64"}})
    assert bad.status_code == 422
    assert bad.get_json()["error"]["details"][0]["path"] == "$.attachment.data"
    empty = hook.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=headers,
                             json={"text": "  "})
    assert empty.status_code == 422


def test_an_attachment_outside_whatsapp_is_refused_and_nothing_uploaded(hook, fake_graph):
    conversation_id = hook.service.handle_inbound("api", {"external_id": "c-api", "name": "Zé"},
                                                  {"id": "api-1", "text": "oi"})["conversation_id"]
    token = accounts.create_token(hook.engine, "ana", name="integração")

    answer = hook.client.post(f"/api/v1/conversations/{conversation_id}/messages",
                              headers={"Authorization": f"Bearer {token}"}, json={
        "attachment": {"filename": "a.png", "mime_type": "image/png",
                       "data": base64.b64encode(png()).decode()}})

    assert answer.status_code == 422
    assert answer.get_json()["error"]["message"] == "Anexos só podem ser enviados em conversas do WhatsApp."
    assert fake_graph.uploads() == []


# -- attachments and the 24-hour window (DESIGN §10.4) ------------------------------------------

DAY = 24 * 3600


def _api_attach(hook, conversation_id: int, **extra):
    token = accounts.create_token(hook.engine, "ana", name="integração")
    return hook.client.post(f"/api/v1/conversations/{conversation_id}/messages",
                            headers={"Authorization": f"Bearer {token}"}, json={
        "attachment": {"filename": "a.png", "mime_type": "image/png",
                       "data": base64.b64encode(png()).decode()}, **extra})


def test_an_attachment_outside_the_window_is_refused_like_text_before_any_upload(hook, fake_graph):
    conversation_id = _open_conversation(hook)  # the customer wrote at T
    hook.now = T + DAY + 1

    in_inbox = _attach(_agent(hook), conversation_id, png(), "vitrine.png", "image/png", "Olha")
    through_api = _api_attach(hook, conversation_id)

    assert in_inbox.status_code == 409
    assert "janela de 24 h do WhatsApp está fechada" in in_inbox.get_data(as_text=True)
    assert through_api.status_code == 409
    assert through_api.get_json()["error"]["code"] == "window_closed"
    assert fake_graph.uploads() == []
    assert not [m for m in hook.conversation()["messages"] if m["author"] == "ana"]


def test_an_attachment_inside_the_window_still_goes(hook, fake_graph):
    conversation_id = _open_conversation(hook)
    hook.now = T + DAY - 60

    assert _api_attach(hook, conversation_id).status_code == 200
    assert sender.send_due(hook.service, now=hook.now) == 1
    assert fake_graph.delivered[-1].json["type"] == "image"


def test_an_attachment_queued_before_the_window_closed_fails_and_no_status_moves_it_back(hook, fake_graph):
    conversation_id = _open_conversation(hook)
    assert _api_attach(hook, conversation_id).status_code == 200
    sent_before = len(fake_graph.delivered)
    hook.now = T + DAY + 1  # the worker only gets to it now

    sender.send_due(hook.service, now=hook.now)

    assert len(fake_graph.delivered) == sent_before  # not sent for Meta to drop
    failed = [m for m in hook.conversation()["messages"] if m["author"] == "ana"][-1]
    assert failed["delivery"]["status"] == "failed"
    assert failed["delivery"]["error"]["code"] == "window_closed"
    with hook.engine.connect() as conn:
        key = conn.execute(select(outbox.c.idempotency_key).where(
            outbox.c.conversation_id == conversation_id).order_by(outbox.c.id.desc())).scalars().first()
    for status in ("sent", "delivered", "read"):  # a status naming it never moves it back
        late = {"id": key, "status": status, "timestamp": str(int(hook.now) + 5), "recipient_id": NUMBER}
        assert hook.deliver(body(statuses=[late])).status_code == 200
    again = [m for m in hook.conversation()["messages"] if m["author"] == "ana"][-1]
    assert again["delivery"] == failed["delivery"]


def test_the_inbox_says_not_sent_for_the_window_and_refused_for_meta_never_both(hook, fake_graph):
    conversation_id = _open_conversation(hook)
    assert hook.deliver(body(statuses=fake_graph.statuses(
        "failed", at=T + 61, error={"code": 131026, "title": "Message undeliverable"}))).status_code == 200
    assert _api_attach(hook, conversation_id).status_code == 200
    hook.now = T + DAY + 1
    sender.send_due(hook.service, now=hook.now)

    page = hook.inbox_page(conversation_id)

    assert page.count("Não enviada:") == 1
    assert "fora da janela de 24 h do WhatsApp" in page
    assert page.count("O WhatsApp recusou: não foi possível entregar") == 2  # the bot's two replies
    assert "O WhatsApp recusou: fora da janela" not in page


def test_a_template_and_an_attachment_in_one_api_body_is_refused(hook, fake_graph):
    conversation_id = _open_conversation(hook)

    answer = _api_attach(hook, conversation_id, template={"name": "pedido_pronto", "language": "pt_BR"})

    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"][0]["path"] == "$.attachment"
    assert fake_graph.uploads() == []
