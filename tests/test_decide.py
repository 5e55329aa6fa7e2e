"""engine/service/decide.py: plain data in (a snapshot and an event), plain data out.

No database here: a snapshot is built by hand, as ``load`` would read it, and the test
looks at the rows the decision would write and at what the caller would answer.
"""
from __future__ import annotations

import copy

import pytest

from engine import core
from engine.graph import compile_flow
from engine.moments import epoch, utc
from engine.service.changes import (
    NEED_ASSIGNEES,
    NEED_AUTO_CONCLUDE,
    NEED_USERS,
    AgentAction,
    AgentMessage,
    HttpDone,
    Inbound,
    Rename,
    Snapshot,
    TimerFired,
)
from engine.service.decide import decide
from engine.settings import Settings

T0 = 1_800_000_000.0


def block(block_id: str, kind: str, **data) -> dict:
    return {"id": block_id, "type": kind, "position": {"x": 0, "y": 0}, "data": data}


def flow(flow_id: str, blocks: list[dict], edges=(), triggers=None, version: int = 1):
    return compile_flow({
        "schema_version": 1, "id": flow_id, "name": flow_id, "start": blocks[0]["id"],
        "triggers": triggers if triggers is not None else [{"type": "default"}], "blocks": blocks,
        "edges": [{"from": a, "port": port, "to": b} for a, port, b in edges]}, version)


ECHO = flow("eco", [block("m1", "message", text="Recebido, {{ contact.name }}!")])
QUESTION = flow("pesquisa", [
    block("q", "question", text="Qual é o seu e-mail?", input="email", save_as="email", timeout_s=300),
    block("ok", "message", text="Obrigado!"),
    block("late", "message", text="Ainda está aí?"),
], [("q", "answered", "ok"), ("q", "timeout", "late")])
OPENS = flow("abre", [block("abre", "open_conversation", note="pediu", assign_to="bia"),
                      block("volta", "message", text="Voltei.")], [("abre", "next", "volta")])
HTTP = flow("consulta", [
    block("h", "http_request", method="GET", url="https://api.example.com/x", save_as="resp"),
    block("ok", "message", text="Chegou."), block("erro", "message", text="Falhou.")],
    [("h", "ok", "ok"), ("h", "error", "erro")])


def snapshot(*flows, status="concluded", channel="api", state=None, assignees=(), users=None,
             auto_conclude_pending=False, settings=None, processed=None, opened_at=None,
             first_response_at=None, updated_at=T0 - 600) -> Snapshot:
    conversation = {
        "id": 7, "contact_id": 3, "channel": channel, "status": status, "name_norm": "ana",
        "state": state or core.new_state({"name": "Ana", "external_id": "5511999990000"}),
        "version": 4, "created_at": utc(T0 - 3600), "updated_at": utc(updated_at),
        "opened_at": utc(opened_at) if opened_at else None,
        "first_response_at": utc(first_response_at) if first_response_at else None}
    return Snapshot(
        conversation=conversation, contact_name="Ana", settings=settings or Settings(),
        flows={(f.id, f.version, None): f for f in flows}, published={f.id: f for f in flows},
        processed=processed, assignees=tuple(assignees) if assignees is not None else None,
        users=users, auto_conclude_pending=auto_conclude_pending)


def inbound(text: str, message_id: str = "m1", at: float = T0, **kwargs) -> Inbound:
    return Inbound("api", "5511999990000", kwargs.pop("name", "Ana"), message_id, text, at, **kwargs)


def after(snap: Snapshot, changes) -> Snapshot:
    """The snapshot the next event would see once ``changes`` were written."""
    conv = {**snap.conversation, "state": changes.state, "status": changes.status,
            "version": snap.conversation["version"] + 1, "updated_at": changes.updated_at,
            "opened_at": changes.opened_at, "first_response_at": changes.first_response_at}
    assignees = [a for a in (snap.assignees or ()) if a not in changes.assignees_removed]
    return Snapshot(**{**snap.__dict__, "conversation": conv, "processed": None,
                       "assignees": tuple(assignees + [a["login"] for a in changes.assignees_added])})


