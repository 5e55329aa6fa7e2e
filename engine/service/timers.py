"""Scheduling and firing timers (waits, question timeouts, auto-conclude)."""
from __future__ import annotations

from sqlalchemy import select, update

from engine import conversation as machine
from engine import core
from engine.batch import NeedsConnection, Recorder
from engine.db import read_only
from engine.moments import epoch, iso, utc
from engine.service.common import TEST_CHANNEL, _Work, log
from engine.service.statements import _CANCEL_BOT_TIMERS, _INSERT_TIMER
from engine.store import (
    conversations,
    timers,
)


class TimersMixin:
    """Timers of :class:`engine.service.Service` (a mixin)."""

    def _schedule(self, conn, conversation_id: int, kind: str, due_at: float, payload: dict) -> None:
        conn.execute(_INSERT_TIMER, {"conversation_id": conversation_id, "kind": kind,
                                     "due_at": utc(due_at), "payload": payload, "status": "pending"})

    def _cancel_bot_timers(self, conn, conversation_id: int) -> None:
        conn.execute(_CANCEL_BOT_TIMERS, {"_id": conversation_id})

    def _schedule_auto_conclude(self, conn, conv: dict, now: float) -> None:
        after = self.settings.auto_conclude_after
        if not after:
            return
        pending = conn.execute(select(timers.c.id).where(
            timers.c.conversation_id == conv["id"], timers.c.status == "pending",
            timers.c.kind == "auto_conclude")).first()
        if pending is None:
            self._schedule(conn, conv["id"], "auto_conclude", now + after, {})

    def fire_timer(self, timer_id: int, now: float | None = None) -> dict:
        """Fire one timer: feed it to the engine or auto-conclude. Returns its replies."""
        return self.fire_timers([timer_id], now)[0]

    def fire_timers(self, timer_ids: list[int], now: float | None = None) -> list[dict]:
        """Fire several timers in ONE transaction (one commit for the batch, which is what
        bounds throughput).

        Conversations are locked in id order, so two workers never deadlock. A timer fires
        exactly once: its status flips pending → fired under the conversation lock, in the
        same transaction as everything it caused; a crash rolls the whole batch back.
        The engine steps run first and their writes go to the database together
        (:mod:`engine.batch`); a timer whose step must read, or that fails, is fired on its
        own in a savepoint, so one failing timer cannot spoil the others.
        Returns one ``{"timer_id", "fired", "replies", "conversation_id"?, "error"?}`` per id.
        """
        now = self.clock() if now is None else now
        results: dict[int, dict] = {i: {"timer_id": i, "fired": False, "replies": []} for i in timer_ids}
        works: list[_Work] = []
        with self.db.begin() as conn:
            rows = conn.execute(select(timers).where(
                timers.c.id.in_(timer_ids), timers.c.status == "pending")).mappings().all()
            rows = sorted(rows, key=lambda r: (r["conversation_id"], r["id"]))
            if rows:
                works = self._fire_rows(conn, rows, now, results)
        for work in works:  # HTTP blocks reached by a timer run outside the transaction
            if work.pending_http:
                work.replies.extend(self._perform_http(work.conversation_id, work.pending_http)["replies"])
        return [results[i] for i in timer_ids]

    def _fire_rows(self, conn, rows: list, now: float, results: dict[int, dict]) -> list[_Work]:
        ids = sorted({r["conversation_id"] for r in rows})
        query = select(conversations).where(conversations.c.id.in_(ids)).order_by(conversations.c.id)
        locked = {r["id"]: r for r in conn.execute(
            query.with_for_update() if self.is_postgres else query).mappings()}
        first: dict[int, dict] = {}  # conversation id → its first due timer: fired together
        later = []  # a second timer of a conversation: on its own, after the first one
        for row in rows:
            conversation_id = row["conversation_id"]
            if conversation_id not in locked:
                continue
            if conversation_id in first:
                later.append(row)
            else:
                first[conversation_id] = row
        # Flip them under the conversation locks: another worker may have fired some.
        flipped = set(conn.execute(update(timers).where(
            timers.c.id.in_([r["id"] for r in first.values()]), timers.c.status == "pending")
            .values(status="fired", fired_at=utc(now)).returning(timers.c.id)).scalars())
        recorder = Recorder()
        done: list[tuple[int, _Work]] = []
        alone, failed = [], []  # alone: flipped, but to be fired on the real connection
        for row in first.values():
            if row["id"] not in flipped:
                continue
            recorder.begin_step()
            try:
                work = self._fire_row(recorder, row, self._locked(conn, locked[row["conversation_id"]]), now)
            except NeedsConnection:
                recorder.end_step(keep=False)
                alone.append(row)
                continue
            except Exception as exc:
                recorder.end_step(keep=False)
                log.exception("timer %s failed", row["id"])
                failed.append(row["id"])
                results[row["id"]]["error"] = f"{type(exc).__name__}: {exc}"
                continue
            recorder.end_step(keep=True)
            done.append((row["id"], work))
        try:
            with conn.begin_nested():
                recorder.replay(conn)
        except Exception:  # e.g. a constraint: fire each of them on its own, to find the one
            log.exception("writing %d timers together failed; firing them one by one", len(done))
            batched = {timer_id for timer_id, _ in done}
            alone = [row for row in first.values() if row["id"] in batched or row in alone]
            done = []
        flipped_alone = {row["id"] for row in alone}
        for row in sorted(alone + later, key=lambda r: (r["conversation_id"], r["id"])):
            try:
                with conn.begin_nested():
                    conv = self._lock(conn, row["conversation_id"])
                    if row["id"] not in flipped_alone and conn.execute(update(timers).where(
                            timers.c.id == row["id"], timers.c.status == "pending")
                            .values(status="fired", fired_at=utc(now))).rowcount != 1:
                        continue  # cancelled by the first timer's step, or fired elsewhere
                    work = self._fire_row(conn, row, conv, now)
            except Exception as exc:
                log.exception("timer %s failed", row["id"])
                if row["id"] in flipped_alone:
                    failed.append(row["id"])  # (a later one's flip was rolled back with it)
                results[row["id"]]["error"] = f"{type(exc).__name__}: {exc}"
                continue
            done.append((row["id"], work))
        if failed:  # they stay pending; the worker tries them again later
            conn.execute(update(timers).where(timers.c.id.in_(failed)).values(status="pending", fired_at=None))
        for timer_id, work in done:
            results[timer_id].update(fired=True, conversation_id=work.conversation_id, replies=work.replies)
        return [work for _, work in done]

    def _fire_row(self, conn, row, conv: dict, now: float) -> _Work:
        """What a timer (already flipped to fired) does to its locked conversation."""
        work = _Work(conv["id"])
        if row["kind"] == "auto_conclude":
            self._auto_conclude(conn, conv, now, work)
            return work
        run = conv["state"].get("run") or {}
        payload = row["payload"] or {}
        if run.get("id") == payload.get("run_id") and conv["status"] == machine.CONCLUDED:
            flow = self._run_flow(conn, run)
            if flow is not None:
                self._feed(conn, conv, flow, core.Timer(now, row["kind"], payload.get("token", -1)), work)
        return work

    def _auto_conclude(self, conn, conv: dict, now: float, work: _Work) -> None:
        after = self.settings.auto_conclude_after
        if conv["status"] != machine.OPEN or not after:
            return
        idle_since = epoch(conv["updated_at"])
        if now - idle_since + 1e-6 < after:  # activity since: try again later
            self._schedule(conn, conv["id"], "auto_conclude", idle_since + after, {})
            return
        self._transition(conn, conv, "auto_conclude", "system", now, work)

    def due_timers(self, now: float | None = None, limit: int = 100) -> list[int]:
        """Due timers of real conversations (the simulator fires its own on its own clock)."""
        now = self.clock() if now is None else now
        with read_only(self.db) as conn:
            return [r.id for r in conn.execute(select(timers.c.id).where(
                timers.c.status == "pending", timers.c.due_at <= utc(now),
                timers.c.conversation_id.not_in(
                    select(conversations.c.id).where(conversations.c.channel == TEST_CHANNEL)))
                .order_by(timers.c.due_at, timers.c.id).limit(limit))]

    def fire_due_timers(self, now: float | None = None, limit: int = 1000) -> list[dict]:
        """Fire every timer due at ``now`` (one process; the worker claims with a lease)."""
        results = []
        for timer_id in self.due_timers(now, limit):
            result = self.fire_timer(timer_id, now)
            if result["fired"]:
                results.append(result)
        return results

    def next_timer(self, conversation_id: int) -> dict | None:
        with read_only(self.db) as conn:
            row = conn.execute(select(timers).where(
                timers.c.conversation_id == conversation_id, timers.c.status == "pending")
                .order_by(timers.c.due_at, timers.c.id).limit(1)).mappings().first()
            return dict(row) if row else None

    def list_timers(self, conversation_id: int | None = None, limit: int = 500) -> list[dict]:
        query = select(timers).where(timers.c.status == "pending").order_by(timers.c.due_at).limit(limit)
        if conversation_id is not None:
            query = query.where(timers.c.conversation_id == conversation_id)
        with read_only(self.db) as conn:
            return [{"id": r["id"], "conversation_id": r["conversation_id"], "kind": r["kind"],
                     "due_at": iso(r["due_at"])} for r in conn.execute(query).mappings()]

    def cancel_timer(self, timer_id: int) -> bool:
        with self.db.begin() as conn:
            done = conn.execute(update(timers).where(timers.c.id == timer_id, timers.c.status == "pending")
                                .values(status="cancelled"))
            return done.rowcount == 1

