"""The worker: claims and leases, exactly-once across processes and crashes, periodic
jobs, back-off, start-up validation and the ``papo worker`` / ``papo timers`` commands."""
from __future__ import annotations

import copy
import logging
import os
import select as io_select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy
from click.testing import CliRunner
from conftest import make_test_engine
from sqlalchemy import func, insert, select, update

from editor.cli import main as papo
from engine.db import create_schema
from engine.flows import FlowRepository
from engine.service import Service, utc
from engine.settings import Settings
from engine.store import contacts, conversations, messages, processed_messages, timers
from engine.worker import Backoff, Worker, safe_url

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000.0
BEFORE = "Oi! Já volto com a sua resposta."
AFTER = "Prontinho, aqui está."


def block(block_id: str, kind: str, **data) -> dict:
    return {"id": block_id, "type": kind, "position": {"x": 0, "y": 0}, "data": data}


# message → wait 1 s → message
WAIT_FLOW = {
    "schema_version": 1, "id": "retorno", "name": "Retorno", "triggers": [{"type": "default"}],
    "start": "m1",
    "blocks": [block("m1", "message", text=BEFORE), block("w", "wait", seconds=1),
               block("m2", "message", text=AFTER)],
    "edges": [{"from": "m1", "port": "next", "to": "w"}, {"from": "w", "port": "next", "to": "m2"}],
}


def seed_waiting(db, count: int, at: float = T0) -> Service:
    """``count`` conversations waiting at the flow's wait block, all due at ``at + 1``.

    The first goes through the service; the others are copies of its rows with their own
    contact, conversation, run id and timer (bulk inserts keep this fast).
    """
    repo = FlowRepository(db)
    repo.create(WAIT_FLOW)
    repo.publish(WAIT_FLOW["id"])
    service = Service(db, Settings(), clock=lambda: at)
    first = service.handle_inbound("api", {"external_id": "c0", "name": "Cliente 0"},
                                   {"id": "m0", "text": "oi"})
    with db.begin() as conn:
        conv = conn.execute(select(conversations).where(
            conversations.c.id == first["conversation_id"])).mappings().one()
        timer = conn.execute(select(timers).where(
            timers.c.conversation_id == conv["id"])).mappings().one()
        names = [f"c{i}" for i in range(1, count)]
        if not names:
            return service
        conn.execute(insert(contacts), [{"channel": "api", "external_id": n, "name": n} for n in names])
        contact_ids = dict(conn.execute(select(contacts.c.external_id, contacts.c.id).where(
            contacts.c.external_id.in_(names))).all())
        rows, runs = [], {}
        for name in names:
            state = copy.deepcopy(conv["state"])
            state["contact"] = {"name": name, "external_id": name}
            state["run"]["id"] = runs[name] = f"r-{uuid.uuid4().hex[:16]}"
            rows.append({"contact_id": contact_ids[name], "channel": "api", "status": conv["status"],
                         "name_norm": name, "state": state, "version": 1,
                         "created_at": conv["created_at"], "updated_at": conv["updated_at"]})
        conn.execute(insert(conversations), rows)
        conv_ids = conn.execute(select(contacts.c.external_id, conversations.c.id)
                                .join(conversations, conversations.c.contact_id == contacts.c.id)
                                .where(contacts.c.external_id.in_(names))).all()
        conn.execute(insert(timers), [
            {"conversation_id": cid, "kind": "wait", "due_at": timer["due_at"], "status": "pending",
             "payload": {**timer["payload"], "run_id": runs[name]}} for name, cid in conv_ids])
    return service


def counts(db) -> dict:
    """What the customers saw: replies after the wait, per conversation; timers by status."""
    with db.connect() as conn:
        after = conn.execute(select(messages.c.conversation_id, func.count()).where(
            messages.c.author == "bot", messages.c.text == AFTER)
            .group_by(messages.c.conversation_id)).all()
        by_status = dict(conn.execute(select(timers.c.status, func.count())
                                      .group_by(timers.c.status)).all())
        workers = dict(conn.execute(select(timers.c.claimed_by, func.count()).where(
            timers.c.status == "fired").group_by(timers.c.claimed_by)).all())
    return {"after": sum(n for _, n in after), "conversations": len(after),
            "most_per_conversation": max((n for _, n in after), default=0),
            "pending": by_status.get("pending", 0), "fired": by_status.get("fired", 0),
            "workers": workers}


