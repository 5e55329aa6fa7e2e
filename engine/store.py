"""Database tables (SQLAlchemy Core) shared by every papo process.

Alembic migrations in ``engine/migrations`` are generated from this metadata; the
service uses Core statements on the hot path (see DESIGN §9).
Every timestamp column holds an aware UTC ``datetime``.
"""
from __future__ import annotations

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSON on SQLite, JSONB on PostgreSQL.
Json = JSON().with_variant(JSONB(), "postgresql")
# Flow documents keep their key order (plain JSON text, also on PostgreSQL) so an export
# returns the document exactly as it was imported.
Document = JSON()
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrement needs INTEGER
UtcDateTime = DateTime(timezone=True)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("login", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),  # "admin" | "agent"
    Column("lang", String(8), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # Set when an admin disables the user: no login, sessions and tokens stop (§10.5).
    Column("disabled_at", UtcDateTime, nullable=True),
    # Every browser session carries the generation it started under; logout, a password
    # change or disabling bumps it, which ends the user's other sessions at once.
    Column("session_generation", Integer, nullable=False, default=0, server_default="0"),
    # Automatic assignment (DESIGN §10.3): "online" takes new conversations, "away" does not
    # (a new user is away until they choose online); at most ``max_open`` open conversations
    # are assigned to them automatically (0: no limit); ``last_assigned_at`` is their last
    # automatic assignment (round robin picks the longest since).
    Column("availability", String(8), nullable=False, default="away", server_default="away"),
    Column("max_open", Integer, nullable=False, default=10, server_default="10"),
    Column("last_assigned_at", UtcDateTime, nullable=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(128), nullable=False, unique=True),  # sha256 hex
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("name", String(100), nullable=False, default="", server_default=""),
    Column("expires_at", UtcDateTime, nullable=True),  # null: until revoked
)

