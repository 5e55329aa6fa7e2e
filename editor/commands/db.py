"""``papo db upgrade`` (apply migrations), ``papo db backup FILE`` and ``papo db restore FILE``."""
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

    @db.command("backup", help="Copy the database to FILE while papo keeps running (SQLite's "
                               "online backup). On PostgreSQL, prints the pg_dump command to use.")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--force", is_flag=True, help="Replace FILE if it exists.")
    def backup_command(file: str, force: bool) -> None:
        from engine.backup import BackupError, backup_sqlite, postgres_commands, sqlite_path
        from engine.db import database_url

        url = database_url()
        try:
            if sqlite_path(url) is None:
                dump, _restore = postgres_commands(url, file)
                click.echo(dump)
                raise click.ClickException(
                    "papo backs up SQLite only. For PostgreSQL use pg_dump, e.g. the command "
                    "above (the password comes from PGPASSWORD or ~/.pgpass).")
            copied = backup_sqlite(url, file, overwrite=force)
        except BackupError as exc:
            raise click.ClickException(f"No backup made: {exc}") from None
        click.echo(f"Backed up {copied.source} to {copied.target} ({_size(copied.size)}, "
                   f"{_count(copied.conversations)}, revision {copied.revision or 'none'}).")

    @db.command("restore", help="Replace the SQLite database with the backup FILE. Stop the "
                                "web app and every worker first: a database in use is refused.")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def restore_command(file: str, yes: bool) -> None:
        from engine.backup import BackupError, postgres_commands, restore_sqlite, sqlite_path
        from engine.db import database_url
        from engine.health import expected_revision

        url = database_url()
        try:
            target = sqlite_path(url)
            if target is None:
                _dump, restore = postgres_commands(url, file)
                click.echo(restore)
                raise click.ClickException(
                    "papo restores SQLite only. For PostgreSQL use pg_restore, e.g. the command "
                    "above, with papo stopped.")
            if not yes:
                click.confirm(f"Replace the database {target} with {file}?", abort=True)
            copied = restore_sqlite(file, url)
        except BackupError as exc:
            raise click.ClickException(f"Nothing restored: {exc}") from None
        click.echo(f"Restored {copied.target} from {copied.source} ({_count(copied.conversations)}, "
                   f"revision {copied.revision or 'none'}).")
        if copied.kept:
            click.echo(f"The database it replaced is kept as {copied.kept}.")
        if copied.revision != expected_revision():
            click.echo("Run `papo db upgrade` before starting papo: the backup is from another "
                       "version.")


def _size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"


def _count(conversations: int) -> str:
    return f"{conversations} conversation" + ("" if conversations == 1 else "s")
