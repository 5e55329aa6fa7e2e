"""engine/simulator.py: the one simulator, as the editor pane uses it (a running clock,
an acting person, resumed on every request); ``papo chat``'s frozen clock is covered in
tests/test_cli_chat.py."""
from __future__ import annotations

import json

from engine.flows import FlowRepository
from engine.simulator import Simulation


def test_a_running_clock_jumps_forward_to_the_timer_it_fires(sample_flow):
    sim = Simulation(sample_flow("lembrete"), clock_offset=0)
    sim.send("lembrete")
    assert [t["kind"] for t in sim.timers()] == ["question_timeout"]
    replies = sim.advance()
    assert replies[0]["text"].startswith("Como não tive resposta")
    # 30 min skipped, less whatever real time passed since the question was asked
    assert 1790 <= sim.clock_offset <= 1800
    assert sim.timers() == []
    assert sim.advance() == [] and 1790 <= sim.clock_offset <= 1800  # nothing left: no jump


def test_open_and_conclude_are_recorded_as_the_acting_person(sample_flow):
    sim = Simulation(sample_flow("boas-vindas"), actor="ana")
    sim.send("oi")
    assert sim.open() == "open"
    sim.conclude()
    actions = [(a["actor"], a["action"]) for a in sim.conversation()["activity"]]
    assert actions == [("ana", "opened"), ("ana", "concluded")]


def test_a_resumed_simulation_finds_its_conversation_by_the_contact(db, sample_flow):
    FlowRepository(db).create(sample_flow("boas-vindas"))
    first = Simulation(None, db=db, flow_id="boas-vindas", contact_name="Ana", clock_offset=0)
    first.send("oi")
    kept = {"flow_id": "boas-vindas", "external_id": first.external_id, "clock_offset": 60}
    again = Simulation.resume(json.loads(json.dumps(kept)), db=db)
    assert again.conversation_id == first.conversation_id
    assert again.run()["block_id"] == "menu"
    assert again.send("1")[0]["text"].startswith("Nossos destaques")
    assert again.clock_offset == 60


def test_a_snapshot_keeps_the_running_clock_and_the_actor(db, sample_flow):
    sim = Simulation(sample_flow("boas-vindas"), db=db, actor="bruno", clock_offset=120)
    snapshot = sim.snapshot()
    assert snapshot["clock_offset"] == 120 and snapshot["actor"] == "bruno"
    again = Simulation.resume(snapshot, db=db)
    assert again.actor == "bruno" and again.clock_offset == 120
