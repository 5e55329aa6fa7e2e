"""The outbox's unsent rows by conversation: the worker's claim as one index probe.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05

Claiming a conversation's next reply asks for its oldest unsent row and whether anything
older is still unsent. With only ``ix_outbox_status_next`` that meant every unsent row of
the table for every candidate (a backlog of k rows: k² steps, under SQLite's write lock).
``ix_outbox_unsent`` is partial (``status IN ('pending', 'sending')``): small, and cheap to
keep as rows are sent.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UNSENT = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    op.create_index("ix_outbox_unsent", "outbox", ["conversation_id", "id"],
                    sqlite_where=UNSENT, postgresql_where=UNSENT)


def downgrade() -> None:
    op.drop_index("ix_outbox_unsent", table_name="outbox")
