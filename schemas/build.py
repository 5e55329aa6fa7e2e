"""Assembles ``schemas/flow.schema.json`` from the envelope and each block's ``schema.json``.

Run ``python -m schemas.build`` after changing a block schema; a test checks the
committed file matches what this produces (one source of truth).
"""
from __future__ import annotations

import json
from pathlib import Path

from blocks import REGISTRY

HERE = Path(__file__).parent
FLOW_SCHEMA_PATH = HERE / "flow.schema.json"
SCHEMA_ID = "https://papo.dev/schemas/flow.schema.json"
CURRENT_VERSION = 1

ID_PATTERN = "^[a-z0-9][a-z0-9-]{0,62}$"
BLOCK_ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
SERVER_OWNED = ("revision", "version", "published_version")
MAX_TESTS = 100  # flow tests per document (publish runs them all: bounded work)
MAX_TEST_STEPS = 200
MAX_WAIT_S = 366 * 86400  # a wait block waits at most 365 days
STEP_KINDS = ("say", "expect", "expect_contains", "expect_buttons", "open", "conclude", "wait",
              "expect_status", "expect_vars", "expect_end")


def build_flow_schema() -> dict:
    defs = {f"{kind}_data": schema for kind, schema in
            ((k, b.data_schema) for k, b in REGISTRY.items())}
    dispatch = [
        {"if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
         "then": {"properties": {"data": {"$ref": f"#/$defs/{kind}_data"}}}}
        for kind in REGISTRY
    ]
    server_owned = {key: {"description": "Server-owned; ignored on import."} for key in SERVER_OWNED}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "papo flow",
        "type": "object",
        "required": ["schema_version", "id", "name", "start", "blocks", "edges"],
        "additionalProperties": False,
        "patternProperties": {"_at$": {"description": "Server-owned timestamp; ignored on import."}},
        "properties": {
            "schema_version": {"type": "integer", "minimum": 0},
            "id": {"type": "string", "pattern": ID_PATTERN},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string", "maxLength": 5000},
            "priority": {"type": "integer", "default": 0},
            "triggers": {"type": "array", "maxItems": 100, "items": {"$ref": "#/$defs/trigger"}},
            "start": {"type": "string", "pattern": BLOCK_ID_PATTERN},
            "blocks": {"type": "array", "items": {"$ref": "#/$defs/block"}},
            "edges": {"type": "array", "items": {"$ref": "#/$defs/edge"}},
            "tests": {"type": "array", "maxItems": MAX_TESTS, "items": {"$ref": "#/$defs/test"}},
            **server_owned,
        },
        "$defs": {
            "trigger": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["keyword", "default"]}},
                "if": {"properties": {"type": {"const": "keyword"}}},
                "then": {
                    "required": ["match", "value"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"const": "keyword"},
                        "match": {"enum": ["exact", "contains", "regex"]},
                        "value": {"type": "string", "minLength": 1, "maxLength": 500},
                        # DESIGN §10.3: also matches while a run waits at a question
                        "interrupts": {"type": "boolean", "title": "Interrompe"},
                    },
                },
                "else": {"additionalProperties": False, "properties": {"type": {"const": "default"}}},
            },
            "position": {
                "type": "object",
                "required": ["x", "y"],
                "additionalProperties": False,
                "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
            },
            "block": {
                "type": "object",
                "required": ["id", "type", "data"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": BLOCK_ID_PATTERN},
                    "type": {"enum": list(REGISTRY)},
                    "position": {"$ref": "#/$defs/position"},
                    "data": {"type": "object"},
                },
                "allOf": dispatch,
            },
            "edge": {
                "type": "object",
                "required": ["from", "port", "to"],
                "additionalProperties": False,
                "properties": {
                    "from": {"type": "string", "pattern": BLOCK_ID_PATTERN},
                    "port": {"type": "string", "pattern": BLOCK_ID_PATTERN},
                    "to": {"type": "string", "pattern": BLOCK_ID_PATTERN},
                },
            },
            **test_defs(),
            **defs,
        },
    }


def test_defs() -> dict:
    """Flow tests (DESIGN §10.2): each step is an object with exactly one known key."""
    text = {"type": "string", "minLength": 1, "maxLength": 4096}
    steps = {
        "say": text,
        "expect": {"type": "string", "maxLength": 4096},
        "expect_contains": text,
        "expect_buttons": {"type": "array", "maxItems": 20,
                           "items": {"type": "string", "minLength": 1, "maxLength": 200}},
        "open": {"const": True},
        "conclude": {"const": True},
        "wait": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT_S},
        "expect_status": {"enum": ["open", "concluded"]},
        "expect_vars": {"type": "object", "minProperties": 1, "maxProperties": 100},
        "expect_end": {"const": True},
    }
    assert tuple(steps) == STEP_KINDS
    return {
        "test": {
            "type": "object",
            "required": ["name", "steps"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "steps": {"type": "array", "minItems": 1, "maxItems": MAX_TEST_STEPS,
                          "items": {"$ref": "#/$defs/test_step"}},
                "contact": {"type": "object", "additionalProperties": False,
                            "properties": {"name": {"type": "string", "maxLength": 200}}},
                "http_mocks": {"type": "array", "maxItems": 100,
                               "items": {"$ref": "#/$defs/http_mock"}},
            },
        },
        "test_step": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
            "properties": steps,
        },
        "http_mock": {
            "type": "object",
            "required": ["method", "url", "status"],
            "additionalProperties": False,
            "properties": {
                "method": {"type": "string", "pattern": "^[A-Za-z]{1,10}$"},
                "url": {"type": "string", "minLength": 1, "maxLength": 4096},
                "status": {"type": "integer", "minimum": 100, "maximum": 599},
                "json": {},
                "text": {"type": "string", "maxLength": 262144},
            },
            "not": {"required": ["json", "text"]},
        },
    }


def dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    FLOW_SCHEMA_PATH.write_text(dump(build_flow_schema()), encoding="utf-8")
    print(f"wrote {FLOW_SCHEMA_PATH}")
