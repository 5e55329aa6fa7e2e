"""``GET /healthz`` and ``GET /readyz`` (issue 18): public, cheap, and honest about the
database (down → 503, never migrated → 503, migrations pending → 503)."""
from __future__ import annotations

import logging

from alembic import command
from ops_support import make_app

from engine.db import create_schema, make_engine
from engine.migrate import alembic_config, head, upgrade

# Nothing listens on port 1: connecting is refused at once.
DOWN_POSTGRES = "postgresql+psycopg://papo@127.0.0.1:1/papo?connect_timeout=2"


def test_healthz_answers_ok_without_touching_the_database(tmp_path):
    client = make_app(DOWN_POSTGRES, tmp_path).test_client()
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ok"}


def test_readyz_is_200_on_a_migrated_database(db_url, tmp_path):
    upgrade(db_url)
    answer = make_app(db_url, tmp_path).test_client().get("/readyz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "ok"
    assert body["revision"] == body["head"] == head()


def test_readyz_is_503_when_the_database_is_down(tmp_path, caplog):
    client = make_app(DOWN_POSTGRES, tmp_path).test_client()
    with caplog.at_level(logging.WARNING, logger="papo.health"):
        answer = client.get("/readyz")
        client.get("/readyz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["status"] == "unavailable"
    assert body["reason"] == "database_unreachable"
    assert body["message"].startswith("The database cannot be reached")
    assert "127.0.0.1" not in answer.get_data(as_text=True)  # no host or port made public
    said = [r.getMessage() for r in caplog.records if r.name == "papo.health"]
    assert len(said) == 1 and "127.0.0.1" in said[0]  # the log says why, once per change


def test_readyz_is_503_when_a_sqlite_file_cannot_be_opened(tmp_path):
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'papo.db'}"
    answer = make_app(url, tmp_path).test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.get_json()["reason"] == "database_unreachable"


def test_readyz_is_503_on_an_empty_database(db_url, tmp_path):
    answer = make_app(db_url, tmp_path).test_client().get("/readyz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["reason"] == "not_migrated"
    assert "papo db upgrade" in body["message"]


def test_readyz_is_503_on_tables_made_without_migrations(db_url, tmp_path):
    engine = make_engine(db_url)
    create_schema(engine)
    engine.dispose()
    answer = make_app(db_url, tmp_path).test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.get_json()["reason"] == "not_migrated"


def test_readyz_is_503_while_a_migration_is_pending_and_200_after_upgrade(db_url, tmp_path):
    command.upgrade(alembic_config(db_url), "0001")
    client = make_app(db_url, tmp_path).test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["reason"] == "migration_pending"
    assert body["revision"] == "0001" and body["head"] == head()
    upgrade(db_url)
    assert client.get("/readyz").status_code == 200


def test_health_routes_need_no_login_and_are_not_cached(db_url, tmp_path):
    upgrade(db_url)
    client = make_app(db_url, tmp_path).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.headers["Cache-Control"] == "no-store"
    assert client.get("/healthz").status_code == 200
