"""``papo test FILE_OR_FLOW_ID... [--junit FILE] [--json]``: run flows' saved tests.

Each argument is a flow file (``-``: stdin) or, when no such file exists and it looks
like a flow id, a flow whose latest draft is read from PAPO_DATABASE_URL's database.
One line per test: ``PASS flow_id: name`` or ``FAIL flow_id: name: passo N: esperado …,
recebido …`` (``step N: expected …, got …`` under ``--lang en``). Problems with an
argument (unreadable, not JSON, structurally invalid, an unknown flow id) are printed as
``papo validate`` prints them, on stderr. Exit status (DESIGN §10.2, §10.6): 0 every test
passed (or there were none), 1 a test failed, 2 an argument could not be read or is
invalid (2 wins over 1).

Flows given together may jump into each other (the other files are published in the
tests' database); a flow read from the database may jump into the published flows there.
"""
from __future__ import annotations

import json
import os
import re
from xml.etree import ElementTree

import click

from editor.commands.validate import format_finding

EXIT_OK, EXIT_FAILED, EXIT_UNREADABLE = 0, 1, 2
_FLOW_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _problem(source: str, code: str, message: str) -> dict:
    return {"file": source, "level": "error", "code": code, "block_id": None, "message": message}


def _is_flow_id(arg: str) -> bool:
    return arg != "-" and not os.path.exists(arg) and _FLOW_ID.match(arg) is not None


def _from_database(flow_ids: list[str], lang: str | None, settings) -> tuple[dict[str, tuple[dict, list[dict]]], list[dict]]:
    """``({flow_id: (draft, jump targets)}, problems)`` for flows stored in the database."""
    from sqlalchemy.exc import SQLAlchemyError

    from editor.commands.flows import database_error, repository
    from engine.errors import NotFound

    found: dict[str, tuple[dict, list[dict]]] = {}
    problems: list[dict] = []
    repo = repository(migrate=False)
    try:
        for flow_id in flow_ids:
            try:
                doc, _revision = repo.get(flow_id, lang)
            except NotFound as exc:
                problems.append(_problem(flow_id, "flow_not_found", exc.message))
                continue
            found[flow_id] = (doc, repo.flows_for_tests(doc, settings))
    except SQLAlchemyError as exc:  # most often a database nobody imported into yet
        reason = database_error(exc).message
        problems.extend(_problem(flow_id, "flow_not_found", reason)
                        for flow_id in flow_ids if flow_id not in found)
    finally:
        repo.engine.dispose()
    return found, problems


def _junit(results: list[tuple[str, object]]) -> bytes:
    """JUnit XML: one ``testsuite`` per flow, one ``testcase`` per test."""
    root = ElementTree.Element("testsuites", tests=str(len(results)),
                               failures=str(sum(not r.passed for _, r in results)))
    suites: dict[str, ElementTree.Element] = {}
    for flow_id, result in results:
        suite = suites.get(flow_id)
        if suite is None:
            suite = suites[flow_id] = ElementTree.SubElement(root, "testsuite", name=flow_id,
                                                             tests="0", failures="0")
        suite.set("tests", str(int(suite.get("tests")) + 1))
        case = ElementTree.SubElement(suite, "testcase", classname=flow_id, name=result.name)
        if not result.passed:
            suite.set("failures", str(int(suite.get("failures")) + 1))
            failure = ElementTree.SubElement(case, "failure", message=result.message or "")
            failure.text = result.message or ""
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


@click.command("test")
@click.argument("sources", nargs=-1, required=True, metavar="FILE_OR_FLOW_ID...")
@click.option("--junit", "junit", type=click.Path(dir_okay=False), default=None,
              help="Also write the results as JUnit XML to this file.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: {passed, failed, results:[{flow_id,name,passed,step,message}], problems}.")
@click.option("--lang", envvar="PAPO_LANG", default=None, metavar="pt|en",
              help="Language of the failure messages (default pt-BR; env PAPO_LANG).")
@click.pass_context
def test_command(ctx: click.Context, sources: tuple[str, ...], junit: str | None, as_json: bool,
                 lang: str | None) -> None:
    """Run the tests saved in flows (files, or flow ids from the database).

    Exit status: 0 all tests passed (or none), 1 a test failed, 2 a file unreadable or
    invalid, or an unknown flow id.
    """
    from editor.commands.flows import read_flow_file
    from engine.flowtests import run_tests
    from engine.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    problems: list[dict] = []
    flows: list[tuple[dict, list[dict] | None]] = []  # (document, jump targets or None: the files)
    flow_ids = [s for s in sources if _is_flow_id(s)]
    stored, missing = _from_database(flow_ids, lang, settings) if flow_ids else ({}, [])
    problems.extend(missing)
    for source in sources:
        if source in flow_ids:
            if source in stored:
                flows.append(stored[source])
            continue
        doc, found, _status = read_flow_file(source, lang)
        problems.extend(found)
        if doc is not None:
            flows.append((doc, None))
    files = [doc for doc, targets in flows if targets is None]
    results = []
    for doc, targets in flows:
        others = files if targets is None else targets
        for result in run_tests(doc, settings=settings, lang=lang, others=others):
            results.append((doc["id"], result))

    for problem in problems:
        click.echo(format_finding(problem), err=True)
    if as_json:
        passed = sum(r.passed for _, r in results)
        click.echo(json.dumps({
            "passed": passed, "failed": len(results) - passed,
            "results": [{"flow_id": flow_id, **r.to_json()} for flow_id, r in results],
            "problems": problems}, ensure_ascii=False))
    else:
        for flow_id, result in results:
            if result.passed:
                click.echo(f"PASS {flow_id}: {result.name}")
            else:
                click.echo(f"FAIL {flow_id}: {result.name}: {result.message}")
    if junit:
        try:
            with open(junit, "wb") as handle:
                handle.write(_junit(results))
        except OSError as exc:
            click.echo(f"error: cannot write {junit}: {exc.strerror or exc}", err=True)
            ctx.exit(EXIT_UNREADABLE)
    if problems:
        ctx.exit(EXIT_UNREADABLE)
    ctx.exit(EXIT_FAILED if any(not r.passed for _, r in results) else EXIT_OK)


def register(group: click.Group) -> None:
    group.add_command(test_command)
