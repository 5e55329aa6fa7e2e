"""Fixtures for the whole suite (the one conftest.py; add new fixtures to a section).

Sections:
  1. Databases: ``db_url`` (SQLite always, PostgreSQL when PAPO_TEST_POSTGRES_URL is
     set), ``db`` (an Engine with the schema), ``make_test_engine(url)``.
  2. Repositories: ``flows``.
  3. Sample flows: ``sample_flow(name)``.

PostgreSQL isolation: each test process (each pytest-xdist worker, and each of several
pytest runs sharing one server) gets a database of its own, ``papo_test_<worker>_<pid>``,
created from PAPO_TEST_POSTGRES_URL's database and dropped at the end; every test starts
from an empty schema in it. If the role may not create databases, a schema of the same
name inside the given database is used instead (via ``search_path`` in the URL).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from engine.db import create_schema, make_engine
from engine.flows import FlowRepository

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_FLOWS = ROOT / "sample_flows"

# ---------------------------------------------------------------------------------------
# 1. Databases
# ---------------------------------------------------------------------------------------

POSTGRES_ENV = "PAPO_TEST_POSTGRES_URL"
_PREFIX = "papo_test_"
_engines: list[Engine] = []


def make_test_engine(url: str) -> Engine:
    """An Engine on the test database at ``url`` (from ``db_url``), disposed after the test.

    Use it for a second process's view of the same database (two workers, a race).
    """
    engine = make_engine(url)
    _engines.append(engine)
    return engine


@pytest.fixture(autouse=True)
def _dispose_test_engines() -> Iterator[None]:
    yield
    # Pooled connections left open would keep PostgreSQL from emptying the schema for the
    # next test, and keep SQLite files locked on some platforms.
    while _engines:
        _engines.pop().dispose()


def _admin_engine(url) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale_databases(conn) -> None:
    """Drop test databases left by killed runs on this machine (their process is gone)."""
    names = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                         {"p": _PREFIX + "%"}).scalars().all()
    for name in names:
        found = re.fullmatch(_PREFIX + r"\w+_(\d+)", name)
        if not found or _process_alive(int(found.group(1))):
            continue
        try:
            # No FORCE: a database still in use (another machine's run) refuses to go.
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        except DBAPIError:
            pass


@pytest.fixture(scope="session")
def _postgres_target() -> Iterator[tuple[str, str]]:
    """``(url, schema)`` of this process's own PostgreSQL database (or schema)."""
    base = make_url(os.environ[POSTGRES_ENV])
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{_PREFIX}{worker}_{os.getpid()}"
    admin = _admin_engine(base)
    with admin.connect() as conn:
        _sweep_stale_databases(conn)
        try:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            mode = "database"
        except DBAPIError:  # no CREATEDB privilege: a schema in the given database
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{name}"'))
            mode = "schema"
    if mode == "database":
        url = base.set(database=name)
        schema = "public"
    else:
        url = base.update_query_dict({"options": f"-csearch_path={name}"})
        schema = name
    try:
        yield url.render_as_string(hide_password=False), schema
    finally:
        with admin.connect() as conn:
            if mode == "database":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


