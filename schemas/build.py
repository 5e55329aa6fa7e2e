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
            **defs,
        },
    }


def dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    FLOW_SCHEMA_PATH.write_text(dump(build_flow_schema()), encoding="utf-8")
    print(f"wrote {FLOW_SCHEMA_PATH}")
