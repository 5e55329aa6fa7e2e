"""Accounts (DESIGN §10.5): disabling users, ending sessions, naming and expiring tokens.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

- ``users.disabled_at``: set when an admin disables the user (``papo user disable``, the
  "Equipe" page); a disabled user cannot log in and their sessions and tokens stop.
- ``users.session_generation``: each browser session remembers the generation it started
  under and is checked on every request; logout, a password change and disabling bump it.
- ``api_tokens.name`` (what the token is for, shown in ``papo token list``) and
  ``api_tokens.expires_at`` (null: valid until revoked).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("session_generation", sa.Integer(), nullable=False,
                                   server_default="0"))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("name", sa.String(100), nullable=False, server_default=""))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("name")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_generation")
        batch.drop_column("disabled_at")
