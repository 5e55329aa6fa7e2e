"""``GET /metrics`` and ``papo worker --metrics-port`` (issue 18).

The token rules (no ``PAPO_METRICS_TOKEN`` → 404; wrong or missing bearer → 401), the
names and labels an operator alerts on, and that they move after real traffic: inbound
messages by channel and outcome, latency, bot steps, transitions, open conversations,
webhook signature failures, timers (fired, lateness) and the WhatsApp outbox (sends,
backlog). Counters are per process, so each test compares a scrape before and after.
The last test runs gunicorn with two workers: their counts add up in one scrape.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ops_support import (
    APP_SECRET,
    ECHO_FLOW,
    METRICS_TOKEN,
    PHONE_ID,
    WAIT_FLOW,
    make_app,
    scrape,
    signature,
    value,
    webhook_body,
)

from engine import accounts
from engine.flows import FlowRepository
from engine.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def ops_app(db_url, tmp_path):
    upgrade(db_url)
    app = make_app(db_url, tmp_path, PAPO_METRICS_TOKEN=METRICS_TOKEN,
                   PAPO_WHATSAPP_APP_SECRET=APP_SECRET, PAPO_WHATSAPP_PHONE_NUMBER_ID=PHONE_ID)
    engine = app.extensions["papo"]["engine"]
    repo = FlowRepository(engine)
    for doc in (ECHO_FLOW, WAIT_FLOW):
        repo.create(doc, actor="test")
        repo.publish(doc["id"], actor="test")
    accounts.create_user(engine, "admin", "admin", password="admin-senha-123")
    app.config["token"] = accounts.create_token(engine, "admin")
    yield app
    engine.dispose()


def metrics_of(client) -> dict:
    answer = client.get("/metrics", headers=AUTH)
    assert answer.status_code == 200, answer.data[:300]
    return scrape(answer.get_data(as_text=True))


def send(client, token: str, external_id: str, message_id: str, text: str):
    return client.post("/api/v1/inbound", headers={"Authorization": f"Bearer {token}"}, json={
        "channel": "api", "contact": {"external_id": external_id, "name": "Rita"},
        "message": {"id": message_id, "text": text}})


def test_metrics_route_does_not_exist_without_a_token_setting(db_url, tmp_path):
    client = make_app(db_url, tmp_path).test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=AUTH).status_code == 404


def test_metrics_need_the_bearer_token(ops_app):
    client = ops_app.test_client()
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": METRICS_TOKEN}).status_code == 401
    ok = client.get("/metrics", headers=AUTH)
    assert ok.status_code == 200
    assert ok.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE papo_inbound_messages_total counter" in ok.get_data(as_text=True)


def test_every_known_series_is_there_from_the_start(ops_app):
    samples = metrics_of(ops_app.test_client())
    names = {(name, labels) for name, labels in samples}
    for channel in ("api", "whatsapp", "web"):
        for outcome in ("ok", "invalid", "error"):
            assert ("papo_inbound_messages_total",
                    (("channel", channel), ("outcome", outcome))) in names
        assert ("papo_inbound_seconds_count", (("channel", channel),)) in names
    assert ("papo_webhook_signature_failures_total", (("channel", "whatsapp"),)) in names
    for gauge in ("papo_open_conversations", "papo_timers_due", "papo_timers_oldest_due_seconds",
                  "papo_outbox_backlog", "papo_outbox_oldest_seconds", "papo_database_up"):
        assert (gauge, ()) in names


def test_inbound_messages_move_counters_latency_and_steps(ops_app):
    client = ops_app.test_client()
    token = ops_app.config["token"]
    before = metrics_of(client)
    for n in range(3):
        assert send(client, token, "c1", f"m{n}", "olá").status_code == 200
    assert send(client, token, "c1", "m0", "olá").status_code == 200  # Meta-style repeat
    assert send(client, token, "c1", "m9", "a\x00b").status_code in (400, 422)
    after = metrics_of(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("papo_inbound_messages_total", channel="api", outcome="ok") == 4
    assert moved("papo_inbound_duplicates_total", channel="api") == 1
    assert moved("papo_inbound_seconds_count", channel="api") >= 4
    assert moved("papo_inbound_seconds_bucket", channel="api", le="+Inf") >= 4
    assert moved("papo_bot_steps_total", event="start") == 3
    assert moved("papo_http_responses_total", code="200") >= 4
    assert value(after, "papo_database_up") == 1
    assert value(after, "papo_open_conversations") == 0


def test_a_refused_message_counts_as_invalid(ops_app):
    client = ops_app.test_client()
    token = ops_app.config["token"]
    before = metrics_of(client)
    answer = send(client, token, "c1", "m1", "   ")
    assert answer.status_code == 422
    after = metrics_of(client)
    assert (value(after, "papo_inbound_messages_total", channel="api", outcome="invalid")
            - value(before, "papo_inbound_messages_total", channel="api", outcome="invalid")) == 1


def test_handoff_and_agent_actions_count_transitions_and_open_conversations(ops_app):
    client = ops_app.test_client()
    token = ops_app.config["token"]
    before = metrics_of(client)
    answer = send(client, token, "c2", "h1", "quero falar com atendente")
    conversation = answer.get_json()["conversation_id"]
    assert answer.get_json()["status"] == "open"
    assert value(metrics_of(client), "papo_open_conversations") == 1
    concluded = client.post(f"/api/v1/conversations/{conversation}/conclude",
                            headers={"Authorization": f"Bearer {token}"})
    assert concluded.status_code == 200
    after = metrics_of(client)
    assert value(after, "papo_open_conversations") == 0
    for action in ("handoff", "conclude"):
        assert (value(after, "papo_transitions_total", action=action)
                - value(before, "papo_transitions_total", action=action)) == 1


def test_a_badly_signed_webhook_is_counted(ops_app):
    client = ops_app.test_client()
    raw = webhook_body("5511999990000", "wamid.SIG1", "oi")
    before = metrics_of(client)
    refused = client.post("/channels/whatsapp/webhook", data=raw, content_type="application/json",
                          headers={"X-Hub-Signature-256": signature(raw, "not-the-secret")})
    assert refused.status_code == 403
    accepted = client.post("/channels/whatsapp/webhook", data=raw, content_type="application/json",
                           headers={"X-Hub-Signature-256": signature(raw)})
    assert accepted.status_code == 200
    after = metrics_of(client)
    assert (value(after, "papo_webhook_signature_failures_total", channel="whatsapp")
            - value(before, "papo_webhook_signature_failures_total", channel="whatsapp")) == 1
    assert (value(after, "papo_inbound_messages_total", channel="whatsapp", outcome="ok")
            - value(before, "papo_inbound_messages_total", channel="whatsapp", outcome="ok")) == 1
    # the reply waits in the outbox (no worker here)
    assert value(after, "papo_outbox_backlog") == 1


def test_timers_nobody_fired_show_as_due_and_late(ops_app):
    """No worker running: a wait that fell due 100 s ago shows in the gauges an operator
    alerts on (``papo_timers_due``, ``papo_timers_oldest_due_seconds``)."""
    from engine.service import Service

    engine = ops_app.extensions["papo"]["engine"]
    long_ago = Service(engine, ops_app.extensions["papo"]["settings"],
                       clock=lambda: time.time() - 100)
    long_ago.handle_inbound("api", {"external_id": "late", "name": "Rita"},
                            {"id": "late-1", "text": "espera"})
    samples = metrics_of(ops_app.test_client())
    assert value(samples, "papo_timers_pending") == 1
    assert value(samples, "papo_timers_due") == 1
    assert 90 <= value(samples, "papo_timers_oldest_due_seconds") <= 3600


# ---------------------------------------------------------------------- papo worker --metrics-port
def _get(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_worker_serves_timer_and_outbox_metrics_on_its_port(ops_app, db_url, tmp_path, fake_graph):
    client = ops_app.test_client()
    raw = webhook_body("5511988887777", "wamid.W1", "espera")
    assert client.post("/channels/whatsapp/webhook", data=raw, content_type="application/json",
                       headers={"X-Hub-Signature-256": signature(raw)}).status_code == 200
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPO_")}
    env.update(PAPO_DATABASE_URL=db_url, PAPO_INSTANCE_PATH=str(tmp_path / "instance"),
               PAPO_METRICS_TOKEN=METRICS_TOKEN, PAPO_WHATSAPP_TOKEN="EAAG-x",
               PAPO_WHATSAPP_PHONE_NUMBER_ID=PHONE_ID, PAPO_WHATSAPP_API_BASE=fake_graph.api_base,
               PAPO_LOG_FORMAT="json")
    log = tmp_path / "worker.log"
    with open(log, "w") as handle:
        worker = subprocess.Popen([str(BIN / "papo"), "worker", "--metrics-port", "0"], cwd=ROOT,
                                  env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        assert _wait(lambda: "/metrics" in log.read_text(), 30), log.read_text()
        url = next(word for word in log.read_text().split() if word.endswith("/metrics"))
        assert _get(url)[0] == 401
        assert _get(url.replace("/metrics", "/healthz"))[0] == 200
        names = set(scrape(_get(url, AUTH)[1]))  # the worker's series, at 0 from the start
        for kind in ("wait", "question_timeout", "auto_conclude", "debounce"):
            assert ("papo_timers_fired_total", (("kind", kind),)) in names
        for outcome in ("sent", "retry", "failed"):
            assert ("papo_outbox_sends_total", (("outcome", outcome),)) in names
        assert ("papo_worker_job_failures_total", (("job", "timers"),)) in names

        def settled() -> bool:
            status, text = _get(url, AUTH)
            samples = scrape(text)
            return (value(samples, "papo_timers_fired_total", kind="wait") == 1
                    and value(samples, "papo_outbox_sends_total", outcome="sent") == 2
                    and value(samples, "papo_outbox_backlog") == 0)

        assert _wait(settled, 30), (_get(url, AUTH)[1][-2000:], log.read_text()[-2000:])
        samples = scrape(_get(url, AUTH)[1])
        assert value(samples, "papo_timer_lateness_seconds_count", kind="wait") == 1
        assert value(samples, "papo_timers_pending") == 0
        assert value(samples, "papo_database_up") == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
    assert [r.json["text"]["body"] for r in fake_graph.delivered] == ["Um momento.", "Pronto."]
    # PAPO_LOG_FORMAT=json: every log line is one JSON object; the timer's names its ids
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    fired = [line for line in lines if line.get("timer_id")]
    assert fired and fired[0]["conversation_id"] and fired[0]["level"] == "INFO"


# ---------------------------------------------------------------------- gunicorn, two processes
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # process plumbing: one database kind is enough
@pytest.mark.parametrize("preload", [False, True], ids=["app-per-worker", "preload"])
def test_gunicorn_workers_add_up_in_one_scrape(db_url, tmp_path, ops_app, preload):
    """Multiprocess mode: whichever of two gunicorn workers answers /metrics, it reports
    every message either of them handled; also when the app is loaded in the master before
    the workers are forked (``--preload``, as ``papo serve`` does)."""
    from reliability.reliability_support import Gunicorn, papo_env, post_json

    token = ops_app.config["token"]
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left by an earlier run")  # emptied at start
    env = papo_env(db_url, tmp_path / "instance", PAPO_METRICS_TOKEN=METRICS_TOKEN,
                   PROMETHEUS_MULTIPROC_DIR=folder)
    config = "python:editor.gunicorn_conf"
    server = Gunicorn(env, tmp_path / "gunicorn.log", config=config, preload=preload)
    try:
        def sender(first: int) -> list[int]:  # 4 at once: both sync workers are kept busy
            return [post_json(server.url + "/api/v1/inbound", {
                "channel": "api", "contact": {"external_id": f"g{n}", "name": "Rita"},
                "message": {"id": f"g{n}", "text": "olá"}}, {"Authorization": f"Bearer {token}",
                                                            "Connection": "close"})[0]
                    for n in range(first, 20, 4)]

        with ThreadPoolExecutor(4) as pool:
            statuses = [status for batch in pool.map(sender, range(4)) for status in batch]
        assert statuses == [200] * 20
        for _ in range(4):  # each scrape may land on either worker
            status, text = _get(server.url + "/metrics", AUTH)
            assert status == 200
            samples = scrape(text)
            assert value(samples, "papo_inbound_messages_total", channel="api", outcome="ok") == 20
        # both workers counted some of them (a file of values per process; with --preload
        # the master has one too, from loading the app)
        pids = {int(path.stem.split("_")[1]) for path in folder.glob("counter_*.db")}
        assert len(pids - {server.proc.pid}) == 2, sorted(folder.iterdir())
    finally:
        server.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # process plumbing: one database kind is enough
def test_gunicorn_makes_its_own_metrics_folder_when_none_is_given(db_url, tmp_path, ops_app):
    from reliability.reliability_support import Gunicorn, papo_env

    env = papo_env(db_url, tmp_path / "instance", PAPO_METRICS_TOKEN=METRICS_TOKEN)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = Gunicorn(env, tmp_path / "gunicorn.log", config="python:editor.gunicorn_conf")
    try:
        for _ in range(3):
            status, text = _get(server.url + "/metrics", AUTH)
            assert status == 200
        # the scrapes themselves were counted, whichever worker made them
        assert value(scrape(text), "papo_http_responses_total", code="200") >= 2
    finally:
        server.stop()


def test_a_worker_that_cannot_do_its_jobs_says_so_in_its_metrics(tmp_path):
    """A database without papo's tables (``papo db upgrade`` not run): the worker stays up,
    its failed jobs are counted and the database gauge says 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPO_")}
    env.update(PAPO_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}",
               PAPO_INSTANCE_PATH=str(tmp_path / "instance"))
    log = tmp_path / "worker.log"
    with open(log, "w") as handle:
        worker = subprocess.Popen([str(BIN / "papo"), "worker", "--metrics-port", "0"], cwd=ROOT,
                                  env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        assert _wait(lambda: "/metrics" in log.read_text(), 30), log.read_text()
        url = next(word for word in log.read_text().split() if word.endswith("/metrics"))

        def failing() -> bool:
            return value(scrape(_get(url)[1]), "papo_worker_job_failures_total", job="timers") >= 1

        assert _wait(failing, 30), (_get(url)[1][-2000:], log.read_text()[-2000:])
        samples = scrape(_get(url)[1])  # no PAPO_METRICS_TOKEN: no token asked
        assert value(samples, "papo_database_up") == 0
        assert _get(url.replace("/metrics", "/healthz"))[0] == 200
        assert "papo db upgrade" in log.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)


