"""SQLite's text search index of messages filled in batches, not by a trigger per insert.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05

FTS5 wrote a segment of its index with every transaction that inserted a message: about
as much work as the rest of an inbound message's write, under the one write lock. The
insert trigger goes; ``messages_fts_position.upto`` says how far the index goes (every
message stored so far is in it already), and engine/search_index.py indexes the newer ones
many at a time. The delete and edit triggers only touch messages already indexed.
PostgreSQL: nothing (its trigram index is kept by PostgreSQL).
"""
from __future__ import annotations

from alembic import op

_UPTO = "(SELECT upto FROM messages_fts_position WHERE id = 1)"

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# As engine/store.py MESSAGES_FTS has them at this revision.
_UPGRADE = (
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "CREATE TABLE IF NOT EXISTS messages_fts_position "
    "(id INTEGER PRIMARY KEY CHECK (id = 1), upto INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO messages_fts_position (id, upto) "
    "SELECT 1, coalesce(max(id), 0) FROM messages",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) SELECT 'delete', old.id, old.text "
    f"WHERE old.id <= {_UPTO}; "
    "UPDATE messages_fts_position SET upto = (SELECT coalesce(max(id), 0) FROM messages) "
    "WHERE id = 1 AND upto > (SELECT coalesce(max(id), 0) FROM messages); END",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE OF text ON messages "
    f"WHEN old.id <= {_UPTO} BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
)

# Back to one trigger per insert: index what was not indexed yet, then the old triggers.
_DOWNGRADE = (
    "INSERT INTO messages_fts(rowid, text) SELECT id, text FROM messages "
    f"WHERE id > {_UPTO}",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TABLE IF EXISTS messages_fts_position",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE OF text ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _DOWNGRADE:
            op.execute(statement)
