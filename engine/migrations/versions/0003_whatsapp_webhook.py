"""WhatsApp webhooks as Meta really sends them (DESIGN §10.7).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

- ``contacts.user_id``: the business-scoped user id (BSUID) of a WhatsApp user, unique per
  channel, so a user who hides their number behind a username is still one contact.
- ``messages.details``: what a WhatsApp message carried besides its text (media, location,
  shared contacts, order, ad referral, quoted message) and what happened to it later
  (reaction, deleted, edits).
- ``ix_messages_external_id``: a revoke, an edit or a reaction names its message by its
  WhatsApp id.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("user_id", sa.String(200), nullable=True))
    op.create_index("ix_contacts_channel_user_id", "contacts", ["channel", "user_id"], unique=True)
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("details", json, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # The biggest table: built without blocking the messages arriving meanwhile.
        with op.get_context().autocommit_block():
            op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_messages_external_id "
                       "ON messages (external_id)")
    else:
        op.create_index("ix_messages_external_id", "messages", ["external_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_external_id", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("details")
    op.drop_index("ix_contacts_channel_user_id", table_name="contacts")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("user_id")
