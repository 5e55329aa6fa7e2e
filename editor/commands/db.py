"""``papo db upgrade``: apply database migrations."""
from __future__ import annotations

import click
from sqlalchemy.engine import make_url


def safe_url(url: str) -> str:
    """``url`` without its password, fit to print."""
    try:
        # URL.set() takes None as "unchanged"; the namedtuple _replace really drops it.
        return make_url(url)._replace(password=None).render_as_string(hide_password=False)
    except Exception:  # an unparseable URL: say nothing that might be a secret
        return "<invalid database URL>"


def register(group: click.Group) -> None:
    @group.group("db", help="Database maintenance.")
    def db() -> None:
        pass

    @db.command("upgrade", help="Apply pending migrations to PAPO_DATABASE_URL.")
    def upgrade_command() -> None:
        from sqlalchemy.exc import OperationalError

        from engine.db import database_url
        from engine.migrate import MigrationError, upgrade

        url = database_url()
        try:
            revision = upgrade(url)
        except MigrationError as exc:
            raise click.ClickException(str(exc)) from None
        except OperationalError as exc:
            # The driver's own words (no password in them), not a traceback.
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise click.ClickException(f"Cannot use the database {safe_url(url)}: {reason}") from None
        click.echo(f"Database {safe_url(url)} is up to date (revision {revision}).")
