"""The flow document: loading, migrating and structural validation.

Structural problems (not JSON, schema violations, duplicate block ids, two edges from
one port, size limits, a newer ``schema_version``) raise :class:`FlowDocumentError`
and nothing may be stored. Graph problems are the linter's (``engine.lint``).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

from engine.clean import clean, nul_paths
from engine.i18n import t
from schemas.build import CURRENT_VERSION, FLOW_SCHEMA_PATH, SERVER_OWNED, STEP_KINDS
from schemas.migrations import migrate

MAX_BYTES = 2 * 1024 * 1024
MAX_BLOCKS = 2000
MAX_EDGES = 10000
MAX_DEPTH = 32

__all__ = ["FlowDocumentError", "load_document", "validate_document", "flow_schema",
           "strip_server_fields", "CURRENT_VERSION", "MAX_BYTES"]


class FlowDocumentError(Exception):
    """A flow document that cannot be stored. ``problems``: ``[{"path", "message"}]``."""

    def __init__(self, problems: list[dict], status: int = 422, code: str = "invalid_flow"):
        self.problems = problems
        self.status = status
        self.code = code
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in problems))


@lru_cache(maxsize=1)
def flow_schema() -> dict:
    return json.loads(Path(FLOW_SCHEMA_PATH).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    """The reference validator: slow, but its errors carry what we need to explain them."""
    return Draft202012Validator(flow_schema())


@lru_cache(maxsize=1)
def _fast_validator():
    """A compiled validator for the common case, a valid document (~100x faster)."""
    return jsonschema_rs.Draft202012Validator(flow_schema())


class _NotJson(ValueError):
    pass


def _reject_constant(name: str):
    raise _NotJson(f"{name} is not valid JSON")


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


def schema_problem(error, doc: dict, lang: str | None) -> dict:
    """One JSON Schema error as ``{"path", "message", "block_id"?}`` in ``lang`` (pt or en)."""
    kind = error.validator
    path = list(error.absolute_path)
    params: dict[str, Any] = {}
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        params = {"field": missing}
    elif kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        params = {"field": ", ".join(extra)}
    elif kind == "type":
        params = {"expected": error.validator_value if isinstance(error.validator_value, str)
                  else " / ".join(error.validator_value)}
    elif kind == "enum":
        if path[-1:] == ["type"] and len(path) == 3 and path[0] == "blocks":
            kind, params = "unknown_type", {"value": error.instance}
        else:
            params = {"allowed": ", ".join(str(v) for v in error.validator_value)}
    elif kind == "pattern":
        params = {"value": str(error.instance)[:80]}
    elif kind in ("maxLength", "minimum", "maximum", "exclusiveMinimum", "minItems", "maxItems"):
        params = {"limit": error.validator_value}
    elif kind not in ("minLength", "const", "not"):
        kind, params = "other", {"detail": error.message[:200]}
    if len(path) == 4 and path[0] == "tests" and path[2] == "steps" and \
            kind in ("additionalProperties", "minProperties", "maxProperties", "other"):
        # One key per step: name the step kinds instead of a generic "unknown field".
        extra = sorted(set(error.instance) - set(STEP_KINDS)) if isinstance(error.instance, dict) else []
        key = "unknown_step" if extra else "step_shape"
        return {"path": _path(path), "message": t(f"tests.{key}", lang, field=", ".join(extra),
                                                   kinds=", ".join(STEP_KINDS))}
    problem = {"path": _path(path), "message": t(f"schema.{kind}", lang, **params)}
    if len(path) >= 2 and path[0] == "blocks" and isinstance(path[1], int):
        block = doc["blocks"][path[1]]
        if isinstance(block, dict) and isinstance(block.get("id"), str):
            problem["block_id"] = block["id"]
    return problem


def _best_errors(doc: dict):
    """Schema errors, descending into the if/then dispatch so the path names the field."""
    for error in _validator().iter_errors(doc):
        if error.context:  # allOf/if-then wrappers: report the leaves
            yield from (e for e in error.context)
        else:
            yield error


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
        problems = [schema_problem(e, doc, lang) for e in _best_errors(doc)]
    if problems:
        unique = {(p["path"], p["message"]): p for p in problems}
        raise FlowDocumentError(sorted(unique.values(), key=lambda p: p["path"]))
    seen: set[str] = set()
    for i, block in enumerate(doc["blocks"]):
        if block["id"] in seen:
            problems.append({"path": f"$.blocks[{i}].id", "block_id": block["id"],
                             "message": t("duplicate_block", lang, block_id=block["id"])})
        seen.add(block["id"])
    used: set[tuple[str, str]] = set()
    for i, edge in enumerate(doc["edges"]):
        key = (edge["from"], edge["port"])
        if key in used:
            problems.append({"path": f"$.edges[{i}]", "block_id": edge["from"],
                             "message": t("duplicate_port", lang, port=edge["port"], block_id=edge["from"])})
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
                "not_json", lang, line=exc.lineno, col=exc.colno, error=exc.msg)}], code="not_json") from None
        except _NotJson as exc:
            raise FlowDocumentError([{"path": "$", "message": t(
                "not_json", lang, line=1, col=1, error=str(exc))}], code="not_json") from None
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
