"""WhatsApp media (in and out) and delivery statuses (DESIGN §10.4, §10.6; issue 16).

Webhooks signed like Meta's, the fake Graph API on a real socket, both databases.
"""
from __future__ import annotations

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
