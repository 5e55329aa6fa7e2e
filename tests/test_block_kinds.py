"""Block kinds describe themselves: a kind is one folder plus one registry line.

``tests/fixtures/typing_delay/`` is a test-only kind (waits 2 s, sends nothing). Once it
is in ``blocks.REGISTRY`` — and nowhere else — papo validates, lints, runs, draws and
documents it.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import pytest

import schemas
from blocks import REGISTRY, pausing_kinds, timer_kinds
from editor import create_app
from engine import accounts
from engine.db import create_schema
from engine.flows import FlowRepository
from engine.lint import has_errors, lint
from engine.simulator import Simulation

KIND_FOLDER = Path(__file__).parent / "fixtures" / "typing_delay"

DOC = {
    "schema_version": 1, "id": "digitando", "name": "Digitando", "triggers": [{"type": "default"}],
    "start": "oi",
    "blocks": [
        {"id": "oi", "type": "message", "data": {"text": "Oi! Só um instante."}},
        {"id": "pausa", "type": "typing_delay", "data": {"seconds": 2}},
        {"id": "pronto", "type": "message", "data": {"text": "Pronto, aqui está."}},
    ],
    "edges": [{"from": "oi", "port": "next", "to": "pausa"},
              {"from": "pausa", "port": "next", "to": "pronto"}],
}


def _load_kind():
    spec = importlib.util.spec_from_file_location("typing_delay_kind", KIND_FOLDER / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BLOCK


@pytest.fixture
def typing_delay(monkeypatch):
    kind = _load_kind()
    monkeypatch.setitem(REGISTRY, kind.type, kind)  # the one registry line
    return kind


def _with_data(data: dict) -> dict:
    doc = copy.deepcopy(DOC)
    doc["blocks"][1]["data"] = data
    return doc


def test_an_unregistered_kind_is_refused():
    with pytest.raises(schemas.FlowDocumentError) as refused:
        schemas.load_document(DOC)
    assert any("typing_delay" in p["message"] for p in refused.value.problems)


def test_a_registered_kind_is_validated_by_its_own_schema(typing_delay):
    assert schemas.load_document(DOC)["blocks"][1]["data"] == {"seconds": 2}
    assert schemas.load_document(_with_data({}))["blocks"][1]["data"] == {}
    for bad in ({"seconds": 60}, {"seconds": 2, "cor": "azul"}):
        with pytest.raises(schemas.FlowDocumentError) as refused:
            schemas.load_document(_with_data(bad))
        assert refused.value.problems[0]["block_id"] == "pausa"


def test_a_registered_kind_is_linted_and_a_loop_through_it_is_not_a_spin(typing_delay):
    assert "typing_delay" in pausing_kinds()
    assert not has_errors(lint(DOC))
    looping = copy.deepcopy(DOC)
    looping["edges"].append({"from": "pronto", "port": "next", "to": "oi"})
    assert "spin_loop" not in {f["code"] for f in lint(looping)}
    # the same loop without the pause spins
    looping["edges"] = [{"from": "oi", "port": "next", "to": "pronto"},
                        {"from": "pronto", "port": "next", "to": "oi"}]
    assert "spin_loop" in {f["code"] for f in lint(looping)}


def test_a_registered_kind_runs_waits_two_seconds_and_sends_nothing(typing_delay):
    assert timer_kinds()["typing_delay"].port == "next"
    sim = Simulation(DOC, start_at=1_800_000_000)
    assert sim.send("olá") == [{"text": "Oi! Só um instante.", "buttons": []}]
    assert [t["kind"] for t in sim.timers()] == ["typing_delay"]
    assert sim.run()["state"] == "waiting_timer"
    assert sim.wait(1) == []
    assert sim.wait(1) == [{"text": "Pronto, aqui está.", "buttons": []}]
    assert sim.timers() == [] and sim.run()["state"] == "ended"


@pytest.fixture
def web(tmp_path, typing_delay):
    app = create_app({
        "PAPO_DATABASE_URL": f"sqlite:///{tmp_path / 'papo.db'}",
        "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
        "TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": False,
    })
    engine = app.extensions["papo"]["engine"]
    create_schema(engine)
    accounts.create_user(engine, "ana", "admin", password="uma senha longa", name="Ana")
    FlowRepository(engine).create(DOC, actor="ana")
    yield app
    engine.dispose()


def test_a_registered_kind_is_drawn_in_the_palette_and_on_the_canvas(web):
    client = web.test_client()
    client.post("/login", data={"login": "ana", "password": "uma senha longa"})
    html = client.get("/flows/digitando/edit").get_data(as_text=True)
    assert re.search(r'data-kind="typing_delay"[^>]*>Digitando…</li>', html)  # the palette entry
    editor = json.loads(re.search(r'<script type="application/json" id="flow-data">(.*?)</script>',
                                  html, re.S).group(1))
    assert editor["palette"]["typing_delay"]["data"] == {"seconds": 2}  # its preset
    card = editor["cards"]["pausa"]
    assert card["ports"] == ["next"]
    assert "depois de digitar" in card["html"] and "… 2 s" in card["html"]  # port name, node.html
    form = client.get("/flows/digitando/blocks/pausa/form")
    assert form.status_code == 200 and 'name="seconds"' in form.get_data(as_text=True)


def test_a_registered_kind_is_listed_in_openapi(web):
    document = web.test_client().get("/api/v1/openapi.json").get_json()
    components = document["components"]["schemas"]
    assert "typing_delay" in components["Flow.block"]["properties"]["type"]["enum"]
    assert components["Flow.typing_delay_data"]["properties"]["seconds"]["maximum"] == 10
    timer = components["Conversation"]["properties"]["timers"]["items"]
    assert timer["properties"]["kind"]["enum"] == ["question_timeout", "wait", "typing_delay",
                                                  "auto_conclude", "debounce"]
