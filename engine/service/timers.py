"""Timers: waits, question timeouts and auto-conclude, fired through the unit of work."""
from __future__ import annotations

from sqlalchemy import select, update

from engine.db import read_only
from engine.moments import iso, utc
from engine.service import unit
from engine.service.common import TEST_CHANNEL
from engine.store import (
    conversations,
    timers,
)


class TimersMixin:
    """Timers of :class:`engine.service.Service` (a mixin)."""

    def fire_timer(self, timer_id: int, now: float | None = None) -> dict:
        """Fire one timer: feed it to the engine or auto-conclude. Returns its replies."""
        return self.fire_timers([timer_id], now)[0]

    def fire_timers(self, timer_ids: list[int], now: float | None = None) -> list[dict]:
        """Fire several timers, their writes in ONE transaction (one commit for the batch,
        which is what bounds throughput), one statement per kind of row.

        A timer fires exactly once: its status flips pending → fired only if still pending,
        in the same transaction as everything it caused, and only if its conversation is
        still as it was read (:mod:`engine.service.unit`); a crash rolls the batch back.
        A timer whose step fails stays pending (logged; the worker tries it again later)
        and the others fire. Two due timers of one conversation fire one after the other.
        Returns one ``{"timer_id", "fired", "replies", "conversation_id"?, "error"?}`` per id.
        """
        now = self.clock() if now is None else now
        results: dict[int, dict] = {i: {"timer_id": i, "fired": False, "replies": []} for i in timer_ids}
        written = unit.run_timers(self, list(dict.fromkeys(timer_ids)), now, results)
        for changes in written:  # HTTP blocks reached by a timer run outside the transaction
            if changes.write and changes.pending_http:
                extra = self._perform_http(changes.conversation_id, changes.pending_http)["replies"]
                results[changes.fire_timer_id]["replies"] = changes.replies + extra
        return [results[i] for i in timer_ids]

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