@pytest.fixture
def clock() -> list[float]:
    return [T0]


def waiting_service(db, clock, count: int = 1) -> Service:
    seed_waiting(db, count, at=T0)
    return Service(db, Settings(), clock=lambda: clock[0])


# -- claims and leases ----------------------------------------------------------------------

def test_claim_takes_only_due_timers_due_first_up_to_the_batch(db, clock):
    service = waiting_service(db, clock, 5)
    with db.begin() as conn:  # make the due order differ from the id order
        ids = conn.execute(select(timers.c.id).order_by(timers.c.id)).scalars().all()
        for offset, timer_id in zip((4, 3, 2, 1, 100), ids, strict=True):
            conn.execute(update(timers).where(timers.c.id == timer_id)
                         .values(due_at=utc(T0 + offset)))
    worker = Worker(service, batch=2)
    assert worker.claim(T0) == []
    assert worker.claim(T0 + 10) == [ids[3], ids[2]]
    assert worker.claim(T0 + 10) == [ids[1], ids[0]]
    assert worker.claim(T0 + 10) == []  # the last one is not due yet


def test_a_claimed_timer_is_not_claimed_again_while_the_lease_holds(db, clock):
    service = waiting_service(db, clock, 3)
    first, second = Worker(service, "w1", lease_s=30), Worker(service, "w2", lease_s=30)
    claimed = first.claim(T0 + 5)
    assert len(claimed) == 3
    assert second.claim(T0 + 5) == []
    assert second.claim(T0 + 5 + 29) == []
    # w1 died without firing them: once the lease is over they are taken again
    assert sorted(second.claim(T0 + 5 + 31)) == sorted(claimed)


def test_a_dead_workers_claims_are_fired_after_the_lease(db, clock):
    service = waiting_service(db, clock, 4)
    Worker(service, "dead", lease_s=30).claim(T0 + 2)
    survivor = Worker(service, "alive", lease_s=30)
    assert survivor.run_once(T0 + 3) == 0
    assert survivor.run_once(T0 + 33) == 4
    assert counts(db) | {"workers": None} == {"after": 4, "conversations": 4,
                                               "most_per_conversation": 1, "pending": 0,
                                               "fired": 4, "workers": None}


def test_a_late_firing_by_the_old_owner_is_a_no_op(db, clock):
    service = waiting_service(db, clock, 2)
    slow = Worker(service, "slow", lease_s=5)
    ids = slow.claim(T0 + 2)
    fast = Worker(service, "fast", lease_s=5)
    assert fast.run_once(T0 + 10) == 2
    for timer_id in ids:  # the slow worker wakes up and fires what it had claimed
        assert service.fire_timer(timer_id, T0 + 11)["fired"] is False
    assert counts(db)["after"] == 2


def test_release_gives_claims_back_at_once(db, clock):
    service = waiting_service(db, clock, 3)
    stopping = Worker(service, "stopping")
    stopping.claim(T0 + 2)
    assert stopping.release() == 3
    assert len(Worker(service, "other").claim(T0 + 2)) == 3


def test_drain_fires_every_due_timer_in_several_batches(db, clock):
    service = waiting_service(db, clock, 7)
    assert Worker(service, batch=3).drain(T0 + 2) == 7
    assert counts(db)["after"] == 7


def test_a_failing_timer_stays_pending_and_the_others_fire(db, clock, caplog, monkeypatch):
    service = waiting_service(db, clock, 3)
    [bad, *_] = Worker(service, "probe").claim(T0 + 2)
    Worker(service, "probe").release()
    from engine.service import unit
    from engine.service.changes import TimerFired

    real = unit.decide  # what one timer does, decided inside the batch

    def decide(snapshot, event):
        if isinstance(event, TimerFired) and event.timer_id == bad:
            raise RuntimeError("a bug in a block")
        return real(snapshot, event)

    monkeypatch.setattr(unit, "decide", decide)
    with caplog.at_level(logging.ERROR, logger="papo.worker"):
        assert Worker(service).run_once(T0 + 2) == 2
    assert "stays pending" in caplog.text
    monkeypatch.setattr(unit, "decide", real)
    assert Worker(service).run_once(T0 + 2 + 31) == 1  # tried again after the lease
    assert counts(db)["after"] == 3
    assert counts(db)["most_per_conversation"] == 1


