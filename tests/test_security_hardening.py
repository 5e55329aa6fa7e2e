"""Issue 17's findings, one regression test each (DESIGN §10.5), on SQLite and PostgreSQL.

1 agent tokens posting as web/WhatsApp customers · 2 template bombs · 3 NUL and lone
surrogates · 4 an overflowing web chat marker · 5 unknown Jinja filters · 6 the publish
form's version · 9 the web chat flood · 10 headers and the production server. (7 and 8,
accounts and sessions, are in ``test_security_accounts.py``.)
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from editor import create_app
from editor.cli import main as papo
from engine import accounts
from engine.flows import FlowRepository
from engine.store import contacts, conversations, flows, messages, metadata, run_log

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_flows" / "boas-vindas.json"
PASSWORD = "senha-de-teste"
APP_SECRET = "segredo-do-app"
BOMB = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"


def _engine(app):
    return app.extensions["papo"]["engine"]


def _counts(app) -> dict[str, int]:
    """Rows per table: what "nothing stored" is checked against."""
    with _engine(app).connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in metadata.tables.items()}


def _flow(flow_id: str, text: str, keyword: str | None = None) -> dict:
    triggers = [{"type": "keyword", "match": "exact", "value": keyword}] if keyword else \
        [{"type": "default"}]
    return {"schema_version": 1, "id": flow_id, "name": flow_id.title(), "triggers": triggers,
            "start": "m", "blocks": [{"id": "m", "type": "message", "position": {"x": 0, "y": 0},
                                      "data": {"text": text}}], "edges": []}


@pytest.fixture
def site(app, api_tokens):
    """The app with users (admin, ana, bruno), the sample flow published, and helpers."""
    repo = FlowRepository(_engine(app))
    repo.create(json.loads(SAMPLE.read_text(encoding="utf-8")))
    repo.publish("boas-vindas")
    app.config["PAPO_TOKENS"] = api_tokens
    return app


def _logged_in(app, login="admin"):
    client = app.test_client()
    assert client.post("/login", data={"login": login, "password": PASSWORD}).status_code == 302
    return client


def _bearer(app, login="admin") -> dict:
    return {"Authorization": f"Bearer {app.config['PAPO_TOKENS'][login]}"}


# ---------------------------------------------------------------------- 1. inbound channel

@pytest.mark.parametrize("channel", ["web", "whatsapp", "WEB", ""])
def test_the_inbound_api_refuses_any_channel_but_api_and_stores_nothing(site, channel):
    before = _counts(site)
    body = {"channel": channel, "contact": {"external_id": "5511999990000"},
            "message": {"id": "m1", "text": "5"}}
    for login in ("ana", "admin"):
        answer = site.test_client().post("/api/v1/inbound", json=body, headers=_bearer(site, login))
        assert answer.status_code == 422
        error = answer.get_json()["error"]
        assert error["details"][0]["path"] == "$.channel" and "api" in error["details"][0]["message"]
    assert _counts(site) == before


def test_the_inbound_api_still_takes_channel_api_and_its_default(site):
    client = site.test_client()
    for n, body in enumerate(({"channel": "api"}, {})):
        body.update({"contact": {"external_id": f"c{n}"}, "message": {"id": f"m{n}", "text": "oi"}})
        answer = client.post("/api/v1/inbound", json=body, headers=_bearer(site, "ana"))
        assert answer.status_code == 200 and answer.get_json()["replies"]


def test_the_openapi_document_says_only_api(site):
    spec = site.test_client().get("/api/v1/openapi.json").get_json()
    assert spec["components"]["schemas"]["Inbound"]["properties"]["channel"]["enum"] == ["api"]


# ---------------------------------------------------------------------- 2. templates

def test_a_template_bomb_is_cut_by_the_budget_and_the_text_before_it_is_sent(site):
    repo = FlowRepository(_engine(site))
    repo.create(_flow("bomba", "Antes {{ contact.name }}. " + BOMB + " depois", "bomba"))
    repo.publish("bomba")
    client = site.test_client()
    answer = client.post("/api/v1/inbound", headers=_bearer(site), json={
        "contact": {"external_id": "x1", "name": "Ana"}, "message": {"id": "1", "text": "bomba"}})
    assert answer.status_code == 200
    assert [r["text"] for r in answer.get_json()["replies"]] == ["Antes Ana. "]
    with _engine(site).connect() as conn:
        logged = conn.execute(select(run_log.c.message).where(run_log.c.level == "error")).scalars().all()
    assert any("100 ms" in line for line in logged)
    # The same customer goes on being answered.
    again = client.post("/api/v1/inbound", headers=_bearer(site), json={
        "contact": {"external_id": "x1"}, "message": {"id": "2", "text": "menu"}})
    assert again.status_code == 200 and again.get_json()["replies"]


@pytest.mark.parametrize("template", [
    "{{ 'x'|center(1000000000) }}", "{{ '%0100000000d'|format(1) }}",
    "{{ '%0100000000d' % 1 }}", "{{ '{:>999999999}'.format(1) }}", "{{ 'ab'|indent(100000000) }}",
    "{{ range(10000)|join('x' * 4000) }}", "{{ 'x' * 5000 }}", "{% for i in range(10001) %}{% endfor %}",
])
def test_string_building_past_the_cap_stops_the_render(site, template):
    repo = FlowRepository(_engine(site))
    repo.create(_flow("grande", "Oi! " + template, "grande"))
    repo.publish("grande")
    answer = site.test_client().post("/api/v1/inbound", headers=_bearer(site), json={
        "contact": {"external_id": "g1"}, "message": {"id": "1", "text": "grande"}})
    assert answer.status_code == 200
    assert [r["text"] for r in answer.get_json()["replies"]] == ["Oi! "]


def test_another_customer_is_answered_while_a_template_bomb_renders(site, monkeypatch):
    """No template is rendered while a write lock is held (§10.5): while customer A's
    template bomb renders, customer B's message goes all the way through, before A's
    render ends. Ordering, not timing: A's render waits (up to 20 s) for B's answer."""
    import engine.core as core

    repo = FlowRepository(_engine(site))
    repo.create(_flow("bomba", "A: " + BOMB, "bomba"))
    repo.publish("bomba")
    events: list[str] = []
    rendering, b_answered = threading.Event(), threading.Event()
    real_render = core.render_template

    def render(source, variables, contact, **kwargs):
        if "range(10000)" in source:
            rendering.set()
            b_answered.wait(20)
            result = real_render(source, variables, contact, **kwargs)
            events.append("A's render ended")
            return result
        return real_render(source, variables, contact, **kwargs)

    monkeypatch.setattr(core, "render_template", render)

    def customer_a():
        site.test_client().post("/api/v1/inbound", headers=_bearer(site), json={
            "contact": {"external_id": "a"}, "message": {"id": "a1", "text": "bomba"}})

    thread = threading.Thread(target=customer_a)
    thread.start()
    assert rendering.wait(20)
    answer = site.test_client().post("/api/v1/inbound", headers=_bearer(site), json={
        "contact": {"external_id": "b", "name": "Bia"}, "message": {"id": "b1", "text": "oi"}})
    events.append("B answered")
    b_answered.set()
    thread.join(60)
    assert answer.status_code == 200 and answer.get_json()["replies"]
    assert events == ["B answered", "A's render ended"]


# ---------------------------------------------------------------------- 3. NUL and surrogates

def test_nul_in_the_web_chat_is_refused_in_the_chat_and_stores_nothing(site):
    client = site.test_client()
    page = client.get("/c/boas-vindas").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', page)
    before = _counts(site)
    for data in ({"text": "a\x00b"}, {"text": "oi", "name": "N\x00"}):
        if csrf:
            data["csrf_token"] = csrf.group(1)
        answer = client.post("/c/boas-vindas/messages", data=data, headers={"HX-Request": "true"})
        assert answer.status_code == 422  # the notice is swapped into the chat
        assert answer.headers["HX-Retarget"] == "#chat-notice"
        assert "NUL" in answer.get_data(as_text=True)
    english = client.post("/c/boas-vindas/messages?lang=en", data={"text": "a\x00b"})
    assert english.status_code == 422 and "not allowed" in english.get_data(as_text=True)
    assert 'name="text"' in english.get_data(as_text=True)  # the chat page, not an error page
    assert client.get("/c/boas-vindas?name=%00").status_code == 400
    assert _counts(site) == before


@pytest.mark.parametrize("path", ["/inbox?q=%00", "/inbox?assignee=%00", "/reports?from=%00",
                                  "/flows?x=%00", "/api/v1/conversations?q=%00"])
def test_nul_in_a_query_string_is_a_400_not_a_500(site, path):
    client = _logged_in(site)
    answer = client.get(path, headers=_bearer(site) if path.startswith("/api/") else {})
    assert answer.status_code == 400


def test_nul_in_a_path_is_a_404(site):
    client = _logged_in(site)
    assert client.get("/flows/a%00b/edit").status_code == 404
    assert client.get("/c/boas%00vindas").status_code == 404


def test_nul_in_flow_create_rename_and_inbox_reply_is_refused(site):
    client = _logged_in(site)
    before = _counts(site)
    assert client.post("/flows", data={"id": "novo", "name": "N\x00"}).status_code == 400
    assert client.post("/flows/boas-vindas/rename", data={"name": "X\x00"}).status_code == 400
    assert _counts(site) == before

    client.post("/api/v1/inbound", headers=_bearer(site), json={
        "contact": {"external_id": "r1"}, "message": {"id": "1", "text": "atendente"}})
    with _engine(site).connect() as conn:
        conversation_id = conn.execute(select(conversations.c.id)).scalar_one()
    before = _counts(site)
    answer = client.post(f"/inbox/{conversation_id}/messages", data={"text": "ok\x00"})
    assert answer.status_code == 400
    assert _counts(site) == before


def test_lone_surrogates_in_api_bodies_become_the_replacement_character(site):
    answer = site.test_client().post(
        "/api/v1/inbound", headers={**_bearer(site), "Content-Type": "application/json"},
        data=b'{"contact": {"external_id": "s1", "name": "Z\\udc00"}, '
             b'"message": {"id": "1", "text": "oi \\ud800"}}')
    assert answer.status_code == 200
    with _engine(site).connect() as conn:
        stored = conn.execute(select(messages.c.text).where(messages.c.direction == "in")).scalar_one()
        name = conn.execute(select(contacts.c.name)).scalar_one()
    assert stored == "oi \ufffd" and name == "Z\ufffd"


def test_nul_in_api_bodies_is_a_422_naming_the_field(site):
    before = _counts(site)
    answer = site.test_client().post("/api/v1/inbound", headers=_bearer(site), json={
        "contact": {"external_id": "n1"}, "message": {"id": "1", "text": "a\x00b"}})
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"][0]["path"] == "$.message.text"
    assert _counts(site) == before


def _signed(app_secret: str, payload: dict) -> tuple[bytes, dict]:
    raw = json.dumps(payload).encode()  # ASCII: "\ud800" and "\u0000" stay escaped
    signature = "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}


def test_a_signed_webhook_with_nul_and_a_lone_surrogate_is_stored_cleaned(db_url, tmp_path):
    app = create_app({"PAPO_DATABASE_URL": db_url, "PAPO_INSTANCE_PATH": str(tmp_path / "w"),
                      "TESTING": True, "SECRET_KEY": "s", "PAPO_WHATSAPP_APP_SECRET": APP_SECRET,
                      "PAPO_WHATSAPP_PHONE_NUMBER_ID": "1234"})
    from engine.db import create_schema

    create_schema(_engine(app))
    repo = FlowRepository(_engine(app))
    repo.create(json.loads(SAMPLE.read_text(encoding="utf-8")))
    repo.publish("boas-vindas")
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "1", "phone_number_id": "1234"},
            "contacts": [{"profile": {"name": "Jo\x00\udc80"}, "wa_id": "5511988887777"}],
            "messages": [{"from": "5511988887777", "id": "wamid.1", "timestamp": "1800000000",
                          "type": "text", "text": {"body": "o\x00i \ud800"}}]}}]}]}
    raw, headers = _signed(APP_SECRET, payload)
    answer = app.test_client().post("/channels/whatsapp/webhook", data=raw, headers=headers)
    assert answer.status_code == 200
    with _engine(app).connect() as conn:
        stored = conn.execute(select(messages.c.text).where(messages.c.direction == "in")).scalar_one()
        name = conn.execute(select(contacts.c.name)).scalar_one()
    assert stored == "oi \ufffd" and name == "Jo\ufffd"


# ---------------------------------------------------------------------- 4. numbers in queries

@pytest.mark.parametrize("since", ["9223372036854775808.0", "1.99999999999999999999", "-1.0",
                                   "1e3.0", "abc"])
def test_an_out_of_range_web_chat_marker_is_a_400_for_anyone(site, since):
    answer = site.test_client().get(f"/c/boas-vindas/messages?since={since}")
    assert answer.status_code == 400


@pytest.mark.parametrize("limit", ["99999999999999999999999", "-5", "1.5", "0x10"])
def test_a_malformed_inbox_limit_is_a_400(site, limit):
    assert _logged_in(site).get(f"/inbox?limit={limit}").status_code == 400


# ---------------------------------------------------------------------- 5. unknown filters

UNKNOWN = "Oi {{ contact.name|upperr }}"


def _bad_template(findings) -> list:
    return [f for f in findings if f["code"] == "bad_template"]


def test_an_unknown_filter_is_a_finding_on_api_create_and_put(site):
    client = site.test_client()
    created = client.post("/api/v1/flows", headers=_bearer(site), json=_flow("filtro", UNKNOWN))
    assert created.status_code == 201
    found = _bad_template(created.get_json()["findings"])
    assert found and "upperr" in found[0]["message"]
    test_doc = _flow("filtro", "{% if contact.name is fooo %}x{% endif %}")
    put = client.put("/api/v1/flows/filtro", headers={**_bearer(site), "If-Match": '"1"'},
                     json=test_doc)
    assert put.status_code == 200 and "fooo" in _bad_template(put.get_json()["findings"])[0]["message"]
    published = client.post("/api/v1/flows/filtro/publish", headers=_bearer(site))
    assert published.status_code == 422


def test_an_unknown_filter_is_a_finding_on_import_and_the_editors_draft(site):
    client = _logged_in(site)
    imported = client.post("/flows/import", data={"document": json.dumps(_flow("imp", UNKNOWN))},
                           headers={"HX-Request": "true"})
    assert imported.status_code < 500
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
    doc["blocks"][0]["data"]["text"] = UNKNOWN
    draft = client.put("/flows/boas-vindas/draft", data=json.dumps(doc),
                       headers={"If-Match": '"1"', "Content-Type": "application/json"})
    assert draft.status_code == 200
    assert "upperr" in _bad_template(draft.get_json()["findings"])[0]["message"]


def test_papo_validate_names_the_unknown_filter(tmp_path):
    path = tmp_path / "filtro.json"
    path.write_text(json.dumps(_flow("filtro", UNKNOWN)), encoding="utf-8")
    result = CliRunner().invoke(papo, ["validate", str(path)])
    assert "internal_error" not in result.output
    assert "bad_template" in result.output and "upperr" in result.output


# ---------------------------------------------------------------------- 6. publish version

@pytest.mark.parametrize("version", ["99999999999999999999999", "-1", "0", "1.0", "abc"])
def test_the_publish_forms_version_is_range_checked(site, version):
    client = _logged_in(site)
    answer = client.post("/flows/boas-vindas/publish", data={"version": version},
                         headers={"HX-Request": "true"})
    assert answer.status_code == 400
    with _engine(site).connect() as conn:
        assert conn.execute(select(flows.c.published_version)).scalar_one() == 1


# ---------------------------------------------------------------------- 9. web chat flood

def _fresh_visitor_post(app, text="oi", address="198.51.100.7"):
    return app.test_client().post("/c/boas-vindas/messages", data={"text": text},
                                  environ_base={"REMOTE_ADDR": address},
                                  headers={"HX-Request": "true"})


def test_twenty_new_visitors_per_address_per_hour_then_the_customer_is_told_to_wait(site):
    answers = [_fresh_visitor_post(site) for _ in range(23)]
    assert [a.status_code for a in answers] == [200] * 20 + [429] * 3
    assert "Espere um pouco" in answers[-1].get_data(as_text=True)
    assert int(answers[-1].headers["Retry-After"]) > 60
    with _engine(site).connect() as conn:
        assert conn.execute(select(func.count()).select_from(contacts)).scalar_one() == 20
    assert _fresh_visitor_post(site, address="198.51.100.8").status_code == 200  # someone else


def test_conversations_opened_per_address_are_limited_but_open_ones_go_on(site):
    from editor.webchat import RateLimiter

    site.extensions["papo"]["webchat_newcomers"] = RateLimiter(
        {"new_visitor": (20, 3600.0), "opened": (2, 3600.0)})
    first, second = site.test_client(), site.test_client()
    for client in (first, second):
        answer = client.post("/c/boas-vindas/messages", data={"text": "atendente"},
                             headers={"HX-Request": "true"})
        assert answer.status_code == 200
    third = _fresh_visitor_post(site, "atendente", address="127.0.0.1")
    assert third.status_code == 429 and "Espere um pouco" in third.get_data(as_text=True)
    assert first.post("/c/boas-vindas/messages", data={"text": "ainda estou aqui"},
                      headers={"HX-Request": "true"}).status_code == 200
    with _engine(site).connect() as conn:
        opened = conn.execute(select(func.count()).select_from(conversations)
                              .where(conversations.c.status == "open")).scalar_one()
    assert opened == 2


# ---------------------------------------------------------------------- 10. headers, server

def _html_pages(app) -> list[str]:
    with _engine(app).connect() as conn:
        conversation_id = conn.execute(select(conversations.c.id)).scalar()
    pages = ["/login", "/inbox", "/reports", "/flows", "/flows/boas-vindas/edit",
             "/flows/boas-vindas/simulator", "/flows/boas-vindas/versions", "/team",
             "/c/boas-vindas", "/c/nada", "/flows/nada/edit", "/nada"]
    if conversation_id:
        pages.append(f"/inbox/{conversation_id}")
    return pages


def test_every_html_page_carries_the_security_headers(site):
    site.test_client().post("/api/v1/inbound", headers=_bearer(site), json={
        "contact": {"external_id": "h1"}, "message": {"id": "1", "text": "oi"}})
    client = _logged_in(site)
    checked = 0
    for path in _html_pages(site) + [rule.rule for rule in site.url_map.iter_rules()
                                     if "GET" in rule.methods and "<" not in rule.rule]:
        answer = client.get(path)
        if answer.mimetype != "text/html":
            continue
        checked += 1
        csp = answer.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert "frame-ancestors 'none'" in csp and "style-src 'self'" in csp, path
        assert answer.headers["X-Frame-Options"] == "DENY", path
        assert answer.headers["X-Content-Type-Options"] == "nosniff", path
        assert answer.headers["Referrer-Policy"] == "same-origin", path
        if path.startswith(("/inbox", "/reports", "/c/")):
            assert answer.headers["Cache-Control"] == "no-store", path
        body = answer.get_data(as_text=True)
        inline = [s for s in re.findall(r"<script\b([^>]*)>", body) if "src=" not in s
                  and 'type="application/json"' not in s]
        assert not inline, (path, inline)
        assert not re.search(r"\son[a-z]+\s*=", body), path
        assert not re.search(r"\sstyle\s*=", body), path
    assert checked >= 12


def test_customer_data_fragments_are_not_cached_either(site):
    client = _logged_in(site)
    for path in ("/inbox", "/reports"):
        answer = client.get(path, headers={"HX-Request": "true"})
        assert answer.headers["Cache-Control"] == "no-store"


def test_papo_serve_runs_gunicorn_and_never_werkzeug(tmp_path):
    env = {**os.environ, "PAPO_INSTANCE_PATH": str(tmp_path), "PAPO_DATABASE_URL": ""}
    env.pop("PAPO_DATABASE_URL")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("papo")), "serve", "--port", "0", "--workers", "1",
         "--threads", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    try:
        url, seen = None, []
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"running at (http://\S+/)", line)
            url = found.group(1) if found else None
        assert url, "".join(seen)
        import urllib.request

        with urllib.request.urlopen(url + "login", timeout=30) as answer:
            assert answer.status == 200
            assert "werkzeug" not in (answer.headers.get("Server") or "").lower()
            assert answer.headers["X-Frame-Options"] == "DENY"
        assert "gunicorn" in "".join(seen).lower()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_short_passwords_are_refused_with_a_clear_message(site):
    with pytest.raises(accounts.Invalid) as refused:
        accounts.create_user(_engine(site), "zeca", "agent", password="a")
    assert "pelo menos 10 caracteres" in refused.value.message
    with pytest.raises(accounts.Invalid) as english:
        accounts.set_password(_engine(site), "ana", "123456789", lang="en")
    assert "at least 10 characters" in english.value.message
