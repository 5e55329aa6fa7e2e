"""``papo chat FLOW_FILE_OR_ID [--jsonl] [--name NAME]``: talk to a flow in the terminal.

Runs on a private in-memory database with the same service production uses (see
``engine.simulator``). Each input line is a customer message or a command: ``/open``,
``/conclude``, ``/wait SECONDS``, ``/vars``, ``/quit``. ``--jsonl`` prints one JSON
object per line and nothing else on stdout (DESIGN §5): ``bot``, ``status`` (on every
status change), ``vars`` and ``error`` events. ``/quit`` and end of input exit 0.

Loading the flow: a readable file is loaded (structural problems are printed, exit 1; a
file that cannot be read or is not JSON, exit 2, as in ``papo validate``); otherwise the
argument is a flow id whose latest draft is copied from PAPO_DATABASE_URL's database.
"""
from __future__ import annotations

import json
import os
import re
import sys

import click

from engine.settings import SettingsError, parse_duration

EXIT_OK, EXIT_ERRORS, EXIT_UNREADABLE = 0, 1, 2
DEFAULT_NAME = "Visitante"  # as the public web chat (DESIGN §8): templates read contact.name
COMMANDS = "/open, /conclude, /wait SEGUNDOS, /vars, /quit"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WAIT = re.compile(r"^(\d+(?:[.,]\d+)?)\s*([smhd]?)$", re.IGNORECASE)

STATUS_LINES = {
    "open": "— atendimento aberto: o robô fica em silêncio —",
    "concluded": "— atendimento concluído: o robô volta a responder —",
}


class FlowLoadError(Exception):
    """The flow could not be loaded: ``lines`` to print, ``status`` to exit with."""

    def __init__(self, lines: list[str], status: int):
        super().__init__("\n".join(lines))
        self.lines = lines
        self.status = status


def parse_wait(text: str) -> float:
    """Seconds from ``90``, ``1.5``, ``30m``, ``2h``, ``1d`` or ISO-8601 ``PT1H``."""
    value = text.strip()
    found = _WAIT.match(value)
    if found:
        return float(found.group(1).replace(",", ".")) * _UNITS[(found.group(2) or "s").lower()]
    try:
        return parse_duration(value, "/wait")
    except SettingsError:
        raise ValueError(f"/wait precisa de um número de segundos (ex.: /wait 3600), não {value!r}.") from None


# ---------------------------------------------------------------------- loading the flow
def _load_file(path: str) -> dict:
    from editor.commands.flows import read_flow_file
    from editor.commands.validate import format_finding

    doc, problems, status = read_flow_file(path)
    if doc is None:
        raise FlowLoadError([format_finding(p) for p in problems], status)
    return doc


def _load_from_database(flow_id: str) -> dict:
    from sqlalchemy.exc import SQLAlchemyError

    from engine.db import database_url, make_engine
    from engine.errors import NotFound
    from engine.flows import FlowRepository

    engine = make_engine(database_url())
    try:
        return FlowRepository(engine).get(flow_id)[0]
    except NotFound:
        raise FlowLoadError([f"{flow_id}: não é um arquivo nem um fluxo do banco de dados."],
                            EXIT_ERRORS) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise FlowLoadError([f"{flow_id}: não é um arquivo, e o banco de dados não pôde ser "
                             f"lido ({reason})."], EXIT_ERRORS) from None
    finally:
        engine.dispose()


def load_flow(argument: str) -> dict:
    """The flow document named by ``argument``: a file path, or a flow id in the database."""
    if os.path.isfile(argument):
        return _load_file(argument)
    if os.sep in argument or "/" in argument or argument.lower().endswith(".json"):
        return _load_file(argument)  # meant as a file: say why it cannot be read
    return _load_from_database(argument)


