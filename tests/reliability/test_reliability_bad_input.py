"""Bad input: generated flow documents and webhook bodies never cause a 500.

Hypothesis builds flow documents that are mostly plausible (real block kinds, real data
keys, templates with Jinja syntax, edges between real and unknown blocks) and then breaks
them in every way it likes, plus raw bodies that are not flows at all. Each one goes to
``POST /api/v1/flows`` and to ``schemas.load_document`` + lint (what ``papo validate``
runs): the answer is a 201 with findings or a clear 4xx, never a 500, and after a 4xx the
flow tables are exactly as before (no half-stored document). Webhook bodies go to
``/channels/whatsapp/webhook`` signed and unsigned: never a 500; unsigned stores nothing.

``PAPO_HYPOTHESIS_EXAMPLES`` sets the number of examples per test (default 200; the long
mode in docs/RELIABILITY.md uses 10,000).
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from blocks import REGISTRY
from engine.flows import FlowRepository
from engine.lint import lint
from engine.store import (
    contacts,
    conversations,
    flow_revisions,
    flow_versions,
    flows,
    messages,
    processed_messages,
)
from schemas import FlowDocumentError, load_document

EXAMPLES = int(os.environ.get("PAPO_HYPOTHESIS_EXAMPLES") or 200)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "sample_flows").glob("*.json"))]
APP_SECRET = "bad-input-secret"
PHONE_ID = "106540352242922"
CLEAR_4XX = {400, 409, 413, 415, 422}


def _data_keys(kind: str) -> list[str]:
    schema = json.loads((ROOT / "blocks" / kind / "schema.json").read_text(encoding="utf-8"))
    return sorted(schema.get("properties", {}))


DATA_KEYS = {kind: _data_keys(kind) for kind in REGISTRY}

# ---------------------------------------------------------------------- strategies
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        "", " ", "{{", "}}", "{{ contact.name }}", "{{ x.__class__.__mro__ }}", "{% for i in range(10**9) %}x{% endfor %}",
        "{{ 'a' * 10**9 }}", "{% raw %}", "{{ lipsum.__globals__ }}", "\x00", "\ud800",
        "<script>alert(1)</script>", "(a+)+$", "[", "\\", "null", "1e999", "-0", "💥" * 10,
    ]),
    st.integers(4000, 5000).map(lambda n: "é" * n),  # over WhatsApp's 4,096 characters
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                    st.floats(allow_nan=False, allow_infinity=False), nasty_text)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)
block_ids = st.one_of(st.sampled_from(["b1", "b2", "b3", "start", "x"]),
                      st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True), st.text(max_size=70))
ports = st.one_of(st.sampled_from(["next", "answered", "invalid", "timeout", "ok", "error", "else",
                                   "o1", "o2"]), st.text(max_size=10))
kinds = st.one_of(st.sampled_from(sorted(REGISTRY)), st.sampled_from(["", "bogus", "Message", "trigger"]))


@st.composite
def block_data(draw, kind: str):
    keys = DATA_KEYS.get(kind) or ["text"]
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
    data = {}
    for key in chosen:
        data[key] = draw(st.one_of(nasty_text, json_values, st.integers(-5, 400),
                                   st.lists(st.fixed_dictionaries({"id": block_ids, "label": nasty_text}),
                                            max_size=4)))
    if draw(st.booleans()):
        data.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return data


@st.composite
def blocks(draw):
    kind = draw(kinds)
    block = {"id": draw(block_ids), "type": kind,
             "position": draw(st.one_of(st.fixed_dictionaries({"x": st.integers(-10**6, 10**6),
                                                               "y": st.floats(allow_nan=False)}),
                                        json_values)),
             "data": draw(block_data(kind))}
    if draw(st.integers(0, 9)) == 0:
        block.pop(draw(st.sampled_from(sorted(block))))
    return block


@st.composite
def flow_documents(draw):
    blist = draw(st.lists(blocks(), max_size=8))
    known = [b.get("id") for b in blist if isinstance(b.get("id"), str)] or ["b1"]
    ids = st.one_of(st.sampled_from(known), block_ids)
    doc = {
        "schema_version": draw(st.one_of(st.just(1), st.integers(-3, 5), json_values)),
        "id": draw(st.one_of(st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True), st.text(max_size=70))),
        "name": draw(nasty_text),
        "triggers": draw(st.lists(st.one_of(
            st.fixed_dictionaries({"type": st.just("keyword"),
                                   "match": st.sampled_from(["exact", "contains", "regex", "fuzzy"]),
                                   "value": nasty_text}),
            st.just({"type": "default"}), json_values), max_size=3)),
        "start": draw(ids),
        "blocks": blist,
        "edges": draw(st.lists(st.fixed_dictionaries({"from": ids, "port": ports, "to": ids}), max_size=10)),
    }
    for _ in range(draw(st.integers(0, 2))):  # break the envelope now and then
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        key = draw(st.sampled_from(sorted(doc) + ["priority", "description", "revision", "x_at", "bogus"]))
        if action == "drop":
            doc.pop(key, None)
        else:
            doc[key] = draw(json_values)
    return doc


@st.composite
def mutated_samples(draw):
    """A real sample flow with one or two small changes (mostly still valid)."""
    doc = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    doc["id"] = draw(st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True))
    for _ in range(draw(st.integers(1, 2))):
        what = draw(st.sampled_from(["text", "edge", "block", "data", "dup"]))
        if what == "text" and doc["blocks"]:
            target = draw(st.sampled_from(doc["blocks"]))
            target["data"]["text"] = draw(nasty_text)
        elif what == "edge":
            doc["edges"].append({"from": draw(block_ids), "port": draw(ports), "to": draw(block_ids)})
        elif what == "block" and doc["blocks"]:
            doc["blocks"].pop(draw(st.integers(0, len(doc["blocks"]) - 1)))
        elif what == "data" and doc["blocks"]:
            target = draw(st.sampled_from(doc["blocks"]))
            target["data"][draw(st.text(max_size=8))] = draw(json_values)
        elif what == "dup" and doc["blocks"]:
            doc["blocks"].append(copy.deepcopy(doc["blocks"][0]))
    return doc


def deep(n: int) -> str:
    return "[" * n + "]" * n


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(30, 5000).map(lambda n: deep(n).encode()),
    st.just(b'{"schema_version": 1, "id": "a", "blocks": [' + b'{"a": 1},' * 10 + b'{}]}'),
    st.just(b"\xef\xbb\xbf{}"),
    st.just(b'{"id": NaN}'),
)
any_flow = st.one_of(flow_documents(), mutated_samples(),
                     flow_documents().map(lambda d: json.dumps(d).encode()),
                     raw_bodies)


# ---------------------------------------------------------------------- helpers
def flow_tables(engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar()
                     for t in (flows, flow_revisions, flow_versions))


def encoded(body) -> bytes:
    if isinstance(body, bytes):
        return body
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------- flows
@SETTINGS
@given(body=any_flow)
def test_generated_flow_documents_get_201_or_a_clear_4xx_and_never_half_stored(api, app, body):
    engine = app.extensions["papo"]["engine"]
    before = flow_tables(engine)
    answer = api.post("/api/v1/flows", data=encoded(body), headers={"Content-Type": "application/json"})
    assert answer.status_code < 500, answer.get_data(as_text=True)[:500]
    payload = answer.get_json()
    assert isinstance(payload, dict), answer.get_data(as_text=True)[:200]
    if answer.status_code == 201:
        assert isinstance(payload["findings"], list)
        for finding in payload["findings"]:
            assert finding["level"] in ("error", "warning") and finding["code"] and finding["message"]
        after = flow_tables(engine)
        assert after[0] == before[0] + 1 and after[1] == before[1] + 1 and after[2] == before[2]
    else:
        assert answer.status_code in CLEAR_4XX, answer.status_code
        error = payload["error"]
        assert error["code"] and error["message"]
        assert isinstance(error.get("details", []), list)
        assert flow_tables(engine) == before, "a refused document must leave nothing behind"


@SETTINGS
@given(body=any_flow)
def test_generated_flow_documents_are_validated_or_refused_with_problems(body):
    raw = encoded(body)
    try:
        doc = load_document(raw)
    except FlowDocumentError as exc:
        assert exc.status in (413, 422)
        assert exc.problems and all(p.get("message") for p in exc.problems)
        return
    findings = lint(doc)
    assert isinstance(findings, list)
    for finding in findings:
        assert finding["level"] in ("error", "warning") and finding["code"] and finding["message"]


def test_a_flow_the_api_stored_can_be_read_back_and_published_or_refused(api, app):
    """The stored half of the property above: what was accepted exports and publishes cleanly."""
    doc = copy.deepcopy(SAMPLES[0])
    doc["id"] = "roundtrip"
    assert api.post("/api/v1/flows", json=doc).status_code == 201
    assert api.get("/api/v1/flows/roundtrip").get_json()["id"] == "roundtrip"
    assert api.post("/api/v1/flows/roundtrip/publish", json={}).status_code in (200, 422)
    assert FlowRepository(app.extensions["papo"]["engine"]).list()


# ---------------------------------------------------------------------- WhatsApp webhook
@pytest.fixture
def wa_client(db_url, tmp_path):
    from editor import create_app
    from engine.db import create_schema

    app = create_app({"PAPO_DATABASE_URL": db_url, "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
                      "TESTING": True, "SECRET_KEY": "x", "PAPO_WHATSAPP_APP_SECRET": APP_SECRET,
                      "PAPO_WHATSAPP_PHONE_NUMBER_ID": PHONE_ID, "PAPO_WHATSAPP_VERIFY_TOKEN": "v"})
    engine = app.extensions["papo"]["engine"]
    create_schema(engine)
    repo = FlowRepository(engine)
    for doc in SAMPLES:
        repo.create(doc, actor="test")
        repo.publish(doc["id"], actor="test")
    yield app.test_client(), engine
    engine.dispose()


message_kinds = st.sampled_from(["text", "interactive", "button", "image", "audio", "reaction", "location",
                                 "unsupported", "system", "order", "", "bogus"])


@st.composite
def wa_messages(draw):
    kind = draw(message_kinds)
    message = {"from": draw(st.one_of(st.from_regex(r"\+?[0-9]{5,15}", fullmatch=True), nasty_text)),
               "id": draw(st.one_of(st.from_regex(r"wamid\.[A-Za-z0-9]{1,30}", fullmatch=True), nasty_text,
                                    st.integers())),
               "timestamp": draw(st.one_of(st.just("1800000000"), json_values)), "type": kind}
    if kind == "text":
        message["text"] = draw(st.one_of(st.fixed_dictionaries({"body": nasty_text}), json_values))
    elif kind == "interactive":
        sub = draw(st.sampled_from(["button_reply", "list_reply", "nfm_reply", "x"]))
        message["interactive"] = {"type": sub, sub: draw(st.one_of(
            st.fixed_dictionaries({"id": st.one_of(st.sampled_from(["b0", "b1", "b99"]), nasty_text),
                                   "title": nasty_text}), json_values))}
    elif kind == "button":
        message["button"] = draw(st.one_of(st.fixed_dictionaries({"text": nasty_text, "payload": nasty_text}),
                                           json_values))
    if draw(st.integers(0, 6)) == 0:
        message.pop(draw(st.sampled_from(sorted(message))))
    return message


@st.composite
def wa_payloads(draw):
    value = {"messaging_product": "whatsapp",
             "metadata": draw(st.one_of(st.just({"phone_number_id": PHONE_ID}), json_values)),
             "contacts": draw(st.one_of(st.lists(st.fixed_dictionaries(
                 {"profile": st.fixed_dictionaries({"name": nasty_text}), "wa_id": nasty_text}), max_size=2),
                 json_values)),
             "messages": draw(st.one_of(st.lists(wa_messages(), max_size=3), json_values)),
             "statuses": draw(st.one_of(st.just([]), st.lists(st.fixed_dictionaries(
                 {"id": nasty_text, "status": st.sampled_from(["sent", "delivered", "read", "failed", "x"]),
                  "recipient_id": nasty_text, "errors": json_values}), max_size=2), json_values))}
    for key in draw(st.lists(st.sampled_from(sorted(value)), max_size=2, unique=True)):
        value.pop(key)
    return {"object": draw(st.sampled_from(["whatsapp_business_account", "page", ""])),
            "entry": draw(st.one_of(
                st.just([{"id": "1", "changes": [{"field": "messages", "value": value}]}]),
                st.lists(st.fixed_dictionaries({"id": nasty_text, "changes": st.lists(
                    st.fixed_dictionaries({"field": st.sampled_from(["messages", "account_update"]),
                                           "value": st.just(value) | json_values}), max_size=2)}), max_size=2),
                json_values))}


webhook_bodies = st.one_of(wa_payloads().map(encoded), st.binary(max_size=200), raw_bodies,
                           json_values.map(lambda v: json.dumps(v).encode()),
                           st.sampled_from([b"\xef\xbb\xbf{}", b'{"id": NaN}', b"[" * 20 + b"]" * 20]))


def stored(engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar()
                     for t in (contacts, conversations, messages, processed_messages))


@SETTINGS
@given(raw=webhook_bodies, signature=st.sampled_from(["good", "none", "bad", "empty", "sha1"]))
def test_generated_webhook_bodies_never_cause_a_500_and_unsigned_ones_store_nothing(wa_client, raw, signature):
    client, engine = wa_client
    digest = hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    if signature == "good":
        headers["X-Hub-Signature-256"] = "sha256=" + digest
    elif signature == "bad":
        headers["X-Hub-Signature-256"] = "sha256=" + digest[::-1]
    elif signature == "empty":
        headers["X-Hub-Signature-256"] = ""
    elif signature == "sha1":
        headers["X-Hub-Signature-256"] = "sha1=" + hmac.new(APP_SECRET.encode(), raw, "sha1").hexdigest()
    before = stored(engine)
    answer = client.post("/channels/whatsapp/webhook", data=raw, headers=headers)
    assert answer.status_code < 500, answer.get_data(as_text=True)[:500]
    assert isinstance(answer.get_json(), dict)
    if signature != "good":
        assert answer.status_code == 403
        assert stored(engine) == before
    else:
        assert answer.status_code in (200, 400)
        if answer.status_code == 400:
            assert stored(engine) == before


def test_a_signed_deeply_nested_webhook_body_is_a_400_not_a_500(wa_client):
    client, engine = wa_client
    raw = b"[" * 5000 + b"]" * 5000
    digest = hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    before = stored(engine)
    answer = client.post("/channels/whatsapp/webhook", data=raw, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + digest})
    assert answer.status_code == 400
    assert stored(engine) == before
