"""Database migrations (Alembic), configured in code: papo ships no alembic.ini."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from engine.db import database_url, make_engine
from engine.store import FTS_TABLES, metadata

MIGRATIONS = Path(__file__).with_name("migrations")


class MigrationError(RuntimeError):
    """The database is in a state the migrations cannot take over safely."""


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for ``url`` (default: ``PAPO_DATABASE_URL`` or the instance file)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Config values go through ConfigParser interpolation: a percent-encoded password
    # (``p%40ss``) would otherwise be read as an interpolation and fail.
    cfg.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return cfg


def head() -> str:
    """The newest migration's revision id."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current(url: str | None = None) -> str | None:
    """The revision the database at ``url`` is at (None: never migrated)."""
    engine = make_engine(url or database_url())
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _not_fts(name, kind, _parent) -> bool:
    """SQLite's FTS5 tables (engine/store.py FTS_TABLES) are no metadata tables."""
    return kind != "table" or name not in FTS_TABLES


def _adopt_unversioned(url: str, cfg: Config) -> None:
    """Stamp a database made by ``create_schema`` (no Alembic table) if it matches head.

    Without this, upgrading a database that ``papo demo`` or a test created would fail
    with "table already exists". One that differs from the current tables is refused:
    guessing which migrations it lacks could lose data.
    """
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if "alembic_version" in tables or not tables & set(metadata.tables):
                return
            differences = compare_metadata(MigrationContext.configure(conn, opts={
                "include_name": _not_fts}), metadata)
    finally:
        engine.dispose()
    if differences:
        raise MigrationError(
            "The database has papo tables but no migration history, and they differ from "
            f"this version's schema ({len(differences)} difference(s), first: "
            f"{differences[0]!r}). Back it up and migrate it by hand.")
    command.stamp(cfg, "head")


def upgrade(url: str | None = None) -> str | None:
    """Apply every pending migration to the database at ``url``; return its revision."""
    url = url or database_url()
    cfg = alembic_config(url)
    _adopt_unversioned(url, cfg)
    command.upgrade(cfg, "head")
    return current(url)