# ---------------------------------------------------------------------- output
class Printer:
    """Writes events for people (pt-BR, emoji) or for scripts (JSON lines)."""

    def __init__(self, jsonl: bool):
        self.jsonl = jsonl

    def _json(self, event: dict) -> None:
        # Compact, as DESIGN §5 writes the events; click.echo flushes after each line.
        click.echo(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    def intro(self, doc: dict, name: str) -> None:
        if self.jsonl:
            return
        click.echo(f"Simulando o fluxo \"{doc.get('name') or doc['id']}\" ({doc['id']}) como "
                   f"\"{name}\". Escreva como cliente; comandos: {COMMANDS}.")

    def lint_errors(self, file: str, findings: list[dict]) -> None:
        """Lint errors would block publishing; the draft still runs, so people are warned."""
        from editor.commands.validate import format_finding

        if self.jsonl:
            return
        for finding in findings:
            if finding["level"] == "error":
                click.echo("⚠ " + format_finding({**finding, "file": file}))

    def events(self, events: list[dict]) -> None:
        for event in events:
            if event["event"] == "bot":
                self.bot(event["text"], event["buttons"])
            elif event["event"] == "status":
                self.status(event["status"])

    def bot(self, text: str, buttons: list[str]) -> None:
        if self.jsonl:
            self._json({"event": "bot", "text": text, "buttons": list(buttons)})
            return
        lines = text.split("\n")
        click.echo("🤖 " + lines[0])
        for line in lines[1:]:
            click.echo("   " + line if line else "")
        if buttons:
            click.echo("  " + "  ".join(f"[{i}] {label}" for i, label in enumerate(buttons, 1)))

    def status(self, status: str) -> None:
        if self.jsonl:
            self._json({"event": "status", "status": status})
        else:
            click.echo(STATUS_LINES.get(status, f"— status: {status} —"))

    def variables(self, variables: dict) -> None:
        if self.jsonl:
            self._json({"event": "vars", "vars": variables})
            return
        if not variables:
            click.echo("📋 nenhuma variável salva ainda")
            return
        click.echo("📋 variáveis:")
        for key in sorted(variables):
            click.echo(f"   {key} = {json.dumps(variables[key], ensure_ascii=False)}")

    def silence(self, status: str) -> None:
        """Say why nothing came back, so a person does not wait for an answer."""
        if self.jsonl:
            return
        if status == "open":
            click.echo("   (atendimento aberto: a mensagem fica para a equipe)")
        else:
            click.echo("   (o robô não respondeu)")

    def waited(self, seconds: float, replies: int) -> None:
        if not self.jsonl:
            note = "" if replies else " (nada aconteceu)"
            click.echo(f"⏱ +{_duration(seconds)}{note}")

    def problem(self, line: str) -> None:
        """A problem with the flow itself, in ``papo validate``'s words."""
        if self.jsonl:
            self._json({"event": "error", "message": line})
        else:
            click.echo(line)

    def error(self, message: str) -> None:
        if self.jsonl:
            self._json({"event": "error", "message": message})
        else:
            click.echo(f"⚠ {message}")


def _duration(seconds: float) -> str:
    if seconds and seconds % 86400 == 0:
        return f"{int(seconds // 86400)} d"
    if seconds and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


# ---------------------------------------------------------------------- the session
def run_session(sim, printer: Printer, lines) -> None:
    """Feed each input line to the simulation until ``/quit`` or the end of input."""
    from engine.errors import PapoError

    prompt = sys.stdin.isatty() and not printer.jsonl
    while True:
        if prompt:
            click.echo("você> ", nl=False)
        line = lines.readline()
        if not line:
            if prompt:
                click.echo()
            return
        text = line.strip()
        if not text:
            continue
        try:
            if text.startswith("/"):
                if not _command(sim, printer, text):
                    return
            else:
                sim.send(text)
                printer.events(sim.last_events)
                if not sim.last_events:
                    printer.silence(sim.status())
        except PapoError as exc:
            printer.error(str(exc))
        except Exception as exc:  # a bug must not end a scripted session mid-way unexplained
            printer.error(f"erro interno ({type(exc).__name__}: {exc}); avise a equipe do papo")


def _command(sim, printer: Printer, text: str) -> bool:
    """Run one ``/command``; ``False`` ends the session."""
    name, _, argument = text.partition(" ")
    name, argument = name.lower(), argument.strip()
    if name in ("/quit", "/exit", "/sair"):
        return False
    if name == "/open":
        sim.open()
        printer.events(sim.last_events)
    elif name == "/conclude":
        sim.conclude()
        printer.events(sim.last_events)
    elif name == "/vars":
        printer.variables(sim.variables())
    elif name == "/wait":
        try:
            seconds = parse_wait(argument)
        except ValueError as exc:
            printer.error(str(exc))
            return True
        sim.wait(seconds)
        printer.waited(seconds, len(sim.last_events))
        printer.events(sim.last_events)
    elif name in ("/help", "/ajuda") and not printer.jsonl:
        click.echo(f"Comandos: {COMMANDS}. Qualquer outra linha é uma mensagem do cliente.")
    else:
        printer.error(f"comando desconhecido: {name} (use {COMMANDS})")
    return True


@click.command("chat")
@click.argument("flow", metavar="FLOW_FILE_OR_ID")
@click.option("--jsonl", is_flag=True, help="One JSON object per line (for scripts).")
@click.option("--name", default=DEFAULT_NAME, show_default=True,
              help="The customer's name (contact.name in templates).")
@click.pass_context
def chat_command(ctx: click.Context, flow: str, jsonl: bool, name: str) -> None:
    """Talk to a flow in the terminal, on an in-memory database.

    Each input line is a customer message, or /open, /conclude, /wait SECONDS, /vars,
    /quit. The flow starts on the first message whatever its triggers.
    """
    from engine.simulator import Simulation
    from schemas import FlowDocumentError

    printer = Printer(jsonl)
    try:
        doc = load_flow(flow)
    except FlowLoadError as exc:
        for line in exc.lines:
            printer.problem(line)
        ctx.exit(exc.status)
    try:
        sim = Simulation(doc, contact_name=name.strip() or DEFAULT_NAME)
    except SettingsError as exc:  # a malformed PAPO_* variable
        printer.problem(f"error: {exc}")
        ctx.exit(EXIT_ERRORS)
    except FlowDocumentError as exc:  # a database flow stored before a stricter schema
        for problem in exc.problems:
            printer.problem(f"{flow}: error {exc.code}: {problem['message']}")
        ctx.exit(EXIT_ERRORS)
    printer.intro(doc, sim.contact_name)
    printer.lint_errors(flow, sim.findings)
    try:
        run_session(sim, printer, sys.stdin)
    except KeyboardInterrupt:
        if not jsonl:
            click.echo()
    ctx.exit(EXIT_OK)


def register(group: click.Group) -> None:
    group.add_command(chat_command)
