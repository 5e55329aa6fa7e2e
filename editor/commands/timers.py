"""``papo timers list [--conversation ID]`` / ``papo timers cancel ID``."""
from __future__ import annotations

import click


def _service():
    from editor.commands.worker import load_settings, worker_database_url
    from engine.db import make_engine
    from engine.service import Service

    settings = load_settings()
    return Service(make_engine(worker_database_url(settings)), settings)


def _database_errors(action):
    """Run ``action()``; a database that cannot be used becomes a one-line error."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from engine.worker import error_reason

    try:
        return action()
    except (OperationalError, ProgrammingError) as exc:
        raise click.ClickException(f"Cannot use the database: {error_reason(exc)}") from None


def format_table(rows: list[dict]) -> str:
    """Pending timers as an aligned table: id, conversation, kind, due_at."""
    header = ("id", "conversation", "kind", "due_at")
    cells = [header] + [(str(r["id"]), str(r["conversation_id"]), r["kind"], r["due_at"] or "")
                        for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def register(group: click.Group) -> None:
    @group.group("timers", help="Pending timers: waits, question timeouts, auto-conclude, debounce.")
    def timers_group() -> None:
        pass

    @timers_group.command("list", help="List pending timers, the next due first.")
    @click.option("--conversation", "conversation_id", type=int, default=None,
                  help="Only this conversation's timers.")
    @click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 100_000))
    def list_command(conversation_id: int | None, limit: int) -> None:
        service = _service()
        try:
            rows = _database_errors(lambda: service.list_timers(conversation_id, limit=limit))
        finally:
            service.db.dispose()
        if not rows:
            click.echo("No pending timers.")
            return
        click.echo(format_table(rows))
        if len(rows) == limit:
            click.echo(f"(the first {limit}; use --limit for more)")

    @timers_group.command("cancel", help="Cancel a pending timer (its wait or timeout never fires).")
    @click.argument("timer_id", type=int)
    def cancel_command(timer_id: int) -> None:
        from engine import queries

        service = _service()
        try:
            if _database_errors(lambda: service.cancel_timer(timer_id)):
                click.echo(f"Timer {timer_id} cancelled.")
                return
            status = _database_errors(lambda: queries.timer_status(service.db, timer_id))
        finally:
            service.db.dispose()
        if status is None:
            raise click.ClickException(f"There is no timer {timer_id}.")
        done = {"fired": "it has already fired", "cancelled": "it was already cancelled"}
        raise click.ClickException(
            f"Timer {timer_id} is not pending: {done.get(status, status)}. Nothing changed.")