# -- inbound ---------------------------------------------------------------------------------

def test_a_message_starts_the_default_flow_and_everything_is_rows_to_write():
    changes = decide(snapshot(ECHO), inbound("oi"))

    assert changes.write and not changes.needs and changes.version == 4
    assert [(m["direction"], m["author"], m["text"]) for m in changes.messages] == [
        ("in", "customer", "oi"), ("out", "bot", "Recebido, Ana!")]
    assert changes.messages[0]["external_id"] == "m1"
    assert changes.replies == [{"text": "Recebido, Ana!", "buttons": []}]
    assert changes.result == {"conversation_id": 7, "status": "concluded", "replies": changes.replies}
    assert changes.processed["external_id"] == "m1" and changes.processed["result"] == changes.result
    assert changes.state["run"]["state"] == core.ENDED and changes.state["run"]["flow_id"] == "eco"
    assert [v["block_id"] for v in changes.visits] == ["m1"]
    assert changes.updated_at == utc(T0) and changes.outbox == [] and changes.timers == []


def test_deciding_leaves_the_snapshot_as_it_was():
    snap = snapshot(QUESTION)
    before = copy.deepcopy(snap.conversation)
    decide(snap, inbound("oi"))
    assert snap.conversation == before


def test_a_duplicate_gets_the_stored_answer_and_writes_nothing():
    stored = {"conversation_id": 7, "status": "concluded", "replies": [{"text": "antes", "buttons": []}]}
    changes = decide(snapshot(ECHO, processed=stored), inbound("oi"))
    assert not changes.write and changes.duplicate and changes.result == stored
    assert changes.messages == [] and changes.replies == []


def test_on_an_open_conversation_the_message_waits_for_people():
    changes = decide(snapshot(ECHO, status="open"), inbound("oi"))
    assert changes.write and [m["author"] for m in changes.messages] == ["customer"]
    assert changes.replies == [] and changes.state["run"] is None


def test_a_message_the_bot_must_not_read_is_only_stored_at_its_own_time():
    changes = decide(snapshot(ECHO), inbound("oi", sent_at=T0 - 90_000, answer=False,
                                             details={"media": {"kind": "image"}}))
    [message] = changes.messages
    assert message["at"] == utc(T0 - 90_000) and message["details"] == {"media": {"kind": "image"}}
    assert changes.replies == [] and changes.updated_at == utc(T0)


def test_a_new_name_renames_the_contact_and_the_search_name():
    changes = decide(snapshot(ECHO), inbound("oi", name="Ána Maria"))
    assert changes.contact_name == "Ána Maria" and changes.name_norm == "ana maria"
    assert changes.state["contact"]["name"] == "Ána Maria"


def test_keyword_triggers_win_over_the_default_flow():
    vendas = flow("vendas", [block("v", "message", text="Vendas!")],
                  triggers=[{"type": "keyword", "match": "contains", "value": "preço"}])
    assert decide(snapshot(ECHO, vendas), inbound("qual o preco?")).replies[0]["text"] == "Vendas!"
    assert decide(snapshot(ECHO, vendas), inbound("bom dia")).replies[0]["text"] == "Recebido, Ana!"


def test_no_flow_no_answer():
    changes = decide(snapshot(), inbound("oi"))
    assert changes.write and changes.replies == [] and len(changes.messages) == 1


def test_whatsapp_replies_get_outbox_rows_keyed_before_anything_is_written():
    changes = decide(snapshot(ECHO, channel="whatsapp"), inbound("oi"))
    [out] = [m for m in changes.messages if m["direction"] == "out"]
    [row] = changes.outbox
    assert row["idempotency_key"] == out["external_id"] and row["idempotency_key"].startswith("out-")
    assert row["payload"] == {"to": "5511999990000", "text": "Recebido, Ana!", "buttons": []}
    assert row["status"] == "pending" and row["conversation_id"] == 7


# -- asking for what the snapshot lacks -------------------------------------------------------

