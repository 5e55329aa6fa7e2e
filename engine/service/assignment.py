"""Automatic assignment (DESIGN §10.3): open conversations nobody has go to online agents
under their capacity, the oldest first.

One round is one short write transaction of its own, run right after the unit of work
that opened a conversation (:mod:`engine.service.unit`), by the worker every few seconds
for the queue ("Sem atendente"), and when someone goes online or gets more room:

1. The available people's rows are locked (``SELECT … FOR UPDATE`` in id order on
   PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serializes every writer) and their
   open conversations counted *after* the lock is granted — so two rounds running at
   once never both see the last free place of one agent.
2. Each conversation is read under its lock (:func:`engine.service.load.by_id`), still
   open and unassigned or skipped, assigned through the same pure decision as an agent's
   "Atribuir" (:func:`engine.service.decide.decide`: activity entry with actor
   ``system``, assignee row) and written with the conversation's version check.
3. The chosen person's ``last_assigned_at`` moves on (round robin's order).

Nothing is rendered and no network is called inside it.
"""
from __future__ import annotations

import logging

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.exc import DBAPIError

from engine import assignment as people
from engine import conversation as machine
from engine.assignment import ONLINE, Agent, aware, choose, open_counts, stamp_after
from engine.moments import utc
from engine.service import load
from engine.service.changes import AgentAction, Changes
from engine.service.common import TEST_CHANNEL
from engine.service.decide import decide
from engine.service.write import write
from engine.store import conversation_assignees, conversations, users

log = logging.getLogger("papo.assignment")

SYSTEM = "system"
ROUND_SIZE = 50  # conversations assigned per transaction (the people stay locked meanwhile)

_AVAILABLE = (select(users.c.id, users.c.login, users.c.max_open, users.c.last_assigned_at)
              .where(users.c.availability == ONLINE, users.c.disabled_at.is_(None))
              .order_by(users.c.id))
_AVAILABLE_LOCKED = _AVAILABLE.with_for_update()
# The queue: open, nobody assigned, oldest open first (the simulator's never).
_QUEUE = (select(conversations.c.id)
          .where(conversations.c.status == machine.OPEN, conversations.c.channel != TEST_CHANNEL,
                 ~exists().where(conversation_assignees.c.conversation_id == conversations.c.id))
          .order_by(func.coalesce(conversations.c.opened_at, conversations.c.updated_at),
                    conversations.c.id)
          .limit(bindparam("_limit")))
_STAMP = update(users).where(users.c.login == bindparam("_login")).values(
    last_assigned_at=bindparam("_at"))


class AssignmentMixin:
    """Automatic assignment of :class:`engine.service.Service` (a mixin)."""

    def assign_waiting(self, conversation_ids: list[int] | None = None) -> list[tuple[int, str]]:
        """Assign these conversations (None: the queue, oldest first, until it is empty or
        nobody has room) if they are still open with nobody assigned; returns
        ``[(conversation_id, login)]`` in the order they were assigned. Does nothing under
        ``PAPO_ASSIGNMENT=manual``."""
        if self.settings.assignment == "manual":
            return []
        done: list[tuple[int, str]] = []
        if conversation_ids is not None:
            for start in range(0, len(conversation_ids), ROUND_SIZE):
                assigned, room_left = self._assign_round(conversation_ids[start:start + ROUND_SIZE])
                done += assigned
                if not room_left:
                    break
            return done
        while True:
            assigned, room_left = self._assign_round(None)
            done += assigned
            if not assigned or not room_left:
                return done

    def set_availability(self, login: str, availability: str, *, lang: str | None = None) -> None:
        """``login`` goes ``online`` or ``away``; going online takes from the queue at once."""
        people.set_availability(self.db, login, availability, lang=lang)
        if availability == ONLINE:
            self.assign_waiting()

    def set_max_open(self, login: str, max_open: int, *, lang: str | None = None) -> None:
        """``login`` takes at most ``max_open`` open conversations automatically (0: no
        limit); more room takes from the queue at once."""
        people.set_max_open(self.db, login, max_open, lang=lang)
        self.assign_waiting()

    def assign_after(self, written: list[Changes]) -> None:
        """Right after a unit of work: assign what it left open with nobody assigned.
        A failure here loses nothing (the conversation waits in the queue for the worker)."""
        waiting = [c.conversation_id for c in written if c.write and c.queued]
        if not waiting:
            return
        try:
            self.assign_waiting(waiting)
        except DBAPIError:
            log.exception("automatic assignment of conversations %s failed; the worker's "
                          "queue round takes them", waiting)

    def _assign_round(self, conversation_ids: list[int] | None) -> tuple[list[tuple[int, str]], bool]:
        """One transaction: ``(assignments made, whether anyone still has room)``."""
        at = self.clock()
        now = utc(at)
        assigned: list[tuple[int, str]] = []
        with self.db.connect() as conn:
            conn.begin()  # SQLite: BEGIN IMMEDIATE, the write lock until the commit
            rows = conn.execute(_AVAILABLE_LOCKED if self.is_postgres else _AVAILABLE).all()
            if not rows:
                conn.rollback()
                return [], False
            counts = open_counts(conn, [r.login for r in rows])  # read after the locks
            agents = {r.login: Agent(r.login, r.max_open, counts.get(r.login, 0), aware(r.last_assigned_at))
                      for r in rows}
            ids = conversation_ids if conversation_ids is not None else \
                list(conn.execute(_QUEUE, {"_limit": ROUND_SIZE}).scalars())
            for conversation_id in ids:
                pick = choose(list(agents.values()), self.settings.assignment)
                if pick is None:
                    break
                snap = load.by_id(self, conn, conversation_id, True)
                if snap is None or snap.conversation["status"] != machine.OPEN or snap.assignees:
                    continue  # concluded or taken meanwhile
                changes = decide(snap, AgentAction("assign", SYSTEM, pick.login, at))
                if not changes.write:
                    continue
                if not write(conn, [changes]):  # pragma: no cover - the row is locked
                    raise RuntimeError(f"conversation {conversation_id} changed under its lock")
                stamp = stamp_after(now, list(agents.values()))
                conn.execute(_STAMP, {"_login": pick.login, "_at": stamp})
                agents[pick.login] = Agent(pick.login, pick.max_open, pick.open + 1, stamp)
                assigned.append((conversation_id, pick.login))
            conn.commit()
        for conversation_id, login in assigned:
            log.info("conversation %d assigned to %s (%s)", conversation_id, login,
                     self.settings.assignment)
        return assigned, choose(list(agents.values()), self.settings.assignment) is not None
