"""Automatic assignment (DESIGN §10.3): open conversations nobody has go to online agents
under their capacity, the oldest first.

One round is one short write transaction of its own, run right after the unit of work
that opened a conversation (:mod:`engine.service.unit`; the openings of a burst, from
several threads, are gathered into a few rounds: :class:`Waiting`), by the worker every
few seconds for the queue ("Sem atendente"), and when someone goes online or gets more
room:

1. The available people's rows are locked (``SELECT … FOR NO KEY UPDATE`` in id order on
   PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serializes every writer), so rounds
   run one at a time; two of them can never both see an agent's last free place.
2. One statement, run *after* the lock was granted (READ COMMITTED: it sees what the
   previous round committed), reads every person's open conversations and the
   conversations to assign — open, nobody assigned, oldest open first.
3. Each gets the agent the policy chooses (:func:`engine.assignment.choose`), through the
   same pure decision as an agent's "Atribuir" (:func:`engine.service.decide.decide`:
   activity entry with actor ``system``, assignee row); they are written together by
   :func:`engine.service.write.write` with each conversation's version check — one that
   changed since it was read (a customer wrote meanwhile) makes the round run again.
4. The chosen people's ``last_assigned_at`` moves on (round robin's order).

Nothing is rendered and no network is called inside it.
"""
from __future__ import annotations

import json
import logging
import threading

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.exc import DBAPIError

from engine import assignment as people
from engine import conversation as machine
from engine.assignment import ONLINE, Agent, aware, choose, stamp_after
from engine.moments import utc
from engine.service.changes import AgentAction, Changes, Snapshot
from engine.service.common import TEST_CHANNEL
from engine.service.decide import decide
from engine.service.write import write
from engine.store import contacts, conversation_assignees, conversations, users

log = logging.getLogger("papo.assignment")

SYSTEM = "system"
ROUND_SIZE = 50  # conversations assigned per transaction (the people stay locked meanwhile)
ATTEMPTS = 4  # a round whose conversation changed between its read and its write runs again

_AVAILABLE = (select(users.c.id, users.c.login, users.c.max_open, users.c.last_assigned_at)
              .where(users.c.availability == ONLINE, users.c.disabled_at.is_(None))
              .order_by(users.c.id))
_AVAILABLE_LOCKED = _AVAILABLE.with_for_update(key_share=True)  # FOR NO KEY UPDATE: token inserts go on
_OLDEST_FIRST = (func.coalesce(conversations.c.opened_at, conversations.c.updated_at), conversations.c.id)


def _candidates(postgres: bool, queue: bool):
    """Open conversations nobody has — the queue's oldest (``_limit``), or these (``_ids``)
    — each with its contact's name and, in ``counts_``, every person's open conversations
    (``{login: n}``). One statement, run right after the people's rows are locked, so the
    counts are the ones the lock protects; the conversations are read without a lock (the
    write's version check refuses one that changed since)."""
    assigned, opened = conversation_assignees.alias("a"), conversations.alias("o")
    per_login = (select(assigned.c.login.label("login"), func.count().label("n"))
                 .select_from(assigned.join(opened, opened.c.id == assigned.c.conversation_id))
                 .where(opened.c.status == machine.OPEN).group_by(assigned.c.login).subquery())
    aggregate = func.json_object_agg if postgres else func.json_group_object
    counts = select(aggregate(per_login.c.login, per_login.c.n)).scalar_subquery()
    query = (select(conversations, contacts.c.name.label("contact_name_"), counts.label("counts_"))
             .join(contacts, contacts.c.id == conversations.c.contact_id)
             .where(conversations.c.status == machine.OPEN, conversations.c.channel != TEST_CHANNEL,
                    ~exists().where(conversation_assignees.c.conversation_id == conversations.c.id))
             .order_by(*_OLDEST_FIRST))
    if queue:
        return query.limit(bindparam("_limit"))
    return query.where(conversations.c.id.in_(bindparam("_ids", expanding=True)))


_CANDIDATES = {(postgres, queue): _candidates(postgres, queue)
               for postgres in (False, True) for queue in (False, True)}
_STAMP = update(users).where(users.c.login == bindparam("_login")).values(
    last_assigned_at=bindparam("_at"))


