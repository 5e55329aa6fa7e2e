"""``papo db backup FILE`` / ``papo db restore FILE`` (issue 18).

SQLite: a backup taken while messages are being written is a consistent copy (every
message with its reply, nothing half-written); restored into a fresh instance, the API
answers the same conversations. Restore refuses while a server holds the database.
PostgreSQL: the command prints what to run with pg_dump / pg_restore and connects nowhere.
"""
from __future__ import annotations

import sqlite3
import threading

import pytest
from click.testing import CliRunner
from ops_support import ECHO_FLOW, make_app

from editor.cli import main
from engine import accounts
from engine.flows import FlowRepository
from engine.migrate import upgrade


def papo(*args: str, url: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), env={"PAPO_DATABASE_URL": url}, input=input)


@pytest.fixture
def live(tmp_path):
    """A migrated SQLite instance with the echo flow, an admin token and its app."""
    url = f"sqlite:///{tmp_path / 'live' / 'papo.db'}"
    (tmp_path / "live").mkdir()
    upgrade(url)
    app = make_app(url, tmp_path / "live")
    engine = app.extensions["papo"]["engine"]
    FlowRepository(engine).create(ECHO_FLOW, actor="test")
    FlowRepository(engine).publish(ECHO_FLOW["id"], actor="test")
    accounts.create_user(engine, "admin", "admin", password="admin-senha-123")
    app.config["token"] = accounts.create_token(engine, "admin")
    app.config["url"] = url
    yield app
    engine.dispose()


def send(client, token: str, contact: str, message_id: str):
    answer = client.post("/api/v1/inbound", headers={"Authorization": f"Bearer {token}"}, json={
        "channel": "api", "contact": {"external_id": contact, "name": contact.title()},
        "message": {"id": message_id, "text": f"pedido {message_id}"}})
    assert answer.status_code == 200, answer.data
    return answer.get_json()


