"""``papo worker``: fire timers and run the periodic jobs (DESIGN §3 "Timers", §5).

Reads every setting from ``PAPO_*`` variables; a malformed one stops it at start-up
with a message naming the variable. Stops cleanly on SIGTERM / SIGINT (Ctrl+C).
"""
from __future__ import annotations

import click

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# libpq waits forever for an unanswering host by default: the worker would hang silently.
PG_CONNECT_TIMEOUT_S = 10


def load_settings():
    """``Settings.from_env()``; a malformed ``PAPO_*`` value becomes a one-line CLI error."""
    from engine.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def worker_database_url(settings) -> str:
    """``PAPO_DATABASE_URL`` (else the instance SQLite file), with a connect timeout."""
    from sqlalchemy.engine import make_url

    from engine.db import database_url

    url = settings.database_url or database_url()
    try:
        parsed = make_url(url)
    except Exception:
        raise click.ClickException("PAPO_DATABASE_URL is not a database URL.") from None
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(PG_CONNECT_TIMEOUT_S)})
        return parsed.render_as_string(hide_password=False)
    return url


def _configure_logging(level: str) -> None:
    """Text or JSON lines on stderr (``PAPO_LOG_FORMAT``), from ``level`` up."""
    from engine import logs
    from engine.settings import SettingsError

    try:
        fmt, _level = logs.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    logs.configure(fmt, level)


def register(group: click.Group) -> None:
    @group.command("worker", help="Fire due timers (waits, question timeouts, auto-conclude, debounce), "
                                  "send the outbox and clean up; runs until SIGTERM or Ctrl+C.")
    @click.option("--batch", default=200, show_default=True, type=click.IntRange(1, 10_000),
                  help="Timers claimed at a time.")
    @click.option("--lease", "lease_s", default=30.0, show_default=True,
                  type=click.FloatRange(min=1), help="Seconds a claim lasts if this worker dies.")
    @click.option("--outbox-lease", "outbox_lease_s", default=None, type=click.FloatRange(min=20),
                  help="Seconds a WhatsApp message being sent stays with this worker if it dies "
                       "(default 60; over the 15 s request timeout).")
    @click.option("--once", is_flag=True,
                  help="Fire the timers due now, print how many, and exit (cron, scripts).")
    @click.option("--log-level", default="INFO", show_default=True, envvar="PAPO_LOG_LEVEL",
                  type=click.Choice(LOG_LEVELS, case_sensitive=False))
    @click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
                  help="Serve Prometheus metrics (GET /metrics, with PAPO_METRICS_TOKEN as a bearer "
                       "token when it is set) and GET /healthz on this port (0: any free port).")
    @click.option("--metrics-host", default="127.0.0.1", show_default=True,
                  help="Address for --metrics-port (0.0.0.0: every interface).")
    def worker(batch: int, lease_s: float, outbox_lease_s: float | None, once: bool, log_level: str,
               metrics_port: int | None, metrics_host: str) -> None:
        from engine.db import make_engine
        from engine.service import Service
        from engine.settings import SettingsError
        from engine.worker import (
            Worker,
            database_unreachable,
            dedup_retention_from_env,
            error_reason,
            safe_url,
        )

        settings = load_settings()
        try:
            retention = dedup_retention_from_env()
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        url = worker_database_url(settings)
        _configure_logging(log_level.upper())
        service = Service(make_engine(url, sqlite_upkeep=True), settings)
        runner = Worker(service, batch=batch, lease_s=lease_s, dedup_retention_s=retention,
                        outbox_lease_s=outbox_lease_s)
        click.echo(f"papo worker {runner.worker_id} started, database {safe_url(url)}")
        metrics_server = None
        if metrics_port is not None and not once:
            from engine import metrics

            try:
                metrics_server = metrics.serve(metrics_host, metrics_port, service.db,
                                               settings.metrics_token)
            except OSError as exc:
                service.db.dispose()
                raise click.ClickException(f"Cannot serve metrics on {metrics_host}:{metrics_port}: "
                                           f"{exc.strerror or exc}") from None
            shown = "127.0.0.1" if metrics_host in ("0.0.0.0", "::") else metrics_host
            click.echo(f"metrics at http://{shown}:{metrics_server.server_port}/metrics", err=False)
        try:
            if once:
                try:
                    fired = runner.drain()
                except Exception as exc:
                    if not database_unreachable(exc):
                        raise
                    raise click.ClickException(
                        f"Cannot use the database {safe_url(url)}: {error_reason(exc)}") from None
                finally:
                    runner.release()
                click.echo(f"{fired} timer(s) fired.")
                return
            runner.run_forever()
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            service.db.dispose()
