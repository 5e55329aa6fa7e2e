"""Accounts hardening (DESIGN §10.5, issue 17 findings 7, 8 and 10): server-side sessions,
disabling users, listing/revoking/expiring tokens, the "Equipe" page, the password
minimum and the Secure session cookie. Every test runs on SQLite and PostgreSQL."""
from __future__ import annotations

import re
import time

import pytest
from click.testing import CliRunner

from editor import create_app
from editor.cli import main as papo
from engine import accounts

PASSWORD = "senha-de-teste"  # conftest's api_tokens users


def _engine(app):
    return app.extensions["papo"]["engine"]


def _login(client, login="admin", password=PASSWORD):
    return client.post("/login", data={"login": login, "password": password})


def _logged_in(client) -> bool:
    response = client.get("/inbox")
    return response.status_code == 200


@pytest.fixture
def people(app, api_tokens):
    return api_tokens


# ---------------------------------------------------------------------- sessions

def test_logout_ends_the_users_other_sessions(app, people):
    laptop, phone = app.test_client(), app.test_client()
    assert _login(laptop, "ana").status_code == 302 and _login(phone, "ana").status_code == 302
    assert _logged_in(laptop) and _logged_in(phone)
    laptop.post("/logout")
    assert not _logged_in(laptop)
    assert not _logged_in(phone)  # the cookie it still holds no longer works
    assert _login(phone, "ana").status_code == 302 and _logged_in(phone)


def test_a_stolen_cookie_stops_working_after_logout(app, people):
    browser = app.test_client()
    _login(browser, "ana")
    stolen = browser.get_cookie("session").value
    browser.post("/logout")
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/inbox").status_code == 302


def test_a_password_change_ends_other_sessions_and_keeps_the_admin_who_made_it(app, people):
    admin, admin_elsewhere, ana = app.test_client(), app.test_client(), app.test_client()
    for client, login in ((admin, "admin"), (admin_elsewhere, "admin"), (ana, "ana")):
        _login(client, login)
    changed = admin.post("/team/ana/password", data={"password": "uma-senha-nova-longa"})
    assert changed.status_code == 200 and "alterada" in changed.get_data(as_text=True)
    assert not _logged_in(ana)
    assert _login(ana, "ana", "uma-senha-nova-longa").status_code == 302

    admin.post("/team/admin/password", data={"password": "outra-senha-longa"})
    assert _logged_in(admin)  # the session that changed it goes on
    assert not _logged_in(admin_elsewhere)


def test_a_disabled_user_is_out_at_once_and_cannot_log_in(app, people):
    admin, bruno = app.test_client(), app.test_client()
    _login(admin, "admin")
    _login(bruno, "bruno")
    assert _logged_in(bruno)
    page = admin.post("/team/bruno/disable")
    assert page.status_code == 200 and "desativado" in page.get_data(as_text=True)
    assert not _logged_in(bruno)
    assert _login(bruno, "bruno").status_code == 401
    admin.post("/team/bruno/enable")
    assert _login(bruno, "bruno").status_code == 302 and _logged_in(bruno)


def test_a_disabled_users_token_stops_in_every_process_within_the_token_cache(
        app, people, tmp_path, monkeypatch):
    token = people["bruno"]
    headers = {"Authorization": f"Bearer {token}"}
    other = create_app({"PAPO_DATABASE_URL": str(_engine(app).url.render_as_string(False)),
                        "PAPO_INSTANCE_PATH": str(tmp_path / "other"), "TESTING": True,
                        "SECRET_KEY": "test-secret"}).test_client()
    assert other.get("/api/v1/conversations", headers=headers).status_code == 200

    accounts.set_disabled(_engine(app), "bruno", True)
    client = app.test_client()
    assert client.get("/api/v1/conversations", headers=headers).status_code == 401  # this process

    later = time.monotonic() + accounts.TOKEN_CACHE_SECONDS + 1
    monkeypatch.setattr(accounts.time, "monotonic", lambda: later)
    assert other.get("/api/v1/conversations", headers=headers).status_code == 401


