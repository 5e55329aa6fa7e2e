"""conversations.last_inbound_at: the customer's last message, kept with the conversation.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05

WhatsApp's 24-hour window (engine/whatsapp_window.py) was ``max(messages.at)`` of the
conversation's inbound messages, read for every reply the outbox sent: a scan of all the
conversation's messages (the index is ``(conversation_id, id)``), growing with each one.
The unit of work now keeps the value on the conversation's row as it writes an inbound
message; existing conversations get theirs here.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BACKFILL = """
UPDATE conversations SET last_inbound_at = (
    SELECT max(m.at) FROM messages m WHERE m.conversation_id = conversations.id AND m.direction = 'in')
"""


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("last_inbound_at")