def test_a_second_timer_of_a_conversation_fires_after_the_first_and_sends_nothing(db, clock):
    service = waiting_service(db, clock, 3)
    with db.begin() as conn:  # conversation 1 gets a copy of its wait timer, due as well
        original = conn.execute(select(timers).order_by(timers.c.id).limit(1)).mappings().one()
        copy_id = conn.execute(insert(timers).values(
            conversation_id=original["conversation_id"], kind="wait", due_at=original["due_at"],
            status="pending", payload=original["payload"])).inserted_primary_key[0]
    results = service.fire_timers([copy_id, original["id"]], T0 + 2)
    # the first one moved the run past the wait; the copy, fired after it, finds it there
    assert [r["replies"] for r in results] == [[], [{"text": AFTER, "buttons": []}]]
    assert Worker(service).run_once(T0 + 2) == 2  # the two other conversations
    found = counts(db)
    assert (found["after"], found["most_per_conversation"], found["pending"]) == (3, 1, 0)


def test_timers_whose_writes_fail_together_are_fired_one_by_one(db, clock, monkeypatch):
    from engine.service import unit

    service = waiting_service(db, clock, 4)
    real = unit.write

    def broken(conn, batch):
        if len(batch) > 1:
            raise RuntimeError("the database refused the batch")
        return real(conn, batch)

    monkeypatch.setattr(unit, "write", broken)
    assert Worker(service).run_once(T0 + 2) == 4
    found = counts(db)
    assert (found["after"], found["most_per_conversation"], found["pending"]) == (4, 1, 0)


# -- periodic jobs --------------------------------------------------------------------------

def test_cleanup_forgets_inbound_message_ids_older_than_the_retention(db, clock):
    with db.begin() as conn:
        conn.execute(insert(processed_messages), [
            {"channel": "api", "external_id": f"old-{i}", "conversation_id": 1, "result": {},
             "at": utc(T0 - 8 * 86400 - i)} for i in range(7)] + [
            {"channel": "api", "external_id": "recent", "conversation_id": 1, "result": {},
             "at": utc(T0 - 6 * 86400)}])
    worker = Worker(Service(db, Settings(), clock=lambda: clock[0]))
    assert worker.cleanup() == 7
    with db.connect() as conn:
        left = conn.execute(select(processed_messages.c.external_id)).scalars().all()
    assert left == ["recent"]


def test_cleanup_deletes_finished_timers_older_than_the_retention_and_keeps_the_rest(db, clock):
    service = waiting_service(db, clock, 4)
    with db.begin() as conn:
        ids = conn.execute(select(timers.c.id).order_by(timers.c.id)).scalars().all()
        for timer_id, status, age_days in zip(ids, ("fired", "cancelled", "pending", "fired"),
                                              (8, 9, 30, 6), strict=True):
            conn.execute(update(timers).where(timers.c.id == timer_id).values(
                status=status, due_at=utc(T0 - age_days * 86400)))
    assert Worker(service).cleanup() == 2
    with db.connect() as conn:
        left = dict(conn.execute(select(timers.c.id, timers.c.status)).all())
    # an overdue timer still pending is work to do, never "old"; a recent fired one stays
    assert left == {ids[2]: "pending", ids[3]: "fired"}


def test_the_outbox_job_sends_through_engine_outbox(db, monkeypatch):
    from engine import outbox

    calls = []
    monkeypatch.setattr(outbox, "send_due", lambda service: calls.append(service) or (3 if len(calls) == 1 else 0))
    service = Service(db, Settings())
    assert Worker(service).send_outbox() == 3
    assert calls == [service, service]  # again while a batch sends anything


# -- a database that cannot be reached ------------------------------------------------------

def test_backoff_doubles_up_to_thirty_seconds():
    now = [0.0]
    backoff = Backoff(monotonic=lambda: now[0])
    delays = []
    for _ in range(7):
        delays.append(backoff.failed())
        assert backoff.failed() is None  # a second job failing meanwhile: reported once
        now[0] += delays[-1]
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.succeeded() is True
    assert backoff.failed() == 1


