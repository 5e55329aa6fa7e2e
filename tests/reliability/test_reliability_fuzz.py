"""Bad input on every route (issue 17, DESIGN §10.5): no 500, and nothing stored on a refusal.

Every rule of ``app.url_map``, with each method it takes, is called as a logged-in admin
(session and API token) with:

- query strings: every parameter the views read, set to NUL, a lone surrogate's
  escape, 10 KB of text, huge and negative numbers, floats, NaN, JSON-looking values;
- form posts: every form field the views read, set to the same values (CSRF checks off,
  so the values reach the views: CSRF itself is ``test_reliability_security``'s);
- JSON bodies: wrong types at the top level and in every field, NUL and ``\\ud800``
  escapes, huge and negative numbers, 10 KB strings; the WhatsApp webhook gets them
  signed with the app secret, as Meta would send them.

What must hold: no answer is a 5xx (with ``TESTING`` on, an exception would surface here
as itself), and after any 4xx the database is exactly as before (row counts of every
table plus the counters every write moves: conversation versions, flow revisions, session
generations). The counts go to ``PAPO_RELIABILITY_REPORT`` for docs/RELIABILITY.md.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

import pytest
from reliability_support import report
from sqlalchemy import func, select

from editor import create_app
from editor.app import ensure_schema
from engine.flows import FlowRepository
from engine.store import conversations, flow_revisions, metadata, users

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "senha-de-teste"
APP_SECRET = "fuzz-app-secret"
BIG = 2**63
# Values a person, a script or an attacker might put anywhere.
TEXTS = [
    "a\x00b",                      # NUL: refused (400/422), never stored
    "%ED%A0%80",                   # a lone surrogate, percent-encoded (kept literal)
    "x" * 10_240,                  # 10 KB
    str(BIG), "9" * 40, "-1", "-9223372036854775809", "0", "1.5", "1e308", "NaN",
    "9223372036854775808.0", "[]", "{}", "true", " ", "",
]
JSON_VALUES = [
    "a\x00b", "\ud800", "x" * 10_240, BIG, -BIG, 10**40, -1, 0, 1.5, 1e308, True, None,
    [], {}, ["a\x00"], {"\x00": 1}, [[[[["deep"]]]]],
]
QUERY_NAMES = ("q", "status", "assignee", "limit", "cursor", "since", "from", "to", "flow",
               "lang", "mine", "unassigned", "saved", "next", "text", "version", "name",
               "hub.mode", "hub.verify_token", "hub.challenge", "user", "id")
FORM_NAMES = ("text", "name", "id", "new_id", "login", "password", "role", "version", "user",
              "seen", "choice", "message_id", "since", "description", "priority", "_type",
              "_fields", "document", "expires_days", "note", "csrf_token", "next",
              "triggers.0.type", "triggers.0.value", "triggers.0.match")
JSON_KEYS = ("channel", "contact", "message", "text", "user", "version", "force", "id", "name",
             "external_id", "schema_version", "blocks", "edges", "start", "triggers")
SKIP = {"auth.logout"}  # ends the fuzzer's own session (checked in test_security_accounts)
ONLY = os.environ.get("PAPO_FUZZ_ONLY", "")  # an endpoint prefix, to rerun one area


def _snapshot(engine) -> tuple:
    """Row counts of every table plus the counters every write moves, in one statement."""
    parts = [select(func.count()).select_from(table).scalar_subquery().label(name)
             for name, table in sorted(metadata.tables.items())]
    parts += [
        select(func.coalesce(func.sum(conversations.c.version), 0)).scalar_subquery().label("v"),
        select(func.coalesce(func.max(flow_revisions.c.revision), 0)).scalar_subquery().label("r"),
        select(func.coalesce(func.sum(users.c.session_generation), 0)).scalar_subquery().label("g"),
    ]
    with engine.connect() as conn:
        return tuple(conn.execute(select(*parts)).one())


@pytest.fixture
def fuzz_app(db_url, tmp_path):
    app = create_app({
        "PAPO_DATABASE_URL": db_url, "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
        "TESTING": True, "SECRET_KEY": "fuzz-secret", "WTF_CSRF_ENABLED": False,
        "PAPO_WHATSAPP_APP_SECRET": APP_SECRET, "PAPO_WHATSAPP_VERIFY_TOKEN": "verify",
        "PAPO_WHATSAPP_PHONE_NUMBER_ID": "1234",
        # Every http_request a fuzzed flow could make stays on this machine, refused.
        "PAPO_HTTP_ALLOWED_HOSTS": "",
    })
    engine = app.extensions["papo"]["engine"]
    ensure_schema(engine)  # through the migrations, as `papo db upgrade` (so /readyz is 200)
    from functools import partial

    from werkzeug.security import generate_password_hash

    from engine import accounts

    original = accounts.generate_password_hash
    accounts.generate_password_hash = partial(generate_password_hash, method="pbkdf2:sha256:1")
    try:
        accounts.create_user(engine, "admin", "admin", password=PASSWORD)
        accounts.create_user(engine, "ana", "agent", password=PASSWORD)
        token = accounts.create_token(engine, "admin")
    finally:
        accounts.generate_password_hash = original
    repo = FlowRepository(engine)
    repo.create(json.loads((ROOT / "sample_flows" / "boas-vindas.json").read_text("utf-8")))
    repo.publish("boas-vindas")
    client = app.test_client()
    for n, text in enumerate(("oi", "atendente")):
        client.post("/api/v1/inbound", headers={"Authorization": f"Bearer {token}"}, json={
            "contact": {"external_id": "5511988887777", "name": "Ana"},
            "message": {"id": f"seed-{n}", "text": text}})
    with engine.connect() as conn:
        conversation_id = conn.execute(select(conversations.c.id)).scalar_one()
    app.config.update(FUZZ_TOKEN=token, FUZZ_CONVERSATION=conversation_id)
    yield app
    engine.dispose()


def _urls(app):
    """(endpoint, method, url) for every route, its arguments filled with things that exist."""
    known = {"flow_id": "boas-vindas", "filename": "papo.css", "login": "ana",
             "conversation_id": app.config["FUZZ_CONVERSATION"], "token_id": 1, "version": 1,
             "block_id": "saudacao", "action": "reopen", "message_id": 1}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint in SKIP or not rule.endpoint.startswith(ONLY):
            continue
        values = {}
        for name, converter in rule._converters.items():
            numeric = type(converter).__name__ in ("IntegerConverter", "NumberConverter")
            values[name] = known.get(name, 1 if numeric else "x")
        url = rule.build(values, append_unknown=False)[1]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, url


def _query_cases(method: str):
    if method != "GET":  # the body is what a POST is about; its query gets the worst ones
        yield from ({name: text for name in QUERY_NAMES} for text in TEXTS[:4])
        return
    for text in TEXTS:  # every parameter at once
        yield {name: text for name in QUERY_NAMES}
    for i, name in enumerate(QUERY_NAMES):  # one at a time, so none hides behind another
        yield {name: TEXTS[i % len(TEXTS)]}


def _form_cases():
    for text in TEXTS:
        yield {name: text for name in FORM_NAMES}
    for i, name in enumerate(FORM_NAMES):
        yield {name: TEXTS[(i + 3) % len(TEXTS)]}


def _json_cases():
    for value in JSON_VALUES:
        yield value  # the whole body of the wrong type
        yield {key: value for key in JSON_KEYS}
    for i, key in enumerate(JSON_KEYS):
        yield {key: JSON_VALUES[i % len(JSON_VALUES)],
               "contact": {"external_id": JSON_VALUES[(i + 1) % len(JSON_VALUES)],
                           "name": JSON_VALUES[(i + 2) % len(JSON_VALUES)]},
               "message": {"id": f"fuzz-{i}", "text": JSON_VALUES[(i + 3) % len(JSON_VALUES)]}}
    yield b'{"contact": {"external_id": "\\u0000"}, "message": {"id": "\\ud800", "text": "\\udfff"}}'
    yield b'{"text": "\\ud800\\u0000", "user": "\\udc00"}'
    yield b"\xff\xfe not utf-8"


def _webhook_bodies():
    for value in JSON_VALUES:
        yield {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "1", "phone_number_id": "1234"},
                "contacts": [{"profile": {"name": value}, "wa_id": value}],
                "messages": [{"from": value, "id": value, "timestamp": value, "type": "text",
                              "text": {"body": value}}],
                "statuses": [{"id": value, "status": value, "timestamp": value}]}}]}]}


def _encode(body) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def test_no_route_answers_500_and_refusals_store_nothing(fuzz_app):
    app = fuzz_app
    engine = app.extensions["papo"]["engine"]
    bearer = {"Authorization": f"Bearer {app.config['FUZZ_TOKEN']}"}
    client = app.test_client()

    def log_in():
        answer = client.post("/login", data={"login": "admin", "password": PASSWORD})
        assert answer.status_code == 302

    log_in()
    # Also a web chat visitor with a conversation (its cookie is scoped to the chat's path).
    assert client.post("/c/boas-vindas/messages", data={"text": "oi"}).status_code in (200, 303)
    failures: list[str] = []
    stats = {"requests": 0, "refused": 0, "routes": set()}
    state = {"snapshot": _snapshot(engine)}

    def call(endpoint, method, url, **kwargs):
        stats["requests"] += 1
        stats["routes"].add((endpoint, method))
        headers = {**(bearer if url.startswith("/api/") else {}), **kwargs.pop("headers", {})}
        try:
            answer = client.open(url, method=method, headers=headers, **kwargs)
        except Exception as exc:  # TESTING propagates what would have been a 500
            failures.append(f"{method} {url} {kwargs}: {type(exc).__name__}: {exc}"[:400])
            state["snapshot"] = _snapshot(engine)
            return
        status = answer.status_code
        now = _snapshot(engine)
        if status >= 500:
            failures.append(f"{method} {url}: {status} {answer.get_data(as_text=True)[:200]}")
        elif status >= 400:
            stats["refused"] += 1
            if now != state["snapshot"]:
                failures.append(f"{method} {url} refused with {status} but changed the database")
        state["snapshot"] = now
        if client.get_cookie("session") is None or answer.status_code == 401 and \
                not url.startswith(("/api/", "/channels/", "/c/")):
            log_in()

    for endpoint, method, url in _urls(app):
        for query in _query_cases(method):
            call(endpoint, method, url, query_string=query)
        if method == "GET":
            continue
        for form in _form_cases():
            call(endpoint, method, url, data=form)
        if endpoint == "channels.whatsapp_receive":
            for body in _webhook_bodies():
                raw = _encode(body)
                signature = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
                call(endpoint, method, url, data=raw, headers={
                    "Content-Type": "application/json", "X-Hub-Signature-256": signature})
        for body in _json_cases():
            call(endpoint, method, url, data=_encode(body),
                 headers={"Content-Type": "application/json", "If-Match": '"1"'})

    report(f"fuzz every route ({engine.dialect.name}): {len(stats['routes'])} route/method "
           f"pairs, {stats['requests']} requests, {stats['refused']} refused (4xx), "
           f"{len(failures)} failures")
    assert ONLY or len(stats["routes"]) >= 60
    assert not failures, "\n".join(failures[:40])
