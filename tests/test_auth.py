"""Accounts, browser login (sessions, CSRF, throttling), API tokens, CLI and error pages."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import g
from sqlalchemy import inspect, select

from editor import create_app
from editor.app import render_page
from editor.auth import admin_required, current_user, login_required, require_role, token_required
from editor.cli import main as papo
from engine import accounts
from engine.db import create_schema, make_engine
from engine.errors import Conflict, Invalid
from engine.store import api_tokens, users

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def _seed_db(tmp_path_factory):
    """A database with the schema and two users, made once: hashing passwords is slow."""
    path = tmp_path_factory.mktemp("seed") / "papo.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    accounts.create_user(engine, "ana", "admin", password=PASSWORD, name="Ana Admin")
    accounts.create_user(engine, "bruno", "agent", password=PASSWORD, name="Bruno")
    engine.dispose()
    return path


def _make_app(tmp_path, seed, **config):
    shutil.copyfile(seed, tmp_path / "papo.db")
    base = {
        "PAPO_DATABASE_URL": f"sqlite:///{tmp_path / 'papo.db'}",
        "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
    }
    base.update(config)
    app = create_app(base)
    _add_test_routes(app)
    return app


def _add_test_routes(app):
    @app.get("/_test/page")
    @login_required
    def _page():
        return f"hello {current_user()['login']}"

    @app.get("/_test/admin")
    @admin_required
    def _admin_page():
        return "admin area"

    @app.get("/_test/escape")
    def _escape():
        return render_page("login.html", login_value="<script>alert(1)</script>",
                           error="<b>cliente</b>")

    @app.get("/api/_test/me")
    @token_required
    def _me():
        return {"login": g.user["login"], "role": g.user["role"]}

    @app.post("/api/_test/admin")
    @token_required
    @require_role("admin")
    def _api_admin():
        return {"ok": True}

    @app.get("/api/_test/boom")
    def _boom():
        raise RuntimeError("secret internals")

    @app.get("/api/_test/conflict")
    def _conflict():
        raise Conflict("Stale revision.", details=[{"path": "$", "message": "old"}])

    @app.post("/api/_test/echo")
    def _echo():
        from flask import request

        return {"size": len(request.get_data())}


@pytest.fixture
def _app(tmp_path, _seed_db):
    yield (app := _make_app(tmp_path, _seed_db))
    app.extensions["papo"]["engine"].dispose()


@pytest.fixture
def _client(_app):
    return _app.test_client()


def _engine(app):
    return app.extensions["papo"]["engine"]


def _csrf_from(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _login(client, login="ana", password=PASSWORD):
    return client.post("/login", data={"login": login, "password": password})


# ------------------------------------------------------------------ accounts


def test_password_is_stored_hashed_not_in_plain_text(_app):
    with _engine(_app).connect() as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.login == "ana")).scalar()
    assert PASSWORD not in stored
    assert stored.startswith(("scrypt:", "pbkdf2:"))
    assert accounts.authenticate(_engine(_app), "ana", PASSWORD)["login"] == "ana"
    assert accounts.authenticate(_engine(_app), "ana", "wrong") is None
    assert accounts.authenticate(_engine(_app), "nobody", PASSWORD) is None


def test_create_user_without_password_generates_a_working_one(_app):
    user, generated = accounts.create_user(_engine(_app), "carla", "agent")
    assert user["role"] == "agent" and len(generated) >= 16
    assert accounts.authenticate(_engine(_app), "carla", generated)["id"] == user["id"]
    assert accounts.user_exists(_engine(_app), "carla")
    assert [u["login"] for u in accounts.list_users(_engine(_app))] == ["ana", "bruno", "carla"]


@pytest.mark.parametrize("login", ["", "Ana", "-x", "a b", "x" * 65, "é"])
def test_bad_login_is_refused_with_a_friendly_message(_app, login):
    with pytest.raises(Invalid) as caught:
        accounts.create_user(_engine(_app), login, "agent", password="pw12345678")
    assert "Login inválido" in caught.value.message


def test_bad_role_and_taken_login_are_refused(_app):
    with pytest.raises(Invalid, match="Papel inválido"):
        accounts.create_user(_engine(_app), "dora", "boss", password="pw12345678")
    with pytest.raises(Conflict):
        accounts.create_user(_engine(_app), "ana", "agent", password="pw12345678")


def test_token_is_stored_as_sha256_and_identifies_its_user(_app):
    token = accounts.create_token(_engine(_app), "bruno")
    assert token.startswith("papo_")
    with _engine(_app).connect() as conn:
        stored = conn.execute(select(api_tokens.c.token_hash)).scalar()
    assert stored == accounts.hash_token(token) and token not in stored
    assert accounts.user_for_token(_engine(_app), token)["login"] == "bruno"
    assert accounts.user_for_token(_engine(_app), token + "x") is None
    assert accounts.user_for_token(_engine(_app), None) is None


def test_token_last_used_is_written_at_most_once_a_minute(_app, monkeypatch):
    engine = _engine(_app)
    token = accounts.create_token(engine, "bruno")

    def last_used():
        with engine.connect() as conn:
            return conn.execute(select(api_tokens.c.last_used_at)).scalar()

    accounts.user_for_token(engine, token)
    first = last_used()
    assert first is not None
    accounts.user_for_token(engine, token)
    assert last_used() == first  # not rewritten within the minute
    later = accounts._now() + accounts.TOKEN_TOUCH_INTERVAL
    monkeypatch.setattr(accounts, "_now", lambda: later)
    accounts.user_for_token(engine, token)
    assert last_used() > first


def test_a_token_deleted_by_another_process_stops_working_within_seconds(_app, monkeypatch):
    engine = _engine(_app)
    token = accounts.create_token(engine, "bruno")
    assert accounts.user_for_token(engine, token)["login"] == "bruno"
    with engine.begin() as conn:  # what `papo` in another process would do
        conn.execute(api_tokens.delete())
    clock = time.monotonic() + accounts.TOKEN_CACHE_SECONDS + 0.1
    monkeypatch.setattr(accounts.time, "monotonic", lambda: clock)
    assert accounts.user_for_token(engine, token) is None


def test_revoking_in_this_process_refuses_the_token_at_once(_app):
    engine = _engine(_app)
    token = accounts.create_token(engine, "bruno")
    assert accounts.user_for_token(engine, token)["login"] == "bruno"
    assert accounts.revoke_tokens(engine, "bruno") == 1
    assert accounts.user_for_token(engine, token) is None


# ------------------------------------------------------------------ browser login


def test_root_sends_visitors_to_login_and_people_to_the_inbox(_client):
    assert _client.get("/").headers["Location"] == "/login"
    _login(_client)
    assert _client.get("/").headers["Location"] == "/inbox"


def test_login_with_right_password_starts_a_session(_client):
    response = _login(_client)
    assert response.status_code == 302 and response.headers["Location"] == "/inbox"
    assert _client.get("/_test/page").get_data(as_text=True) == "hello ana"
    with _client.session_transaction() as session:
        assert session["role"] == "admin" and session.permanent


def test_login_is_case_and_space_tolerant_for_the_login(_client):
    assert _login(_client, login="  Ana ").status_code == 302


def test_failed_login_does_not_tell_whether_the_login_exists(_client):
    wrong_password = _login(_client, password="nope")
    unknown_login = _login(_client, login="ghost", password="nope")
    assert wrong_password.status_code == unknown_login.status_code == 401
    for response in (wrong_password, unknown_login):
        assert "Login ou senha incorretos." in response.get_data(as_text=True)
    assert _client.get("/_test/page").status_code == 302


def test_login_page_has_the_contract_fields(tmp_path, _seed_db):
    app = _make_app(tmp_path, _seed_db, WTF_CSRF_ENABLED=True)
    html = app.test_client().get("/login").get_data(as_text=True)
    for name in ("login", "password", "csrf_token"):
        assert f'name="{name}"' in html
    assert 'type="hidden" name="csrf_token"' in html
    assert '<meta name="csrf-token"' in html and "X-CSRFToken" in html


def test_form_post_without_csrf_token_is_refused(tmp_path, _seed_db):
    app = _make_app(tmp_path, _seed_db, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    refused = client.post("/login", data={"login": "ana", "password": PASSWORD})
    assert refused.status_code == 400
    assert "Sua sessão expirou, recarregue a página." in refused.get_data(as_text=True)
    token = _csrf_from(client.get("/login").get_data(as_text=True))
    accepted = client.post("/login", data={"login": "ana", "password": PASSWORD,
                                           "csrf_token": token})
    assert accepted.status_code == 302
    # Logging in starts a fresh session, so pages carry a new token; htmx sends it as
    # a header (hx-headers on <body>) instead of a form field.
    fresh = _csrf_from(client.get("/_test/escape").get_data(as_text=True))
    assert fresh != token
    assert client.post("/logout").status_code == 400
    assert client.post("/logout", headers={"X-CSRFToken": token}).status_code == 400
    assert client.post("/logout", headers={"X-CSRFToken": fresh}).status_code == 302


def test_api_paths_need_no_csrf_token(tmp_path, _seed_db):
    app = _make_app(tmp_path, _seed_db, WTF_CSRF_ENABLED=True)
    response = app.test_client().post("/api/_test/echo", data=b"{}")
    assert response.status_code == 200


def test_logout_ends_the_session_and_needs_post(_client):
    _login(_client)
    assert _client.get("/logout").status_code == 405
    assert _client.post("/logout").headers["Location"] == "/login"
    assert _client.get("/_test/page").status_code == 302


def test_login_required_sends_visitors_to_login_and_back(_client):
    response = _client.get("/_test/page?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/_test/page?x%3D1"
    back = _client.post("/login", data={"login": "ana", "password": PASSWORD,
                                        "next": "/_test/page?x=1"})
    assert back.headers["Location"] == "/_test/page?x=1"


def test_htmx_request_without_session_redirects_the_whole_page(_client):
    response = _client.get("/_test/page", headers={
        "HX-Request": "true", "HX-Current-URL": "http://localhost/inbox?status=open"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/inbox?status%3Dopen"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example"])
def test_login_never_redirects_off_site(_client, target):
    response = _client.post("/login", data={"login": "ana", "password": PASSWORD,
                                            "next": target})
    assert response.headers["Location"] == "/inbox"


def test_admin_pages_refuse_agents(_client):
    _login(_client, login="bruno")
    response = _client.get("/_test/admin")
    assert response.status_code == 403
    assert "só para administradores" in response.get_data(as_text=True)
    _client.post("/logout")
    _login(_client, login="ana")
    assert _client.get("/_test/admin").status_code == 200


def test_navigation_shows_flows_to_admins_only(_client):
    _login(_client, login="bruno")
    html = _client.get("/_test/escape").get_data(as_text=True)
    assert 'href="/inbox"' in html and 'href="/reports"' in html and 'href="/flows"' not in html
    assert "Bruno" in html and ">Sair<" in html
    _client.post("/logout")
    _login(_client, login="ana")
    assert 'href="/flows"' in _client.get("/_test/escape").get_data(as_text=True)


def test_repeated_failed_logins_are_slowed_down(_client):
    for _ in range(5):
        assert _login(_client, password="guess").status_code == 401
    blocked = _login(_client, password=PASSWORD)  # even the right password, for now
    assert blocked.status_code == 429
    assert "Muitas tentativas" in blocked.get_data(as_text=True)
    assert int(blocked.headers["Retry-After"]) > 0
    assert _login(_client, login="bruno").status_code == 302  # other logins unaffected


def test_deleted_user_loses_the_session(_app, _client):
    _login(_client, login="bruno")
    with _engine(_app).begin() as conn:
        conn.execute(users.delete().where(users.c.login == "bruno"))
    assert _client.get("/_test/page").status_code == 302


def test_customer_text_is_escaped(_client):
    html = _client.get("/_test/escape").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<b>cliente</b>" not in html


def test_htmx_request_gets_only_the_content_block(_client):
    full = _client.get("/_test/escape").get_data(as_text=True)
    fragment = _client.get("/_test/escape", headers={"HX-Request": "true"})
    assert "<html" in full and "<html" not in fragment.get_data(as_text=True)
    assert 'name="password"' in fragment.get_data(as_text=True)
    assert "HX-Request" in fragment.headers["Vary"]


# ------------------------------------------------------------------ API tokens


def test_api_without_token_is_401_json(_client):
    for headers in ({}, {"Authorization": "Bearer papo_wrong"}, {"Authorization": "Basic x"}):
        response = _client.get("/api/_test/me", headers=headers)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"
        assert response.json["error"]["message"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_api_with_token_knows_the_user_and_checks_the_role(_app, _client):
    agent = accounts.create_token(_engine(_app), "bruno")
    admin = accounts.create_token(_engine(_app), "ana")
    me = _client.get("/api/_test/me", headers={"Authorization": f"Bearer {agent}"})
    assert me.json == {"login": "bruno", "role": "agent"}
    refused = _client.post("/api/_test/admin", headers={"Authorization": f"Bearer {agent}"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    allowed = _client.post("/api/_test/admin", headers={"Authorization": f"Bearer {admin}"})
    assert allowed.status_code == 200


def test_api_accepts_a_browser_session_only_with_its_csrf_token(tmp_path, _seed_db):
    app = _make_app(tmp_path, _seed_db, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    token = _csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"login": "ana", "password": PASSWORD, "csrf_token": token})
    token = _csrf_from(client.get("/_test/escape").get_data(as_text=True))
    assert client.get("/api/_test/me").status_code == 401  # cookie alone: no
    response = client.get("/api/_test/me", headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.json["login"] == "ana"


# ------------------------------------------------------------------ CLI


@pytest.fixture
def _cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PAPO_INSTANCE_PATH", str(tmp_path / "instance"))
    return tmp_path


def test_cli_user_create_and_token_create(_cli_env):
    runner = CliRunner()
    created = runner.invoke(papo, ["user", "create", "ana", "--role", "admin",
                                   "--password", PASSWORD])
    assert created.exit_code == 0, created.output
    assert PASSWORD not in created.output
    result = runner.invoke(papo, ["token", "create", "--user", "ana"])
    assert result.exit_code == 0, result.output
    token = result.stdout.rstrip("\n").splitlines()[-1]
    assert re.fullmatch(r"papo_[A-Za-z0-9_-]{40,}", token)

    app = create_app({"TESTING": True, "SECRET_KEY": "x"})  # same PAPO_* environment
    _add_test_routes(app)
    response = app.test_client().get("/api/_test/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json == {"login": "ana", "role": "admin"}


def test_cli_user_create_prints_a_generated_password_last(_cli_env):
    result = CliRunner().invoke(papo, ["user", "create", "bruno", "--role", "agent"])
    assert result.exit_code == 0, result.output
    password = result.stdout.rstrip("\n").splitlines()[-1]
    from editor.app import open_database

    assert accounts.authenticate(open_database(), "bruno", password)["role"] == "agent"


def test_cli_refuses_bad_input_without_traceback(_cli_env):
    runner = CliRunner()
    assert runner.invoke(papo, ["user", "create", "ana", "--role", "admin"]).exit_code == 0
    again = runner.invoke(papo, ["user", "create", "ana", "--role", "agent"])
    assert again.exit_code == 1 and "already exists" in again.output
    assert "Traceback" not in again.output
    bad = runner.invoke(papo, ["user", "create", "Bad Login", "--role", "agent"])
    assert bad.exit_code == 1 and "Invalid login" in bad.output
    role = runner.invoke(papo, ["user", "create", "zed", "--role", "boss"])
    assert role.exit_code == 2
    nobody = runner.invoke(papo, ["token", "create", "--user", "ghost"])
    assert nobody.exit_code == 1 and "ghost" in nobody.output and "Traceback" not in nobody.output


# ------------------------------------------------------------------ errors


def test_unknown_api_route_is_json_not_html(_client):
    response = _client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.is_json and response.json["error"]["code"] == "not_found"


def test_unknown_page_is_a_friendly_html_404(_client):
    response = _client.get("/no-such-page")
    assert response.status_code == 404 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Página não encontrada" in html and "Voltar ao início" in html
    assert "Not Found" not in html


def test_api_wrong_method_is_json(_client):
    response = _client.delete("/api/_test/me")
    assert response.status_code == 405 and response.json["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_papo_errors_keep_their_status_and_details(_client):
    response = _client.get("/api/_test/conflict")
    assert response.status_code == 409
    assert response.json == {"error": {"code": "conflict", "message": "Stale revision.",
                                       "details": [{"path": "$", "message": "old"}]}}


def test_unexpected_api_error_is_a_json_500_without_internals(tmp_path, _seed_db):
    app = _make_app(tmp_path, _seed_db, PROPAGATE_EXCEPTIONS=False)
    response = app.test_client().get("/api/_test/boom")
    assert response.status_code == 500
    assert response.json["error"]["code"] == "internal_error"
    assert "secret internals" not in response.get_data(as_text=True)


def test_body_over_the_limit_is_413_json(_client):
    response = _client.post("/api/_test/echo", data=b"x" * (3 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"
    assert _client.post("/api/_test/echo", data=b"x" * (2 * 1024 * 1024)).status_code == 200


def test_secret_key_is_kept_in_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("PAPO_SECRET_KEY", raising=False)
    config = {"PAPO_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
              "PAPO_INSTANCE_PATH": str(tmp_path / "inst")}
    first = create_app(config).secret_key
    second = create_app(config).secret_key
    assert first == second and len(first) >= 32
    mode = os.stat(tmp_path / "inst" / "secret_key").st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_papo_serve_answers_a_browser_and_creates_the_schema(tmp_path):
    env = {**os.environ, "PAPO_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
           "PAPO_INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from editor.cli import main; main()", "serve", "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=Path(__file__).resolve().parent.parent)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            found = re.search(r"running at (http://\S+)", line)
            url = found.group(1) if found else None
        assert url, "papo serve did not start"
        with urllib.request.urlopen(url + "login", timeout=10) as response:
            assert response.status == 200
            assert 'name="password"' in response.read().decode()
    finally:
        process.terminate()
        process.wait(timeout=10)
    engine = make_engine(env["PAPO_DATABASE_URL"])
    assert "users" in inspect(engine).get_table_names()
    engine.dispose()


def test_missing_blueprint_module_is_skipped_but_its_broken_imports_are_not(tmp_path, monkeypatch):
    from editor.app import _optional_module

    assert _optional_module("editor.no_such_area") is None
    (tmp_path / "papo_broken_area.py").write_text("import papo_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError):
        _optional_module("papo_broken_area")