def test_an_unreachable_database_is_logged_and_retried_with_backoff(tmp_path, caplog):
    missing = make_test_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'papo.db'}")
    now = [0.0]
    worker = Worker(Service(missing, Settings()), backoff=Backoff(monotonic=lambda: now[0]))
    with caplog.at_level(logging.ERROR, logger="papo.worker"):
        for tick in range(0, 40):  # one tick a second for 40 s
            now[0] = float(tick)
            worker.tick_timers()
    errors = [r.getMessage() for r in caplog.records]
    # attempts at 0, 1, 3, 7, 15, 31 s: not one per tick
    assert len(errors) == 6
    assert all("cannot reach the database" in e for e in errors)
    assert errors[0].endswith("trying again in 1 s") and errors[-1].endswith("trying again in 30 s")


def test_an_outbox_run_that_needs_no_query_does_not_end_the_backoff(tmp_path, caplog,
                                                                    monkeypatch):
    from engine import outbox

    # WhatsApp not configured: send_due returns without a query at all
    monkeypatch.setattr(outbox, "send_due", lambda service: 0)
    missing = make_test_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'papo.db'}")
    now = [0.0]
    worker = Worker(Service(missing, Settings()), backoff=Backoff(monotonic=lambda: now[0]))
    with caplog.at_level(logging.ERROR, logger="papo.worker"):
        worker.tick_timers()
        now[0] = 1.0
        worker.tick_outbox()
        worker.tick_timers()
    assert [r.getMessage()[-19:] for r in caplog.records] == ["trying again in 1 s",
                                                              "trying again in 2 s"]


def test_missing_tables_say_to_run_db_upgrade(tmp_path, caplog):
    empty = make_test_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    worker = Worker(Service(empty, Settings()))
    with caplog.at_level(logging.ERROR, logger="papo.worker"):
        worker.tick_timers()
    assert "papo db upgrade" in caplog.text


def test_safe_url_hides_the_password():
    assert safe_url("postgresql+psycopg://papo:s3cret@db.local:5432/papo") == \
        "postgresql+psycopg://papo@db.local:5432/papo"


# -- command line ---------------------------------------------------------------------------

def run_papo(args: list[str], **env) -> object:
    base = {"PAPO_AUTO_CONCLUDE_AFTER": None, "PAPO_DEDUP_RETENTION": None}
    return CliRunner().invoke(papo, args, env={**base, **env}, catch_exceptions=False)


@pytest.mark.parametrize("command", [["worker", "--once"], ["worker"], ["serve"],
                                     ["timers", "list"]])
def test_a_malformed_auto_conclude_setting_stops_start_up(command, tmp_path):
    result = run_papo(command, PAPO_AUTO_CONCLUDE_AFTER="8 hours",
                      PAPO_DATABASE_URL=f"sqlite:///{tmp_path / 'papo.db'}",
                      PAPO_INSTANCE_PATH=str(tmp_path))
    assert result.exit_code != 0
    assert "PAPO_AUTO_CONCLUDE_AFTER" in result.output
    assert "Traceback" not in result.output
    assert "started" not in result.output


def test_a_malformed_dedup_retention_stops_the_worker(tmp_path):
    result = run_papo(["worker", "--once"], PAPO_DEDUP_RETENTION="a week",
                      PAPO_DATABASE_URL=f"sqlite:///{tmp_path / 'papo.db'}")
    assert result.exit_code != 0
    assert "PAPO_DEDUP_RETENTION" in result.output


def test_papo_worker_once_fires_what_is_due(db, db_url):
    seed_waiting(db, 3, at=time.time() - 10)
    result = run_papo(["worker", "--once"], PAPO_DATABASE_URL=db_url)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("papo worker ") and f", database {safe_url(db_url)}" in first
    assert "3 timer(s) fired." in result.output
    assert counts(db)["after"] == 3


