"""The OpenAPI 3.1 document of the REST API, built from the routes that exist.

Paths and methods come from the app's URL map (every rule of the ``api`` blueprint);
what an operation takes and answers comes from the :func:`operation` mark on its view;
request bodies are the JSON Schemas in ``schemas/api/`` — the very files the API
validates requests with — and a flow document is ``schemas/flow.schema.json``. So the
document cannot drift from what the server does: a route without its mark still appears
(with a bare description), and a test checks that none is missing.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jsonschema_rs
from flask import Flask
from jsonschema import Draft202012Validator

import schemas
from blocks import timer_kinds

API_SCHEMA_DIR = Path(schemas.__file__).resolve().parent / "api"
BLUEPRINT = "api"
FLOW_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
MAX_ID = 2**63 - 1  # conversation ids are BIGINT on PostgreSQL

# schemas/api/<file>.json → its name under components.schemas.
REQUEST_SCHEMAS = {
    "inbound": "Inbound",
    "conversation_action": "ConversationAction",
    "unassign_and_conclude": "UnassignAndConclude",
    "assign": "Assignee",
    "message": "AgentMessage",
    "transfer": "Transfer",
    "note": "PrivateNote",
    "publish": "Publish",
    "availability": "Availability",
    "user_change": "UserChange",
    "canned_response": "CannedResponseInput",
    "canned_response_change": "CannedResponseChange",
    "business_hours": "BusinessHours",
}
FLOW = "Flow"  # components.schemas name of schemas/flow.schema.json


@cache
def request_schema(name: str) -> dict:
    """The JSON Schema ``schemas/api/<name>.json``."""
    return json.loads((API_SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))


@cache
def request_validator(name: str) -> Draft202012Validator:
    """The reference validator: its errors explain what is wrong, and where."""
    schema = request_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@cache
def fast_request_validator(name: str):
    """A compiled validator for the common case, a valid body (the hot path of every
    inbound message); a body it refuses goes to :func:`request_validator` for the why."""
    return jsonschema_rs.Draft202012Validator(request_schema(name))


# ---------------------------------------------------------------------- operation marks

@dataclass(frozen=True)
class Operation:
    """What one API view takes and answers, for the OpenAPI document."""

    summary: str
    tag: str
    body: str | None = None  # a REQUEST_SCHEMAS key, or FLOW
    body_required: bool = True
    ok: int = 200
    ok_schema: str | None = None  # components.schemas name; None: no content
    ok_description: str = "OK"
    errors: tuple[int, ...] = ()
    parameters: tuple[dict, ...] = ()
    ok_headers: dict = field(default_factory=dict)
    public: bool = False
    description: str | None = None


def operation(summary: str, **options):
    """Mark a view with its :class:`Operation` (read by :func:`build_document`)."""
    described = Operation(summary, **options)

    def mark(view):
        view.openapi = described
        return view

    return mark


# ---------------------------------------------------------------------- response schemas

def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_STRINGS = {"type": "array", "items": {"type": "string"}}

RESPONSE_SCHEMAS: dict[str, dict] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {
                    "type": "object", "required": ["path", "message"],
                    "properties": {"path": {"type": "string"}, "message": {"type": "string"},
                                   "block_id": {"type": "string"}}}},
                "findings": {"type": "array", "items": _ref("Finding")},
            },
        }},
    },
    "Finding": {
        "type": "object",
        "required": ["level", "code", "message"],
        "properties": {
            "level": {"enum": ["error", "warning"]},
            "code": {"type": "string"},
            "block_id": _NULLABLE_STRING,
            "message": {"type": "string"},
        },
    },
    "FlowSaved": {
        "type": "object",
        "required": ["id", "revision", "findings"],
        "properties": {"id": {"type": "string"}, "revision": {"type": "integer"},
                       "findings": {"type": "array", "items": _ref("Finding")}},
    },
    "FlowSummary": {
        "type": "object",
        "required": ["id", "name", "published_version", "revision"],
        "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                       "published_version": {"type": ["integer", "null"]},
                       "revision": {"type": "integer"}},
    },
    "FlowList": {"type": "array", "items": _ref("FlowSummary")},
    "Version": {
        "type": "object",
        "required": ["version", "published_at", "published_by", "revision"],
        "properties": {"version": {"type": "integer"}, "published_at": _TIME,
                       "published_by": _NULLABLE_STRING, "revision": {"type": "integer"}},
    },
    "VersionList": {"type": "array", "items": _ref("Version")},
    "Published": {
        "type": "object", "required": ["version"],
        "properties": {"version": {"type": "integer"}},
    },
    "FlowTestRun": {
        "type": "object", "required": ["passed", "failed", "results"],
        "properties": {"passed": {"type": "integer"}, "failed": {"type": "integer"},
                       "results": {"type": "array", "items": _ref("FlowTestResult")}},
    },
    "FlowTestResult": {
        "type": "object", "required": ["name", "passed", "step", "message"],
        "properties": {"name": {"type": "string"}, "passed": {"type": "boolean"},
                       "step": {"type": ["integer", "null"], "description": "The failing step, from 1."},
                       "message": _NULLABLE_STRING},
    },
    "Reply": {
        "type": "object",
        "required": ["text", "buttons"],
        "properties": {"text": {"type": "string"}, "buttons": _STRINGS},
    },
    "InboundResult": {
        "type": "object",
        "required": ["conversation_id", "status", "replies"],
        "properties": {"conversation_id": {"type": "integer"},
                       "status": {"enum": ["open", "concluded"]},
                       "replies": {"type": "array", "items": _ref("Reply")}},
    },
    "Run": {
        "type": ["object", "null"],
        "required": ["state", "flow_id", "flow_version", "block_id"],
        "properties": {
            "state": {"enum": ["running", "waiting_input", "waiting_timer", "suspended", "ended"]},
            "flow_id": {"type": "string"},
            "flow_version": {"type": ["integer", "null"]},
            "block_id": _NULLABLE_STRING,
        },
    },
    "ConversationSummary": {
        "type": "object",
        "required": ["id", "status", "channel", "contact", "assignees", "run", "tags",
                     "updated_at", "waiting_since", "window_closes_at"],
        "properties": {
            "id": {"type": "integer"},
            "status": {"enum": ["open", "concluded"]},
            "channel": {"enum": ["api", "whatsapp", "web"]},
            "contact": {"type": "object", "required": ["external_id", "name"],
                        "properties": {"external_id": {"type": "string"},
                                       "name": {"type": "string"}}},
            "assignees": _STRINGS,
            "run": _ref("Run"),
            "tags": _STRINGS,
            "updated_at": _TIME,
            # the first customer message not yet answered by a person or the bot
            "waiting_since": {"anyOf": [_TIME, {"type": "null"}]},
            # WhatsApp's 24-hour window: last customer message + 24 h (null elsewhere / before any)
            "window_closes_at": {"anyOf": [_TIME, {"type": "null"}]},
        },
    },
    "Conversation": {
        "allOf": [_ref("ConversationSummary")],
        "type": "object",
        "required": ["variables", "messages", "activity", "timers"],
        "properties": {
            "variables": {"type": "object"},
            "messages": {"type": "array", "items": {
                "type": "object",
                "required": ["id", "direction", "author", "text", "buttons", "at"],
                "properties": {"id": {"type": "integer"}, "direction": {"enum": ["in", "out", "note"]},
                               "author": {"type": "string"}, "text": {"type": "string"},
                               "buttons": _STRINGS, "at": _TIME,
                               # WhatsApp (docs/WHATSAPP.md, "What is kept"): present when they apply
                               "media": {"type": "object", "required": ["type"]},
                               "contacts": {"type": "array", "items": {"type": "object"}},
                               "order": {"type": "object"},
                               "referral": {"type": "object"},
                               "referred_product": {"type": "object"},
                               "forwarded": {"type": "boolean"},
                               "reply_to": {"type": "object", "required": ["id", "text"],
                                            "properties": {"id": {"type": ["integer", "null"]},
                                                           "text": _NULLABLE_STRING}},
                               "reaction": {"type": "object", "required": ["emoji", "at"],
                                            "properties": {"emoji": {"type": "string"}, "at": _TIME}},
                               "deleted": {"type": "boolean"},
                               "edited": {"type": "boolean"},
                               # WhatsApp outbound: sent/delivered/read/failed (DESIGN §10.6)
                               "delivery": {"type": "object", "required": ["status", "at", "error"],
                                            "properties": {
                                                "status": {"enum": ["sent", "delivered", "read", "failed"]},
                                                "at": {"anyOf": [_TIME, {"type": "null"}]},
                                                "error": {"anyOf": [{"type": "null"}, {
                                                    "type": "object", "required": ["code", "title"],
                                                    "properties": {"code": {"type": ["string", "integer"]},
                                                                   "title": _NULLABLE_STRING}}]}}},
                               "edits": {"type": "array", "items": {
                                   "type": "object", "properties": {"text": {"type": "string"},
                                                                    "at": _TIME}}}}}},
            "activity": {"type": "array", "items": {
                "type": "object",
                "required": ["actor", "action", "from", "to", "at"],
                "properties": {"actor": {"type": "string"}, "action": {"type": "string"},
                               "from": _NULLABLE_STRING, "to": _NULLABLE_STRING, "at": _TIME}}},
            "timers": {"type": "array", "items": {
                "type": "object", "required": ["id", "kind", "due_at"],
                "properties": {"id": {"type": "integer"},
                               "kind": {"type": "string"},  # enum: timer_kind_names()
                               "due_at": _TIME}}},
        },
    },
    "ConversationPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": _ref("ConversationSummary")},
                       "next_cursor": _NULLABLE_STRING},
    },
    "ActionResult": {
        "type": "object",
        "required": ["conversation", "replies"],
        "properties": {"conversation": _ref("Conversation"),
                       "replies": {"type": "array", "items": _ref("Reply")}},
    },
    "User": {
        "type": "object",
        "required": ["login", "name", "role", "availability", "max_open", "disabled"],
        "properties": {"login": {"type": "string"}, "name": {"type": "string"},
                       "role": {"enum": ["admin", "agent"]},
                       "availability": {"enum": ["online", "away"]},
                       "max_open": {"type": "integer", "minimum": 0,
                                    "description": "0: no limit."},
                       "disabled": {"type": "boolean"}},
    },
    "UserList": {"type": "array", "items": _ref("User")},
    "CannedResponse": {
        "type": "object", "required": ["id", "shortcut", "text"],
        "properties": {"id": {"type": "integer"},
                       "shortcut": {"type": "string", "pattern": "^[a-z0-9_-]{1,32}$"},
                       "text": {"type": "string"}},
    },
    "CannedResponseList": {"type": "array", "items": _ref("CannedResponse")},
    "RenderedCannedResponseList": {"type": "array", "items": {
        "allOf": [_ref("CannedResponse")], "type": "object", "required": ["rendered"],
        "properties": {"rendered": {"type": "string"}}}},
    "Stats": {
        "type": "object",
        "required": ["avg", "median", "p90"],
        "properties": {"avg": _NULLABLE_NUMBER, "median": _NULLABLE_NUMBER,
                       "p90": _NULLABLE_NUMBER},
    },
    "Report": {
        "type": "object",
        "required": ["open", "concluded", "resolution_s", "first_response_s", "csat", "by_agent"],
        "properties": {
            "open": {"type": "integer"},
            "concluded": {"type": "integer"},
            "resolution_s": _ref("Stats"),
            "first_response_s": _ref("Stats"),
            "csat": {"type": "object", "required": ["avg", "count"],
                     "properties": {"avg": _NULLABLE_NUMBER, "count": {"type": "integer"}}},
            "by_agent": {"type": "array", "items": {
                "type": "object", "required": ["user", "concluded", "resolution_s_avg"],
                "properties": {"user": {"type": "string"}, "concluded": {"type": "integer"},
                               "resolution_s_avg": _NULLABLE_NUMBER}}},
        },
    },
}

ERROR_DESCRIPTIONS = {
    400: "Malformed request: not JSON, not a JSON content type, or a bad query parameter.",
    401: "No token, or an unknown one.",
    403: "The token's user may not do this (agents cannot change flows, people's capacity "
         "or canned responses).",
    404: "No such resource.",
    409: "Conflict: the id or shortcut is taken, or the revision is stale.",
    413: "The body is larger than 2 MiB.",
    422: "The body is JSON but not valid (details list each problem).",
    428: "The If-Match header is missing.",
}


# ---------------------------------------------------------------------- the document

def flow_components() -> dict[str, dict]:
    """flow.schema.json as components: ``Flow`` plus one ``Flow.<name>`` per ``$defs`` entry.

    The ``$defs`` are lifted next to ``Flow`` (their refs re-pointed) because OpenAPI
    tools resolve refs between components more reliably than refs into one.
    """
    doc = copy.deepcopy(schemas.flow_schema())
    doc.pop("$schema", None)
    doc.pop("$id", None)
    text = json.dumps(doc).replace('"#/$defs/', f'"#/components/schemas/{FLOW}.')
    flow = json.loads(text)
    defs = flow.pop("$defs", {})
    return {FLOW: flow, **{f"{FLOW}.{name}": schema for name, schema in defs.items()}}


def _embedded_request_schema(name: str) -> dict:
    doc = copy.deepcopy(request_schema(name))
    doc.pop("$schema", None)
    doc.pop("$id", None)
    return doc


_RULE_ARGUMENT = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")


def _path_and_parameters(rule: str) -> tuple[str, list[dict]]:
    """``/flows/<flow_id>`` → ``/flows/{flow_id}`` and its path parameters."""
    parameters = []

    def replace(found: re.Match) -> str:
        converter, name = found.group(1) or "default", found.group(3)
        if converter == "int":
            schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
        elif name == "flow_id":
            schema = {"type": "string", "pattern": FLOW_ID_PATTERN}
        else:
            schema = {"type": "string"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _RULE_ARGUMENT.sub(replace, rule), parameters


def _json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _operation_object(endpoint: str, method: str, described: Operation | None,
                      path_parameters: list[dict], several_methods: bool) -> dict:
    name = endpoint.split(".", 1)[-1]
    op_id = f"{name}_{method.lower()}" if several_methods else name
    if described is None:
        return {"operationId": op_id, "summary": name.replace("_", " "),
                "parameters": path_parameters,
                "responses": {"default": {"description": "See DESIGN §6."}}}
    result: dict = {"operationId": op_id, "summary": described.summary, "tags": [described.tag]}
    if described.description:
        result["description"] = described.description
    parameters = path_parameters + [copy.deepcopy(p) for p in described.parameters]
    if parameters:
        result["parameters"] = parameters
    if described.body:
        schema = _ref(FLOW if described.body == FLOW else REQUEST_SCHEMAS[described.body])
        result["requestBody"] = {"required": described.body_required,
                                 "content": _json_content(schema)}
    ok: dict = {"description": described.ok_description}
    if described.ok_schema:
        ok["content"] = _json_content(_ref(described.ok_schema))
    if described.ok_headers:
        ok["headers"] = copy.deepcopy(described.ok_headers)
    responses = {str(described.ok): ok}
    errors = set(described.errors)
    if not described.public:
        errors.add(401)
        result["security"] = [{"bearerAuth": []}]
    else:
        result["security"] = []
    if described.body:
        errors.update((400, 413, 422))
    for status in sorted(errors):
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    result["responses"] = responses
    return result


SERVICE_TIMER_KINDS = ("auto_conclude", "debounce")  # timers the service schedules itself


def timer_kind_names() -> list[str]:
    """Every timer kind a conversation may list: the blocks' (from the registry), then the
    service's own."""
    return [*timer_kinds(), *SERVICE_TIMER_KINDS]


