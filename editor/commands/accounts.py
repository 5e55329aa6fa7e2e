"""``papo user create|list|password|disable|enable`` and ``papo token create|list|revoke``."""
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

    @user.command("password", help="Set a user's password. Without --password it is asked "
                  "for (or read from standard input); --generate makes one. Every session "
                  "of the user ends.")
    @click.argument("login")
    @click.option("--password", default=None, help="The new password (at least 10 characters).")
    @click.option("--generate", is_flag=True, help="Generate a password and print it.")
    def set_password(login: str, password: str | None, generate: bool) -> None:
        from engine import accounts

        engine = _database()
        if not accounts.user_exists(engine, login):
            raise click.ClickException(f'There is no user with login "{login}".')
        if password is None and not generate:
            password = _read_password()
        generated = _friendly(accounts.set_password, engine, login,
                              None if generate else password, lang="en")
        click.echo(f'Password of "{login}" changed; their sessions have ended.')
        if generated:
            click.echo("Generated password (shown only now; keep it safe):")
            click.echo(generated)

    @user.command("disable", help="Disable a user: no login; sessions end at once, API "
                  "tokens stop within 5 seconds.")
    @click.argument("login")
    def disable_user(login: str) -> None:
        from engine import accounts

        _friendly(accounts.set_disabled, _database(), login, True, lang="en")
        click.echo(f'User "{login}" disabled: sessions ended, API tokens stopped.')

    @user.command("enable", help="Enable a disabled user again (their tokens work again).")
    @click.argument("login")
    def enable_user(login: str) -> None:
        from engine import accounts

        _friendly(accounts.set_disabled, _database(), login, False, lang="en")
        click.echo(f'User "{login}" enabled.')

    @group.group("token", help="API tokens (Authorization: Bearer <token>).")
    def token() -> None:
        pass

    @token.command("create", help="Create an API token for a user; it is printed once, on the last line.")
    @click.option("--user", "login", required=True, help="The login the token acts as.")
    @click.option("--name", default="", help="What the token is for (shown by `token list`).")
    @click.option("--expires-days", type=int, default=None,
                  help="Days until the token stops working (1-3650; default: until revoked).")
    def create_token(login: str, name: str, expires_days: int | None) -> None:
        from engine import accounts

        token_id, value = _friendly(accounts.create_token_record, _database(), login, name=name,
                                    expires_in_days=expires_days, lang="en")
        click.echo(f'API token {token_id} for "{login}" (shown only now; only its hash is stored):')
        click.echo(value)

    @token.command("list", help="A user's API tokens, one per line: id, name, created, last "
                   "used, expires (never the secret).")
    @click.option("--user", "login", required=True, help="Whose tokens.")
    def list_tokens(login: str) -> None:
        from engine import accounts

        def when(moment) -> str:
            return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"

        found = _friendly(accounts.list_tokens, _database(), login, lang="en")
        if not found:
            click.echo(f'"{login}" has no API tokens.', err=True)
        for item in found:
            expires = when(item["expires_at"]) + (" (expired)" if item["expired"] else "")
            click.echo(f"{item['id']}\t{item['name'] or '-'}\tcreated {when(item['created_at'])}"
                       f"\tlast used {when(item['last_used_at'])}\texpires {expires}")

    @token.command("revoke", help="Revoke an API token by its id (from `papo token list`); "
                   "it stops within 5 seconds in every process.")
    @click.argument("token_id", type=click.IntRange(1, 2**63 - 1))
    def revoke_token(token_id: int) -> None:
        from engine import accounts

        revoked = _friendly(accounts.revoke_token, _database(), token_id, lang="en")
        click.echo(f'Token {revoked["id"]} of "{revoked["login"]}" revoked.')


def _read_password() -> str:
    """The new password: asked twice on a terminal, else the first line of standard input."""
    import sys

    if sys.stdin.isatty():
        return click.prompt("New password (at least 10 characters)", hide_input=True,
                            confirmation_prompt=True)
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise click.ClickException("No password given: pass --password, type it, or pipe it "
                                   "on standard input (--generate makes one).")
    return line
