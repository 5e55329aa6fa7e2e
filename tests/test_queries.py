"""engine/queries.py: the read models the web app shows, on both databases.

Each test builds a history through the service (the only writer) with a hand-moved
clock and reads it back the way the inbox, the web chat and the simulator pane do.
"""
from __future__ import annotations

import itertools

import pytest

from engine import accounts, queries
from engine.service import Service
from engine.settings import Settings

START = 1_795_600_000.0  # 2026-11-25 07:06:40 UTC
_ids = itertools.count(1)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(db, flows, sample_flow, clock) -> Service:
    flows.create(sample_flow("boas-vindas"))
    flows.publish("boas-vindas")
    accounts.create_user(db, "ana", "agent", "senha-muito-boa", name="Ana Lima")
    accounts.create_user(db, "bruno", "agent", "senha-muito-boa")
    return Service(db, Settings.from_env(), clock=clock)


def say(service: Service, contact: str, text: str, channel: str = "api") -> int:
    return service.handle_inbound(channel, {"external_id": contact, "name": contact.title()},
                                  {"id": f"m{next(_ids)}", "text": text})["conversation_id"]


def test_list_marker_moves_on_a_new_message_and_on_a_read_mark(db, service, clock):
    empty = queries.list_marker(db)
    conversation_id = say(service, "maria", "oi")
    after_message = queries.list_marker(db)
    assert after_message != empty
    assert queries.list_marker(db) == after_message  # nothing happened: same marker
    clock.now += 5
    assert queries.mark_read(db, conversation_id, clock.now) is True
    assert queries.list_marker(db) != after_message


def test_conversation_marker_moves_with_the_conversation_and_is_none_when_unknown(db, service, clock):
    conversation_id = say(service, "maria", "oi")
    before = queries.conversation_marker(db, conversation_id)
    clock.now += 10
    service.act(conversation_id, "open", "ana")
    assert queries.conversation_marker(db, conversation_id) != before
    assert queries.conversation_marker(db, 999_999) is None


def test_previews_show_the_newest_message_and_unread_customer_text(db, service, clock):
    maria = say(service, "maria", "oi")
    joao = say(service, "joao", "atendente")  # opens at once: no bot reply
    found = queries.previews(db, [maria, joao])
    assert found[maria]["message"]["author"] == "bot"
    assert found[maria]["message"]["direction"] == "out"
    assert found[joao]["message"] == {"direction": "in", "author": "customer", "text": "atendente",
                                      "at": found[joao]["message"]["at"]}
    assert found[joao]["message"]["at"].timestamp() == START
    assert found[maria]["unread"] and found[joao]["unread"]
    clock.now += 1
    queries.mark_read(db, joao, clock.now)
    assert queries.previews(db, [joao])[joao]["unread"] is False
    assert queries.previews(db, []) == {}


def test_mark_read_never_moves_the_mark_back(db, service, clock):
    conversation_id = say(service, "maria", "atendente")
    assert queries.mark_read(db, conversation_id, START + 100) is True
    assert queries.mark_read(db, conversation_id, START + 50) is False
    _msgs, _acts, read_at = queries.timeline_rows(db, conversation_id)
    assert read_at.timestamp() == START + 100


def test_status_counts_follow_the_filters_and_leave_the_simulator_out(db, service):
    maria = say(service, "maria", "atendente")
    joao = say(service, "joao", "atendente")
    say(service, "lia", "oi")  # the bot is in charge: concluded
    say(service, "sim", "atendente", channel="test")
    service.act(maria, "assign", "ana", user="ana")
    service.act(joao, "assign", "bruno", user="bruno")
    assert queries.status_counts(db) == {"open": 2, "concluded": 1}
    assert queries.status_counts(db, assignee="ana") == {"open": 1, "concluded": 0}
    assert queries.status_counts(db, unassigned=True) == {"open": 0, "concluded": 1}
    assert queries.status_counts(db, q="JOÃO") == {"open": 1, "concluded": 0}
    assert queries.status_counts(db, q="100%") == {"open": 0, "concluded": 0}
    # capped (the inbox's "999+"): each status counted up to the cap, filters still apply
    assert queries.status_counts(db, cap=1) == {"open": 1, "concluded": 1}
    assert queries.status_counts(db, cap=5) == {"open": 2, "concluded": 1}
    assert queries.status_counts(db, assignee="ana", cap=5) == {"open": 1, "concluded": 0}


def test_timeline_rows_are_in_order_with_exact_times(db, service, clock):
    conversation_id = say(service, "maria", "oi")
    clock.now += 0.25
    service.agent_message(conversation_id, "ana", "Oi, Maria!")
    msgs, acts, read_at = queries.timeline_rows(db, conversation_id)
    assert [(m["direction"], m["author"]) for m in msgs] == [
        ("in", "customer"), ("out", "bot"), ("out", "bot"), ("out", "ana")]
    assert msgs[-1]["text"] == "Oi, Maria!" and msgs[-1]["at"].timestamp() == START + 0.25
    assert msgs[2]["buttons"] == ["Ver produtos", "Status do pedido", "Falar com atendente"]
    assert [(a["actor"], a["action"], a["from_status"], a["to_status"]) for a in acts] == [
        ("ana", "agent_message", "concluded", "open")]
    assert read_at is None


