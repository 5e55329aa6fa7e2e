"""The unit of work: load → decide → write, the same on SQLite and PostgreSQL.

:func:`run` serves one conversation (an inbound message, an agent's action, an HTTP
answer); :func:`run_timers` a batch of timers of different conversations, written
together. Each attempt reads a :class:`~engine.service.changes.Snapshot` without a write
lock, decides (pure, :func:`engine.service.decide.decide`), then writes in one short
transaction where every conversation's ``version`` must still be the one read. When it is
not (someone else moved first), the attempt is dropped and made again on what is there
now; after ``OPTIMISTIC_ATTEMPTS`` such conflicts the last attempt runs with ``lock=True``:
the same reads, decision and writes inside the write transaction (``BEGIN IMMEDIATE`` on
SQLite, ``SELECT … FOR UPDATE`` on PostgreSQL), where nobody else can move first.

Nothing slow runs inside the write transaction of an optimistic attempt: templates and
flow steps are decided before it starts, HTTP calls are made after it ended.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from engine import logs, metrics
from engine.db import quick_reads
from engine.service import load
from engine.service.changes import Changes, Event, Snapshot
from engine.service.decide import decide
from engine.service.write import write

log = logging.getLogger("papo.service")

OPTIMISTIC_ATTEMPTS = 3  # conflicts on one conversation before taking the lock
MAX_NEEDS_ROUNDS = 4  # assignees, users, auto-conclude timer: each read at most once


def run(service, event: Event, locate: Callable[[Connection, bool], Snapshot | None]) -> Changes | None:
    """Decide and write ``event`` for the conversation ``locate(conn, lock)`` reads;
    None when there is no such conversation. Returns the changes written (or, when
    ``write`` is False, the decision that nothing was to be written)."""
    for attempt in range(OPTIMISTIC_ATTEMPTS + 1):
        lock = attempt == OPTIMISTIC_ATTEMPTS
        done, changes = _attempt(service, event, locate, lock)
        if done:
            if changes is not None and changes.queued:
                service.assign_after([changes])  # its own short transaction, after the commit
            return changes
        log.debug("conversation %s changed meanwhile: reading and deciding again (attempt %d)",
                  changes.conversation_id if changes else "?", attempt + 2)
    raise RuntimeError("unreachable: the locked attempt cannot conflict")  # pragma: no cover


def _attempt(service, event: Event, locate, lock: bool) -> tuple[bool, Changes | None]:
    with _connection(service, lock) as conn:
        if lock:
            conn.begin()
        snap = locate(conn, lock)
        if snap is None:
            return True, None
        changes = _decide(service, conn, [snap], [event])[0]
        if not changes.write:
            _report(changes, written=False)
            return True, changes
        if not lock:
            _start_writing(service, conn)
        try:
            ok = write(conn, [changes])
        except IntegrityError:
            # e.g. the same message id stored meanwhile by another process: read again
            conn.rollback()
            if lock:
                raise
            return False, changes
        if ok:
            conn.commit()
            _report(changes, written=True)
            return True, changes
        conn.rollback()
        if lock:  # pragma: no cover - nobody else can move under the lock
            raise RuntimeError(f"conversation {changes.conversation_id} changed under the lock")
        return False, changes


def _report(changes: Changes, written: bool) -> None:
    """Metrics and log context of what was decided (and, for steps, written)."""
    if changes.flow is not None:
        logs.bind(conversation_id=changes.conversation_id, flow_id=changes.flow[0],
                  flow_version=changes.flow[1])
    else:
        logs.bind(conversation_id=changes.conversation_id)
    if written:
        for step in changes.steps:
            metrics.bot_step(step)
        for action in changes.transitions:
            metrics.transition(action)


def _decide(service, conn: Connection, snaps: list[Snapshot], events: list[Event]) -> list[Changes]:
    """Decide every event; read what a decision asks for and decide those again."""
    results = [decide(s, e) for s, e in zip(snaps, events, strict=True)]
    for _ in range(MAX_NEEDS_ROUNDS):
        needy = [i for i, c in enumerate(results) if c.needs]
        if not needy:
            break
        needs = set().union(*(results[i].needs for i in needy))
        load.fill(service, conn, [snaps[i] for i in needy], needs)
        for i in needy:
            results[i] = decide(snaps[i], events[i])
    return results


def _connection(service, lock: bool) -> Connection:
    """A connection for one attempt. Optimistic, its reads run in autocommit: no BEGIN or
    COMMIT for what is one query most of the time (the version check makes the reads safe
    to act on); on SQLite they do not wait for the write lock either."""
    return service.db.connect() if lock else quick_reads(service.db)


def _start_writing(service, conn: Connection) -> None:
    conn.commit()  # ends SQLAlchemy's idea of a transaction (nothing to commit)
    if service.is_postgres:
        conn.execution_options(isolation_level=conn.default_isolation_level)
    else:
        conn.execution_options(papo_read_only=False, papo_autocommit=False)
    conn.begin()  # SQLite: BEGIN IMMEDIATE, the write lock from here to the commit


# ---------------------------------------------------------------------- timers


def run_timers(service, timer_ids: list[int], at: float, results: dict[int, dict]) -> list[Changes]:
    """Fire the pending timers among ``timer_ids`` at ``at``; fills ``results`` (one dict per
    id: ``fired``, ``replies``, ``conversation_id``, ``error``) and returns what was written.

    One round fires at most one timer per conversation (a second one is decided on what
    the first one left, in the next round). A timer whose decision fails stays pending,
    with its error logged and reported; the others fire.
    """
    written: list[Changes] = []
    remaining = list(timer_ids)
    failed: set[int] = set()
    for _ in range(2 * len(timer_ids) + OPTIMISTIC_ATTEMPTS):  # bounded: each round fires one a conversation
        if not remaining:
            break
        batch = _fire_round(service, remaining, at, results, failed)
        if not batch:
            break
        written.extend(batch)
        done = {c.fire_timer_id for c in batch}
        remaining = [i for i in remaining if i not in done and i not in failed]
    service.assign_after(written)
    return written


def _fire_round(service, timer_ids: list[int], at: float, results: dict[int, dict],
                failed: set[int]) -> list[Changes]:
    for attempt in range(OPTIMISTIC_ATTEMPTS + 1):
        lock = attempt == OPTIMISTIC_ATTEMPTS
        done, batch = _fire_attempt(service, timer_ids, at, results, failed, lock)
        if done:
            return batch
        log.debug("a conversation of %d timers changed meanwhile: deciding again (attempt %d)",
                  len(batch), attempt + 2)
    return []  # pragma: no cover - the locked attempt does not conflict


def _fire_attempt(service, timer_ids, at, results, failed, lock) -> tuple[bool, list[Changes]]:
    with _connection(service, lock) as conn:
        if lock:
            conn.begin()
        pairs = load.timers(service, conn, timer_ids, at, lock)
        decided: list[tuple] = []
        for event, snap in pairs:
            try:
                changes = _decide(service, conn, [snap], [event])[0]
            except Exception as exc:  # a bug in a block: this timer stays pending, the others fire
                log.exception("timer %s failed", event.timer_id)
                results[event.timer_id]["error"] = f"{type(exc).__name__}: {exc}"
                failed.add(event.timer_id)
                continue
            decided.append((event, changes))
        batch = [c for _, c in decided if c.write]
        if batch:
            if not lock:
                _start_writing(service, conn)
            try:
                ok = write(conn, batch)
            except Exception:
                conn.rollback()
                if len(batch) == 1:
                    raise
                log.exception("writing %d timers together failed; writing them one by one", len(batch))
                return True, _fire_one_by_one(service, decided, results, failed)
            if not ok:
                conn.rollback()
                if lock and not service.is_postgres:  # pragma: no cover
                    raise RuntimeError("timers changed under the lock")
                return False, batch
            conn.commit()
        for event, changes in decided:
            _report(changes, written=changes.write)
            if changes.fired:
                results[event.timer_id].update(fired=True, replies=changes.replies,
                                               conversation_id=changes.conversation_id)
        # a timer no longer pending is done with, fired or not
        return True, [c for _, c in decided if c.write] + [
            _skipped(e, c) for e, c in decided if not c.write]


def _skipped(event, changes: Changes) -> Changes:
    changes.fire_timer_id = event.timer_id
    return changes


def _fire_one_by_one(service, decided, results, failed) -> list[Changes]:
    """After a batch's write failed (e.g. a constraint): each timer in its own transaction,
    to find the one that cannot be written; it stays pending, the others fire."""
    out = []
    for event, changes in decided:
        if not changes.write:
            out.append(_skipped(event, changes))
            continue
        try:
            with service.db.begin() as conn:
                ok = write(conn, [changes])
                if not ok:
                    conn.rollback()
        except Exception as exc:
            log.exception("timer %s failed", event.timer_id)
            results[event.timer_id]["error"] = f"{type(exc).__name__}: {exc}"
            failed.add(event.timer_id)
            continue
        if ok:
            _report(changes, written=True)
            if changes.fired:
                results[event.timer_id].update(fired=True, replies=changes.replies,
                                               conversation_id=changes.conversation_id)
            out.append(changes)
        # not ok: it changed meanwhile; the next round decides it again
    return out
