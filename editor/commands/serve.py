"""``papo serve``: the web app on one machine (werkzeug's threaded WSGI server).

For several processes or machines use ``gunicorn 'editor:create_app()'`` instead.
"""
from __future__ import annotations

import click


def register(group: click.Group) -> None:
    @group.command("serve", help="Run the web app (editor, simulator, inbox, reports, API).")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to listen on (0.0.0.0: every interface).")
    @click.option("--port", default=5000, type=click.IntRange(0, 65535), show_default=True,
                  help="Port to listen on (0: any free port, printed at start).")
    def serve(host: str, port: int) -> None:
        from sqlalchemy.exc import OperationalError
        from werkzeug.serving import make_server

        from editor.app import create_app, ensure_schema, get_engine
        from engine import accounts
        from engine.settings import SettingsError

        try:
            app = create_app()
            engine = get_engine(app)
            if ensure_schema(engine):
                click.echo("Created the database tables.")
            nobody = not accounts.list_users(engine)
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise click.ClickException(f"Cannot use the database: {reason}") from None
        if nobody:
            click.echo("No users yet: create one with `papo user create LOGIN --role admin`.")
        try:
            server = make_server(host, port, app, threaded=True)
        except OSError as exc:  # port taken, address not available
            raise click.ClickException(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        click.echo(f"papo is running at http://{shown}:{server.port}/  (Ctrl+C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("Stopped.")
        finally:
            server.server_close()
