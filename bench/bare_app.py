"""The ceiling for ``bench/http_inbound.py``: bare Flask under gunicorn, one read + one write.

Each ``POST /inbound`` (the same JSON body as papo's ``/api/v1/inbound``) reads the
contact's row and writes one message row in one transaction with SQLAlchemy Core. On
SQLite: WAL, ``synchronous=NORMAL``, the write lock taken at ``BEGIN IMMEDIATE`` (as papo
does); on PostgreSQL the same statements. No authentication, no flow, no templates: what
an inbound message costs before papo does anything of its own.

    BARE_DATABASE_URL=sqlite:////tmp/bare.db gunicorn -w 2 'bench.bare_app:create_app()'
"""
from __future__ import annotations

import os

from flask import Flask, jsonify, request
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    update,
)

metadata = MetaData()
contacts = Table(
    "bare_contacts", metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(200), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("seen", Integer, nullable=False, default=0),
)
messages = Table(
    "bare_messages", metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", Integer, nullable=False),
    Column("external_id", String(200), nullable=False),
    Column("text", Text, nullable=False),
)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str):
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_size=5, max_overflow=5)


def create_schema(url: str) -> None:
    """Empty tables (dropped first if they exist)."""
    engine = make_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    engine.dispose()


def create_app() -> Flask:
    url = os.environ["BARE_DATABASE_URL"]
    engine = make_engine(url)
    app = Flask("bare")
    app.config["BARE_ENGINE"] = engine  # for the benchmark's statement count

    @app.post("/inbound")
    def inbound():
        body = request.get_json(force=True)
        external_id = body["contact"]["external_id"]
        text = body["message"]["text"]
        with engine.begin() as conn:
            row = conn.execute(select(contacts.c.id, contacts.c.seen).where(
                contacts.c.external_id == external_id)).first()  # the one read
            if row is None:  # first message of a contact (once per contact)
                contact_id = conn.execute(insert(contacts).values(
                    external_id=external_id, name=body["contact"].get("name") or "",
                    seen=0)).inserted_primary_key[0]
            else:
                contact_id = row.id
            conn.execute(insert(messages).values(  # the one write
                contact_id=contact_id, external_id=str(body["message"]["id"]), text=text))
            if row is None:
                conn.execute(update(contacts).where(contacts.c.id == contact_id).values(seen=1))
        # An answer the size of papo's (two replies), so both put the same bytes on the wire.
        return jsonify({"conversation_id": contact_id, "status": "concluded",
                        "replies": [{"text": f"Olá, {external_id}!", "buttons": []},
                                    {"text": "Como posso ajudar?", "buttons": ["Planos", "Suporte"]}]})

    return app
