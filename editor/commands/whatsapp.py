"""``papo whatsapp templates sync`` / ``papo whatsapp templates list`` (DESIGN §10.4)."""
from __future__ import annotations

import time

import click


def _engine_and_settings():
    from editor.commands.worker import load_settings, worker_database_url
    from engine.db import make_engine

    settings = load_settings()
    return make_engine(worker_database_url(settings)), settings


def register(group: click.Group) -> None:
    @group.group("whatsapp", help="WhatsApp Cloud API: approved message templates.")
    def whatsapp_group() -> None:
        pass

    @whatsapp_group.group("templates", help="Message templates Meta approved for the business account.")
    def templates_group() -> None:
        pass

    @templates_group.command("sync", help="Read the approved templates from the Graph API "
                             "(PAPO_WHATSAPP_BUSINESS_ACCOUNT_ID, PAPO_WHATSAPP_TOKEN) into papo.")
    def sync_command() -> None:
        from editor.commands.timers import _database_errors
        from engine import whatsapp_templates

        engine, settings = _engine_and_settings()
        try:
            result = _database_errors(lambda: whatsapp_templates.sync(engine, settings, time.time()))
        finally:
            engine.dispose()
        if not result.ok:
            raise click.ClickException(result.error)
        click.echo(f"{result.approved} approved templates synced "
                   f"({result.skipped} not approved skipped, {result.pages} pages read).")

    @templates_group.command("list", help="List the synced templates: name, language, parameters.")
    def list_command() -> None:
        from editor.commands.timers import _database_errors
        from engine import whatsapp_templates

        engine, _settings = _engine_and_settings()
        try:
            rows = _database_errors(lambda: whatsapp_templates.list_templates(engine))
        finally:
            engine.dispose()
        if not rows:
            click.echo("No templates synced yet: run `papo whatsapp templates sync`.")
            return
        for row in rows:
            click.echo(f"{row['name']}\t{row['language']}\t{row['param_count']}\t{row['body'][:60]}")
