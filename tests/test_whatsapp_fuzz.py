"""Fuzzing the WhatsApp webhook with the real payload shapes, broken (DESIGN §10.7).

Hypothesis takes a body of the corpus (tests/fixtures/whatsapp), removes fields or gives
them a value of another type (null, numbers too big for anything, NaN, NUL, lone
surrogates, long text, lists, objects), signs it and delivers it. A signed body is
always answered 200, a wrongly signed one 403: never 400, never 500; and what was stored
reads back in the API and renders in the inbox. Both databases.
"""
from __future__ import annotations

import copy
import json
from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from test_whatsapp import WEBHOOK, make_app, sign
from test_whatsapp_corpus import FILES
from werkzeug.security import generate_password_hash

from engine import accounts
from engine.service import Service
from engine.store import conversations

T = 1_800_000_000
BODIES = [json.loads(path.read_text(encoding="utf-8")) for path in FILES]
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "\udfff oi", "x" * 5000, "+1 (650) 555-1234",
                     "US.13491208655302741918", "wamid.", "0", "text", "image", "interactive",
                     "revoke", "edit", "reaction", "system", "user_changed_number", "javascript:alert(1)",
                     "1800000000", "99999999999999999999"]),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(st.sampled_from(["id", "body", "type", "wa_id", "message_id"]), st.text(max_size=8),
                    max_size=3),
)


def paths(node, prefix: tuple = ()):
    """Every place in a JSON document, as a tuple of keys and indexes."""
    for key, child in (node.items() if isinstance(node, dict) else
                       enumerate(node) if isinstance(node, list) else ()):
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def at(doc, path: tuple):
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def broken_bodies(draw) -> dict:
    doc = copy.deepcopy(draw(st.sampled_from(BODIES)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        places = list(paths(doc))
        if not places:
            break
        path = draw(st.sampled_from(places))
        parent = at(doc, path[:-1])
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(ODD_VALUES)
    return doc


@pytest.fixture
def papo(db_url, tmp_path, fake_graph, monkeypatch):
    app = make_app(db_url, tmp_path, fake_graph, WTF_CSRF_ENABLED=False)
    papo = app.extensions["papo"]
    papo["service"] = Service(papo["engine"], papo["settings"], clock=lambda: T + 600.0)
    monkeypatch.setattr(accounts, "generate_password_hash",
                        partial(generate_password_hash, method="pbkdf2:sha256:1"))
    accounts.create_user(papo["engine"], "ana", "agent", password="senha-de-teste-123")
    agent = app.test_client()
    assert agent.post("/login", data={"login": "ana", "password": "senha-de-teste-123"}).status_code == 302
    app.agent = agent
    yield app
    papo["engine"].dispose()


def newest_conversation(app) -> int | None:
    with app.extensions["papo"]["engine"].connect() as conn:
        return conn.execute(select(conversations.c.id).order_by(conversations.c.updated_at.desc(),
                                                                conversations.c.id.desc()).limit(1)).scalar()


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(doc=broken_bodies(), signed=st.sampled_from([True, True, True, False]))
def test_a_signed_body_of_the_real_shapes_is_always_200_and_a_badly_signed_one_403(papo, doc, signed,
                                                                                   caplog):
    caplog.clear()
    raw = json.dumps(doc).encode()  # NaN and Infinity too, as Python's json reads them
    signature = sign(raw) if signed else sign(raw + b" ")

    answer = papo.test_client().post(WEBHOOK, data=raw, content_type="application/json",
                                     headers={"X-Hub-Signature-256": signature})

    assert answer.status_code == (200 if signed else 403), answer.get_data(as_text=True)[:500]
    assert answer.is_json
    crashed = [r.getMessage() for r in caplog.records if r.exc_info]
    assert crashed == []  # no part was let through by the webhook's fault isolation
    shown = newest_conversation(papo)  # what was stored reads back, in the API and the inbox
    if shown is not None:
        assert papo.extensions["papo"]["service"].get_conversation(shown)["messages"]
        page = papo.agent.get(f"/inbox/{shown}")
        assert page.status_code == 200, page.get_data(as_text=True)[:500]


def test_after_the_fuzzing_shapes_an_ordinary_message_is_still_answered(papo):
    doc = copy.deepcopy(BODIES[0])
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "a\x00b\ud800c"
    raw = json.dumps(doc).encode()
    answer = papo.test_client().post(WEBHOOK, data=raw, content_type="application/json",
                                     headers={"X-Hub-Signature-256": sign(raw)})
    assert answer.status_code == 200
    service = papo.extensions["papo"]["service"]
    conversation = service.get_conversation(1)
    assert conversation["messages"][0]["text"] == "ab\ufffdc"  # NUL removed, surrogate replaced
    assert len([m for m in conversation["messages"] if m["author"] == "bot"]) == 2


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(doc=st.one_of(broken_bodies(), JSON))
def test_reading_any_json_gives_storable_parts_and_never_raises(doc):
    from engine.whatsapp import InboundMessage, parse_delivery

    delivery = parse_delivery(doc, "106540352242922")

    for item in delivery.inbound:
        assert item.wa_id is None or item.wa_id.isdigit()
        assert item.wa_id or item.user_id  # every part has a sender
        assert 0 < len(item.message_id) <= 200
        if isinstance(item, InboundMessage):
            assert item.text.strip()
        # What is stored is plain JSON: no NaN, no NUL, no lone surrogate (PostgreSQL refuses them).
        stored = json.dumps(item.details, allow_nan=False, ensure_ascii=False)
        assert "\x00" not in stored and "\x00" not in (item.text or "")
        for text in (stored, item.text or "", item.name, item.message_id, item.user_id or ""):
            text.encode("utf-8")
    for status in delivery.statuses:
        assert status.wamid and status.status