flows = Table(
    "flows",
    metadata,
    Column("id", String(63), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("revision", Integer, nullable=False),  # latest draft revision
    Column("published_version", Integer, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(64), nullable=True),
    Column("deleted_at", UtcDateTime, nullable=True),
)

flow_revisions = Table(
    "flow_revisions",
    metadata,
    Column("flow_id", String(63), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("document", Document, nullable=False),
    Column("findings", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(64), nullable=True),
    PrimaryKeyConstraint("flow_id", "revision"),
)

flow_versions = Table(
    "flow_versions",
    metadata,
    Column("flow_id", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("document", Document, nullable=False),
    Column("published_at", UtcDateTime, nullable=False),
    Column("published_by", String(64), nullable=True),
    PrimaryKeyConstraint("flow_id", "version"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("external_id", String(200), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    # WhatsApp's business-scoped user id ("US.13491208655302741918"), stored when a
    # delivery carries one: a user who hides their number behind a username is known by it
    # alone (then it is also ``external_id``). See engine/whatsapp_inbound.py.
    Column("user_id", String(200), nullable=True),
    UniqueConstraint("channel", "external_id", name="uq_contacts_channel_external_id"),
    Index("ix_contacts_channel_user_id", "channel", "user_id", unique=True),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, ForeignKey("contacts.id"), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # "open" | "concluded"
    # Normalized contact name (lower case, no accents) for search.
    Column("name_norm", String(200), nullable=False, default=""),
    # The engine's state document: {"v", "vars", "tags", "contact", "run"}.
    Column("state", Json, nullable=False),
    Column("version", Integer, nullable=False, default=1),  # bumped on every write
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),  # last message or transition
    Column("opened_at", UtcDateTime, nullable=True),  # start of the current open period
    Column("last_read_at", UtcDateTime, nullable=True),
    # The first agent message of the current open period (reports' first response time).
    Column("first_response_at", UtcDateTime, nullable=True),
    # The first customer message not yet answered by a person or the bot (null: none):
    # the inbox's "Aguardando há mais tempo" order (DESIGN §10.8).
    Column("waiting_since", UtcDateTime, nullable=True),
    # The customer's last message's ``at`` (null: none yet): WhatsApp's 24-hour window
    # (engine/whatsapp_window.py), kept by the unit of work with each inbound message so
    # the sender and the inbox read one row, not the conversation's messages.
    Column("last_inbound_at", UtcDateTime, nullable=True),
    Index("ix_conversations_status_updated", "status", "updated_at"),
    Index("ix_conversations_waiting", "waiting_since", "id"),
    Index("ix_conversations_updated", "updated_at"),
    # The inbox's change marker reads max(last_read_at) every 2 s per agent.
    Index("ix_conversations_last_read", "last_read_at"),
    # Counts per status read the index alone ("open now" in reports, the inbox tabs).
    Index("ix_conversations_status_channel", "status", "channel"),
    # The few simulator conversations, which reports and lists leave out (NOT IN …).
    Index("ix_conversations_test", "id", sqlite_where=text("channel = 'test'"),
          postgresql_where=text("channel = 'test'")),
    # Name search is LIKE '%term%': trigrams (pg_trgm) answer it on PostgreSQL; SQLite
    # gets a plain index (unused by LIKE, kept so both databases have the same schema).
    Index("ix_conversations_name_search", "name_norm", postgresql_using="gin",
          postgresql_ops={"name_norm": "gin_trgm_ops"}),
)
event.listen(metadata, "before_create",
             DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"))

conversation_assignees = Table(
    "conversation_assignees",
    metadata,
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("login", String(64), nullable=False),
    Column("assigned_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("conversation_id", "login"),
    Index("ix_conversation_assignees_login", "login"),
)

# Per-agent read marks (DESIGN §10.8): what each agent has seen of each conversation.
conversation_reads = Table(
    "conversation_reads",
    metadata,
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("login", String(64), nullable=False),
    Column("read_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("conversation_id", "login"),
)

# Per-agent unread conversations (DESIGN §10.8): one row per agent and open conversation
# with a customer message that agent has not seen, refreshed by the unit of work on every
# write of an open conversation (engine/service/write.py) and by the agent's read mark.
# The inbox title's count is then one index range (login, …) per poll, not a query per
# open conversation.
inbox_unread = Table(
    "inbox_unread",
    metadata,
    Column("login", String(64), nullable=False),
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("login", "conversation_id"),
    Index("ix_inbox_unread_conversation", "conversation_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("direction", String(8), nullable=False),  # "in" | "out" | "note" (agents only)
    Column("author", String(64), nullable=False),  # "customer" | "bot" | login
    Column("text", Text, nullable=False),
    Column("buttons", Json, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("external_id", String(200), nullable=True),
    # What a WhatsApp message carried besides its text, and what happened to it later:
    # {"media", "contacts", "order", "referral", "reply_to", "forwarded", "errors",
    #  "reaction", "deleted_at", "edits"} (engine/timeline.py reads it; null for most).
    Column("details", Json, nullable=True),
    Index("ix_messages_conversation_at", "conversation_id", "id"),
    # A revoke, an edit or a reaction names its message by WhatsApp id.
    Index("ix_messages_external_id", "external_id"),
    # text= search (DESIGN §10.8): trigrams answer ILIKE '%word%' on PostgreSQL. On SQLite
    # the index is empty (WHERE 0: it costs no write), kept so both databases have one
    # schema; SQLite searches the FTS5 table messages_fts (MESSAGES_FTS below).
    Index("ix_messages_text_search", "text", postgresql_using="gin",
          postgresql_ops={"text": "gin_trgm_ops"}, sqlite_where=text("0")),
)

# SQLite's text search over messages (DESIGN §10.8): an FTS5 index of messages.text
# (external content: the text is stored once, in messages). Words match case- and
# accent-insensitively, by prefix. New messages are indexed in batches, not by a trigger on
# each insert (engine/search_index.py: FTS5 writes a segment per transaction, which cost a
# message's write about as much as everything else in it): ``messages_fts_position.upto`` is
# the last message id indexed; the triggers keep deletions and edits of indexed messages in
# step, and lower ``upto`` when the newest messages are deleted (their ids may be used again).
# Not metadata tables: FTS_TABLES names what SQLite adds for it, so schema comparisons can
# leave them out.
FTS_TABLES = ("messages_fts", "messages_fts_data", "messages_fts_idx", "messages_fts_docsize",
              "messages_fts_config", "messages_fts_position")
FTS_INDEXED_UPTO = "(SELECT upto FROM messages_fts_position WHERE id = 1)"
MESSAGES_FTS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(text, content='messages', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TABLE IF NOT EXISTS messages_fts_position "
    "(id INTEGER PRIMARY KEY CHECK (id = 1), upto INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO messages_fts_position (id, upto) "
    "SELECT 1, coalesce(max(id), 0) FROM messages",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) SELECT 'delete', old.id, old.text "
    f"WHERE old.id <= {FTS_INDEXED_UPTO}; "
    "UPDATE messages_fts_position SET upto = (SELECT coalesce(max(id), 0) FROM messages) "
    "WHERE id = 1 AND upto > (SELECT coalesce(max(id), 0) FROM messages); END",
    "CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE OF text ON messages "
    f"WHEN old.id <= {FTS_INDEXED_UPTO} BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
)
for _statement in MESSAGES_FTS:
    event.listen(messages, "after_create", DDL(_statement).execute_if(dialect="sqlite"))

activity = Table(
    "activity",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("actor", String(64), nullable=False),  # login | "bot" | "customer" | "system"
    Column("action", String(32), nullable=False),
    Column("from_status", String(16), nullable=True),
    Column("to_status", String(16), nullable=True),
    Column("detail", Json, nullable=True),  # e.g. {"user": "bruno"} for assign
    Column("at", UtcDateTime, nullable=False),
    Index("ix_activity_conversation", "conversation_id", "id"),
    Index("ix_activity_to_at", "to_status", "at"),
)

# Canned responses (DESIGN §10.3): texts agents insert with "/" in the reply box. ``text`` is
# a template over ``contact.*`` and the conversation's variables.
canned_responses = Table(
    "canned_responses",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("shortcut", String(32), nullable=False, unique=True),
    Column("text", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(64), nullable=True),
)

processed_messages = Table(
    "processed_messages",
    metadata,
    Column("channel", String(16), nullable=False),
    Column("external_id", String(200), nullable=False),
    Column("conversation_id", Id, nullable=False),
    Column("result", Json, nullable=False),  # the original answer, returned to duplicates
    Column("at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("channel", "external_id"),
)

timers = Table(
    "timers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(24), nullable=False),  # wait | question_timeout | auto_conclude | debounce
    Column("due_at", UtcDateTime, nullable=False),
    Column("payload", Json, nullable=False),
    Column("status", String(12), nullable=False, default="pending"),  # pending|fired|cancelled
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("fired_at", UtcDateTime, nullable=True),
    Index("ix_timers_status_due", "status", "due_at"),
    Index("ix_timers_conversation", "conversation_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("idempotency_key", String(80), nullable=False, unique=True),
    Column("payload", Json, nullable=False),
    Column("status", String(12), nullable=False, default="pending"),  # pending|sending|sent|failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Index("ix_outbox_status_next", "status", "next_attempt_at"),
    # A conversation's unsent rows in order: its next one to send, and "nothing older is
    # still unsent" (the worker's claim) as one index probe however long the backlog.
    Index("ix_outbox_unsent", "conversation_id", "id",
          sqlite_where=text("status IN ('pending', 'sending')"),
          postgresql_where=text("status IN ('pending', 'sending')")),
)

# Every answer a question saved, for reports (CSAT) and the variables history.
answers = Table(
    "answers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    # True: an answer to a ``csat: true`` question; False: another question of a flow that
    # has one; NULL: a flow without one (PAPO_CSAT_VARIABLE decides, at report time).
    Column("csat", Boolean, nullable=True),
    Index("ix_answers_name_at", "name", "at"),
    Index("ix_answers_csat_at", "csat", "at"),
)

# Which blocks each run reached, for the flow funnel in reports.
run_blocks = Table(
    "run_blocks",
    metadata,
    Column("run_id", String(40), nullable=False),
    Column("flow_id", String(63), nullable=False),
    Column("block_id", String(64), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("run_id", "flow_id", "block_id"),
    Index("ix_run_blocks_flow", "flow_id", "block_id"),
)

# A run log line the engine recorded (missing variables, HTTP errors, budget exceeded).
run_log = Table(
    "run_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", Id, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("level", String(8), nullable=False),
    Column("block_id", String(64), nullable=True),
    Column("message", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

# The WhatsApp message templates Meta approved for the business account (DESIGN §10.4),
# as ``papo whatsapp templates sync`` last read them (engine/whatsapp_templates.py): lint,
# the editor's picker, the inbox composer and the outbox look a template up here.
whatsapp_templates = Table(
    "whatsapp_templates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(512), nullable=False),
    Column("language", String(16), nullable=False),  # "pt_BR", "en_US"
    Column("category", String(32), nullable=False, default="", server_default=""),
    Column("body", Text, nullable=False, default="", server_default=""),  # the BODY text, {{1}}…
    Column("param_count", Integer, nullable=False, default=0, server_default="0"),
    Column("components", Json, nullable=False),  # as Meta gave them
    Column("synced_at", UtcDateTime, nullable=False),
    UniqueConstraint("name", "language", name="uq_whatsapp_templates_name_language"),
)


# The business hours setting (DESIGN §10.3): one row, ``id`` 1, the checked document
# (engine/hours.py); no row = no schedule set = always open.
business_hours = Table(
    "business_hours",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("document", Json, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(64), nullable=True),
)
