"""``papo user create|list|password`` and ``papo token create``."""
from __future__ import annotations

import click

ROLES = ("admin", "agent")


def _database():
    """The configured database (tables created if it is brand new)."""
    from sqlalchemy.exc import OperationalError

    from editor.app import open_database
    from editor.commands.db import safe_url
    from engine.settings import Settings, SettingsError

    try:
        return open_database(Settings.from_env(), ensure=True)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    except OperationalError as exc:
        from editor.app import database_url

        reason = str(exc.orig or exc).strip().splitlines()[0]
        url = safe_url(database_url(Settings.from_env()))
        raise click.ClickException(f"Cannot use the database {url}: {reason}") from None


def _friendly(call, *args, **kwargs):
    from engine.errors import PapoError

    try:
        return call(*args, **kwargs)
    except PapoError as exc:
        raise click.ClickException(exc.message) from None


def register(group: click.Group) -> None:
    @group.group("user", help="People who log in to the editor and the inbox.")
    def user() -> None:
        pass

    @user.command("create", help="Create a user. Without --password one is generated and printed.")
    @click.argument("login")
    @click.option("--role", type=click.Choice(ROLES), required=True,
                  help="admin: edits and publishes flows; agent: answers conversations.")
    @click.option("--password", default=None, help="The password (default: a generated one).")
    @click.option("--name", default="", help="Display name (default: the login).")
    def create_user(login: str, role: str, password: str | None, name: str) -> None:
        from engine import accounts

        created, generated = _friendly(
            accounts.create_user, _database(), login, role, password=password, name=name,
            lang="en")
        click.echo(f'User "{created["login"]}" created with role {created["role"]}.')
        if generated:
            click.echo("Generated password (shown only now; keep it safe):")
            click.echo(generated)

    @user.command("list", help="List users.")
    def list_users() -> None:
        from engine import accounts

        for item in accounts.list_users(_database()):
            name = f"  {item['name']}" if item["name"] else ""
            click.echo(f"{item['login']}\t{item['role']}{name}")

    @user.command("password", help="Set a user's password (without --password: generate one).")
    @click.argument("login")
    @click.option("--password", default=None, help="The new password (default: a generated one).")
    def set_password(login: str, password: str | None) -> None:
        from engine import accounts

        generated = _friendly(accounts.set_password, _database(), login, password, lang="en")
        click.echo(f'Password of "{login}" changed.')
        if generated:
            click.echo("Generated password (shown only now; keep it safe):")
            click.echo(generated)

    @group.group("token", help="API tokens (Authorization: Bearer <token>).")
    def token() -> None:
        pass

    @token.command("create", help="Create an API token for a user; it is printed once, on the last line.")
    @click.option("--user", "login", required=True, help="The login the token acts as.")
    def create_token(login: str) -> None:
        from engine import accounts

        value = _friendly(accounts.create_token, _database(), login, lang="en")
        click.echo(f'API token for "{login}" (shown only now; only its hash is stored):')
        click.echo(value)