def test_a_request_for_a_human_needs_the_assignees_first():
    snap = snapshot(ECHO, assignees=None)
    first = decide(snap, inbound("quero falar com um atendente"))
    assert first.needs == {NEED_ASSIGNEES} and not first.write

    snap.assignees = ()
    changes = decide(snap, inbound("quero falar com um atendente"))
    assert changes.write and changes.status == "open" and changes.opened_at == utc(T0)
    assert [a["action"] for a in changes.activity] == ["handoff_requested"]
    assert changes.cancel_bot_timers and changes.transitions == ["handoff"]


def test_a_flow_assigning_a_user_needs_the_users_and_skips_an_unknown_one():
    snap = snapshot(OPENS, users=None)
    assert decide(snap, inbound("oi")).needs == {NEED_USERS}

    snap.users = frozenset({"bia"})
    changes = decide(snap, inbound("oi"))
    assert changes.status == "open" and [a["login"] for a in changes.assignees_added] == ["bia"]
    assert [a["action"] for a in changes.activity] == ["opened_by_flow", "assigned"]

    snap.users = frozenset({"ana"})
    changes = decide(snap, inbound("oi"))
    assert changes.assignees_added == [] and "não existe" in changes.logs[0]["message"]


def test_opening_with_auto_conclude_needs_to_know_whether_one_is_pending():
    snap = snapshot(ECHO, settings=Settings(auto_conclude_after=3600), auto_conclude_pending=None)
    assert decide(snap, AgentAction("open", "ana", None, T0)).needs == {NEED_AUTO_CONCLUDE}
    snap.auto_conclude_pending = False
    [timer] = decide(snap, AgentAction("open", "ana", None, T0)).timers
    assert (timer["kind"], timer["due_at"]) == ("auto_conclude", utc(T0 + 3600))
    snap.auto_conclude_pending = True
    assert decide(snap, AgentAction("open", "ana", None, T0)).timers == []


# -- timers ----------------------------------------------------------------------------------

def test_a_question_schedules_its_timeout_and_the_fired_timer_takes_the_timeout_port():
    snap = snapshot(QUESTION)
    asked = decide(snap, inbound("oi"))
    [timer] = asked.timers
    assert timer["kind"] == "question_timeout" and timer["due_at"] == utc(T0 + 300)

    fired = decide(after(snap, asked), TimerFired(99, timer["kind"], timer["payload"], T0 + 300))
    assert fired.write and fired.fired and fired.fire_timer_id == 99 and fired.fired_at == utc(T0 + 300)
    assert fired.replies == [{"text": "Ainda está aí?", "buttons": []}]


def test_a_timer_of_an_older_run_fires_and_changes_nothing_else():
    snap = snapshot(QUESTION)
    asked = decide(snap, inbound("oi"))
    stale = {**asked.timers[0]["payload"], "run_id": "r-another"}
    fired = decide(after(snap, asked), TimerFired(99, "question_timeout", stale, T0 + 300))
    assert fired.fired and fired.replies == [] and fired.messages == []
    assert fired.updated_at == asked.updated_at  # no activity: the inbox order stays


def test_a_timer_no_longer_pending_is_not_fired():
    snap = snapshot(QUESTION)
    snap.timer_pending = False
    changes = decide(snap, TimerFired(99, "question_timeout", {}, T0))
    assert not changes.write and not changes.fired


def test_answering_the_question_cancels_its_timeout():
    snap = snapshot(QUESTION)
    asked = decide(snap, inbound("oi"))
    answered = decide(after(snap, asked), inbound("ana@example.com", message_id="m2", at=T0 + 10))
    assert answered.cancel_bot_timers and answered.timers == []
    assert answered.answers[0]["name"] == "email" and answered.answers[0]["value"] == "ana@example.com"
    assert answered.replies == [{"text": "Obrigado!", "buttons": []}]


def test_auto_conclude_after_activity_reschedules_instead_of_concluding():
    settings = Settings(auto_conclude_after=3600)
    snap = snapshot(status="open", settings=settings, updated_at=T0 - 60, opened_at=T0 - 4000)
    changes = decide(snap, TimerFired(5, "auto_conclude", {}, T0))
    assert changes.fired and changes.status == "open"
    assert [(t["kind"], t["due_at"]) for t in changes.timers] == [("auto_conclude", utc(T0 - 60 + 3600))]

    idle = snapshot(status="open", settings=settings, updated_at=T0 - 4000, opened_at=T0 - 4000)
    changes = decide(idle, TimerFired(5, "auto_conclude", {}, T0))
    assert changes.status == "concluded" and changes.activity[0]["action"] == "auto_concluded"