def _empty_postgres(url: str, schema: str) -> None:
    """Drop everything in ``schema`` (tables, sequences, alembic_version, leftovers)."""
    admin = _admin_engine(url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        admin.dispose()


@pytest.fixture(params=[
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(
        not os.environ.get(POSTGRES_ENV), reason="PAPO_TEST_POSTGRES_URL not set")),
])
def db_url(request, tmp_path) -> str:
    """The URL of an empty database of the parametrized kind, for this test alone."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'papo.db'}"
    url, schema = request.getfixturevalue("_postgres_target")
    _empty_postgres(url, schema)
    return url


@pytest.fixture
def db(db_url) -> Engine:
    """An Engine on a fresh database with every papo table created."""
    engine = make_test_engine(db_url)
    create_schema(engine)
    return engine


# ---------------------------------------------------------------------------------------
# 2. Repositories
# ---------------------------------------------------------------------------------------

@pytest.fixture
def flows(db) -> FlowRepository:
    return FlowRepository(db)


# ---------------------------------------------------------------------------------------
# 3. Sample flows
# ---------------------------------------------------------------------------------------

@pytest.fixture
def sample_flow() -> Callable[[str], dict]:
    """``sample_flow("boas-vindas")`` -> the document in ``sample_flows/boas-vindas.json``."""

    def load(name: str) -> dict:
        return json.loads((SAMPLE_FLOWS / f"{name}.json").read_text(encoding="utf-8"))

    return load


# --- worker fixtures ---
# Timers and the worker (tests/test_timers.py, tests/test_worker.py).

@pytest.fixture
def postgres_url(request) -> str:
    """An empty PostgreSQL test database (no tables), for checks that need PostgreSQL."""
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip("PAPO_TEST_POSTGRES_URL not set: multi-process timer checks need PostgreSQL "
                    "(FOR UPDATE SKIP LOCKED); the SQLite variant runs without it")
    url, schema = request.getfixturevalue("_postgres_target")
    _empty_postgres(url, schema)
    return url


@pytest.fixture
def sqlite_file_url(tmp_path) -> str:
    """An empty SQLite file database that other processes can open too."""
    return f"sqlite:///{tmp_path / 'papo.db'}"


# --- API fixtures ---
# The web app on the parametrized database, users with API tokens, a hand-moved clock
# (tests/test_api_*.py; any test of the web app may use them).

API_USERS = (("admin", "admin"), ("ana", "agent"), ("bruno", "agent"))


@pytest.fixture
def app(db_url, tmp_path):
    """``editor.create_app`` on a fresh database of each kind (``db_url``), tables created."""
    from editor import create_app

    app = create_app({
        "PAPO_DATABASE_URL": db_url,
        "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
    })
    engine = app.extensions["papo"]["engine"]
    create_schema(engine)
    yield app
    engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api_tokens(app, monkeypatch) -> dict[str, str]:
    """``{login: API token}`` for admin ``admin`` and agents ``ana`` and ``bruno``."""
    from functools import partial

    from werkzeug.security import generate_password_hash

    from engine import accounts

    # scrypt costs ~0.25 s a user; these users never log in with their password.
    monkeypatch.setattr(accounts, "generate_password_hash",
                        partial(generate_password_hash, method="pbkdf2:sha256:1"))
    engine = app.extensions["papo"]["engine"]
    tokens = {}
    for login, role in API_USERS:
        accounts.create_user(engine, login, role, password="senha-de-teste")
        tokens[login] = accounts.create_token(engine, login)
    return tokens


@pytest.fixture
def admin_headers(api_tokens) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_tokens['admin']}"}


@pytest.fixture
def agent_headers(api_tokens) -> dict[str, str]:
    """The agent ``ana``'s token."""
    return {"Authorization": f"Bearer {api_tokens['ana']}"}


class ApiClock:
    """A clock tests move by hand (epoch seconds)."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def api_clock(app) -> ApiClock:
    """Gives the app a ``Service`` whose clock starts at 2026-11-20T10:00:00Z and moves
    only by ``api_clock.advance(seconds)``."""
    from engine.service import Service

    clock = ApiClock(1_795_168_800.0)
    papo = app.extensions["papo"]
    papo["service"] = Service(papo["engine"], papo["settings"], clock=clock)
    return clock


class ApiCaller:
    """The test client speaking as one of ``API_USERS``: ``api.post(path, json=..., user="ana")``.

    ``user=None`` sends no Authorization header.
    """

    def __init__(self, client, tokens: dict[str, str]):
        self.client = client
        self.tokens = tokens

    def call(self, method: str, path: str, user: str | None = "admin", **kwargs):
        headers = dict(kwargs.pop("headers", None) or {})
        if user is not None:
            headers.setdefault("Authorization", f"Bearer {self.tokens[user]}")
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.call("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.call("PUT", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.call("DELETE", path, **kwargs)


@pytest.fixture
def api(client, api_tokens) -> ApiCaller:
    return ApiCaller(client, api_tokens)


# --- browser fixtures (tests/browser_support.py) ---
from browser_support import browser, live_server, new_page  # noqa: E402,F401

# --- whatsapp fixtures ---
# A fake WhatsApp Graph API for tests/test_whatsapp.py and tests/test_outbox.py.

@pytest.fixture
def fake_graph():
    """A fake Graph API on 127.0.0.1 (random port): ``fake_graph.api_base``, ``.delivered``."""
    from fake_graph import FakeGraph

    with FakeGraph() as graph:
        yield graph