def test_papo_serve_adds_up_its_workers_counts(tmp_path):
    """``papo serve`` (gunicorn, workers × threads, the app checked in the master before it
    forks): one scrape reports every message whichever worker handled it."""
    from reliability.reliability_support import papo_env, post_json

    url = f"sqlite:///{tmp_path / 'papo.db'}"
    upgrade(url)
    from engine.db import make_engine

    engine = make_engine(url)
    FlowRepository(engine).create(ECHO_FLOW, actor="test")
    FlowRepository(engine).publish(ECHO_FLOW["id"], actor="test")
    accounts.create_user(engine, "admin", "admin", password="admin-senha-123")
    token = accounts.create_token(engine, "admin")
    engine.dispose()
    env = papo_env(url, tmp_path / "instance", PAPO_METRICS_TOKEN=METRICS_TOKEN)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "serve.log"
    with open(log, "w") as handle:
        server = subprocess.Popen([str(BIN / "papo"), "serve", "--port", "0", "--workers", "2",
                                   "--threads", "2"], cwd=ROOT, env=env, stdout=handle,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert _wait(lambda: "running at http://" in log.read_text(), 60), log.read_text()
        base = log.read_text().split("running at ")[1].split()[0].rstrip("/")

        def sender(first: int) -> list[int]:
            return [post_json(base + "/api/v1/inbound", {
                "channel": "api", "contact": {"external_id": f"s{n}", "name": "Rita"},
                "message": {"id": f"s{n}", "text": "olá"}}, {"Authorization": f"Bearer {token}",
                                                            "Connection": "close"})[0]
                    for n in range(first, 24, 6)]

        with ThreadPoolExecutor(6) as pool:
            statuses = [status for batch in pool.map(sender, range(6)) for status in batch]
        assert statuses == [200] * 24
        for _ in range(4):
            status, text = _get(base + "/metrics", AUTH)
            assert status == 200
            assert value(scrape(text), "papo_inbound_messages_total", channel="api",
                         outcome="ok") == 24
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
