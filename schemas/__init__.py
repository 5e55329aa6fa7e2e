"""The flow document: loading, migrating and structural validation.

Structural problems (not JSON, schema violations, duplicate block ids, two edges from
one port, size limits, a newer ``schema_version``) raise :class:`FlowDocumentError`
and nothing may be stored. Graph problems are the linter's (``engine.lint``).
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

from blocks import REGISTRY
from engine.clean import clean, nul_paths
from engine.i18n import gettext, has_message, normalize_lang, t
from schemas.build import CURRENT_VERSION, SERVER_OWNED, STEP_KINDS, build_flow_schema
from schemas.migrations import migrate

MAX_BYTES = 2 * 1024 * 1024
MAX_BLOCKS = 2000
MAX_EDGES = 10000
MAX_DEPTH = 32

__all__ = ["FlowDocumentError", "load_document", "validate_document", "flow_schema",
           "strip_server_fields", "schema_problem", "field_message", "json_reason", "CURRENT_VERSION", "MAX_BYTES"]


class FlowDocumentError(Exception):
    """A flow document that cannot be stored. ``problems``: ``[{"path", "message"}]``."""

    def __init__(self, problems: list[dict], status: int = 422, code: str = "invalid_flow"):
        self.problems = problems
        self.status = status
        self.code = code
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in problems))


def flow_schema() -> dict:
    """The flow document's JSON Schema, assembled from the registered block kinds (the
    same text as the committed ``flow.schema.json``, which a test keeps in step)."""
    return _schema_for(tuple(REGISTRY))


@lru_cache(maxsize=4)
def _schema_for(kinds: tuple[str, ...]) -> dict:
    return build_flow_schema()


def _validator() -> Draft202012Validator:
    """The reference validator: slow, but its errors carry what we need to explain them."""
    return _validator_for(tuple(REGISTRY))


@lru_cache(maxsize=4)
def _validator_for(kinds: tuple[str, ...]) -> Draft202012Validator:
    return Draft202012Validator(flow_schema())


def _fast_validator():
    """A compiled validator for the common case, a valid document (~100x faster)."""
    return _fast_validator_for(tuple(REGISTRY))


@lru_cache(maxsize=4)
def _fast_validator_for(kinds: tuple[str, ...]):
    return jsonschema_rs.Draft202012Validator(flow_schema())


class _NotJson(ValueError):
    pass


def _reject_constant(name: str):
    raise _NotJson(f"{name} is not valid JSON", name)


_JSON_REASONS = (  # what Python's parser says → what a person is told
    ("Unterminated string", "json.unterminated_string"),
    ("Expecting ',' delimiter", "json.comma"),
    ("Expecting ':' delimiter", "json.colon"),
    ("Expecting property name", "json.property_name"),
    ("Expecting value", "json.value"),
    ("Extra data", "json.extra"),
    ("Invalid control character", "json.control"),
    ("Invalid \\escape", "json.escape"),
    ("Invalid \\uXXXX escape", "json.escape"),
)


def json_reason(exc: json.JSONDecodeError, text: str, lang: str | None = None) -> str:
    """Why a text is not JSON, in plain words with the line ("falta fechar aspas na linha 139")."""
    if not text.strip():
        return t("json.empty", lang)
    key = next((k for prefix, k in _JSON_REASONS if exc.msg.startswith(prefix)), "json.other")
    if key == "json.control" and text[exc.pos:exc.pos + 1] in ("\n", "\r"):
        key = "json.unterminated_string"  # a text runs into the end of its line: a quote is missing
    return t(key, lang, line=exc.lineno, col=exc.colno)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node)
    return deepest


def strip_server_fields(doc: dict) -> dict:
    """The document without server-owned keys (``revision``, ``version``, ``*_at`` …)."""
    return {k: v for k, v in doc.items() if k not in SERVER_OWNED and not k.endswith("_at")}


def _path(parts) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_EXPECTED = {"string": "text", "integer": "integer", "number": "number", "boolean": "boolean",
             "array": "array", "object": "object", "null": "null"}


def _english(lang: str | None) -> bool:
    return normalize_lang(lang) == "en"


def _field_label(key: str, schema: dict | None, lang: str | None) -> str:
    """``"Salvar resposta em" (save_as)``: the label the editor shows, then the key the file
    has. Schema titles are the editor's pt-BR labels, so the catalog translates them; a
    field without a label (or without its translation) is named by its key alone."""
    title = (schema or {}).get("properties", {}).get(key, {}).get("title")
    if title:
        title = gettext(title, lang)
        if _english(lang) and title == gettext(title):  # no English text for this label
            title = None
    elif has_message(f"field.{key}"):
        title = t(f"field.{key}", lang)
    if title and title != key:
        return f"\"{title}\" ({key})"
    return f"\"{key}\""


def _block_label(block: Any, index: int, lang: str | None) -> str:
    """``Bloco "Qual sabor?"`` (the title), with the id when the title is only the kind."""
    from blocks.labels import block_title

    if not isinstance(block, dict) or not isinstance(block.get("id"), str):
        return t("where.block_n", lang, n=index + 1)
    data = block.get("data") if isinstance(block.get("data"), dict) else {}
    title = block_title(block, lang)
    if isinstance(data.get("text"), str) and data["text"].strip():
        return t("where.block", lang, title=title)
    return t("where.block_id", lang, title=title, block_id=block["id"])


def _locate(path: list, doc: Any, lang: str | None) -> tuple[str, dict | None, list]:
    """Where in the document a problem is, in words, plus the schema of the object that
    holds the field and the path from that object on."""
    from blocks import REGISTRY

    if len(path) >= 2 and path[0] == "blocks" and isinstance(path[1], int):
        blocks = doc.get("blocks") if isinstance(doc, dict) else None
        block = blocks[path[1]] if isinstance(blocks, list) and path[1] < len(blocks) else None
        where = _block_label(block, path[1], lang)
        if len(path) >= 3 and path[2] == "data":
            kind = REGISTRY.get(block.get("type")) if isinstance(block, dict) else None
            return where, (kind.data_schema if kind else None), path[3:]
        return where, {"properties": {}}, path[2:]
    if len(path) >= 2 and path[0] == "tests" and isinstance(path[1], int):
        tests = doc.get("tests") if isinstance(doc, dict) else None
        test = tests[path[1]] if isinstance(tests, list) and path[1] < len(tests) else None
        name = test.get("name") if isinstance(test, dict) else None
        where = (t("where.test", lang, name=name) if isinstance(name, str) and name
                 else t("where.test_n", lang, n=path[1] + 1))
        return where, None, path[2:]
    if len(path) >= 2 and path[0] in ("edges", "triggers") and isinstance(path[1], int):
        key = "where.edge" if path[0] == "edges" else "where.trigger"
        return t(key, lang, n=path[1] + 1), None, path[2:]
    return t("where.flow", lang), None, path


def _suggestion(unknown: str, allowed: list[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(unknown, allowed, n=1, cutoff=0.6)
    if close:
        return close[0]
    lowered = {a.lower(): a for a in allowed}
    return lowered.get(unknown.lower())


def schema_problem(error, doc: dict, lang: str | None = None) -> dict:
    """One JSON Schema error as a problem: ``path`` for programs (``$.blocks[0].data``),
    ``message`` for people — where (the block's title), the field's label, what is wrong,
    and what to do — in pt-BR or English, without paths or the validator's English."""
    path = list(error.absolute_path)
    if len(path) == 4 and path[0] == "tests" and path[2] == "steps" and \
            error.validator in ("additionalProperties", "minProperties", "maxProperties"):
        # One key per step: name the step kinds instead of a generic "unknown field".
        extra = sorted(set(error.instance) - set(STEP_KINDS)) if isinstance(error.instance, dict) else []
        key = "unknown_step" if extra else "step_shape"
        return {"path": _path(path), "message": t(f"tests.{key}", lang, field=", ".join(extra),
                                                   kinds=", ".join(STEP_KINDS))}
    where, holder, rest = _locate(path, doc, lang)
    field = next((p for p in reversed(rest) if isinstance(p, str)), None)
    item = next((p for p in reversed(rest) if isinstance(p, int)), None)
    label = _field_label(field, holder if rest and rest[0] == field else None, lang) if field else None
    if field and item is not None and rest and rest[0] != field:
        label = t("field.item", lang, field=_field_label(rest[0], holder, lang), n=item + 1, sub=label)
    problem = {"path": _path(path), "message": f"{where}: {_what(error, holder, label, lang)}"}
    if len(path) >= 2 and path[0] == "blocks" and isinstance(path[1], int):
        block = doc["blocks"][path[1]] if isinstance(doc, dict) else None
        if isinstance(block, dict) and isinstance(block.get("id"), str):
            problem["block_id"] = block["id"]
    return problem


def field_message(error, lang: str | None = None) -> str:
    """A schema error about one field of a form, said beside that field ("Este campo não
    pode ficar vazio.")."""
    what = _what(error, None, t("field.this", lang), lang)
    return what[:1].upper() + what[1:] + ("" if what.endswith((".", "?")) else ".")


def _what(error, holder: dict | None, label: str | None, lang: str | None) -> str:
    """What is wrong, in words (no location)."""
    kind = error.validator
    path = list(error.absolute_path)
    custom = (error.schema or {}).get("x-message") if isinstance(error.schema, dict) else None
    if isinstance(custom, dict):
        what = custom.get("en" if _english(lang) else "pt") or custom.get("pt")
    elif kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        own = error.schema if isinstance(error.schema, dict) else holder
        what = t("schema.required", lang, field=_field_label(missing, own, lang))
    elif kind == "additionalProperties":
        allowed = sorted((error.schema or {}).get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hints = [(name, _suggestion(name, allowed)) for name in extra]
        parts = [t("schema.unknown_field_hint", lang, field=name, hint=hint) if hint
                 else t("schema.unknown_field", lang, field=name) for name, hint in hints]
        what = "; ".join(parts)
        if not any(hint for _, hint in hints) and allowed:
            what += t("schema.allowed_fields", lang, fields=", ".join(allowed))
    elif kind == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        names = " / ".join(t(f"type.{_EXPECTED.get(e, e)}", lang) for e in expected)
        what = t("schema.type", lang, field=label or t("field.document", lang), expected=names)
    elif kind == "enum":
        if path[-1:] == ["type"] and len(path) == 3 and path[0] == "blocks":
            what = t("schema.unknown_type", lang, value=str(error.instance)[:80],
                     allowed=", ".join(str(v) for v in error.validator_value))
        else:
            what = t("schema.enum", lang, field=label, value=str(error.instance)[:80],
                     allowed=", ".join(str(v) for v in error.validator_value))
    elif kind == "pattern":
        what = t("schema.pattern", lang, field=label, value=str(error.instance)[:80])
    elif kind in ("minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "minItems",
                  "maxItems", "const", "not"):
        what = t(f"schema.{kind}", lang, field=label or t("field.document", lang),
                 limit=error.validator_value if not isinstance(error.validator_value, dict) else "")
    else:
        what = t("schema.other", lang, field=label or t("field.document", lang))
    return what




def _best_errors(doc: dict):
    """Schema errors, descending into the if/then dispatch so the path names the field."""
    for error in _validator().iter_errors(doc):
        if error.context:  # allOf/if-then wrappers: report the leaves
            yield from (e for e in error.context)
        else:
            yield error


def _without_echoes(errors: list) -> list:
    """Drop "required field X is missing" where the same object has an unknown field that
    is a near miss of X ("txt" for "text"): one mistake, told once, with the suggestion."""
    misspelt: set[tuple[tuple, str]] = set()
    for error in errors:
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = sorted((error.schema or {}).get("properties", {}))
            for name in set(error.instance) - set(allowed):
                hint = _suggestion(name, allowed)
                if hint:
                    misspelt.add((tuple(error.absolute_path), hint))
    # A field with a value not allowed ("input": "escolha") also fails the if/else rules that
    # depend on it ("options only for a choice"): tell the first, the second follows from it.
    bad_values = {tuple(e.absolute_path)[:-1] for e in errors
                  if e.validator in ("enum", "type") and list(e.absolute_path)}
    kept = []
    for error in errors:
        if error.validator == "required" and "'" in error.message and \
                (tuple(error.absolute_path), error.message.split("'")[1]) in misspelt:
            continue
        if error.validator == "not" and tuple(error.absolute_path) in bad_values:
            continue
        kept.append(error)
    return kept


def validate_document(doc: Any, lang: str | None = None) -> dict:
    """Check an already-parsed, already-migrated document; return it without server fields."""
    if not isinstance(doc, dict):
        raise FlowDocumentError([{"path": "$", "message": t("not_object", lang)}])
    if _depth(doc) > MAX_DEPTH:
        raise FlowDocumentError([{"path": "$", "message": t("too_deep", lang, limit=MAX_DEPTH)}],
                                code="too_deep")
    doc = strip_server_fields(doc)
    blocks, edges = doc.get("blocks"), doc.get("edges")
    if isinstance(blocks, list) and len(blocks) > MAX_BLOCKS:
        raise FlowDocumentError([{"path": "$.blocks", "message": t(
            "too_many_blocks", lang, count=len(blocks), limit=MAX_BLOCKS)}], code="too_many_blocks")
    if isinstance(edges, list) and len(edges) > MAX_EDGES:
        raise FlowDocumentError([{"path": "$.edges", "message": t(
            "too_many_edges", lang, count=len(edges), limit=MAX_EDGES)}], code="too_many_edges")
    if _fast_validator().is_valid(doc):
        problems = []
    else:
        problems = [schema_problem(e, doc, lang) for e in _without_echoes(list(_best_errors(doc)))]
    if problems:
        unique = {(p["path"], p["message"]): p for p in problems}
        raise FlowDocumentError(sorted(unique.values(), key=lambda p: p["path"]))
    from blocks.labels import port_label

    seen: set[str] = set()
    for i, block in enumerate(doc["blocks"]):
        if block["id"] in seen:
            problems.append({"path": f"$.blocks[{i}].id", "block_id": block["id"],
                             "message": t("duplicate_block", lang, block_id=block["id"])})
        seen.add(block["id"])
    used: set[tuple[str, str]] = set()
    by_id = {b["id"]: (i, b) for i, b in reversed(list(enumerate(doc["blocks"])))}
    for i, edge in enumerate(doc["edges"]):
        key = (edge["from"], edge["port"])
        if key in used:
            index, source = by_id.get(edge["from"], (None, None))
            where = (_block_label(source, index, lang) if source is not None
                     else t("where.edge", lang, n=i + 1))
            problems.append({"path": f"$.edges[{i}]", "block_id": edge["from"],
                             "message": f"{where}: " + t("duplicate_port", lang,
                                                        port=port_label(source, edge["port"], lang))})
        used.add(key)
    names: set[str] = set()
    for i, test in enumerate(doc.get("tests") or []):
        if test["name"] in names:
            problems.append({"path": f"$.tests[{i}].name",
                             "message": t("tests.duplicate_name", lang, name=test["name"])})
        names.add(test["name"])
    if problems:
        raise FlowDocumentError(problems)
    return doc


def load_document(raw: bytes | str | dict, lang: str | None = None) -> dict:
    """Parse, size-check, migrate and validate a flow document.

    Returns the document as it will be stored (current ``schema_version``, server-owned
    fields removed). Raises :class:`FlowDocumentError` (413 over 2 MiB, else 422).
    """
    if isinstance(raw, dict):
        doc = raw
    else:
        size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
        if size > MAX_BYTES:
            raise FlowDocumentError([{"path": "$", "message": t(
                "too_large", lang, size=size, limit=MAX_BYTES)}], status=413, code="too_large")
        try:
            text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            raise FlowDocumentError([{"path": "$", "message": t(
                "not_utf8", lang, position=exc.start)}], code="not_json") from None
        try:
            doc = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise FlowDocumentError([{"path": "$", "message": t(
                "not_json", lang, reason=json_reason(exc, text, lang))}], code="not_json") from None
        except _NotJson as exc:
            raise FlowDocumentError([{"path": "$", "message": t(
                "not_json", lang, reason=t("json.constant", lang, value=exc.args[1]))}],
                code="not_json") from None
        except (RecursionError, ValueError):
            raise FlowDocumentError([{"path": "$", "message": t(
                "too_deep", lang, limit=MAX_DEPTH)}], code="too_deep") from None
    # Entry cleaning (engine/clean.py): NUL refused, lone surrogates → U+FFFD.
    nul = nul_paths(doc)
    if nul:
        raise FlowDocumentError([{"path": path, "message": t("nul_text", lang)} for path in nul])
    doc = clean(doc)
    if not isinstance(doc, dict):
        raise FlowDocumentError([{"path": "$", "message": t("not_object", lang)}])
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise FlowDocumentError([{"path": "$.schema_version", "message": t("bad_version", lang)}])
    if version < 0:
        raise FlowDocumentError([{"path": "$.schema_version", "message": t("bad_version", lang)}])
    if version > CURRENT_VERSION:
        raise FlowDocumentError([{"path": "$.schema_version", "message": t(
            "newer_version", lang, found=version, supported=CURRENT_VERSION)}], code="newer_version")
    return validate_document(migrate(doc), lang)
