"""CSAT answers marked where they are saved (DESIGN §10.1, §10.6 "Rating").

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

- ``answers.csat``: true for an answer to a ``csat: true`` rating question, false for
  another answer in a flow that has one, NULL in a flow without one (then the setting
  ``PAPO_CSAT_VARIABLE`` decides, at report time, so rows saved before this revision keep
  counting as they did).
- ``ix_answers_csat_at``: reports read "csat is true in the period".
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.add_column(sa.Column("csat", sa.Boolean(), nullable=True))
    op.create_index("ix_answers_csat_at", "answers", ["csat", "at"])


def downgrade() -> None:
    op.drop_index("ix_answers_csat_at", table_name="answers")
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("csat")
