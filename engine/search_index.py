"""SQLite's text search index of messages (``messages_fts``), filled in batches.

A trigger used to index each message as it was inserted; FTS5 then wrote a new segment of
its index with every transaction, which cost an inbound message's write about as much as
the rest of it, under the database's one write lock. Now messages are indexed after the
fact, many per transaction: once a second by the server's and the worker's upkeep thread
(``engine.db.SqliteUpkeep``), and before any search (:func:`catch_up`), so a search always
sees every message stored before it. ``messages_fts_position.upto`` is the last message id
indexed (engine/store.py, ``MESSAGES_FTS``). PostgreSQL searches with a trigram index kept
by PostgreSQL itself: nothing to do there.
"""
from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from engine.db import quick_reads

BATCH = 5000  # messages indexed per write transaction (a few milliseconds of the lock)

_BEHIND = ("SELECT EXISTS (SELECT 1 FROM messages "
           "WHERE id > (SELECT upto FROM messages_fts_position WHERE id = 1))")
_UPTO = "SELECT upto FROM messages_fts_position WHERE id = 1"
_LAST_OF_BATCH = "SELECT max(id) FROM (SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT ?)"
_INDEX = "INSERT INTO messages_fts(rowid, text) SELECT id, text FROM messages WHERE id > ? AND id <= ?"
_MOVE = "UPDATE messages_fts_position SET upto = ? WHERE id = 1"


def index_pending(conn: Connection, limit: int = BATCH) -> int:
    """In the caller's write transaction: index up to ``limit`` messages stored since the
    last time; returns how many."""
    upto = conn.exec_driver_sql(_UPTO).scalar() or 0
    last = conn.exec_driver_sql(_LAST_OF_BATCH, (upto, limit)).scalar()
    if last is None:
        return 0
    done = conn.exec_driver_sql(_INDEX, (upto, last)).rowcount
    conn.exec_driver_sql(_MOVE, (last,))
    return max(done, 0)


def catch_up(db: Engine) -> int:
    """Index every message not indexed yet (SQLite; nothing to do on PostgreSQL), a batch per
    write transaction; returns how many. Costs one read when there is nothing to do."""
    if db.dialect.name != "sqlite":
        return 0
    total = 0
    while True:
        with quick_reads(db) as conn:
            behind = conn.exec_driver_sql(_BEHIND).scalar()
        if not behind:
            return total
        with db.begin() as conn:  # the write lock: nobody adds a message with a lower id meanwhile
            done = index_pending(conn)
        total += done
        if done == 0:
            return total
