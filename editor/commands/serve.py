"""``papo serve``: the web app on one machine, under gunicorn (a production WSGI server).

Werkzeug's development server is never used here (DESIGN §10.5). The hooks of
``editor/gunicorn_conf.py`` apply (metrics added up over the workers, JSON log lines). The defaults suit a
small machine of 2 cores: 2 worker processes of 4 threads each (``gthread``), so a
slow request (an ``http_request`` block waiting on a remote API) does not hold up the
others and a crashed worker is replaced by the master. Each worker builds its own app
(``editor.create_app()``): its own database pool, token cache and rate limiters.
"""
from __future__ import annotations

import os

import click

DEFAULT_WORKERS = 2
DEFAULT_THREADS = 4
DEFAULT_TIMEOUT = 60  # seconds a worker may spend on one request before it is replaced


def _application(options: dict):
    from gunicorn.app.base import BaseApplication

    class PapoServer(BaseApplication):
        """gunicorn with papo's settings, no command-line parsing of its own."""

        def load_config(self):
            from editor import gunicorn_conf

            # The same hooks as `gunicorn -c python:editor.gunicorn_conf` (metrics across
            # workers, JSON log lines), then papo serve's own options.
            for key in ("on_starting", "child_exit", "on_exit", "logconfig_dict", "logger_class"):
                if hasattr(gunicorn_conf, key):
                    self.cfg.set(key, getattr(gunicorn_conf, key))
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            from editor.app import create_app

            return create_app()

    return PapoServer()


def register(group: click.Group) -> None:
    @group.command("serve", help="Run the web app (editor, simulator, inbox, reports, API) "
                   "under gunicorn.")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to listen on (0.0.0.0: every interface).")
    @click.option("--port", default=5000, type=click.IntRange(0, 65535), show_default=True,
                  help="Port to listen on (0: any free port, printed at start).")
    @click.option("--workers", default=DEFAULT_WORKERS, type=click.IntRange(1, 64),
                  show_default=True, help="Worker processes (about one per core).")
    @click.option("--threads", default=DEFAULT_THREADS, type=click.IntRange(1, 64),
                  show_default=True, help="Threads per worker (requests served at once by each).")
    @click.option("--timeout", default=DEFAULT_TIMEOUT, type=click.IntRange(5, 3600),
                  show_default=True, help="Seconds a request may take before its worker is replaced.")
    def serve(host: str, port: int, workers: int, threads: int, timeout: int) -> None:
        from sqlalchemy.exc import OperationalError

        from editor import gunicorn_conf  # the metrics folder, before any app exists
        from editor.app import create_app, ensure_schema, get_engine
        from engine import accounts
        from engine.settings import SettingsError

        try:
            # Checks the settings and the database once, before forking (no upkeep thread
            # here: a thread inside SQLite at the moment of a fork is not for the workers).
            app = create_app(upkeep=False)
            engine = get_engine(app)
            if ensure_schema(engine):
                click.echo("Created the database tables.")
            nobody = not accounts.list_users(engine)
            engine.dispose()  # the workers open their own connections
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise click.ClickException(f"Cannot use the database: {reason}") from None
        if nobody:
            click.echo("No users yet: create one with `papo user create LOGIN --role admin`.")

        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

        def when_ready(server):
            for listener in server.LISTENERS:
                bound = listener.sock.getsockname()[1]
                click.echo(f"papo is running at http://{shown}:{bound}/  "
                           f"({workers} workers × {threads} threads; Ctrl+C to stop)")

        options = {
            "bind": [bind],
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread" if threads > 1 else "sync",
            "timeout": timeout,
            "graceful_timeout": 10,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": os.environ.get("PAPO_LOG_LEVEL", "info").lower(),
            "proc_name": "papo",
            "control_socket_disable": True,  # no runtime-management socket in $HOME
            "when_ready": when_ready,
            # Metrics summed across the workers, gunicorn's lines as JSON with PAPO_LOG_FORMAT.
            "child_exit": gunicorn_conf.child_exit,
            "on_exit": gunicorn_conf.on_exit,
            "logconfig_dict": gunicorn_conf.logconfig_dict,
            "logger_class": gunicorn_conf.Logger,  # no access line built when none is written
            # X-Forwarded-* are trusted by the app itself (PAPO_TRUSTED_PROXIES → ProxyFix).
            "forwarded_allow_ips": "127.0.0.1,::1",
        }
        try:
            _application(options).run()
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise click.ClickException(
                    f"Cannot listen on {host}:{port} (see the message above).") from None
