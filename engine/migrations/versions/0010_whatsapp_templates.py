"""WhatsApp message templates (DESIGN §10.4): the approved ones, as last synced.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

``whatsapp_templates``: one row per approved (name, language) of the business account,
filled by ``papo whatsapp templates sync`` (or the button on Configurações › WhatsApp)
from the Graph API's ``message_templates``. The integrator relinks ``down_revision``.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "whatsapp_templates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False, server_default=""),
        sa.Column("body", sa.Text(), nullable=False, server_default=""),
        sa.Column("param_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("components", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_whatsapp_templates"),
        sa.UniqueConstraint("name", "language", name="uq_whatsapp_templates_name_language"),
    )


def downgrade() -> None:
    op.drop_table("whatsapp_templates")
