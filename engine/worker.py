"""The worker: fires due timers and runs the periodic jobs (``papo worker``).

Exactly-once comes from :meth:`engine.service.Service.fire_timers`: a timer flips from
``pending`` to ``fired`` with a conditional UPDATE in the same transaction as everything
its step wrote, and only while its conversation is still at the version its step was
decided on (``engine/service/unit.py``). Claims here only keep several workers from
doing the same work twice: a worker *claims* a batch of due timers (``claimed_by`` /
``claimed_until``, a lease), then fires them in chunks of ``FIRE_CHUNK``, each chunk's
writes in one transaction (one statement per kind of row for the whole chunk). A claim
whose worker died is taken again once its lease is over; firing a timer someone else
already fired is a harmless no-op. A timer whose step fails stays pending, is logged,
and is tried again when its lease ends.

Periodic jobs (APScheduler 3, :meth:`Worker.run_forever`): timers every second, the
WhatsApp outbox every 5 s (``engine.outbox.send_due``, batch after batch until nothing
due is left) and an
hourly cleanup of the inbound de-duplication records and of finished timers (``PAPO_DEDUP_RETENTION``),
and, under ``PAPO_ASSIGNMENT`` round_robin or balanced, the queue of open conversations
nobody has every 3 s (``Service.assign_waiting``).
"""
from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from engine import metrics
from engine.moments import epoch, utc
from engine.settings import SettingsError, parse_duration
from engine.store import processed_messages, timers

log = logging.getLogger("papo.worker")

DEFAULT_BATCH = 200
DEFAULT_LEASE_S = 30.0
DEFAULT_DEDUP_RETENTION_S = 7 * 86400.0
LATE_WARNING_S = 60.0  # later than this, the log says so loudly
LATE_WARNINGS_PER_BATCH = 5  # after an outage, a few lines and a summary, not thousands
CLEANUP_CHUNK = 5000
BACKOFF_FIRST_S = 1.0
BACKOFF_CAP_S = 30.0
TIMERS_EVERY_S = 1
OUTBOX_EVERY_S = 5
CLEANUP_EVERY_S = 3600
ASSIGNMENT_EVERY_S = 3  # the queue of open conversations nobody has (PAPO_ASSIGNMENT)
OUTBOX_DRAIN_S = 30  # one outbox job sends for at most this long (the next tick goes on)


def dedup_retention_from_env(environ: dict | None = None) -> float:
    """``PAPO_DEDUP_RETENTION`` in seconds (default 7 days); raises ``SettingsError``."""
    env = os.environ if environ is None else environ
    raw = (env.get("PAPO_DEDUP_RETENTION") or "").strip()
    return parse_duration(raw, "PAPO_DEDUP_RETENTION") if raw else DEFAULT_DEDUP_RETENTION_S


def safe_url(url) -> str:
    """A database URL without its password, fit for a log line."""
    try:
        # URL.set() takes None as "unchanged"; the namedtuple _replace really drops it.
        return make_url(url)._replace(password=None).render_as_string(hide_password=False)
    except Exception:  # unparseable: print nothing that might be a secret
        return "<invalid database URL>"