def build_document(app: Flask) -> dict:
    """The OpenAPI 3.1 document for the ``api`` blueprint's routes in ``app``."""
    paths: dict[str, dict] = {}
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith(BLUEPRINT + ".")]
    for rule in sorted(rules, key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        described = getattr(view, "openapi", None)
        path, parameters = _path_and_parameters(rule.rule)
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            paths.setdefault(path, {})[method.lower()] = _operation_object(
                rule.endpoint, method, described, parameters, len(methods) > 1)
    components_schemas = flow_components()
    for file_name, name in REQUEST_SCHEMAS.items():
        components_schemas[name] = _embedded_request_schema(file_name)
    components_schemas.update(copy.deepcopy(RESPONSE_SCHEMAS))
    timer = components_schemas["Conversation"]["properties"]["timers"]["items"]
    timer["properties"]["kind"] = {"enum": timer_kind_names()}
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "papo REST API",
            "version": "1",
            "description": "Flows, inbound messages, conversations and reports. Every "
                           "route needs `Authorization: Bearer <token>` (create one with "
                           "`papo token create --user LOGIN`) except this document. Every "
                           "error is `{\"error\": {\"code\", \"message\", \"details\"?}}`.",
        },
        "tags": [{"name": "flows"}, {"name": "conversations"}, {"name": "channels"},
                 {"name": "reports"}, {"name": "people"}, {"name": "canned-responses"},
                 {"name": "meta"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "An API token."}},
            "schemas": components_schemas,
            "responses": {
                f"E{status}": {"description": text, "content": _json_content(_ref("Error"))}
                for status, text in ERROR_DESCRIPTIONS.items()
            },
        },
    }
