"""Initial schema: accounts, flows (drafts and versions), conversations, timers, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Written out in full rather than imported from ``engine.store``: a migration is a
snapshot of the schema at one point in time and must not change when store.py does.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The column types of engine/store.py as of this revision.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrement needs INTEGER
UtcDateTime = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("login", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("lang", sa.String(8), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("login", name="uq_users_login"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("last_used_at", UtcDateTime, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_tokens_user_id_users",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_table(
        "flows",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_flows"),
    )
    op.create_table(
        "flow_revisions",
        sa.Column("flow_id", sa.String(63), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("findings", Json, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("flow_id", "revision", name="pk_flow_revisions"),
    )
    op.create_table(
        "flow_versions",
        sa.Column("flow_id", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("published_at", UtcDateTime, nullable=False),
        sa.Column("published_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("flow_id", "version", name="pk_flow_versions"),
    )
    op.create_table(
        "contacts",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
        sa.UniqueConstraint("channel", "external_id", name="uq_contacts_channel_external_id"),
    )
    op.create_table(
        "conversations",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("contact_id", Id, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("name_norm", sa.String(200), nullable=False),
        sa.Column("state", Json, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("opened_at", UtcDateTime, nullable=True),
        sa.Column("last_read_at", UtcDateTime, nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"],
                                name="fk_conversations_contact_id_contacts"),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
        sa.UniqueConstraint("contact_id", name="uq_conversations_contact_id"),
    )
    op.create_index("ix_conversations_status_updated", "conversations", ["status", "updated_at"])
    op.create_index("ix_conversations_updated", "conversations", ["updated_at"])
    op.create_table(
        "conversation_assignees",
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("login", sa.String(64), nullable=False),
        sa.Column("assigned_at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name="fk_conversation_assignees_conversation_id_conversations",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conversation_id", "login", name="pk_conversation_assignees"),
    )
    op.create_index("ix_conversation_assignees_login", "conversation_assignees", ["login"])
    op.create_table(
        "messages",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("buttons", Json, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name="fk_messages_conversation_id_conversations",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
    )
    op.create_index("ix_messages_conversation_at", "messages", ["conversation_id", "id"])
    op.create_table(
        "activity",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("detail", Json, nullable=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name="fk_activity_conversation_id_conversations",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_activity"),
    )
    op.create_index("ix_activity_conversation", "activity", ["conversation_id", "id"])
    op.create_index("ix_activity_to_at", "activity", ["to_status", "at"])
    op.create_table(
        "processed_messages",
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("result", Json, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("channel", "external_id", name="pk_processed_messages"),
    )
    op.create_table(
        "timers",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("due_at", UtcDateTime, nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", UtcDateTime, nullable=True),
        sa.Column("fired_at", UtcDateTime, nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name="fk_timers_conversation_id_conversations",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_timers"),
    )
    op.create_index("ix_timers_status_due", "timers", ["status", "due_at"])
    op.create_index("ix_timers_conversation", "timers", ["conversation_id"])
    op.create_table(
        "outbox",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(80), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("claimed_until", UtcDateTime, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("sent_at", UtcDateTime, nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name="fk_outbox_conversation_id_conversations",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
    )
    op.create_index("ix_outbox_status_next", "outbox", ["status", "next_attempt_at"])
    op.create_table(
        "answers",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name="fk_answers_conversation_id_conversations",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_answers"),
    )
    op.create_index("ix_answers_name_at", "answers", ["name", "at"])
    op.create_table(
        "run_blocks",
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("flow_id", sa.String(63), nullable=False),
        sa.Column("block_id", sa.String(64), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "flow_id", "block_id", name="pk_run_blocks"),
    )
    op.create_index("ix_run_blocks_flow", "run_blocks", ["flow_id", "block_id"])
    op.create_table(
        "run_log",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("block_id", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name="fk_run_log_conversation_id_conversations",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_run_log"),
    )


def downgrade() -> None:
    for table in ("run_log", "run_blocks", "answers", "outbox", "timers", "processed_messages",
                  "activity", "messages", "conversation_assignees", "conversations",
                  "contacts", "flow_versions", "flow_revisions", "flows", "api_tokens", "users"):
        op.drop_table(table)