def test_papo_timers_list_and_cancel(db, db_url):
    service = seed_waiting(db, 2)
    conv = service.list_timers()[0]["conversation_id"]
    listed = run_papo(["timers", "list"], PAPO_DATABASE_URL=db_url)
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split() == ["id", "conversation", "kind", "due_at"]
    assert len(lines) == 3 and lines[1].split()[2:] == ["wait", "2027-01-15T08:00:01Z"]

    only = run_papo(["timers", "list", "--conversation", str(conv)], PAPO_DATABASE_URL=db_url)
    [row] = only.output.splitlines()[1:]
    timer_id = int(row.split()[0])
    assert int(row.split()[1]) == conv

    cancelled = run_papo(["timers", "cancel", str(timer_id)], PAPO_DATABASE_URL=db_url)
    assert cancelled.exit_code == 0 and f"Timer {timer_id} cancelled." in cancelled.output
    again = run_papo(["timers", "cancel", str(timer_id)], PAPO_DATABASE_URL=db_url)
    assert again.exit_code == 1
    assert "is not pending: it was already cancelled" in again.output
    assert "Traceback" not in again.output
    unknown = run_papo(["timers", "cancel", "999999"], PAPO_DATABASE_URL=db_url)
    assert unknown.exit_code == 1 and "There is no timer 999999." in unknown.output
    empty = run_papo(["timers", "list", "--conversation", str(conv)], PAPO_DATABASE_URL=db_url)
    assert empty.output.strip() == "No pending timers."


def test_papo_timers_cancel_a_fired_timer_is_refused_kindly(db, db_url):
    service = seed_waiting(db, 1, at=time.time() - 10)
    [timer_id] = [t["id"] for t in service.list_timers()]
    Worker(service).run_once(time.time())
    result = run_papo(["timers", "cancel", str(timer_id)], PAPO_DATABASE_URL=db_url)
    assert result.exit_code == 1
    assert "it has already fired" in result.output


# -- real processes -------------------------------------------------------------------------

