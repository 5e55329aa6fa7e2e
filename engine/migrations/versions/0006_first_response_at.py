"""conversations.first_response_at: the first agent message of the current open period.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Kept on the conversation when an agent writes, so concluding reads nothing else to
report the first response time (it was a query on the messages). Existing open
conversations get it from their messages.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE conversations SET first_response_at = ("
        " SELECT min(m.at) FROM messages m WHERE m.conversation_id = conversations.id"
        " AND m.direction = 'out' AND m.author <> 'bot' AND m.at >= conversations.opened_at)"
        " WHERE opened_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("first_response_at")
