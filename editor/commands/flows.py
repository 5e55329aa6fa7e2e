"""``papo import FILE... [--publish]`` and ``papo export FLOW_ID [-o FILE]``: flows in and out.

Import stores each file as a draft in PAPO_DATABASE_URL's database (migrated first): a
new flow is created, an existing one gets a new draft revision. Lines follow ``papo
validate``: ``FILE: LEVEL [BLOCK_ID] CODE: message`` for each problem, then
``FILE: imported ID revision N[, published version V]``. Exit status: 0 all stored (and
published when asked), 1 some file refused (structural problems store nothing) or not
published (lint errors), 2 some file unreadable or not JSON (2 wins over 1).

Export prints the latest draft exactly as stored (JSON, UTF-8, indent 2).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import click

from editor.commands.validate import UNREADABLE_CODES, format_finding

EXIT_OK, EXIT_ERRORS, EXIT_UNREADABLE = 0, 1, 2
STDIN = "-"
ACTOR = "cli"  # who the revision history says saved or published the flow


# ---------------------------------------------------------------------- reading files
def _problem(file: str, code: str, message: str, block_id: str | None = None) -> dict:
    return {"file": file, "level": "error", "code": code, "block_id": block_id, "message": message}


def _unreadable(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "Arquivo não encontrado."
    if isinstance(exc, IsADirectoryError):
        return "É uma pasta, não um arquivo."
    if isinstance(exc, PermissionError):
        return "Sem permissão para ler o arquivo."
    return f"Não foi possível ler o arquivo: {exc.strerror or exc}."


def read_flow_file(path: str, lang: str | None = None) -> tuple[dict | None, list[dict], int]:
    """``(document, problems, exit status)`` for a flow file (``-``: stdin).

    The document is ``None`` when the file cannot be stored; problems are findings with
    ``file`` (as ``papo validate`` prints them). Status 2: unreadable or not JSON; 1: other
    structural problems; 0: fine.
    """
    from schemas import FlowDocumentError, load_document

    try:
        if path == STDIN:
            raw = click.get_binary_stream("stdin").read()
        else:
            with open(path, "rb") as handle:
                raw = handle.read()
    except OSError as exc:
        return None, [_problem(path, "unreadable", _unreadable(exc))], EXIT_UNREADABLE
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [_problem(path, "not_json", "O arquivo não é um JSON válido: não está em "
                               f"UTF-8 (byte inválido na posição {exc.start}).")], EXIT_UNREADABLE
    try:
        return load_document(text, lang), [], EXIT_OK
    except FlowDocumentError as exc:
        problems = []
        for problem in exc.problems:
            message = problem["message"]  # says where in words; the block id is in brackets
            problems.append(_problem(path, exc.code, message, problem.get("block_id")))
        status = EXIT_UNREADABLE if exc.code in UNREADABLE_CODES else EXIT_ERRORS
        return None, problems, status


# ---------------------------------------------------------------------- the database
def database_error(exc: Exception) -> click.ClickException:
    """The CLI's error for a database that cannot be used (its URL without the password)."""
    from editor.commands.db import safe_url
    from engine.db import database_url

    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return click.ClickException(f"Cannot use the database {safe_url(database_url())}: {reason}")


def repository(migrate: bool):
    """A FlowRepository on PAPO_DATABASE_URL (migrated first when ``migrate``)."""
    from sqlalchemy.exc import SQLAlchemyError

    from engine.db import database_url, make_engine
    from engine.flows import FlowRepository
    from engine.migrate import MigrationError, upgrade

    url = database_url()
    if migrate:
        try:
            upgrade(url)
        except MigrationError as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            raise database_error(exc) from None
    return FlowRepository(make_engine(url))


# ---------------------------------------------------------------------- import
@dataclass
class _Imported:
    path: str
    doc: dict | None = None
    lines: list[str] = field(default_factory=list)
    status: int = EXIT_OK
    revision: int | None = None


def _store(repo, item: _Imported) -> None:
    """Create the flow or add a draft revision on top of the current one."""
    from engine.errors import NotFound, PapoError

    flow_id = item.doc["id"]
    try:
        try:
            _, current = repo.get(flow_id)
        except NotFound:
            item.revision = repo.create(item.doc, actor=ACTOR)["revision"]
        else:
            item.revision = repo.update(flow_id, item.doc, current, actor=ACTOR)["revision"]
    except PapoError as exc:  # e.g. someone saved the same flow at this very moment
        item.lines.append(format_finding(_problem(item.path, exc.code, exc.message)))
        item.status = EXIT_ERRORS