def test_an_expired_token_is_refused(app, people, monkeypatch):
    engine = _engine(app)
    token_id, token = accounts.create_token_record(engine, "ana", name="integração",
                                                   expires_in_days=1)
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    assert client.get("/api/v1/conversations", headers=headers).status_code == 200
    real_now = accounts._now
    monkeypatch.setattr(accounts, "_now", lambda: real_now() + accounts.timedelta(days=2))
    assert client.get("/api/v1/conversations", headers=headers).status_code == 401
    listed = {t["id"]: t for t in accounts.list_tokens(engine, "ana")}
    assert listed[token_id]["expired"] is True


# ---------------------------------------------------------------------- CLI

@pytest.fixture
def cli(app, people, monkeypatch):
    url = _engine(app).url.render_as_string(hide_password=False)
    monkeypatch.setenv("PAPO_DATABASE_URL", url)
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(papo, list(args), **kw)


def test_token_list_shows_ids_first_and_never_the_secret_and_revoke_stops_it(
        app, cli, people, monkeypatch):
    made = cli("token", "create", "--user", "ana", "--name", "CRM")
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    token_id = int(re.search(r"API token (\d+)", made.output).group(1))

    listed = cli("token", "list", "--user", "ana")
    assert listed.exit_code == 0
    lines = listed.output.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == \
        [str(t["id"]) for t in accounts.list_tokens(_engine(app), "ana")]
    assert any(line.startswith(f"{token_id}\tCRM\t") for line in lines)
    assert secret not in listed.output and people["ana"] not in listed.output

    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/conversations", headers=headers).status_code == 200
    revoked = cli("token", "revoke", str(token_id))
    assert revoked.exit_code == 0 and f"Token {token_id}" in revoked.output
    # The CLI is another process: the web app obeys once its 5-second memory runs out.
    later = time.monotonic() + accounts.TOKEN_CACHE_SECONDS + 1
    monkeypatch.setattr(accounts.time, "monotonic", lambda: later)
    assert client.get("/api/v1/conversations", headers=headers).status_code == 401
    again = cli("token", "revoke", str(token_id))
    assert again.exit_code == 1 and "no token" in again.output


def test_user_disable_from_the_cli_stops_login_and_tokens(app, cli, people, monkeypatch):
    result = cli("user", "disable", "bruno")
    assert result.exit_code == 0, result.output
    assert _login(app.test_client(), "bruno").status_code == 401
    later = time.monotonic() + accounts.TOKEN_CACHE_SECONDS + 1
    monkeypatch.setattr(accounts.time, "monotonic", lambda: later)
    client = app.test_client()
    assert client.get("/api/v1/conversations",
                      headers={"Authorization": f"Bearer {people['bruno']}"}).status_code == 401
    assert cli("user", "disable", "ninguem").exit_code == 1


def test_user_password_reads_standard_input_and_refuses_short_passwords(app, cli, people):
    short = cli("user", "password", "ana", "--password", "a")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    assert cli("user", "create", "zeca", "--role", "agent", "--password", "curta").exit_code == 1
    piped = cli("user", "password", "ana", input="frase-longa-de-teste\n")
    assert piped.exit_code == 0, piped.output
    assert _login(app.test_client(), "ana", "frase-longa-de-teste").status_code == 302
    generated = cli("user", "password", "ana", "--generate")
    new = generated.output.strip().splitlines()[-1]
    assert len(new) >= accounts.MIN_PASSWORD_LENGTH
    assert _login(app.test_client(), "ana", new).status_code == 302


# ---------------------------------------------------------------------- the "Equipe" page

def test_the_team_page_is_for_admins_only(app, people):
    agent = app.test_client()
    _login(agent, "ana")
    assert agent.get("/team").status_code == 403
    assert agent.post("/team/bruno/disable").status_code == 403
    assert accounts.get_user(_engine(app), "bruno")["disabled"] is False
    assert app.test_client().get("/team").status_code == 302  # anonymous → login


