"""Alembic environment, configured in code by ``engine.migrate`` (there is no alembic.ini).

``render_as_batch`` lets later migrations alter tables on SQLite, which cannot ALTER
most things in place (Alembic copies the table instead).
"""
from __future__ import annotations

from alembic import context

from engine.db import make_engine
from engine.store import metadata

config = context.config


def _configure(**kwargs) -> None:
    context.configure(target_metadata=metadata, render_as_batch=True,
                      compare_type=True, **kwargs)


def run_offline() -> None:
    """Print the SQL instead of running it (``alembic upgrade --sql``)."""
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
               dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # a caller (a test) lends its own connection
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    # make_engine applies the same SQLite pragmas (WAL) as the running product.
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