def _lint_and_publish(repo, item: _Imported, index: dict, jumped_into: set[str],
                      publish: bool) -> None:
    from engine.errors import PapoError
    from engine.lint import lint

    doc = item.doc
    from engine import whatsapp_templates

    findings = lint(doc, flows=index, jumped_into=jumped_into,
                    whatsapp_templates=whatsapp_templates.index(repo.engine))
    item.lines.extend(format_finding({**f, "file": item.path}) for f in findings)
    errors = sum(f["level"] == "error" for f in findings)
    done = f"{item.path}: imported {doc['id']} revision {item.revision}"
    if not publish:
        item.lines.append(done)
        return
    if errors:
        item.lines.append(f"{done}; not published: {errors} lint error(s) must be fixed first")
        item.status = EXIT_ERRORS
        return
    try:
        version = repo.publish(doc["id"], actor=ACTOR)["version"]
    except PapoError as exc:
        if exc.code == "flow_tests_failed":  # the draft stays stored; say which tests fail
            item.lines.extend(format_finding(_problem(item.path, exc.code, f"{d['path']}: {d['message']}"))
                              for d in exc.details or [])
        item.lines.append(f"{done}; not published: {exc.message}")
        item.status = EXIT_ERRORS
        return
    item.lines.append(f"{done}, published version {version}")


@click.command("import")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--publish", is_flag=True, help="Publish each flow after storing it (refused on lint errors).")
@click.pass_context
def import_command(ctx: click.Context, files: tuple[str, ...], publish: bool) -> None:
    """Store flow files as drafts in the database (PAPO_DATABASE_URL).

    A new flow is created; an existing one gets a new draft revision. Exit status: 0 ok,
    1 a file refused or not published, 2 a file unreadable or not JSON.
    """
    items = []
    for path in files:
        doc, problems, status = read_flow_file(path)
        item = _Imported(path, doc, [format_finding(p) for p in problems], status)
        items.append(item)
    stored = [item for item in items if item.doc is not None]
    if stored:
        from sqlalchemy.exc import SQLAlchemyError

        repo = repository(migrate=True)
        try:
            for item in stored:
                _store(repo, item)
            # Lint after every file is in, so flows that jump into each other are known.
            index, jumped_into = repo.flow_index(), repo.jumped_into()
            for item in stored:
                if item.revision is not None:
                    _lint_and_publish(repo, item, index, jumped_into, publish)
        except SQLAlchemyError as exc:
            raise database_error(exc) from None
        finally:
            repo.engine.dispose()
    for item in items:
        for line in item.lines:
            click.echo(line)
    statuses = {item.status for item in items}
    ctx.exit(EXIT_UNREADABLE if EXIT_UNREADABLE in statuses else max(statuses))


# ---------------------------------------------------------------------- export
@click.command("export")
@click.argument("flow_id")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of stdout.")
@click.pass_context
def export_command(ctx: click.Context, flow_id: str, output: str | None) -> None:
    """Print a flow's latest draft exactly as stored (JSON)."""
    from sqlalchemy.exc import SQLAlchemyError

    from engine.errors import NotFound

    repo = repository(migrate=False)
    try:
        doc, revision = repo.get(flow_id)
    except NotFound:
        click.echo(f"error: flow \"{flow_id}\" not found (papo import FILE stores one).", err=True)
        ctx.exit(EXIT_ERRORS)
    except SQLAlchemyError as exc:
        # Most often a database nobody imported into yet: no tables at all.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        click.echo(f"error: flow \"{flow_id}\" not found (cannot read the flows: {reason}).",
                   err=True)
        ctx.exit(EXIT_ERRORS)
    finally:
        repo.engine.dispose()
    text = json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
        ctx.exit(EXIT_OK)
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        click.echo(f"error: cannot write {output}: {exc.strerror or exc}", err=True)
        ctx.exit(EXIT_ERRORS)
    click.echo(f"{output}: exported {flow_id} revision {revision}", err=True)


def register(group: click.Group) -> None:
    group.add_command(import_command)
    group.add_command(export_command)
