"""``papo validate FILE... [--json]``: check flow files the way publishing would.

One line per finding, ``FILE: LEVEL [BLOCK_ID] CODE: message`` (the block id and its
brackets left out when the finding concerns no block); ``--json`` prints the findings
as a list, each with ``file`` added. Exit status (DESIGN §5): 0 no errors (warnings are
fine), 1 some error (structural or lint), 2 some file unreadable or not JSON (2 wins).
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable

import click

from engine.i18n import N_, gettext, normalize_lang
from engine.lint import has_errors, jump_targets, lint
from schemas import FlowDocumentError, load_document

EXIT_OK, EXIT_ERRORS, EXIT_UNREADABLE = 0, 1, 2
STDIN = "-"
# Codes that mean "this is not a flow file we could even parse": exit 2.
UNREADABLE_CODES = {"unreadable", "not_json"}

# pt-BR ids; English in the one catalog (editor/translations).
MESSAGES = {
    "not_found": N_("Arquivo não encontrado."),
    "is_dir": N_("É uma pasta, não um arquivo."),
    "no_permission": N_("Sem permissão para ler o arquivo."),
    "os_error": N_("Não foi possível ler o arquivo: %(error)s."),
    "not_utf8": N_("O arquivo não é um JSON válido: não está em UTF-8 (byte inválido na posição %(pos)s)."),
    "internal_error": N_("Erro interno ao analisar o fluxo (%(error)s). Avise a equipe do papo."),
    "summary": N_("%(files)s arquivo(s): %(errors)s erro(s), %(warnings)s aviso(s)."),
}


def _text(key: str, lang: str, **params) -> str:
    return gettext(MESSAGES[key], lang, **params)


def _finding(file: str, level: str, code: str, block_id: str | None, message: str) -> dict:
    return {"file": file, "level": level, "code": code, "block_id": block_id, "message": message}


def _read(path: str) -> bytes:
    if path == STDIN:
        return click.get_binary_stream("stdin").read()
    with open(path, "rb") as handle:
        return handle.read()


def _unreadable_message(exc: OSError, lang: str) -> str:
    if isinstance(exc, FileNotFoundError):
        return _text("not_found", lang)
    if isinstance(exc, IsADirectoryError):
        return _text("is_dir", lang)
    if isinstance(exc, PermissionError):
        return _text("no_permission", lang)
    return _text("os_error", lang, error=exc.strerror or exc)


def _structural_findings(path: str, error: FlowDocumentError) -> list[dict]:
    findings = []
    for problem in error.problems:
        message = problem["message"]  # says where in words; the block id is in brackets
        findings.append(_finding(path, "error", error.code, problem.get("block_id"), message))
    return findings


def _flow_blocks(text: str) -> tuple[str, set[str]] | None:
    """A flow's id and block ids, read leniently from a document that failed validation,
    so that jumps into it from the other given files are not reported as well."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        return None
    blocks = doc.get("blocks") if isinstance(doc.get("blocks"), list) else []
    return doc["id"], {b["id"] for b in blocks if isinstance(b, dict) and isinstance(b.get("id"), str)}


def validate_files(paths: Iterable[str], lang: str | None = None) -> tuple[list[dict], int]:
    """Check each flow file; returns (findings with ``file``, exit status).

    Flows among the given files count as known targets for each other's ``jump`` blocks.
    """
    lang = normalize_lang(lang)
    paths = list(paths)
    findings_by_file: dict[int, list[dict]] = {i: [] for i in range(len(paths))}
    loaded: list[tuple[int, str, dict]] = []
    known: dict[str, set[str]] = {}
    unreadable = False

    for i, path in enumerate(paths):
        try:
            raw = _read(path)
        except OSError as exc:
            findings_by_file[i].append(_finding(path, "error", "unreadable", None,
                                                _unreadable_message(exc, lang)))
            unreadable = True
            continue
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            findings_by_file[i].append(_finding(path, "error", "not_json", None,
                                                _text("not_utf8", lang, pos=exc.start)))
            unreadable = True
            continue
        try:
            doc = load_document(text, lang)
        except FlowDocumentError as exc:
            findings_by_file[i].extend(_structural_findings(path, exc))
            unreadable = unreadable or exc.code in UNREADABLE_CODES
            partial = _flow_blocks(text) if exc.code not in UNREADABLE_CODES else None
            if partial:
                known.setdefault(partial[0], set()).update(partial[1])
            continue
        loaded.append((i, path, doc))
        known.setdefault(doc["id"], set()).update(b["id"] for b in doc["blocks"])

    jumped_into = jump_targets(doc for _, _, doc in loaded)
    for i, path, doc in loaded:
        try:
            found = lint(doc, flows=known, lang=lang, jumped_into=jumped_into)
        except Exception as exc:  # a linter bug must not hide the other files' findings
            found = [{"level": "error", "code": "internal_error", "block_id": None,
                      "message": _text("internal_error", lang, error=f"{type(exc).__name__}: {exc}")}]
        findings_by_file[i].extend(
            _finding(path, f["level"], f["code"], f.get("block_id"), f["message"]) for f in found)

    findings = [f for i in range(len(paths)) for f in findings_by_file[i]]
    if unreadable:
        status = EXIT_UNREADABLE
    elif has_errors(findings):
        status = EXIT_ERRORS
    else:
        status = EXIT_OK
    return findings, status


def format_finding(finding: dict) -> str:
    """``FILE: LEVEL [BLOCK_ID] CODE: message`` on one line."""
    block = f" [{finding['block_id']}]" if finding.get("block_id") else ""
    message = re.sub(r"\s*[\r\n]+\s*", " ", str(finding["message"]))  # one finding, one line
    return f"{finding['file']}: {finding['level']}{block} {finding['code']}: {message}"


@click.command("validate")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as a JSON list.")
@click.option("--lang", envvar="PAPO_LANG", default=None, metavar="pt|en",
              help="Language of the messages (default pt; also PAPO_LANG).")
@click.pass_context
def validate_command(ctx: click.Context, files: tuple[str, ...], as_json: bool, lang: str | None) -> None:
    """Check flow files: structure, graph errors and warnings (as before publishing).

    Exit status: 0 no errors, 1 errors, 2 a file unreadable or not JSON.
    """
    findings, status = validate_files(files, lang)
    if as_json:
        click.echo(json.dumps(findings, ensure_ascii=False, indent=2))
    else:
        for finding in findings:
            click.echo(format_finding(finding))
        if sys.stderr.isatty():  # a word for people at a terminal; scripts read stdout only
            errors = sum(f["level"] == "error" for f in findings)
            click.echo(_text("summary", lang, files=len(files), errors=errors,
                             warnings=len(findings) - errors), err=True)
    ctx.exit(status)


def register(group: click.Group) -> None:
    group.add_command(validate_command)
