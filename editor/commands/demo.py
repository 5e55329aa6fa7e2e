"""``papo demo``: everything in one process, ready to click through.

Creates the database, imports and publishes ``sample_flows/`` (flows already there are
left as people edited them), creates an admin and an agent (passwords generated once and
kept in the instance folder), then runs the web app and the worker together and prints
where to go. Unless ``PAPO_ON_CONCLUDE_FLOW`` is set (even to nothing), every conclusion
that no ``open_conversation`` block resumes asks for a rating: the sample flow
``avaliacao`` (DESIGN §10.8).
"""
from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path

import click

SAMPLE_FLOWS = Path(__file__).resolve().parents[2] / "sample_flows"
DEMO_USERS = (("admin", "admin", "Ana (admin)"), ("bruno", "agent", "Bruno"))
DEMO_ON_CONCLUDE_FLOW = "avaliacao"


def _credentials(instance: Path) -> dict[str, str]:
    """The demo passwords, generated on the first run and reused afterwards."""
    path = instance / "demo-logins.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    logins = {login: secrets.token_urlsafe(12) for login, _, _ in DEMO_USERS}
    path.write_text(json.dumps(logins), encoding="utf-8")
    os.chmod(path, 0o600)
    return logins


def _import_samples(engine, folder: Path) -> list[str]:
    from engine.errors import Invalid, NotFound
    from engine.flows import FlowRepository

    repo = FlowRepository(engine)
    lines = []
    for path in sorted(folder.glob("*.json")):
        raw = path.read_bytes()
        flow_id = json.loads(raw)["id"]
        try:
            repo.get(flow_id)
        except NotFound:
            repo.create(raw, actor="demo")
            try:
                version = repo.publish(flow_id, actor="demo")["version"]
                lines.append(f"  {flow_id}: imported, published version {version}")
            except Invalid as exc:
                if exc.code != "flow_tests_failed":
                    raise
                # The demo must start: its own flows' tests can only fail under settings
                # that change the bot (e.g. PAPO_HANDOFF_KEYWORDS). Say so, publish anyway.
                version = repo.publish(flow_id, actor="demo", force=True)["version"]
                lines.append(f"  {flow_id}: imported, published version {version} "
                             f"although {len(exc.details or [])} of its tests fail with these settings "
                             f"(papo test {flow_id})")
        else:  # keep what people changed in the editor since the last demo run
            lines.append(f"  {flow_id}: already there, left as it is")
    return lines


def register(group: click.Group) -> None:
    @group.command("demo", help="Set up a demo database and run the web app and the worker together.")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=5000, type=click.IntRange(0, 65535), show_default=True)
    @click.option("--flows", "flows_dir", default=str(SAMPLE_FLOWS), show_default=True,
                  type=click.Path(file_okay=False), help="Folder of flow files to import and publish.")
    def demo(host: str, port: int, flows_dir: str) -> None:
        from sqlalchemy.exc import OperationalError
        from werkzeug.serving import make_server

        from editor.app import create_app, ensure_schema, get_engine, get_service
        from engine import accounts
        from engine.settings import SettingsError

        on_conclude = os.environ.get("PAPO_ON_CONCLUDE_FLOW", DEMO_ON_CONCLUDE_FLOW)
        try:
            app = create_app({"PAPO_ON_CONCLUDE_FLOW": on_conclude})
            engine = get_engine(app)
            ensure_schema(engine)
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise click.ClickException(f"Cannot use the database: {reason}") from None

        instance = Path(app.instance_path)
        instance.mkdir(parents=True, exist_ok=True)
        logins = _credentials(instance)
        for login, role, name in DEMO_USERS:
            if not accounts.user_exists(engine, login):
                accounts.create_user(engine, login, role, password=logins[login], name=name)
        folder = Path(flows_dir)
        imported = _import_samples(engine, folder) if folder.is_dir() else []

        from engine.worker import Worker

        with app.app_context():
            worker = Worker(get_service(app))
        threading.Thread(target=worker.run_forever, kwargs={"install_signals": False},
                         name="papo-worker", daemon=True).start()

        try:
            server = make_server(host, port, app, threaded=True)
        except OSError as exc:
            raise click.ClickException(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        base = f"http://{shown}:{server.port}"
        click.echo("papo demo is ready.")
        if imported:
            click.echo("Flows:")
            click.echo("\n".join(imported))
        click.echo(f"Open      {base}/")
        click.echo(f"Login     admin / {logins['admin']}   (agent: bruno / {logins['bruno']})")
        click.echo(f"Web chat  {base}/c/boas-vindas?name=Maria   (talk to the bot as a customer)")
        if on_conclude:
            click.echo(f"On conclusion the flow {on_conclude} runs (PAPO_ON_CONCLUDE_FLOW).")
        click.echo("Press Ctrl+C to stop.")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("Stopped.")
        finally:
            worker.stop()
            server.server_close()
