"""inbox_unread: each agent's unread open conversations, kept as rows (DESIGN §10.8).

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-05

The inbox title's count ("(3) Atendimentos") was a query per open conversation on every
2-second poll (the newest customer message against the agent's read mark). The unit of
work now keeps one row per agent and open conversation with a customer message that
agent has not seen (engine/service/write.py), the read mark removes it, and the count is
one range of the primary key. Existing conversations get their rows here.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

BACKFILL = """
INSERT INTO inbox_unread (login, conversation_id)
SELECT u.login, c.id FROM users u, conversations c
WHERE c.status = 'open' AND c.channel <> 'test'
  AND (EXISTS (SELECT 1 FROM conversation_assignees a WHERE a.conversation_id = c.id AND a.login = u.login)
       OR NOT EXISTS (SELECT 1 FROM conversation_assignees a WHERE a.conversation_id = c.id))
  AND EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in'
              AND NOT EXISTS (SELECT 1 FROM conversation_reads r WHERE r.conversation_id = c.id
                              AND r.login = u.login AND r.read_at >= m.at))
"""


def upgrade() -> None:
    op.create_table(
        "inbox_unread",
        sa.Column("login", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE",
                                name="fk_inbox_unread_conversation_id_conversations"),
        sa.PrimaryKeyConstraint("login", "conversation_id", name="pk_inbox_unread"),
    )
    op.create_index("ix_inbox_unread_conversation", "inbox_unread", ["conversation_id"])
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index("ix_inbox_unread_conversation", table_name="inbox_unread")
    op.drop_table("inbox_unread")