class Waiting:
    """Conversations a unit of work left to assign, gathered across this process's threads:
    while one thread runs a round, the others' conversations wait for the next one, so a
    burst of openings is assigned a few rounds at a time instead of one transaction each
    (every round holds the available people's rows)."""

    def __init__(self) -> None:
        self.round = threading.Lock()  # one round at a time in this process
        self._guard = threading.Lock()
        self._ids: dict[int, None] = {}

    def add(self, ids: list[int]) -> None:
        with self._guard:
            self._ids.update(dict.fromkeys(ids))

    def take(self) -> list[int]:
        with self._guard:
            ids, self._ids = list(self._ids), {}
        return ids


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
        Returns once they are assigned or queued (by this thread's round, or by the round
        another thread was running meanwhile). A failure here loses nothing: the
        conversation waits in the queue for the worker."""
        waiting = [c.conversation_id for c in written if c.write and c.queued]
        if not waiting:
            return
        self.waiting.add(waiting)
        with self.waiting.round:
            ids = self.waiting.take()  # empty: another thread's round took them meanwhile
            if not ids:
                return
            try:
                self.assign_waiting(ids)
            except DBAPIError:
                log.exception("automatic assignment of conversations %s failed; the worker's "
                              "queue round takes them", ids)

    def _assign_round(self, conversation_ids: list[int] | None) -> tuple[list[tuple[int, str]], bool]:
        """``(assignments made, whether anyone still has room)``; a round that found a
        conversation changed since it was read (a customer wrote meanwhile) runs again."""
        for _attempt in range(ATTEMPTS):
            assigned, room_left = self._assign_once(conversation_ids)
            if assigned is not None:
                return assigned, room_left
        log.warning("conversations %s kept changing while being assigned; the worker's queue "
                    "round takes them", conversation_ids or "of the queue")
        return [], False

    def _assign_once(self, conversation_ids: list[int] | None) -> tuple[list[tuple[int, str]] | None, bool]:
        """One transaction: ``(assignments made, whether anyone still has room)``; ``None``
        instead of the assignments when a conversation changed since it was read."""
        at = self.clock()
        now = utc(at)
        policy = self.settings.assignment
        with self.db.connect() as conn:
            conn.begin()  # SQLite: BEGIN IMMEDIATE, the write lock until the commit
            rows = conn.execute(_AVAILABLE_LOCKED if self.is_postgres else _AVAILABLE).all()
            if not rows:
                conn.rollback()
                return [], False
            if conversation_ids is None:
                found = conn.execute(_CANDIDATES[self.is_postgres, True], {"_limit": ROUND_SIZE}).mappings().all()
            else:
                found = conn.execute(_CANDIDATES[self.is_postgres, False],
                                     {"_ids": list(conversation_ids)}).mappings().all()
            if not found:
                conn.rollback()
                return [], False  # nothing to assign (taken, concluded, or an empty queue)
            counts = _counts(found[0]["counts_"])  # read after the locks
            agents = {r.login: Agent(r.login, r.max_open, counts.get(r.login, 0), aware(r.last_assigned_at))
                      for r in rows}
            batch: list[Changes] = []
            assigned: list[tuple[int, str]] = []
            for row in found:
                pick = choose(list(agents.values()), policy)
                if pick is None:
                    break
                changes = decide(self._assignable(row), AgentAction("assign", SYSTEM, pick.login, at))
                if not changes.write:  # pragma: no cover - an open, unassigned conversation
                    continue
                stamp = stamp_after(now, list(agents.values()))
                agents[pick.login] = Agent(pick.login, pick.max_open, pick.open + 1, stamp)
                batch.append(changes)
                assigned.append((row["id"], pick.login))
            if batch and not write(conn, batch):
                conn.rollback()  # one changed since it was read: the caller runs the round again
                return None, True
            for login in {login for _cid, login in assigned}:
                conn.execute(_STAMP, {"_login": login, "_at": agents[login].last_assigned_at})
            conn.commit()
        for conversation_id, login in assigned:
            log.info("conversation %d assigned to %s (%s)", conversation_id, login, policy)
        return assigned, choose(list(agents.values()), policy) is not None

    def _assignable(self, row) -> Snapshot:
        """What deciding an assignment needs of a conversation read here: its row, and
        nobody assigned. An assignment to an open conversation moves no bot, so
        no flow is read."""
        conversation = {k: v for k, v in row.items() if k not in ("contact_name_", "counts_")}
        return Snapshot(conversation=conversation, contact_name=row["contact_name_"] or "",
                        settings=self.settings, flows={}, published={}, assignees=(),
                        auto_conclude_pending=False)


def _counts(value) -> dict[str, int]:
    """``counts_`` as read: a JSON object (text on SQLite), or null when nobody has any."""
    if value is None:
        return {}
    if isinstance(value, str | bytes):
        value = json.loads(value)
    return {login: int(n) for login, n in value.items()}