# -- agents ----------------------------------------------------------------------------------

def test_an_agent_message_opens_and_is_the_first_response():
    changes = decide(snapshot(ECHO), AgentMessage("ana", "Olá!", T0))
    assert changes.status == "open" and changes.first_response_at == utc(T0)
    assert [(m["author"], m["text"]) for m in changes.messages] == [("ana", "Olá!")]


def test_concluding_reports_resolution_and_first_response_from_the_conversation():
    snap = snapshot(status="open", opened_at=T0 - 100, first_response_at=T0 - 70, assignees=["ana"])
    changes = decide(snap, AgentAction("conclude", "ana", None, T0))
    [entry] = changes.activity
    assert entry["detail"]["resolution_s"] == 100.0 and entry["detail"]["first_response_s"] == 30.0
    assert changes.cancel_auto_conclude and changes.opened_at is None and changes.first_response_at is None


def test_a_no_op_action_writes_nothing():
    changes = decide(snapshot(status="open", opened_at=T0 - 5), AgentAction("open", "ana", None, T0))
    assert not changes.write and changes.activity == []


def test_assign_and_unassign_are_rows_added_and_removed():
    snap = snapshot(status="open", opened_at=T0 - 5, assignees=["ana"])
    added = decide(snap, AgentAction("assign", "ana", "bia", T0))
    assert added.assignees_added == [{"conversation_id": 7, "login": "bia", "assigned_at": utc(T0)}]
    removed = decide(snap, AgentAction("unassign", "ana", "ana", T0))
    assert removed.assignees_removed == ["ana"] and removed.assignees_added == []


def test_renaming_to_the_same_name_writes_nothing():
    assert not decide(snapshot(), Rename("Ana", T0)).write
    assert decide(snapshot(), Rename("Bia", T0)).contact_name == "Bia"


# -- HTTP ------------------------------------------------------------------------------------

def test_an_http_block_is_named_not_called_and_its_answer_is_a_second_decision():
    snap = snapshot(HTTP)
    reached = decide(snap, inbound("oi"))
    call = reached.pending_http
    assert call["url"] == "https://api.example.com/x" and reached.state["run"]["pending"] == "http"
    assert reached.replies == []

    done = decide(after(snap, reached), HttpDone(call, True, 200, {"ok": 1}, None, T0 + 1))
    assert done.write and done.replies == [{"text": "Chegou.", "buttons": []}]
    assert done.state["vars"]["resp"]["status"] == 200


def test_an_http_answer_for_a_run_that_moved_on_is_dropped():
    snap = snapshot(HTTP)
    reached = decide(snap, inbound("oi"))
    moved = {**reached.pending_http, "token": reached.pending_http["token"] + 1}
    assert not decide(after(snap, reached), HttpDone(moved, True, 200, {}, None, T0 + 1)).write


def test_a_failed_http_call_is_logged_and_takes_the_error_port():
    snap = snapshot(HTTP)
    reached = decide(snap, inbound("oi"))
    done = decide(after(snap, reached), HttpDone(reached.pending_http, False, None, None, "timeout", T0 + 1))
    assert done.replies == [{"text": "Falhou.", "buttons": []}]
    assert any("timeout" in entry["message"] for entry in done.logs)


@pytest.mark.parametrize("text", ["oi", "atendente"])
def test_every_decision_carries_the_version_it_was_made_on(text):
    snap = snapshot(ECHO)
    snap.conversation["version"] = 41
    assert decide(snap, inbound(text)).version == 41


def test_times_are_the_events_own():
    changes = decide(snapshot(ECHO), inbound("oi", at=T0 + 12.5))
    assert {epoch(m["at"]) for m in changes.messages} == {T0 + 12.5}
