"""Alembic migrations for papo's database (run them with ``engine.migrate.upgrade``)."""