def conversations_seen(app) -> dict:
    """What the API shows: contact → [(direction, text)...] and status, for every conversation."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {app.config['token']}"}
    seen, cursor = {}, None
    while True:
        page = client.get("/api/v1/conversations?limit=200" + (f"&cursor={cursor}" if cursor else ""),
                          headers=headers).get_json()
        for item in page["items"]:
            full = client.get(f"/api/v1/conversations/{item['id']}", headers=headers).get_json()
            seen[full["contact"]["external_id"]] = (
                full["status"], [(m["direction"], m["text"]) for m in full["messages"]])
        cursor = page["next_cursor"]
        if not cursor:
            return seen


def restored_instance(tmp_path, name: str, backup_file, token: str):
    url = f"sqlite:///{tmp_path / name / 'papo.db'}"
    result = papo("db", "restore", str(backup_file), "--yes", url=url)
    assert result.exit_code == 0, result.output
    app = make_app(url, tmp_path / name)
    app.config["token"] = token
    return app


def test_backup_while_writing_restores_into_a_fresh_instance_with_the_same_data(live, tmp_path):
    client = live.test_client()
    token = live.config["token"]
    stop = threading.Event()
    sent = []

    def writer() -> None:
        n = 0
        while not stop.is_set() and n < 2000:
            send(client, token, f"cliente-{n % 25}", f"w{n}")
            sent.append(n)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(sent) < 40:
            threading.Event().wait(0.01)
        under_load = papo("db", "backup", str(tmp_path / "during.db"), url=live.config["url"])
    finally:
        stop.set()
        thread.join()
    assert under_load.exit_code == 0, under_load.output
    assert "Backed up" in under_load.output

    restored = restored_instance(tmp_path, "fresh", tmp_path / "during.db", token)
    seen = conversations_seen(restored)
    assert seen, "the backup holds the conversations written before it"
    for contact, (_status, lines) in seen.items():
        inbound = [text for direction, text in lines if direction == "in"]
        replies = [text for direction, text in lines if direction == "out"]
        # every message stored with its reply, in one piece: no transaction cut in half
        assert len(inbound) == len(replies), (contact, lines)
        assert set(replies) == {f"Recebido, {contact.title()}."}
    assert 40 <= sum(len(lines) for _s, lines in seen.values()) // 2 <= len(sent)

    # At rest: the restored instance answers exactly what the live one does.
    at_rest = papo("db", "backup", str(tmp_path / "rest.db"), url=live.config["url"])
    assert at_rest.exit_code == 0, at_rest.output
    again = restored_instance(tmp_path, "fresh2", tmp_path / "rest.db", token)
    assert conversations_seen(again) == conversations_seen(live)
    # ... and keeps working: a new message is answered and counted once
    send(again.test_client(), token, "cliente-0", "after-restore")
    assert conversations_seen(again)["cliente-0"][1][-1] == ("out", "Recebido, Cliente-0.")
    again.extensions["papo"]["engine"].dispose()
    restored.extensions["papo"]["engine"].dispose()


def test_restore_is_refused_while_a_server_holds_the_database(live, tmp_path):
    client = live.test_client()
    token = live.config["token"]
    send(client, token, "ana", "a1")
    backup = papo("db", "backup", str(tmp_path / "b.db"), url=live.config["url"])
    assert backup.exit_code == 0, backup.output
    send(client, token, "bia", "b1")  # the server has the database open (its pool)

    refused = papo("db", "restore", str(tmp_path / "b.db"), "--yes", url=live.config["url"])
    assert refused.exit_code == 1
    assert "in use" in refused.output and "Nothing restored" in refused.output
    assert set(conversations_seen(live)) == {"ana", "bia"}  # nothing changed

    live.extensions["papo"]["engine"].dispose()  # the server stops
    done = papo("db", "restore", str(tmp_path / "b.db"), "--yes", url=live.config["url"])
    assert done.exit_code == 0, done.output
    assert "kept as" in done.output
    assert set(conversations_seen(live)) == {"ana"}
    kept = [p for p in (tmp_path / "live").iterdir() if ".before-restore-" in p.name]
    assert len(kept) == 1
    with sqlite3.connect(kept[0]) as old:
        assert old.execute("SELECT count(*) FROM conversations").fetchone()[0] == 2


def test_restore_asks_before_replacing_unless_told_yes(live, tmp_path):
    assert papo("db", "backup", str(tmp_path / "b.db"), url=live.config["url"]).exit_code == 0
    live.extensions["papo"]["engine"].dispose()
    declined = papo("db", "restore", str(tmp_path / "b.db"), url=live.config["url"], input="n\n")
    assert declined.exit_code == 1
    assert "Replace the database" in declined.output
    assert not [p for p in (tmp_path / "live").iterdir() if ".before-restore-" in p.name]


def test_backup_and_restore_refuse_bad_files(live, tmp_path):
    url = live.config["url"]
    target = tmp_path / "b.db"
    assert papo("db", "backup", str(target), url=url).exit_code == 0
    exists = papo("db", "backup", str(target), url=url)
    assert exists.exit_code == 1 and "already exists" in exists.output
    assert papo("db", "backup", str(target), "--force", url=url).exit_code == 0
    missing = papo("db", "backup", str(tmp_path / "no" / "where.db"), url=url)
    assert missing.exit_code == 1 and "does not exist" in missing.output

    live.extensions["papo"]["engine"].dispose()
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all\n" * 100)
    refused = papo("db", "restore", str(junk), "--yes", url=url)
    assert refused.exit_code == 1 and "Nothing restored" in refused.output
    assert "not a SQLite database" in refused.output
    nowhere = papo("db", "restore", str(tmp_path / "nothing.db"), "--yes", url=url)
    assert nowhere.exit_code == 1 and "no backup file" in nowhere.output
    assert "Traceback" not in refused.output + nowhere.output
    assert len(conversations_seen(live)) == 0  # the database is untouched


def test_postgresql_backup_prints_the_pg_dump_command_without_the_password(tmp_path):
    url = "postgresql+psycopg://papo:s3cr3t@db.internal:5433/papo?sslmode=require"
    backup = papo("db", "backup", str(tmp_path / "papo.dump"), url=url)
    assert backup.exit_code == 1
    assert "pg_dump --format=custom" in backup.output
    assert "postgresql://papo@db.internal:5433/papo?sslmode=require" in backup.output
    assert "s3cr3t" not in backup.output and "+psycopg" not in backup.output
    restore = papo("db", "restore", str(tmp_path / "papo.dump"), "--yes", url=url)
    assert restore.exit_code == 1
    assert "pg_restore" in restore.output and "s3cr3t" not in restore.output
