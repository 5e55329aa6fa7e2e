"""``papo serve``: the web app on one machine (werkzeug's threaded server).

For several processes or machines use ``gunicorn 'editor:create_app()'`` instead.
"""
from __future__ import annotations

import click


def register(group: click.Group) -> None:
    @group.command("serve", help="Run the web app (editor, simulator, inbox, reports, API).")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to listen on (0.0.0.0: every interface).")
    @click.option("--port", default=5000, type=click.IntRange(1, 65535), show_default=True)
    def serve(host: str, port: int) -> None:
        from sqlalchemy import func, select
        from sqlalchemy.exc import OperationalError
        from werkzeug.serving import run_simple

        from editor.app import create_app, ensure_schema, get_engine
        from engine.settings import SettingsError
        from engine.store import users

        try:
            app = create_app()
            engine = get_engine(app)
            if ensure_schema(engine):
                click.echo("Created the database tables.")
            with engine.connect() as conn:
                nobody = conn.execute(select(func.count()).select_from(users)).scalar_one() == 0
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise click.ClickException(f"Cannot use the database: {reason}") from None
        if nobody:
            click.echo("No users yet: create one with `papo user create LOGIN --role admin`.")
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        click.echo(f"papo is running at http://{shown}:{port}/  (Ctrl+C to stop)")
        try:
            run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
        except OSError as exc:  # port taken, address not available
            raise click.ClickException(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from None
