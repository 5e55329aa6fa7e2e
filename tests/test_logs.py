"""Logs (issue 18): ``PAPO_LOG_FORMAT=json`` writes one JSON object per line; a line
about a customer message carries the conversation id, flow id and version, channel and
message id, and never the customer's text or a secret at INFO."""
from __future__ import annotations

import json
import urllib.request

import pytest
from click.testing import CliRunner
from ops_support import APP_SECRET, ECHO_FLOW, PHONE_ID, make_app, signature, webhook_body

from editor.cli import main
from engine import accounts
from engine.flows import FlowRepository
from engine.migrate import upgrade
from engine.settings import SettingsError

SECRET_TEXT = "minha senha é abacaxi-42"


@pytest.fixture
def logged_app(db_url, tmp_path):
    def build(fmt: str):
        upgrade(db_url)
        app = make_app(db_url, tmp_path, PAPO_LOG_FORMAT=fmt, PAPO_LOG_LEVEL="INFO",
                       PAPO_WHATSAPP_APP_SECRET=APP_SECRET, PAPO_WHATSAPP_PHONE_NUMBER_ID=PHONE_ID)
        engine = app.extensions["papo"]["engine"]
        repo = FlowRepository(engine)
        repo.create(ECHO_FLOW, actor="test")
        repo.publish(ECHO_FLOW["id"], actor="test")
        accounts.create_user(engine, "admin", "admin", password="admin-senha-123")
        app.config["token"] = accounts.create_token(engine, "admin")
        return app

    return build


def test_json_log_line_per_message_has_its_ids_and_not_its_text(logged_app, capsys):
    app = logged_app("json")
    client = app.test_client()
    token = app.config["token"]
    capsys.readouterr()
    answer = client.post("/api/v1/inbound", headers={"Authorization": f"Bearer {token}"}, json={
        "channel": "api", "contact": {"external_id": "c-77", "name": "Rita"},
        "message": {"id": "msg-77", "text": SECRET_TEXT}})
    assert answer.status_code == 200
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    about = [line for line in lines if line.get("message_id") == "msg-77"]
    assert about, err
    line = about[-1]
    assert line["level"] == "INFO" and line["logger"] == "papo.inbound"
    assert line["channel"] == "api"
    assert line["conversation_id"] == answer.get_json()["conversation_id"]
    assert line["flow_id"] == "eco" and line["flow_version"] == 1
    assert line["time"].endswith("Z")
    assert SECRET_TEXT not in err and "abacaxi" not in err
    assert token not in err


def test_json_log_of_a_whatsapp_message_keeps_text_and_secrets_out(logged_app, capsys):
    app = logged_app("json")
    client = app.test_client()
    raw = webhook_body("5511977776666", "wamid.LOG1", SECRET_TEXT)
    capsys.readouterr()
    answer = client.post("/channels/whatsapp/webhook", data=raw, content_type="application/json",
                         headers={"X-Hub-Signature-256": signature(raw)})
    assert answer.status_code == 200
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    line = next(line for line in lines if line.get("message_id") == "wamid.LOG1")
    assert line["channel"] == "whatsapp" and line["flow_id"] == "eco"
    assert isinstance(line["conversation_id"], int)
    assert "abacaxi" not in err and APP_SECRET not in err


def test_text_logs_name_the_ids_for_people(logged_app, capsys):
    app = logged_app("text")
    client = app.test_client()
    capsys.readouterr()
    client.post("/api/v1/inbound", headers={"Authorization": f"Bearer {app.config['token']}"},
                json={"channel": "api", "contact": {"external_id": "c-1", "name": "Rita"},
                      "message": {"id": "msg-1", "text": SECRET_TEXT}})
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "msg-1" in line)
    assert " INFO papo.inbound: inbound api message msg-1" in line
    assert "[channel=api message_id=msg-1 conversation_id=" in line and "flow_id=eco" in line
    assert "abacaxi" not in err


def test_an_unknown_log_format_stops_start_up_with_a_clear_message(db_url, tmp_path):
    with pytest.raises(SettingsError, match="PAPO_LOG_FORMAT"):
        make_app(db_url, tmp_path, PAPO_LOG_FORMAT="yaml")
    result = CliRunner().invoke(main, ["worker", "--once"], env={
        "PAPO_DATABASE_URL": db_url, "PAPO_LOG_FORMAT": "yaml"})
    assert result.exit_code == 1
    assert "PAPO_LOG_FORMAT='yaml' must be one of: text, json" in result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # process plumbing: one database kind is enough
def test_under_gunicorn_every_line_is_json_and_written_once(db_url, tmp_path):
    """``gunicorn -c python:editor.gunicorn_conf`` with ``PAPO_LOG_FORMAT=json``: gunicorn's
    own lines and papo's are all JSON, none printed twice, no access log."""
    from reliability.reliability_support import Gunicorn, papo_env, post_json

    upgrade(db_url)
    app = make_app(db_url, tmp_path)
    engine = app.extensions["papo"]["engine"]
    FlowRepository(engine).create(ECHO_FLOW, actor="test")
    FlowRepository(engine).publish(ECHO_FLOW["id"], actor="test")
    accounts.create_user(engine, "admin", "admin", password="admin-senha-123")
    token = accounts.create_token(engine, "admin")
    engine.dispose()
    log = tmp_path / "gunicorn.log"
    server = Gunicorn(papo_env(db_url, tmp_path / "instance", PAPO_LOG_FORMAT="json"), log,
                      config="python:editor.gunicorn_conf")
    try:
        for n in range(3):
            status, _ = post_json(server.url + "/api/v1/inbound", {
                "channel": "api", "contact": {"external_id": "gl", "name": "Rita"},
                "message": {"id": f"gl-{n}", "text": SECRET_TEXT}}, {"Authorization": f"Bearer {token}"})
            assert status == 200
    finally:
        server.stop()
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # all JSON
    about = [line["message_id"] for line in lines if line.get("message_id")]
    assert sorted(about) == ["gl-0", "gl-1", "gl-2"]  # each message once
    assert any(line["logger"] == "gunicorn.error" for line in lines)
    messages = [line["message"] for line in lines]
    assert len(messages) == len(set(zip(messages, [line["time"] for line in lines], strict=True)))
    assert "/api/v1/inbound" not in text and "abacaxi" not in text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # process plumbing: one database kind is enough
def test_under_gunicorn_an_access_log_asked_for_is_written(db_url, tmp_path):
    """``editor/gunicorn_conf.py``'s logger skips the access line only when nothing would
    write it: with ``--access-logfile`` given, each request still has its line."""
    from reliability.reliability_support import Gunicorn, papo_env

    upgrade(db_url)
    make_app(db_url, tmp_path).extensions["papo"]["engine"].dispose()
    log = tmp_path / "gunicorn.log"
    access = tmp_path / "access.log"
    server = Gunicorn(papo_env(db_url, tmp_path / "instance",
                               GUNICORN_CMD_ARGS=f"--access-logfile {access}"), log,
                      config="python:editor.gunicorn_conf")
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=10) as answer:
            assert answer.status == 200
    finally:
        server.stop()
    assert '"GET /healthz HTTP/1.1" 200' in access.read_text()
