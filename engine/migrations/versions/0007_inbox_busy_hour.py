"""The inbox at a busy hour (DESIGN §10.8): waiting_since, private notes, text search.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

- ``conversations.waiting_since``: the first customer message not yet answered by a
  person or the bot, kept by the service on every message; ``ix_conversations_waiting``
  serves ``sort=waiting`` (longest waiting first). Existing conversations get it from
  their messages (the first inbound message after the last outbound one).
- ``conversation_reads``: read marks per agent (the unread dot and the title count).
- ``messages.direction`` widens to hold ``note`` (a private note, never sent).
- ``ix_messages_text_search``: trigrams over message text on PostgreSQL (``text=``
  search, ILIKE '%word%'); built ``CONCURRENTLY``. On SQLite the same name holds an
  empty partial index (``WHERE 0``), so both databases keep one schema at no write cost;
  SQLite searches ``messages_fts`` (FTS5, kept by triggers, filled here once).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_reads",
        sa.Column("conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("login", sa.String(64), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE",
                                name="fk_conversation_reads_conversation_id_conversations"),
        sa.PrimaryKeyConstraint("conversation_id", "login", name="pk_conversation_reads"),
    )
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_conversations_waiting", ["waiting_since", "id"])
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("direction", existing_type=sa.String(3), type_=sa.String(8),
                           existing_nullable=False)
    op.execute(
        "UPDATE conversations SET waiting_since = ("
        " SELECT min(m.at) FROM messages m WHERE m.conversation_id = conversations.id"
        " AND m.direction = 'in' AND m.id > COALESCE((SELECT max(o.id) FROM messages o"
        " WHERE o.conversation_id = conversations.id AND o.direction = 'out'), 0))")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        with op.get_context().autocommit_block():
            op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_messages_text_search "
                       "ON messages USING gin (text gin_trgm_ops)")
    else:
        op.create_index("ix_messages_text_search", "messages", ["text"], sqlite_where=sa.text("0"))
        for statement in _MESSAGES_FTS_0007:  # the FTS5 index and its triggers, as they were then
            op.execute(statement)
        op.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")


# As engine/store.py had them at this revision (0015 moved the insert trigger's work to a
# batched indexer): a migration keeps doing what it did when it was written.
_MESSAGES_FTS_0007 = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(text, content='messages', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE OF text ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS messages_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS messages_fts")
    op.drop_table("conversation_reads")
    op.execute("DROP INDEX IF EXISTS ix_messages_text_search")
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("direction", existing_type=sa.String(8), type_=sa.String(3),
                           existing_nullable=False)
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_waiting")
        batch.drop_column("waiting_since")
