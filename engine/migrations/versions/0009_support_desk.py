"""Running a support desk (DESIGN §10.3): agents' availability and capacity, canned responses.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

- ``users.availability``: ``online`` (takes new conversations under automatic assignment)
  or ``away``; every user starts ``away`` until they choose ``online`` in the header.
- ``users.max_open``: how many open conversations automatic assignment gives one person
  (default 10; 0: no limit).
- ``users.last_assigned_at``: their last automatic assignment (round robin: the longest
  since goes first).
- ``canned_responses``: texts agents insert with "/" in the reply box (a unique
  ``shortcut`` and a template ``text``).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("availability", sa.String(8), nullable=False,
                                   server_default="away"))
        batch.add_column(sa.Column("max_open", sa.Integer(), nullable=False, server_default="10"))
        batch.add_column(sa.Column("last_assigned_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "canned_responses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("shortcut", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_canned_responses"),
        sa.UniqueConstraint("shortcut", name="uq_canned_responses_shortcut"),
    )


def downgrade() -> None:
    op.drop_table("canned_responses")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("last_assigned_at")
        batch.drop_column("max_open")
        batch.drop_column("availability")
