"""Security: who may reach what, CSRF, XSS, SSTI, SSRF and the WhatsApp signature.

- Every route in ``app.url_map`` needs a login or a token, except the public ones listed
  in PUBLIC (each with the reason it is public).
- Agents get 403 on admin routes (flow editor and simulator pages, flow-changing API).
- A form POST without the CSRF token is refused (400) and changes nothing.
- XSS payloads in contact names, messages and block texts never run in the inbox, the
  simulator and the editor (Chromium: no dialog, no injected element, payload shown as text).
- SSTI payloads in templates are inert; a customer's text is never rendered as a template.
- ``http_request`` to 127.0.0.1, 10.0.0.1, 169.254.169.254 and [::1] takes the ``error``
  port unless allow-listed, and no connection is even attempted (a socket guard would
  fail the test before any packet left for a non-loopback address).
- A WhatsApp delivery with a bad or missing signature stores nothing.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from engine.flows import FlowRepository
from engine.service import Service
from engine.settings import Settings
from engine.store import contacts, conversations, flows, messages, processed_messages, run_log

# endpoint → why it is reachable without logging in
PUBLIC = {
    "auth.login": "the login form itself",
    "auth.logout": "logging out nobody does nothing",
    "index": "redirects to /login or /inbox",
    "static": "CSS, JavaScript and images",
    "api.openapi": "the OpenAPI document (DESIGN §6)",
    "channels.whatsapp_verify": "Meta's handshake; checks the verify token",
    "channels.whatsapp_receive": "authenticated by the X-Hub-Signature-256 HMAC",
    "ops.healthz": "liveness for load balancers and supervisors; says only 'ok'",
    "ops.readyz": "readiness for load balancers; says only whether the database is usable",
    "ops.metrics_view": "404 unless PAPO_METRICS_TOKEN is set, then that bearer token is required",
}
PUBLIC_BLUEPRINTS = {"webchat": "/c/<flow>: the customer's web chat (DESIGN §8)"}
ADMIN_BLUEPRINTS = ("flows", "simulator")
FLOW_CHANGING_API = ("api.create_flow", "api.update_flow", "api.delete_flow", "api.publish_flow")
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def routes(app):
    """(endpoint, method, url) for every route, with sample values for its arguments."""
    for rule in app.url_map.iter_rules():
        values = {}
        for name, converter in rule._converters.items():
            values[name] = 1 if type(converter).__name__ in ("IntegerConverter", "NumberConverter") else "x"
        if rule.endpoint == "static":
            values["filename"] = "papo.css"
        url = rule.build(values, append_unknown=False)[1]
        for method in sorted((rule.methods or set()) & set(METHODS)):
            yield rule.endpoint, method, url


def is_public(endpoint: str) -> bool:
    return endpoint in PUBLIC or endpoint.split(".")[0] in PUBLIC_BLUEPRINTS


def login(client, user: str, password: str = "senha-de-teste") -> None:
    answer = client.post("/login", data={"login": user, "password": password})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]


# ---------------------------------------------------------------------- who may reach what
def test_every_route_needs_a_login_or_a_token_except_the_public_ones(app, client):
    checked = []
    for endpoint, method, url in routes(app):
        if is_public(endpoint):
            continue
        answer = client.open(url, method=method, headers={"Accept": "text/html"})
        location = answer.headers.get("Location", "")
        refused = answer.status_code == 401 or (answer.status_code in (302, 303) and "/login" in location)
        assert refused, f"{method} {url} ({endpoint}) answered {answer.status_code} without a login"
        if endpoint.startswith("api."):
            assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "unauthorized"
        checked.append(endpoint)
    assert len(set(checked)) >= 40  # the inventory really covered the app
    # and the public ones really are public
    assert client.get("/login").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_the_public_list_names_only_routes_that_exist(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert set(PUBLIC) <= endpoints, set(PUBLIC) - endpoints


def test_agents_get_403_on_admin_pages_and_flow_changing_api(app, client, api):
    login(client, "ana")
    seen = 0
    for endpoint, method, url in routes(app):
        if endpoint.split(".")[0] in ADMIN_BLUEPRINTS:
            answer = client.open(url, method=method)
            assert answer.status_code == 403, f"agent {method} {url}: {answer.status_code}"
            seen += 1
    assert seen >= 15
    for endpoint, method, url in routes(app):
        if endpoint in FLOW_CHANGING_API:
            answer = api.call(method, url, user="ana", json={})
            assert answer.status_code == 403, f"agent token {method} {url}: {answer.status_code}"
            assert api.call(method, url, user="admin", json={}).status_code != 403
    assert api.get("/api/v1/flows", user="ana").status_code == 200  # agents may read flows


# ---------------------------------------------------------------------- CSRF
@pytest.fixture
def csrf_app(db_url, tmp_path, api_tokens, app):
    """The same database as ``app``, served by an app with CSRF checks on (the default)."""
    from editor import create_app

    protected = create_app({"PAPO_DATABASE_URL": db_url, "PAPO_INSTANCE_PATH": str(tmp_path / "csrf"),
                            "TESTING": True, "SECRET_KEY": "csrf-secret"})
    yield protected
    protected.extensions["papo"]["engine"].dispose()


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or \
        re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(csrf_app, app):
    client = csrf_app.test_client()
    refused = client.post("/login", data={"login": "admin", "password": "senha-de-teste"})
    assert refused.status_code == 400  # not even the login form without its token
    assert client.get("/inbox").status_code == 302  # so nobody is logged in
    token = csrf_token(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"login": "admin", "password": "senha-de-teste", "csrf_token": token}).status_code == 302

    service = Service(app.extensions["papo"]["engine"])
    conv = service.ensure_conversation("api", {"external_id": "csrf-1", "name": "Ana"})
    engine = app.extensions["papo"]["engine"]

    def state():
        with engine.connect() as conn:
            return (conn.execute(select(func.count()).select_from(flows)).scalar(),
                    conn.execute(select(func.count()).select_from(messages)).scalar(),
                    conn.execute(select(conversations.c.status, conversations.c.version)
                                 .where(conversations.c.id == conv)).one())

    before = state()
    for url, data in (("/flows", {"id": "sem-csrf", "name": "Sem CSRF"}),
                      (f"/inbox/{conv}/reopen", {}),
                      (f"/inbox/{conv}/messages", {"text": "sem token"}),
                      ("/flows/import", {"document": "{}"})):
        answer = client.post(url, data=data)
        assert answer.status_code == 400, f"{url} without CSRF: {answer.status_code}"
    # a logged-in browser session calling the JSON API needs the CSRF header too
    assert client.post("/api/v1/flows", json={"id": "x"}).status_code == 401
    assert state() == before


# ---------------------------------------------------------------------- XSS (Chromium)
XSS_NAME = "<img src=x onerror=\"alert('xss-name')\">"
XSS_MESSAGE = "<script>alert('xss-message')</script>"
XSS_BLOCK = "\"><svg onload=alert('xss-block')>"
XSS_FLOW_NAME = "<iframe src=javascript:alert('xss-flow')>"


def xss_flow() -> dict:
    return {
        "schema_version": 1, "id": "xss", "name": XSS_FLOW_NAME,
        "triggers": [{"type": "default"}], "start": "m1",
        "blocks": [
            {"id": "m1", "type": "message", "position": {"x": 40, "y": 40},
             "data": {"text": XSS_BLOCK + " {{ contact.name }}"}},
            {"id": "q1", "type": "question", "position": {"x": 320, "y": 40},
             "data": {"text": XSS_BLOCK, "input": "choice", "save_as": "x",
                      "options": [{"id": "o1", "label": XSS_MESSAGE[:60]}]}},
        ],
        "edges": [{"from": "m1", "port": "next", "to": "q1"}],
    }


def _inline_scripts(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")


def assert_inert(page, where: str, *texts: str) -> None:
    page.wait_for_timeout(400)  # let htmx swaps and pollers run
    assert page.dialogs == [], f"{where}: a script ran: {page.dialogs}"
    injected = page.locator("img[onerror], svg[onload], iframe[src^='javascript']").count()
    assert injected == 0, f"{where}: an injected element is in the DOM"
    code = _inline_scripts(page, "script:not([src]):not([type='application/json'])")
    assert not any("xss-" in s for s in code), f"{where}: payload inside an executable script"
    # Data islands (<script type="application/json">) may carry the payload, escaped so that
    # no "<" (hence no "</script>") appears in them raw.
    islands = _inline_scripts(page, "script[type='application/json']")
    assert not any("xss-" in s and "<" in s for s in islands), f"{where}: raw '<' in a JSON island"
    body = page.locator("body").inner_text()
    for text in texts:
        assert text in body, f"{where}: {text!r} not shown as text"


@pytest.mark.browser
def test_xss_payloads_are_shown_as_text_and_never_run(live_server, new_page):
    service = live_server.service()
    from editor.app import get_engine

    engine = get_engine(live_server.app)
    repo = FlowRepository(engine)
    repo.create(xss_flow(), actor="admin")
    repo.publish("xss", actor="admin")
    result = service.handle_inbound("api", {"external_id": "xss-1", "name": XSS_NAME},
                                    {"id": "xss-m1", "text": XSS_MESSAGE})
    conv = result["conversation_id"]
    service.agent_message(conv, "admin", XSS_MESSAGE)
    endpoints = {rule.endpoint for rule in live_server.app.url_map.iter_rules()}

    page = new_page()
    pages = [("/inbox?status=open", "inbox list", (XSS_NAME,)),
             (f"/inbox/{conv}", "conversation", (XSS_NAME, XSS_MESSAGE, XSS_BLOCK))]
    if "flows.index" in endpoints:
        pages.append(("/flows", "flow list", (XSS_FLOW_NAME,)))
    if "flows.edit" in endpoints:
        pages.append(("/flows/xss/edit", "editor", ()))
    if "flows.versions" in endpoints:
        pages.append(("/flows/xss/versions", "versions", ()))
    for path, where, texts in pages:
        page.goto(live_server.url + path)
        assert_inert(page, where, *texts)

    if "simulator.page" in endpoints:
        page.goto(live_server.url + "/flows/xss/simulator")
        box = page.get_by_role("textbox").first
        box.fill(XSS_MESSAGE)
        page.get_by_role("button", name="Enviar").first.click()
        page.wait_for_timeout(800)
        assert_inert(page, "simulator", XSS_MESSAGE, XSS_BLOCK)

    if any(e.startswith("webchat.") for e in endpoints):
        chat = new_page(login=None)
        chat.goto(live_server.url + "/c/xss?name=" + XSS_NAME.replace("#", ""))
        chat.get_by_role("textbox").first.fill(XSS_MESSAGE)
        chat.get_by_role("button", name="Enviar").first.click()
        chat.wait_for_timeout(800)
        assert_inert(chat, "web chat", XSS_MESSAGE)


# ---------------------------------------------------------------------- SSTI
SSTI = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ config }}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ request.application.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ contact.__class__.__init__.__globals__ }}",
    "{{ range.__self__ }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ (('a' * 1000) ~ 'b') * 100000 }}",
]
LEAKS = ("<class", "uid=", "__builtins__", "SECRET", "function", "module", "Popen", "os.")


@pytest.mark.parametrize("payload", SSTI)
def test_ssti_payloads_in_templates_are_inert(db, payload):
    doc = {"schema_version": 1, "id": "ssti", "name": "SSTI", "triggers": [{"type": "default"}],
           "start": "m1", "blocks": [
               {"id": "m1", "type": "message", "position": {"x": 0, "y": 0}, "data": {"text": "A" + payload}},
               {"id": "m2", "type": "message", "position": {"x": 0, "y": 0}, "data": {"text": "fim"}}],
           "edges": [{"from": "m1", "port": "next", "to": "m2"}]}
    repo = FlowRepository(db)
    repo.create(doc, actor="test")
    repo.publish("ssti", actor="test")
    began = time.monotonic()
    result = Service(db).handle_inbound("api", {"external_id": "s1", "name": "Ana"}, {"id": "1", "text": "oi"})
    assert time.monotonic() - began < 10
    texts = [r["text"] for r in result["replies"]]
    # Rendered harmlessly, or refused by the sandbox (the message is then empty and the run
    # log says why); either way the run goes on.
    assert texts[-1] == "fim" and (texts[0].startswith("A") or texts[0] == "")
    assert all(len(t) <= 4096 for t in texts)
    for leak in LEAKS:
        assert leak not in texts[0], f"{payload} rendered {texts[0][:200]!r}"


def test_customer_text_is_never_rendered_as_a_template(db):
    doc = {"schema_version": 1, "id": "eco", "name": "Eco", "triggers": [{"type": "default"}],
           "start": "q", "blocks": [
               {"id": "q", "type": "question", "position": {"x": 0, "y": 0},
                "data": {"text": "Diga algo", "input": "text", "save_as": "dito"}},
               {"id": "m", "type": "message", "position": {"x": 0, "y": 0},
                "data": {"text": "{{ contact.name }} disse: {{ dito }}"}}],
           "edges": [{"from": "q", "port": "answered", "to": "m"}]}
    repo = FlowRepository(db)
    repo.create(doc, actor="test")
    repo.publish("eco", actor="test")
    service = Service(db)
    name, said = "{{ 7*7 }}", "{{ config }}{% for i in range(3) %}x{% endfor %}"
    service.handle_inbound("api", {"external_id": "e1", "name": name}, {"id": "1", "text": "oi"})
    result = service.handle_inbound("api", {"external_id": "e1", "name": name}, {"id": "2", "text": said})
    assert [r["text"] for r in result["replies"]] == [f"{name} disse: {said}"]


# ---------------------------------------------------------------------- SSRF
class _Target(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        _Target.hits.append(self.path)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(family, host: str):
    server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family})
    server = server_class((host, 0), _Target)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def local_targets():
    _Target.hits = []
    servers = {"v4": _serve(socket.AF_INET, "127.0.0.1")}
    if _ipv6_loopback():
        servers["v6"] = _serve(socket.AF_INET6, "::1")
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


@pytest.fixture
def loopback_only(monkeypatch):
    """Fail loudly on any connection to a non-loopback address (nothing may leave the machine)."""
    attempts: list = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise AssertionError(f"connection attempted to {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def http_flow(url: str) -> dict:
    return {"schema_version": 1, "id": "ssrf", "name": "SSRF", "triggers": [{"type": "default"}],
            "start": "h", "blocks": [
                {"id": "h", "type": "http_request", "position": {"x": 0, "y": 0},
                 "data": {"method": "GET", "url": url, "save_as": "resposta", "timeout_s": 3}},
                {"id": "ok", "type": "message", "position": {"x": 0, "y": 0}, "data": {"text": "porta ok"}},
                {"id": "err", "type": "message", "position": {"x": 0, "y": 0}, "data": {"text": "porta error"}}],
            "edges": [{"from": "h", "port": "ok", "to": "ok"}, {"from": "h", "port": "error", "to": "err"}]}


def run_http_flow(db, url: str, allow: str = "") -> list[str]:
    repo = FlowRepository(db)
    repo.create(http_flow(url), actor="test")
    repo.publish("ssrf", actor="test")
    service = Service(db, Settings.from_env({"PAPO_HTTP_ALLOW_HOSTS": allow}))
    result = service.handle_inbound("api", {"external_id": "h1", "name": "Ana"}, {"id": "1", "text": "oi"})
    return [r["text"] for r in result["replies"]]


@pytest.mark.parametrize("target", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "localhost",
                                    "0.0.0.0", "[::ffff:127.0.0.1]", "2130706433"])
def test_http_request_to_internal_addresses_takes_the_error_port(db, local_targets, loopback_only, target):
    port = local_targets["v4"].server_address[1]
    url = f"http://{target}:{port}/latest/meta-data/"
    assert run_http_flow(db, url) == ["porta error"]
    assert _Target.hits == [] and loopback_only == []  # refused before any connection
    with db.connect() as conn:
        logged = conn.execute(select(run_log.c.message)).scalars().all()
    assert any("HTTP" in m for m in logged), logged


def test_http_request_to_an_allow_listed_loopback_target_takes_the_ok_port(db, local_targets, loopback_only):
    port = local_targets["v4"].server_address[1]
    texts = run_http_flow(db, f"http://127.0.0.1:{port}/status", allow=f"127.0.0.1:{port}")
    assert texts == ["porta ok"] and _Target.hits == ["/status"]


def test_http_request_to_allow_listed_ipv6_loopback_takes_the_ok_port(db, local_targets, loopback_only):
    if "v6" not in local_targets:
        pytest.skip("no IPv6 loopback on this machine")
    port = local_targets["v6"].server_address[1]
    texts = run_http_flow(db, f"http://[::1]:{port}/v6", allow=f"[::1]:{port},::1")
    assert texts == ["porta ok"] and _Target.hits == ["/v6"]


# ---------------------------------------------------------------------- WhatsApp signature
def test_a_whatsapp_delivery_with_a_bad_or_missing_signature_stores_nothing(db_url, tmp_path):
    from editor import create_app
    from engine.db import create_schema

    secret = "security-app-secret"
    app = create_app({"PAPO_DATABASE_URL": db_url, "PAPO_INSTANCE_PATH": str(tmp_path / "i"), "TESTING": True,
                      "SECRET_KEY": "x", "PAPO_WHATSAPP_APP_SECRET": secret,
                      "PAPO_WHATSAPP_PHONE_NUMBER_ID": "106540352242922"})
    engine = app.extensions["papo"]["engine"]
    create_schema(engine)
    raw = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5511999999999"}],
            "messages": [{"from": "5511999999999", "id": "wamid.SIG1", "timestamp": "1800000000",
                          "type": "text", "text": {"body": "oi"}}]}}]}]}).encode()
    good = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    wrong_key = "sha256=" + hmac.new(b"other", raw, hashlib.sha256).hexdigest()

    def stored():
        with engine.connect() as conn:
            return [conn.execute(select(func.count()).select_from(t)).scalar()
                    for t in (contacts, conversations, messages, processed_messages)]

    client = app.test_client()
    for signature in (None, "", "sha256=", wrong_key, good[:-2], "sha1=" + good[7:]):
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        answer = client.post("/channels/whatsapp/webhook", data=raw, headers=headers)
        assert answer.status_code == 403, signature
        assert stored() == [0, 0, 0, 0]
    assert client.post("/channels/whatsapp/webhook", data=raw, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": good}).status_code == 200
    assert stored() == [1, 1, 1, 1]
    engine.dispose()