def spawn(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_papo_worker_stops_cleanly_on_sigterm(db, db_url):
    seed_waiting(db, 3, at=time.time() - 10)
    proc = spawn(["-c", "from editor.cli import main; main()", "worker"],
                 {"PAPO_DATABASE_URL": db_url, "PAPO_AUTO_CONCLUDE_AFTER": ""})
    try:
        started = proc.stdout.readline()
        assert started.startswith("papo worker ") and "started, database" in started
        deadline = time.time() + 20
        while counts(db)["after"] < 3 and time.time() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM received" in err and "stopped" in err
    assert counts(db)["after"] == 3


def test_papo_worker_waits_for_a_database_that_cannot_be_reached(tmp_path):
    # Port 1 on the loopback: nothing listens there, the connection is refused at once.
    url = "postgresql+psycopg://papo:s3cret@127.0.0.1:1/papo"
    proc = spawn(["-c", "from editor.cli import main; main()", "worker"],
                 {"PAPO_DATABASE_URL": url, "PAPO_AUTO_CONCLUDE_AFTER": ""})
    attempts: list[tuple[float, str]] = []
    try:
        started = proc.stdout.readline()
        deadline = time.monotonic() + 30
        while len(attempts) < 3 and time.monotonic() < deadline:
            ready, _, _ = io_select.select([proc.stderr], [], [], deadline - time.monotonic())
            line = proc.stderr.readline() if ready else ""
            if not line:
                break
            if "cannot reach the database" in line:
                attempts.append((time.monotonic(), line))
        assert proc.poll() is None  # still there, waiting for the database
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert "started, database postgresql+psycopg://papo@127.0.0.1:1/papo" in started
    assert "s3cret" not in started + err + "".join(line for _, line in attempts)
    assert [line.rsplit("trying again in ", 1)[1].strip() for _, line in attempts] == \
        ["1 s", "2 s", "4 s"]
    # backing off, not spinning: at least the announced delay between attempts
    assert attempts[1][0] - attempts[0][0] >= 0.9 and attempts[2][0] - attempts[1][0] >= 1.9
    assert proc.returncode == 0


WORKER_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from sqlalchemy import event, func, select
    from engine.db import make_engine
    from engine.service import Service
    from engine.settings import Settings
    from engine.store import timers
    from engine.worker import Worker

    db = make_engine(os.environ["URL"])
    slow = float(os.environ.get("SLOW_S") or 0)
    if slow:  # stretch every statement so that a kill lands inside a transaction
        event.listen(db, "after_cursor_execute", lambda *a: time.sleep(slow))
    service = Service(db, Settings())
    fire_timers = service.fire_timers

    def fire_and_tell(timer_ids, now=None):
        results = fire_timers(timer_ids, now)
        for result in results:  # progress, for the test that kills this process
            if result["fired"]:
                print("fired", flush=True)
        return results

    service.fire_timers = fire_and_tell
    worker = Worker(service, worker_id=sys.argv[1],
                    batch=int(os.environ["BATCH"]), lease_s=float(os.environ["LEASE_S"]))
    while True:
        fired = worker.run_once()
        with db.connect() as conn:
            left = conn.execute(select(func.count()).select_from(timers)
                                .where(timers.c.status == "pending")).scalar()
        if not left:
            break
        if not fired:
            time.sleep(0.05)
""")


def start_worker(url: str, worker_id: str, batch: int = 50, lease_s: float = 30,
                 slow_s: float = 0) -> subprocess.Popen:
    return spawn(["-c", WORKER_SCRIPT, worker_id],
                 {"URL": url, "BATCH": str(batch), "LEASE_S": str(lease_s), "SLOW_S": str(slow_s)})


def finish(*procs: subprocess.Popen, timeout: float = 120) -> None:
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=timeout)
        finally:
            proc.kill()
        assert proc.returncode == 0, err


def two_workers_fire_each_timer_once(url: str, count: int, both_work: bool = True) -> None:
    db = make_test_engine(url)
    create_schema(db)
    seed_waiting(db, count, at=time.time() - 60)
    finish(start_worker(url, "worker-a"), start_worker(url, "worker-b"))
    seen = counts(db)
    assert seen["after"] == count  # every customer got the message after the wait …
    assert seen["conversations"] == count and seen["most_per_conversation"] == 1  # … once
    assert seen["pending"] == 0 and seen["fired"] == count
    if both_work:  # on PostgreSQL both really take part (SKIP LOCKED claims side by side)
        assert set(seen["workers"]) == {"worker-a", "worker-b"}


def test_two_worker_processes_fire_1000_timers_exactly_once_on_postgresql(postgres_url):
    two_workers_fire_each_timer_once(postgres_url, 1000)


def test_two_worker_processes_fire_each_timer_once_on_sqlite(sqlite_file_url):
    # SQLite serializes writers: under load one worker may do it all, which is fine.
    two_workers_fire_each_timer_once(sqlite_file_url, 1000, both_work=False)


def killed_and_restarted_loses_and_doubles_nothing(url: str, count: int) -> None:
    db = make_test_engine(url)
    create_schema(db)
    seed_waiting(db, count, at=time.time() - 60)
    victim = start_worker(url, "worker-a", batch=50, lease_s=2, slow_s=0.001)
    for _ in range(60):  # two batches of 50 are done (each commits as one) …
        assert victim.stdout.readline(), victim.stderr.read()
    # A plain engine: its reads never wait for the worker's write lock on SQLite (WAL), so
    # they can see the moment the worker holds claims it has not fired yet.
    watcher = sqlalchemy.create_engine(url)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # … and it holds the claims of the third: kill it now
        with watcher.connect() as conn:
            if conn.execute(select(func.count()).select_from(timers).where(
                    timers.c.status == "pending", timers.c.claimed_by == "worker-a")).scalar():
                break
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    watcher.dispose()
    victim.wait(timeout=10)
    at_kill = counts(db)
    assert 0 < at_kill["fired"] < count, "the worker must die in the middle of the work"
    with db.connect() as conn:  # it died holding claims it had not fired
        held = conn.execute(select(func.count()).select_from(timers).where(
            timers.c.status == "pending", timers.c.claimed_by == "worker-a")).scalar()
    assert held > 0
    # restarted (same id, as a supervisor would) next to a second worker
    finish(start_worker(url, "worker-a", lease_s=2), start_worker(url, "worker-b", lease_s=2))
    seen = counts(db)
    assert seen["after"] == count and seen["conversations"] == count
    assert seen["most_per_conversation"] == 1
    assert seen["pending"] == 0 and seen["fired"] == count


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing_on_postgresql(postgres_url):
    killed_and_restarted_loses_and_doubles_nothing(postgres_url, 300)


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing_on_sqlite(sqlite_file_url):
    killed_and_restarted_loses_and_doubles_nothing(sqlite_file_url, 300)
