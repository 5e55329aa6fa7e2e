"""Automatic assignment (DESIGN §10.3, §10.6): availability, capacity, round robin,
balanced, the queue, activity entries by ``system`` — through the engine's API, on both
databases (the HTTP side is tests/test_api_desk.py)."""
from __future__ import annotations

import threading
from collections import Counter
from functools import partial

import pytest
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from engine import accounts
from engine.assignment import Agent, choose
from engine.service import Service
from engine.settings import Settings, SettingsError
from engine.store import conversation_assignees, conversations
from engine.worker import Worker


class Clock:
    def __init__(self, now: float = 1_795_168_800.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _cheap_passwords(monkeypatch):
    monkeypatch.setattr(accounts, "generate_password_hash",
                        partial(generate_password_hash, method="pbkdf2:sha256:1"))


def desk(db, policy: str, people: dict[str, dict], clock: Clock | None = None) -> Service:
    """A service under ``policy`` with ``people`` = ``{login: {"online", "max_open", "role"}}``."""
    service = Service(db, Settings(assignment=policy), clock=clock or Clock())
    for login, how in people.items():
        accounts.create_user(db, login, how.get("role", "agent"), password="senha-de-teste")
        if "max_open" in how:
            service.set_max_open(login, how["max_open"])
        if how.get("online"):
            service.set_availability(login, "online")
    return service


def ask_for_a_person(service: Service, who: str) -> int:
    """A new customer whose first message asks for a human: the conversation opens."""
    result = service.handle_inbound("api", {"external_id": who, "name": who.title()},
                                    {"id": f"m-{who}", "text": "quero falar com atendente"})
    assert result["status"] == "open"
    return result["conversation_id"]


def assignees_of(service: Service, conversation_id: int) -> list[str]:
    return service.get_conversation(conversation_id)["assignees"]


def open_per_agent(db) -> Counter:
    with db.connect() as conn:
        rows = conn.execute(select(conversation_assignees.c.login).join(
            conversations, conversations.c.id == conversation_assignees.c.conversation_id)
            .where(conversations.c.status == "open")).scalars().all()
    return Counter(rows)


# ---------------------------------------------------------------------- the policies, pure

def test_round_robin_picks_the_longest_since_the_last_assignment():
    from datetime import UTC, datetime

    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    agents = [Agent("ana", 10, 0, late), Agent("bruno", 10, 5, early), Agent("carla", 10, 1, None)]
    assert choose(agents, "round_robin").login == "carla"  # never assigned goes first
    assert choose(agents[:2], "round_robin").login == "bruno"
    assert choose(agents, "balanced").login == "ana"  # the fewest open
    full = [Agent("ana", 2, 2, None), Agent("bruno", 0, 99, late)]  # 0 = no limit
    assert choose(full, "round_robin").login == "bruno"
    assert choose([Agent("ana", 1, 1, None)], "balanced") is None


def test_an_unknown_assignment_setting_stops_the_start():
    with pytest.raises(SettingsError, match="PAPO_ASSIGNMENT"):
        Settings.from_env({"PAPO_ASSIGNMENT": "random"})
    assert Settings.from_env({}).assignment == "manual"
    assert Settings.from_env({"PAPO_ASSIGNMENT": "balanced"}).assignment == "balanced"


# ---------------------------------------------------------------------- on both databases

def test_new_agents_are_away_and_manual_assigns_nobody(db):
    service = desk(db, "manual", {"ana": {}})
    user = accounts.get_user(db, "ana")
    assert (user["availability"], user["max_open"]) == ("away", 10)
    service.set_availability("ana", "online")
    conversation = ask_for_a_person(service, "maria")
    assert assignees_of(service, conversation) == []
    assert service.assign_waiting() == []


def test_an_opened_conversation_goes_to_an_online_agent_with_a_system_entry(db):
    service = desk(db, "round_robin", {"ana": {}, "bruno": {"online": True}})
    conversation = ask_for_a_person(service, "maria")
    assert assignees_of(service, conversation) == ["bruno"]  # ana is away
    entries = [a for a in service.get_conversation(conversation)["activity"] if a["action"] == "assigned"]
    assert [(e["actor"], e["from"], e["to"]) for e in entries] == [("system", "open", "open")]


def test_round_robin_is_fair_within_capacity(db):
    service = desk(db, "round_robin", {login: {"online": True, "max_open": 40}
                                       for login in ("ana", "bruno", "carla")})
    for n in range(100):
        ask_for_a_person(service, f"cliente-{n:03d}")
    counts = open_per_agent(db)
    assert sorted(counts.values(), reverse=True) == [34, 33, 33]


def test_round_robin_takes_turns_in_order(db):
    service = desk(db, "round_robin", {login: {"online": True} for login in ("ana", "bruno", "carla")})
    order = [assignees_of(service, ask_for_a_person(service, f"c{n}"))[0] for n in range(6)]
    assert order == ["ana", "bruno", "carla", "ana", "bruno", "carla"]


def test_balanced_gives_the_agent_with_fewest_open(db):
    service = desk(db, "balanced", {"ana": {"online": True}, "bruno": {}})
    first = [ask_for_a_person(service, f"c{n}") for n in range(3)]
    assert all(assignees_of(service, c) == ["ana"] for c in first)
    service.set_availability("bruno", "online")
    # bruno has none open: the next three go to him until both have three
    nxt = [assignees_of(service, ask_for_a_person(service, f"d{n}"))[0] for n in range(4)]
    # three each: a tie, broken by the longest since the last assignment (ana)
    assert nxt == ["bruno", "bruno", "bruno", "ana"]
    assert open_per_agent(db) == Counter({"ana": 4, "bruno": 3})
    service.act(first[0], "conclude", "ana")  # three each again; bruno waited longer
    assert assignees_of(service, ask_for_a_person(service, "e1")) == ["bruno"]
    assert assignees_of(service, ask_for_a_person(service, "e2")) == ["ana"]


def test_capacity_is_respected_and_the_rest_waits_in_the_queue(db):
    service = desk(db, "round_robin", {"ana": {"online": True, "max_open": 2}})
    conversations_ = [ask_for_a_person(service, f"c{n}") for n in range(4)]
    assert [len(assignees_of(service, c)) for c in conversations_] == [1, 1, 0, 0]
    listed = service.list_conversations(status="open", unassigned=True)["items"]
    assert sorted(c["id"] for c in listed) == sorted(conversations_[2:])  # "Sem atendente"
    # ana concludes one: the worker's round gives her the oldest waiting one
    service.act(conversations_[0], "conclude", "ana")
    assert Worker(service).assign_queue() == 1
    assert assignees_of(service, conversations_[2]) == ["ana"]
    assert assignees_of(service, conversations_[3]) == []


def test_the_queue_drains_oldest_first_when_an_agent_comes_online(db):
    clock = Clock()
    service = desk(db, "round_robin", {"ana": {}, "bruno": {"max_open": 2}}, clock)
    waiting = []
    for n in range(3):
        clock.now += 60
        waiting.append(ask_for_a_person(service, f"c{n}"))
    assert all(assignees_of(service, c) == [] for c in waiting)  # nobody online: "Sem atendente"
    service.set_availability("bruno", "online")
    assert [assignees_of(service, c) for c in waiting] == [["bruno"], ["bruno"], []]
    service.set_availability("ana", "online")
    assert assignees_of(service, waiting[2]) == ["ana"]
    entries = [a for c in waiting for a in service.get_conversation(c)["activity"]
               if a["action"] == "assigned"]
    assert {e["actor"] for e in entries} == {"system"} and len(entries) == 3


def test_more_room_takes_from_the_queue_and_away_takes_nothing(db):
    service = desk(db, "balanced", {"ana": {"online": True, "max_open": 1}})
    a, b = ask_for_a_person(service, "c1"), ask_for_a_person(service, "c2")
    assert assignees_of(service, b) == []
    service.set_availability("ana", "away")
    service.set_max_open("ana", 2)
    assert assignees_of(service, b) == []  # away: more room, but not here
    service.set_availability("ana", "online")
    assert assignees_of(service, b) == ["ana"] and assignees_of(service, a) == ["ana"]


def test_admins_take_conversations_when_online_and_disabled_people_never(db):
    service = desk(db, "round_robin", {"chefe": {"role": "admin", "online": True},
                                       "ana": {"online": True}})
    accounts.set_disabled(db, "ana")
    conversation = ask_for_a_person(service, "maria")
    assert assignees_of(service, conversation) == ["chefe"]


def test_a_flow_that_opens_with_assign_to_is_not_assigned_again(db, flows, sample_flow):
    service = desk(db, "round_robin", {"ana": {"online": True}, "bruno": {"online": True}})
    doc = {"schema_version": 1, "id": "pedido", "name": "Pedido", "triggers": [{"type": "default"}],
           "start": "b1", "blocks": [
               {"id": "b1", "type": "open_conversation", "position": {"x": 0, "y": 0},
                "data": {"assign_to": "bruno"}}], "edges": []}
    flows.create(doc, actor="ana")
    flows.publish("pedido", actor="ana")
    result = service.handle_inbound("api", {"external_id": "x", "name": "X"}, {"id": "1", "text": "oi"})
    assert result["status"] == "open"
    assert assignees_of(service, result["conversation_id"]) == ["bruno"]


def test_simulator_conversations_are_never_assigned(db):
    from engine.simulator import Simulation

    desk(db, "round_robin", {"ana": {"online": True}})
    sim = Simulation(None, db=db, settings=Settings(assignment="round_robin"))
    sim.send("atendente")
    assert sim.status() == "open"
    assert sim.conversation()["assignees"] == []
    assert open_per_agent(db) == Counter()


def test_many_conversations_opening_at_once_never_exceed_capacity(db):
    """Threads open conversations together (two processes' worth of inbound): each agent
    gets at most max_open, the rest waits; on PostgreSQL the agents' rows are locked."""
    service = desk(db, "round_robin", {"ana": {"online": True, "max_open": 3},
                                       "bruno": {"online": True, "max_open": 2}})
    barrier = threading.Barrier(8)
    errors = []

    def customer(n: int) -> None:
        try:
            barrier.wait()
            for k in range(3):
                ask_for_a_person(service, f"t{n}-{k}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=customer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert open_per_agent(db) == Counter({"ana": 3, "bruno": 2})
    page = service.list_conversations(status="open", limit=200)["items"]
    assert len(page) == 24
    assert sum(1 for c in page if not c["assignees"]) == 19


def test_an_agent_who_answers_a_conversation_nobody_has_takes_it(db):
    service = desk(db, "round_robin", {"ana": {"online": True, "max_open": 1}, "bruno": {}})
    first, waiting = ask_for_a_person(service, "c1"), ask_for_a_person(service, "c2")
    assert assignees_of(service, waiting) == []  # ana is full, bruno away
    service.agent_message(waiting, "bruno", "Oi! Já vou te ajudar.")
    assert assignees_of(service, waiting) == ["bruno"]
    entry = service.get_conversation(waiting)["activity"][-1]
    assert (entry["actor"], entry["action"]) == ("bruno", "assigned")
    service.agent_message(first, "bruno", "Também estou aqui.")  # ana has it: stays hers
    assert assignees_of(service, first) == ["ana"]


def test_under_manual_an_answer_does_not_assign(db):
    service = desk(db, "manual", {"bruno": {"online": True}})
    conversation = ask_for_a_person(service, "c1")
    service.agent_message(conversation, "bruno", "Oi!")
    assert assignees_of(service, conversation) == []


def test_a_round_whose_conversation_changed_meanwhile_runs_again(db, monkeypatch):
    """The round reads without locking the conversations; one that changed between the read
    and the write (a customer wrote meanwhile) is refused by the version check, and the
    round is read and decided again."""
    from engine.service import assignment as rounds

    service = desk(db, "round_robin", {"ana": {"online": True}})
    conversation = Service(db, Settings(assignment="manual")).handle_inbound(
        "api", {"external_id": "c1", "name": "C"}, {"id": "m1", "text": "atendente"})["conversation_id"]
    real_write, calls = rounds.write, []

    def customer_writes_first(conn, batch):
        if not calls:  # the first attempt: as write() answers when the version moved on
            calls.append("conflict")
            return False
        calls.append("written")
        return real_write(conn, batch)

    monkeypatch.setattr(rounds, "write", customer_writes_first)
    assert service.assign_waiting([conversation]) == [(conversation, "ana")]
    assert calls == ["conflict", "written"]
    assert assignees_of(service, conversation) == ["ana"]


def test_a_flow_that_opens_after_a_wait_is_assigned_when_the_timer_fires(db, flows):
    clock = Clock()
    service = desk(db, "balanced", {"ana": {"online": True}}, clock)
    doc = {"schema_version": 1, "id": "espera", "name": "Espera", "triggers": [{"type": "default"}],
           "start": "w", "blocks": [
               {"id": "w", "type": "wait", "position": {"x": 0, "y": 0}, "data": {"seconds": 60}},
               {"id": "o", "type": "open_conversation", "position": {"x": 200, "y": 0}, "data": {}}],
           "edges": [{"from": "w", "port": "next", "to": "o"}]}
    flows.create(doc, actor="ana")
    flows.publish("espera", actor="ana")
    conversation = service.handle_inbound("api", {"external_id": "x", "name": "X"},
                                          {"id": "1", "text": "oi"})["conversation_id"]
    assert service.get_conversation(conversation)["status"] == "concluded"
    clock.now += 61
    assert Worker(service).run_once() == 1
    got = service.get_conversation(conversation)
    assert (got["status"], got["assignees"]) == ("open", ["ana"])
    assert got["activity"][-1]["actor"] == "system"


def test_the_worker_tick_takes_the_queue_only_when_assignment_is_on(db):
    service = desk(db, "round_robin", {"ana": {"max_open": 1}})
    waiting = ask_for_a_person(service, "c1")
    manual = Service(db, Settings(assignment="manual"))
    manual.set_availability("ana", "online")  # manual: going online assigns nothing
    assert assignees_of(service, waiting) == []
    Worker(manual).tick_assignment()
    assert assignees_of(service, waiting) == []
    Worker(service).tick_assignment()
    assert assignees_of(service, waiting) == ["ana"]


def test_rounds_of_separate_processes_never_exceed_capacity(db):
    """Each thread has its own service (as separate web processes and workers would): the
    rounds are kept apart by the database alone (the people's rows locked on PostgreSQL,
    the write lock on SQLite), never by this process's gathering of openings."""
    desk(db, "balanced", {"ana": {"online": True, "max_open": 4}, "bruno": {"online": True, "max_open": 3}})
    barrier = threading.Barrier(6)
    errors = []

    def process(n: int) -> None:
        own = Service(db, Settings(assignment="balanced"))
        try:
            barrier.wait()
            for k in range(3):
                ask_for_a_person(own, f"p{n}-{k}")
                if k == 1:
                    Worker(own).assign_queue()  # a worker's round among them
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=process, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert open_per_agent(db) == Counter({"ana": 4, "bruno": 3})
    with db.connect() as conn:
        doubled = conn.execute(select(conversation_assignees.c.conversation_id).group_by(
            conversation_assignees.c.conversation_id).having(func.count() > 1)).all()
    assert doubled == []
