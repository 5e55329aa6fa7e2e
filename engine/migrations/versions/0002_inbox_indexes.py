"""Inbox and reports indexes: name search (trigrams on PostgreSQL), counts per status,
simulator conversations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Measured by ``python -m bench.inbox`` on 1,000,000 conversations (docs/PERFORMANCE.md,
"Inbox"):

- ``ix_conversations_name_search``: the inbox and API name search is
  ``name_norm LIKE '%term%'``; without an index a rare or absent name walks the whole
  status index (hundreds of ms). On PostgreSQL it is GIN over trigrams (extension
  ``pg_trgm``), which answers it from the index; terms under three letters have no
  trigrams and still use the ``updated_at`` order. On SQLite it is a plain index that
  LIKE cannot use: it only keeps the two databases' schemas identical (engine/store.py).
- ``ix_conversations_status_channel``: counts per status (reports' "open now", the inbox
  tabs) filter out the simulator's channel; with both columns in the index they read the
  index alone (20,000 open of 1,000,000: 73 ms → 3 ms; both statuses grouped, still one
  pass over the index: 450 ms → 150 ms).
- ``ix_conversations_last_read``: the inbox's change marker (polled every 2 s by every
  agent) reads ``max(last_read_at)``; with the index it is one index probe.
- ``ix_conversations_test``: a partial index of the few simulator conversations
  (``channel = 'test'``). Reports, timers and lists exclude them with
  ``conversation_id NOT IN (SELECT id … WHERE channel = 'test')``, which otherwise scans
  every conversation.

On PostgreSQL they are built ``CONCURRENTLY`` (outside the migration's transaction), so a
busy database keeps taking messages while they build; if a build is interrupted, drop the
INVALID index it leaves and upgrade again.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TEST_ONLY = "channel = 'test'"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        with op.get_context().autocommit_block():
            op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_conversations_name_search "
                       "ON conversations USING gin (name_norm gin_trgm_ops)")
            op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_conversations_status_channel "
                       "ON conversations (status, channel)")
            op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_conversations_test "
                       f"ON conversations (id) WHERE {TEST_ONLY}")
            op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_conversations_last_read "
                       "ON conversations (last_read_at)")
    else:
        # SQLite: the same index names (LIKE '%…%' cannot use a plain index, but both
        # databases keep one schema, the one engine/store.py declares).
        op.create_index("ix_conversations_name_search", "conversations", ["name_norm"])
        op.create_index("ix_conversations_status_channel", "conversations", ["status", "channel"])
        op.create_index("ix_conversations_test", "conversations", ["id"],
                        sqlite_where=sa.text(TEST_ONLY))
        op.create_index("ix_conversations_last_read", "conversations", ["last_read_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_last_read", table_name="conversations")
    op.drop_index("ix_conversations_test", table_name="conversations")
    op.drop_index("ix_conversations_status_channel", table_name="conversations")
    op.drop_index("ix_conversations_name_search", table_name="conversations")
    # pg_trgm stays: other objects may use it, and it costs nothing unused.