def test_display_names_use_the_login_when_a_user_has_no_name(db, service):
    assert queries.display_names(db, ["ana", "bruno", "ghost", None]) == {"ana": "Ana Lima", "bruno": "bruno"}
    assert queries.display_names(db, []) == {}


def test_contact_conversation_and_recent_messages_of_a_web_chat_visitor(db, service, clock):
    assert queries.contact_conversation(db, "web", "v1") is None
    conversation_id = say(service, "v1", "atendente", channel="web")
    service.agent_message(conversation_id, "ana", "Olá!")
    found = queries.contact_conversation(db, "web", "v1")
    assert found["id"] == conversation_id and found["status"] == "open" and found["name"] == "V1"
    assert queries.contact_conversation(db, "api", "v1") is None  # another channel, another contact
    shown = queries.recent_messages(db, conversation_id)
    assert [(m["author"], m["author_name"], m["text"]) for m in shown] == [
        ("customer", None, "atendente"), ("ana", "Ana Lima", "Olá!")]
    assert queries.recent_messages(db, conversation_id, after=shown[0]["id"]) == shown[1:]
    assert queries.recent_messages(db, conversation_id, limit=1) == shown[1:]


def test_run_details_show_the_waiting_run_and_its_problems(db, service):
    conversation_id = say(service, "maria", "oi")
    run, problems = queries.run_details(db, conversation_id)
    assert run["state"] == "waiting_input" and run["block_id"] == "menu"
    assert problems == []
    assert queries.run_details(db, 999_999) == ({}, [])


def test_timer_status_of_a_pending_a_cancelled_and_an_unknown_timer(db, flows, sample_flow, service):
    flows.create(sample_flow("lembrete"))
    flows.publish("lembrete")
    doc = sample_flow("lembrete")
    keyword = next(t["value"] for t in doc["triggers"] if t["type"] == "keyword")
    conversation_id = say(service, "maria", keyword)
    pending = service.list_timers(conversation_id)
    assert pending, "the lembrete flow waits"
    timer_id = pending[0]["id"]
    assert queries.timer_status(db, timer_id) == "pending"
    service.cancel_timer(timer_id)
    assert queries.timer_status(db, timer_id) == "cancelled"
    assert queries.timer_status(db, 999_999) is None


def test_get_conversation_shows_summary_messages_activity_and_timers(db, service, clock):
    conversation_id = say(service, "maria", "oi")
    service.act(conversation_id, "assign", "ana", user="ana")
    conv = queries.get_conversation(db, conversation_id)
    assert conv["status"] == "open" and conv["assignees"] == ["ana"] and conv["channel"] == "api"
    assert conv["contact"] == {"external_id": "maria", "name": "Maria"}
    assert [m["author"] for m in conv["messages"]] == ["customer", "bot", "bot"]
    assert [(a["action"], a["from"], a["to"]) for a in conv["activity"]] == [
        ("assigned", "concluded", "open")]
    assert conv["run"]["state"] == "suspended" and conv["timers"] == []


def test_get_conversation_hides_the_simulator_only_when_asked_and_refuses_unknown_ids(db, service):
    from engine.errors import NotFound

    sim = say(service, "sim", "oi", channel="test")
    assert queries.get_conversation(db, sim)["channel"] == "test"
    with pytest.raises(NotFound):
        queries.get_conversation(db, sim, include_test=False)
    with pytest.raises(NotFound):
        queries.get_conversation(db, 999_999)


def test_list_conversations_pages_newest_first_with_a_cursor(db, service, clock):
    ids = []
    for name in ("ana", "bia", "caio"):
        clock.now += 1
        ids.append(say(service, name, "atendente"))
    say(service, "sim", "atendente", channel="test")
    first = queries.list_conversations(db, limit=2)
    assert [c["id"] for c in first["items"]] == [ids[2], ids[1]]
    rest = queries.list_conversations(db, limit=2, cursor=first["next_cursor"])
    assert [c["id"] for c in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    assert queries.count_by_status(db) == {"open": 3, "concluded": 0}
    assert queries.list_conversations(db, status="concluded")["items"] == []


@pytest.mark.parametrize("cursor", ["nada", "bm9wZQ", "MjAyNi0xMy00NXx4"])
def test_a_malformed_cursor_or_status_is_invalid(db, cursor):
    from engine.errors import Invalid

    with pytest.raises(Invalid):
        queries.list_conversations(db, cursor=cursor)
    with pytest.raises(Invalid):
        queries.list_conversations(db, status="closed")


def test_a_cursor_round_trips_to_the_microsecond():
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 25, 7, 6, 40, 123456, tzinfo=UTC)
    assert queries.decode_cursor(queries.encode_cursor(moment, 42)) == (moment, 42)