def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database cannot be used right now" (retry later)."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def tables_missing(exc: BaseException) -> bool:
    """The database answers but has no papo tables yet (``papo db upgrade`` not run)."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) == "42P01" or "no such table" in str(orig or exc)


def error_reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


FIRE_CHUNK = 50  # timers fired per transaction


@dataclass(frozen=True)
class Claimed:
    id: int
    conversation_id: int
    kind: str
    due_at: float


class Backoff:
    """Exponential back-off for a database that cannot be reached: 1, 2, 4 … 30 s."""

    def __init__(self, first: float = BACKOFF_FIRST_S, cap: float = BACKOFF_CAP_S,
                 monotonic: Callable[[], float] = time.monotonic):
        self.first, self.cap, self.monotonic = first, cap, monotonic
        self.failures = 0
        self._until = 0.0
        self._lock = threading.Lock()

    def ready(self) -> bool:
        return self.monotonic() >= self._until

    def failed(self) -> float | None:
        """Record a failure; the seconds until the next attempt, or None when another job
        already failed meanwhile (one outage is reported, and backed off, once)."""
        with self._lock:
            now = self.monotonic()
            if now < self._until:
                return None
            delay = min(self.cap, self.first * 2 ** min(self.failures, 30))
            self.failures += 1
            self._until = now + delay
            return delay

    def succeeded(self) -> bool:
        """Record a success; True when it ends a run of failures."""
        with self._lock:
            recovered = self.failures > 0
            self.failures = 0
            self._until = 0.0
            return recovered


class Worker:
    """Claims due timers in batches and fires them through ``service.fire_timers``."""

    def __init__(self, service, worker_id: str | None = None, batch: int = DEFAULT_BATCH,
                 lease_s: float = DEFAULT_LEASE_S, *,
                 dedup_retention_s: float = DEFAULT_DEDUP_RETENTION_S,
                 backoff: Backoff | None = None, outbox_lease_s: float | None = None):
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.service = service
        self.db = service.db
        self.worker_id = (worker_id or _default_worker_id())[:64]
        self.batch = batch
        self.lease_s = float(lease_s)
        self.dedup_retention_s = float(dedup_retention_s)
        self.outbox_lease_s = outbox_lease_s  # None: engine.outbox.LEASE_S
        self.backoff = backoff or Backoff()
        self._stopping = threading.Event()
        self._scheduler = None
        self._shutdown_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ claiming
    def claim(self, now: float | None = None) -> list[int]:
        """Claim up to ``batch`` due timers for ``lease_s`` seconds; their ids, due first."""
        return [c.id for c in self._claim(self._now(now))]

    def _claim(self, now: float) -> list[Claimed]:
        due = (timers.c.status == "pending") & (timers.c.due_at <= utc(now)) & \
            (timers.c.claimed_until.is_(None) | (timers.c.claimed_until < utc(now)))
        lease = {"claimed_by": self.worker_id, "claimed_until": utc(now + self.lease_s)}
        columns = (timers.c.id, timers.c.conversation_id, timers.c.kind, timers.c.due_at)
        with self.db.begin() as conn:
            if self.service.is_postgres:
                # Rows another worker is claiming right now are skipped, not waited for.
                rows = conn.execute(select(*columns).where(due)
                                    .order_by(timers.c.due_at, timers.c.id).limit(self.batch)
                                    .with_for_update(skip_locked=True)).all()
                if rows:
                    conn.execute(update(timers).where(timers.c.id.in_([r.id for r in rows]))
                                 .values(**lease))
            else:
                # SQLite: BEGIN IMMEDIATE already holds the write lock; one UPDATE … RETURNING.
                picked = select(timers.c.id).where(due) \
                    .order_by(timers.c.due_at, timers.c.id).limit(self.batch)
                rows = conn.execute(update(timers).where(timers.c.id.in_(picked.scalar_subquery()))
                                    .values(**lease).returning(*columns)).all()
        found = [Claimed(r.id, r.conversation_id, r.kind, epoch(r.due_at)) for r in rows]
        return sorted(found, key=lambda c: (c.due_at, c.id))

    def release(self) -> int:
        """Give back this worker's unfired claims (on a clean stop) so others take them now."""
        with self.db.begin() as conn:
            done = conn.execute(update(timers).where(
                timers.c.claimed_by == self.worker_id, timers.c.status == "pending")
                .values(claimed_by=None, claimed_until=None))
            return done.rowcount or 0

    # ------------------------------------------------------------------ firing
    def run_once(self, now: float | None = None) -> int:
        """Claim one batch of due timers and fire them; returns how many fired."""
        return self._run_batch(now)[1]

    def _run_batch(self, now: float | None) -> tuple[int, int]:
        """(how many were claimed, how many fired)."""
        fixed = now is not None
        claimed_at = self._now(now)
        claimed = self._claim(claimed_at)
        if not claimed:
            return 0, 0
        lease_ends = claimed_at + self.lease_s
        fired = 0
        late_warnings = 0
        late_silenced: list[float] = []
        for start in range(0, len(claimed), FIRE_CHUNK):
            if self._stopping.is_set():
                break  # the rest stay claimed until release() or their lease ends
            at = now if fixed else self.service.clock()
            if not fixed and at >= lease_ends:
                # Our lease is over: another worker may be firing these; let it.
                log.info("lease over after %d of %d timers; the rest go back to the queue",
                         fired, len(claimed))
                break
            chunk = claimed[start:start + FIRE_CHUNK]
            try:
                # One transaction (one commit) per chunk: the commit is what bounds throughput.
                results = self.service.fire_timers([timer.id for timer in chunk], at)
            except Exception as exc:
                if database_unreachable(exc):
                    raise
                log.exception("%d timers failed; they stay pending and are tried again in %.0f s",
                              len(chunk), self.lease_s)
                continue
            for timer, result in zip(chunk, results, strict=True):
                if result.get("error"):
                    log.error("timer %d (%s, conversation %d) failed (%s); it stays pending and is "
                              "tried again in %.0f s", timer.id, timer.kind, timer.conversation_id,
                              result["error"], self.lease_s)
                if not result.get("fired"):
                    continue  # cancelled, failed, or fired by another worker meanwhile
                fired += 1
                late = at - timer.due_at
                metrics.timer_fired(timer.kind, late)
                if late > LATE_WARNING_S and late_warnings < LATE_WARNINGS_PER_BATCH:
                    late_warnings += 1
                    log.warning("timer %d (%s, conversation %d) fired %.0f s late: no worker was "
                                "running, or the workers fell behind",
                                timer.id, timer.kind, timer.conversation_id, late,
                                extra={"timer_id": timer.id, "conversation_id": timer.conversation_id})
                else:
                    if late > LATE_WARNING_S:
                        late_silenced.append(late)
                    log.info("timer %d (%s, conversation %d) fired %.3f s late",
                             timer.id, timer.kind, timer.conversation_id, max(late, 0.0),
                             extra={"timer_id": timer.id, "conversation_id": timer.conversation_id})
        if late_silenced:
            log.warning("%d more timers fired over %.0f s late (up to %.0f s)",
                        len(late_silenced), LATE_WARNING_S, max(late_silenced))
        return len(claimed), fired

    def drain(self, now: float | None = None) -> int:
        """Fire batches until no due timer is left unclaimed (or the worker is stopping)."""
        total = 0
        while not self._stopping.is_set():
            claimed, fired = self._run_batch(now)
            total += fired
            if claimed < self.batch:
                break  # a short batch: nothing else is due and unclaimed right now
        return total

    # ------------------------------------------------------------------ periodic jobs
    def send_outbox(self) -> int:
        """Send due WhatsApp outbox rows (``engine.outbox.send_due``), batch after batch
        while a batch sends anything (one batch per tick would cap a worker at about 10
        messages a second), for at most ``OUTBOX_DRAIN_S``. Returns how many were sent."""
        from engine import outbox

        kwargs = {} if self.outbox_lease_s is None else {"lease_s": self.outbox_lease_s}
        until = time.monotonic() + OUTBOX_DRAIN_S
        total = 0
        while not self._stopping.is_set():
            sent = outbox.send_due(self.service, **kwargs)
            total += sent
            if not sent or time.monotonic() >= until:
                break
        return total

    def cleanup(self, now: float | None = None) -> int:
        """Forget what is older than ``dedup_retention_s``: inbound message ids, and timers
        that are over (fired or cancelled). Returns how many rows went."""
        cutoff = utc(self._now(now) - self.dedup_retention_s)
        key = tuple_(processed_messages.c.channel, processed_messages.c.external_id)
        old_ids = select(processed_messages.c.channel, processed_messages.c.external_id) \
            .where(processed_messages.c.at < cutoff).limit(CLEANUP_CHUNK)
        ids = self._delete_in_chunks(delete(processed_messages).where(key.in_(old_ids)))
        old_timers = select(timers.c.id).where(
            timers.c.status.in_(("fired", "cancelled")), timers.c.due_at < cutoff).limit(CLEANUP_CHUNK)
        over = self._delete_in_chunks(delete(timers).where(timers.c.id.in_(old_timers)))
        days = round(self.dedup_retention_s / 86400, 2)
        if ids:
            log.info("forgot %d inbound message ids older than %g days", ids, days)
        if over:
            log.info("deleted %d fired or cancelled timers due over %g days ago", over, days)
        return ids + over

    def _delete_in_chunks(self, statement) -> int:
        """Run ``statement`` (a DELETE of at most CLEANUP_CHUNK rows) until it deletes fewer:
        a short write transaction each, so inbound messages are not held up."""
        removed = 0
        while not self._stopping.is_set():
            with self.db.begin() as conn:
                done = conn.execute(statement).rowcount or 0
            removed += done
            if done < CLEANUP_CHUNK:
                break
        return removed

    # ------------------------------------------------------------------ running
    def _guarded(self, what: str, job: Callable[[], object], *, uses_db: bool = True) -> None:
        """Run one job; a database that cannot be reached backs off, never spins hot.

        Only a job that certainly used the database (``uses_db``) ends a back-off when it
        succeeds: the outbox job may return without a query (WhatsApp not configured).
        """
        if self._stopping.is_set() or not self.backoff.ready():
            return
        try:
            job()
        except Exception as exc:
            metrics.worker_job_failed(what)
            if tables_missing(exc):
                delay = self.backoff.failed()
                if delay is not None:
                    log.error("the database %s has no papo tables yet: run `papo db upgrade`; "
                              "trying again in %.0f s", safe_url(self.db.url), delay)
            elif database_unreachable(exc):
                delay = self.backoff.failed()
                if delay is not None:
                    log.error("cannot reach the database %s (%s job): %s; trying again in "
                              "%.0f s", safe_url(self.db.url), what, error_reason(exc), delay)
            else:
                log.exception("the %s job failed; it runs again at its next turn", what)
            return
        if uses_db and self.backoff.succeeded():
            log.info("the database %s is reachable again", safe_url(self.db.url))

    def tick_timers(self) -> None:
        self._guarded("timers", self.drain)

    def tick_outbox(self) -> None:
        self._guarded("outbox", self.send_outbox, uses_db=False)

    def assign_queue(self) -> int:
        """Give the queue's conversations (open, nobody assigned), oldest first, to online
        agents with room (``PAPO_ASSIGNMENT``); returns how many were assigned."""
        return len(self.service.assign_waiting())

    def tick_assignment(self) -> None:
        self._guarded("assignment", self.assign_queue,
                      uses_db=self.service.settings.assignment != "manual")

    def tick_cleanup(self) -> None:
        self._guarded("cleanup", self.cleanup)

    def stop(self, reason: str | None = None) -> None:
        """Ask :meth:`run_forever` to finish the job in hand and return (any thread)."""
        self._stopping.set()
        scheduler = self._scheduler
        if scheduler is None:
            return
        if self._shutdown_thread is not None and self._shutdown_thread.is_alive():
            return  # already stopping

        def shutdown() -> None:
            from apscheduler.schedulers import SchedulerNotRunningError

            if reason:
                log.info("papo worker %s: %s, stopping after the job in hand",
                         self.worker_id, reason)
            try:
                scheduler.shutdown(wait=True)  # waits for the job in hand to finish
            except SchedulerNotRunningError:
                pass

        # Not in the signal handler itself: shutdown(wait=True) joins the job threads.
        self._shutdown_thread = threading.Thread(target=shutdown, name="papo-worker-stop")
        self._shutdown_thread.start()

    def run_forever(self, *, install_signals: bool = True) -> None:
        """Run the periodic jobs until SIGTERM / SIGINT (or :meth:`stop`)."""
        from apscheduler.schedulers.blocking import BlockingScheduler

        # APScheduler logs every run at INFO and every skipped overlapping run as a
        # warning; a one-second job makes both noise. Job errors are logged by us.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        scheduler = BlockingScheduler(timezone=UTC)
        start = datetime.now(UTC)
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None,
                  "next_run_time": start}
        scheduler.add_job(self.tick_timers, "interval", seconds=TIMERS_EVERY_S, id="timers",
                          **common)
        scheduler.add_job(self.tick_outbox, "interval", seconds=OUTBOX_EVERY_S, id="outbox",
                          **common)
        scheduler.add_job(self.tick_cleanup, "interval", seconds=CLEANUP_EVERY_S, id="cleanup",
                          **common)
        if self.service.settings.assignment != "manual":
            scheduler.add_job(self.tick_assignment, "interval", seconds=ASSIGNMENT_EVERY_S,
                              id="assignment", **common)
        self._scheduler = scheduler
        previous = {}
        if install_signals:
            def on_signal(signum, _frame) -> None:
                # No logging here: the interrupted code may hold the logging lock.
                self.stop(f"{signal.Signals(signum).name} received")

            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            if not self._stopping.is_set():
                scheduler.start()
        finally:
            if self._shutdown_thread is not None:
                self._shutdown_thread.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._scheduler = None
            try:
                given_back = self.release()
                if given_back:
                    log.info("gave back %d claimed timers", given_back)
            except Exception as exc:  # the database is gone: the leases will run out
                log.warning("could not give back claimed timers (%s); they return to the "
                            "queue in at most %.0f s", error_reason(exc), self.lease_s)
            log.info("papo worker %s stopped", self.worker_id)

    def _now(self, now: float | None) -> float:
        return self.service.clock() if now is None else now


def _default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(2)}"


__all__ = ["Backoff", "Claimed", "SettingsError", "Worker", "database_unreachable",
           "dedup_retention_from_env", "error_reason",
           "safe_url"]