def test_the_team_page_creates_people_and_shows_a_new_token_once(app, people):
    admin = app.test_client()
    _login(admin, "admin")
    page = admin.get("/team").get_data(as_text=True)
    assert "Equipe" in page and "bruno" in page and people["bruno"] not in page

    created = admin.post("/team/users", data={"login": "carla", "name": "Carla", "role": "agent"})
    body = created.get_data(as_text=True)
    assert created.status_code == 201 and "Senha gerada" in body
    password = re.search(r'data-secret>([^<]+)<', body).group(1)
    assert _login(app.test_client(), "carla", password).status_code == 302

    short = admin.post("/team/users", data={"login": "dora", "role": "agent", "password": "curta"})
    assert short.status_code == 422 and "pelo menos 10 caracteres" in short.get_data(as_text=True)
    assert accounts.get_user(_engine(app), "dora") is None

    made = admin.post("/team/carla/tokens", data={"name": "Planilha"})
    token = re.search(r'data-secret>(papo_[^<]+)<', made.get_data(as_text=True)).group(1)
    assert made.status_code == 201
    again = admin.get("/team").get_data(as_text=True)
    assert token not in again and "Planilha" in again
    client = app.test_client()
    assert client.get("/api/v1/conversations",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200

    token_id = accounts.list_tokens(_engine(app), "carla")[0]["id"]
    revoked = admin.post(f"/team/carla/tokens/{token_id}/revoke")
    assert revoked.status_code == 200 and "revogado" in revoked.get_data(as_text=True)
    assert client.get("/api/v1/conversations",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_an_admin_cannot_lock_themselves_out(app, people):
    admin = app.test_client()
    _login(admin, "admin")
    assert admin.post("/team/admin/disable").status_code == 409
    assert admin.post("/team/admin/role", data={"role": "agent"}).status_code == 409
    me = accounts.get_user(_engine(app), "admin")
    assert me["role"] == "admin" and not me["disabled"] and _logged_in(admin)


def test_a_role_change_ends_that_users_sessions(app, people):
    admin, ana = app.test_client(), app.test_client()
    _login(admin, "admin")
    _login(ana, "ana")
    assert admin.post("/team/ana/role", data={"role": "admin"}).status_code == 200
    assert not _logged_in(ana)
    _login(ana, "ana")
    assert ana.get("/team").status_code == 200


def test_team_forms_need_the_csrf_token(db_url, tmp_path, monkeypatch):
    app = create_app({"PAPO_DATABASE_URL": db_url, "PAPO_INSTANCE_PATH": str(tmp_path / "i"),
                      "TESTING": True, "SECRET_KEY": "test-secret"})
    from engine.db import create_schema

    create_schema(_engine(app))
    accounts.create_user(_engine(app), "admin", "admin", password=PASSWORD)
    accounts.create_user(_engine(app), "bruno", "agent", password=PASSWORD)
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    client.post("/login", data={"login": "admin", "password": PASSWORD, "csrf_token": csrf})
    refused = client.post("/team/bruno/disable")
    assert refused.status_code == 400
    assert accounts.get_user(_engine(app), "bruno")["disabled"] is False
    page = client.get("/team").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/team/bruno/disable", data={"csrf_token": csrf}).status_code == 200
    assert accounts.get_user(_engine(app), "bruno")["disabled"] is True


# ---------------------------------------------------------------------- the cookie

def _session_cookie(response) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))


def test_the_session_cookie_is_secure_only_over_https(app, people):
    plain = _login(app.test_client(), "ana")
    assert "Secure" not in _session_cookie(plain)
    secure = app.test_client().post("/login", data={"login": "ana", "password": PASSWORD},
                                    base_url="https://papo.example")
    assert "Secure" in _session_cookie(secure) and "HttpOnly" in _session_cookie(secure)


def test_the_session_cookie_is_secure_behind_a_trusted_https_proxy(db_url, tmp_path, people, app):
    behind = create_app({"PAPO_DATABASE_URL": db_url, "PAPO_INSTANCE_PATH": str(tmp_path / "p"),
                         "TESTING": True, "SECRET_KEY": "test-secret", "WTF_CSRF_ENABLED": False,
                         "PAPO_TRUSTED_PROXIES": "1"})
    response = behind.test_client().post(
        "/login", data={"login": "ana", "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    assert "Secure" in _session_cookie(response)
    # Without a trusted proxy, the header is not believed.
    spoofed = app.test_client().post("/login", data={"login": "ana", "password": PASSWORD},
                                     headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in _session_cookie(spoofed)
