"""Properties of ``engine.core.step`` over random structurally valid flows and random events.

Flows use every block kind with valid data, random edges on valid ports (at most one per
port, loops allowed); events are random Start / UserMessage / Timer / Opened / Concluded /
HttpResult sequences. ``PAPO_HYPOTHESIS_EXAMPLES`` sets how many examples to try.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocks import REGISTRY
from engine.core import (
    BLOCK_BUDGET,
    Concluded,
    HttpResult,
    Opened,
    Start,
    Timer,
    UserMessage,
    new_state,
    step,
)
from schemas import load_document

RUN_STATES = {"running", "waiting_input", "waiting_timer", "suspended", "ended"}
SETTINGS = settings(max_examples=int(os.environ.get("PAPO_HYPOTHESIS_EXAMPLES", "200")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

VAR_NAMES = ["nome", "idade", "cidade", "n", "api"]
LABELS = ["Ver planos", "Falar com atendente", "Sim", "Não", "Outro assunto", "1"]
TEXTS = ["Olá!", "Olá, {{ contact.name }}!", "Você tem {{ idade }} anos", "{{ vars.cidade }} {{ nada }}",
         "{{ api.body.x }}", "{{ ''.__class__.__mro__ }}", "{{ 'ab' * 3000 }}", "{% if n %}{{ n }}{% endif %}"]
RULES = [True, False, {"==": [1, 1]}, {">": [{"var": "idade"}, 18]}, {"var": "vars.nome"},
         {"==": [{"var": "contact.name"}, "Ana"]}, {"in": ["a", {"var": "cidade"}]}, {"<": [{"var": "n"}, 3]},
         {"missing": ["nome"]}, {"no_such_op": [1]}, {"/": [1, 0]}, "sim", 0, None, []]
VALUES = ["{{ nome }}!", "fixo", {"+": [{"var": "n"}, 1]}, {"cat": [{"var": "nome"}, "?"]}, 42, 3.5, True,
          None, ["a", 1], {"var": "contact.name"}]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


@st.composite
def block_data(draw, kind: str) -> dict:
    pick = lambda values: draw(st.sampled_from(values))  # noqa: E731
    maybe = lambda: draw(st.booleans())  # noqa: E731
    if kind == "message":
        data = {"text": pick(TEXTS)}
        if maybe():
            data["buttons"] = draw(st.lists(st.sampled_from(LABELS), max_size=4))
    elif kind == "question":
        data = {"text": pick(TEXTS), "input": pick(["text", "number", "email", "phone", "date", "choice"]),
                "save_as": pick(VAR_NAMES)}
        if data["input"] == "choice":
            labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=4))
            data["options"] = [{"id": f"o{i}", "label": label} for i, label in enumerate(labels)]
        if maybe():
            data["pattern"] = pick([r"[A-Z]{3}-\d{4}", "[1-5]", ".*", "\\w+"])
        if maybe():
            data["invalid_text"] = pick(TEXTS)
        if maybe():
            data["max_attempts"] = draw(st.integers(1, 4))
        if maybe():
            data["timeout_s"] = draw(st.integers(1, 31_536_000))
    elif kind == "condition":
        data = {"rules": [{"port": f"r{i}", "when": pick(RULES)} for i in range(draw(st.integers(0, 3)))]}
    elif kind == "set_variable":
        data = {"name": pick(VAR_NAMES), "value": pick(VALUES)}
    elif kind == "wait":
        data = {"seconds": draw(st.integers(1, 31_536_000))}
    elif kind == "http_request":
        data = {"method": pick(["GET", "POST", "PUT", "PATCH", "DELETE"]),
                "url": pick(["https://api.example.com/x", "https://api.example.com/{{ nome }}"])}
        if maybe():
            data["save_as"] = pick(VAR_NAMES)
        if maybe():
            data["headers"] = {"X-Nome": "{{ contact.name }}"}
        if maybe():
            data["body"] = {"nome": "{{ nome }}", "lista": [1, "{{ idade }}"]}
        if maybe():
            data["timeout_s"] = draw(st.floats(0.5, 30))
    elif kind in ("add_tag", "remove_tag"):
        data = {"tag": pick(["vip", "lead", "novo"])}
    elif kind == "jump":
        data = {"flow_id": pick(["vendas", "aleatorio"])}
        if maybe():
            data["block_id"] = "b0"
    elif kind == "open_conversation":
        data = {}
        if maybe():
            data["assign_to"] = "ana"
        if maybe():
            data["note"] = "Cliente pediu atendente"
    elif kind == "conclude_conversation":
        data = {"reason": "fim"} if maybe() else {}
    elif kind == "business_hours":
        data = {}  # its ports, open and closed, are drawn with the edges
    else:  # a new block kind must get a strategy here
        raise AssertionError(f"no strategy for block kind {kind!r}")
    return data


# Questions, waits and hand-offs are where runs stop: weight them so event sequences get deep.
KINDS = st.sampled_from(sorted(REGISTRY) + ["question"] * 4 + ["wait", "open_conversation", "http_request"])


@st.composite
def flows(draw) -> dict:
    count = draw(st.integers(1, 12))
    blocks = []
    for i in range(count):
        kind = draw(KINDS)
        blocks.append({"id": f"b{i}", "type": kind, "data": draw(block_data(kind))})
    ids = [b["id"] for b in blocks]
    edges = []
    for b in blocks:
        for port in REGISTRY[b["type"]].ports(b["data"]):
            if draw(st.integers(0, 4)) > 0:  # most ports connected, some left open
                edges.append({"from": b["id"], "port": port, "to": draw(st.sampled_from(ids))})
    doc = {"schema_version": 1, "id": "aleatorio", "name": "Aleatório", "start": draw(st.sampled_from(ids)),
           "blocks": blocks, "edges": edges}
    return load_document(doc)  # the strategy only makes structurally valid flows


REPLIES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(LABELS + ["ver planos", "VÊR PLANOS", "2", "3", "0", "12,5", "ana@exemplo.com",
                              "(11) 98765-4321", "25/12/2026", "2026-02-30", "ABC-1234", "", "  "]),
    st.integers(-10**6, 10**6).map(str),
)
# What a hostile or clumsy customer sends: numbers no float or int() can hold, walls of text.
HOSTILE_REPLIES = st.one_of(
    # float() overflows past 308 digits; int() refuses strings over 4,300 digits
    st.sampled_from([308, 309, 400, 4300, 4301, 6000]).map(lambda n: "9" * n),
    st.sampled_from([309, 4301]).map(lambda n: "1" + "0" * n),
    st.integers(1000, 20000).map(lambda n: "a" * n),
    st.sampled_from(["1e999", "NaN", "-inf", "١٢", "１", "²", "0x10", "1_000"]),
)

ANY_EVENT = st.one_of(
    st.tuples(st.just("start"), st.sampled_from([None, "b0", "b1", "fantasma"])),
    st.tuples(st.just("message"), REPLIES),
    st.tuples(st.just("timer"), st.sampled_from(["wait", "question_timeout"]),
              st.sampled_from(["current", "current", "old", "future"])),
    st.tuples(st.just("opened"), st.booleans()),
    st.tuples(st.just("concluded")),
    st.tuples(st.just("http"), st.booleans(), st.sampled_from([200, 201, 404, 500, None]), JSON_VALUES),
)


def events_for(doc: dict, state: dict):
    """Any event, or more often one the run is waiting for (so sequences get past the start)."""
    run = state.get("run") or {"state": "ended"}
    block = next((b for b in doc["blocks"] if b["id"] == run.get("block_id")), None)
    if run["state"] == "waiting_input" and block is not None:
        labels = [o["label"] for o in block["data"].get("options", [])]
        answers = st.sampled_from([*labels, *(label.upper() for label in labels),
                                   *(str(i + 1) for i in range(len(labels))), "talvez"])
        likely = st.one_of(
            st.tuples(st.just("message"), st.one_of(REPLIES, answers, HOSTILE_REPLIES)),
            st.tuples(st.just("timer"), st.just("question_timeout"), st.sampled_from(["current", "old"])))
    elif run["state"] == "waiting_timer":
        likely = st.tuples(st.just("timer"), st.just("wait"), st.sampled_from(["current", "old"]))
    elif run["state"] == "running":
        likely = st.tuples(st.just("http"), st.booleans(), st.sampled_from([200, 500, None]), JSON_VALUES)
    elif run["state"] == "suspended":
        likely = st.tuples(st.just("concluded"))
    else:
        likely = st.tuples(st.just("start"), st.sampled_from([None, "b0", "b1"]))
    return st.one_of(likely, likely, ANY_EVENT)


def make_event(spec: tuple, at: float, state: dict, number: int):
    kind = spec[0]
    if kind == "start":
        return Start(at=at, run_id=f"r-{number}", block_id=spec[1])
    if kind == "message":
        return UserMessage(at=at, text=spec[1])
    if kind == "timer":
        current = (state.get("run") or {}).get("token", 0)
        token = {"current": current, "old": current - 1, "future": current + 1}[spec[2]]
        return Timer(at=at, kind=spec[1], token=token)
    if kind == "opened":
        return Opened(at=at, interrupt=spec[1])
    if kind == "concluded":
        return Concluded(at=at)
    return HttpResult(at=at, ok=spec[1], status=spec[2], body=spec[3])


class CountingExecutors:
    """Counts block executions during one step (the true number of blocks visited)."""

    def __init__(self):
        self.count = 0

    def __enter__(self):
        def counted(execute):
            def run(block, ctx):
                self.count += 1
                return execute(block, ctx)
            return run

        wrapped = {k: dataclasses.replace(kind, execute=counted(kind.execute)) for k, kind in REGISTRY.items()}
        self._patch = mock.patch.dict(REGISTRY, wrapped)
        self._patch.__enter__()
        return self

    def __exit__(self, *exc):
        return self._patch.__exit__(*exc)


def play(doc: dict, data, max_events: int = 15):
    """Yield (event, state before, state after, outbound, effects, blocks executed) per event."""
    state = new_state({"name": "Ana", "external_id": "5511999990000"})
    at = 1_800_000_000.0
    for number in range(1 + data.draw(st.integers(0, max_events), label="events")):
        spec = ("start", None) if number == 0 else data.draw(events_for(doc, state))
        at += 7
        event = make_event(spec, at, state, number)
        with CountingExecutors() as counter:
            after, outbound, effects = step(doc, state, event)
        yield event, state, after, outbound, effects, counter.count
        state = after


@SETTINGS
@given(doc=flows(), data=st.data())
def test_step_never_raises_and_keeps_the_run_within_its_states(doc, data):
    for event, before, after, outbound, effects, executed in play(doc, data):
        assert executed <= BLOCK_BUDGET
        visits = [e for e in effects if e["type"] == "visit"]
        assert len(visits) <= 1
        assert all(len(v["block_ids"]) <= BLOCK_BUDGET for v in visits)
        assert len(outbound) <= BLOCK_BUDGET + 1  # an invalid answer adds its hint to the question
        run = after["run"]
        assert run is not None and run["state"] in RUN_STATES, event
        if run["state"] == "running":
            # Only an HTTP call leaves a run running: one just requested or one still awaited.
            assert run.get("pending") == "http", (event, run)
            requested = any(e["type"] == "http" for e in effects)
            awaited = before["run"] is not None and before["run"].get("pending") == "http"
            assert requested or awaited, (event, run)


@SETTINGS
@given(doc=flows(), data=st.data())
def test_step_is_pure_and_deterministic(doc, data):
    for event, before, after, outbound, effects, _ in play(doc, data):
        frozen = copy.deepcopy(before)
        again = step(doc, copy.deepcopy(before), event)
        assert before == frozen
        assert again == (after, outbound, effects)


@SETTINGS
@given(doc=flows(), data=st.data())
def test_state_stays_plain_json_and_tokens_only_grow(doc, data):
    for event, before, after, _, effects, _ in play(doc, data):
        json.dumps(after, allow_nan=False)  # stored as JSON (PostgreSQL refuses NaN/Infinity)
        if before["run"] and after["run"]["id"] == before["run"]["id"]:
            assert after["run"]["token"] >= before["run"]["token"], event
        for timer in (e for e in effects if e["type"] == "schedule_timer"):
            assert timer["token"] == after["run"]["token"]
            assert timer["due_at"] > event.at


@st.composite
def question_and_reply(draw) -> tuple[dict, str]:
    data = draw(block_data("question"))
    labels = [o["label"] for o in data.get("options", [])]
    own = st.sampled_from([*labels, *(label.lower() for label in labels), *(str(i + 1) for i in range(len(labels)))]
                          or ["oi"])
    return data, draw(st.one_of(REPLIES, HOSTILE_REPLIES, own))


@SETTINGS
@given(question_and_reply())
def test_any_reply_to_any_question_is_judged_without_crashing(case):
    data, reply = case
    doc = load_document({"schema_version": 1, "id": "pergunta", "name": "Pergunta", "start": "q",
                         "blocks": [{"id": "q", "type": "question", "data": data}], "edges": []})
    state, _, _ = step(doc, new_state({"name": "Ana"}), Start(at=0, run_id="r"))
    after, outbound, effects = step(doc, state, UserMessage(at=1, text=reply))
    json.dumps(after, allow_nan=False)
    answers = [e for e in effects if e["type"] == "answer"]
    if answers:
        assert after["vars"][data["save_as"]] == answers[0]["value"]
        assert after["run"]["state"] == "ended"  # no edges: the answer port leads nowhere
    else:
        assert after["run"]["state"] in {"waiting_input", "ended"}  # asked again, or gave up
