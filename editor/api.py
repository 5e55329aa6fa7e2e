"""REST API v1 (DESIGN §6): flows, inbound messages, conversations and reports.

Every route needs ``Authorization: Bearer <token>`` except ``/api/v1/openapi.json``;
agents may read flows but only admins change them. Request bodies are checked against
the JSON Schemas in ``schemas/api/`` (the same files the OpenAPI document embeds) and
flow documents by ``schemas.load_document``. Every error is
``{"error": {"code", "message", "details"?}}`` with ``details`` a list of
``{"path", "message"}``; nothing is stored when a request is refused.

The views only translate HTTP to ``engine.flows.FlowRepository`` and
``engine.service.Service`` calls; each carries its OpenAPI description
(:func:`editor.openapi.operation`).
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, current_app, g, jsonify, request, url_for

from editor.app import get_engine, get_service, get_settings
from editor.auth import require_role, token_required
from editor.openapi import (
    FLOW,
    FLOW_ID_PATTERN,
    MAX_ID,
    build_document,
    fast_request_validator,
    operation,
    request_validator,
)
from editor.ops import handle_inbound
from engine import accounts, canned, hours_store, reports, whatsapp_media
from engine import hours as business_hours
from engine.clean import clean, needs_cleaning, parse_int
from engine.errors import Invalid, NotFound, PapoError
from engine.flows import FlowRepository, parse_revision
from engine.hours import BusinessHours
from engine.i18n import N_, gettext, normalize_lang
from engine.observe import inbound_request
from schemas import FlowDocumentError, load_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")

PUBLIC_ENDPOINTS = frozenset({"api.openapi"})
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
REPORT_DAYS = 30  # the period when ?from= / ?to= are left out
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9999, 12, 30)
_FLOW_ID = re.compile(FLOW_ID_PATTERN)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

admin_only = require_role("admin")

# The API's own messages (pt-BR ids; English in the one catalog, editor/translations).
MESSAGES = {
    "empty_body": N_("O pedido precisa de um corpo JSON."),
    "not_json": N_("O corpo do pedido não é JSON válido: %(error)s."),
    "media_type": N_("Envie o corpo como JSON (Content-Type: application/json), não %(mimetype)s."),
    "invalid_body": N_("O corpo do pedido tem %(count)s problema(s)."),
    "bad_text": N_("Texto com caractere não permitido (NUL ou Unicode inválido)."),
    "bad_number": N_("Número não permitido (NaN ou infinito)."),
    "required": N_("Campo obrigatório."),
    "unknown_field": N_("Campo desconhecido."),
    "type": N_("Tipo errado: esperado %(expected)s."),
    "min_length": N_("Não pode ficar vazio."),
    "max_length": N_("No máximo %(limit)s caracteres."),
    "blank": N_("Não pode ficar em branco."),
    "enum": N_("Use um destes valores: %(allowed)s."),
    "minimum": N_("O menor valor aceito é %(limit)s."),
    "maximum": N_("O maior valor aceito é %(limit)s."),
    "bad_parameter": N_("Parâmetro inválido: %(name)s."),
    "bad_limit": N_("Use um número inteiro a partir de 1 (acima de 200 vale 200)."),
    "bad_status": N_("Use open ou concluded."),
    "bad_sort": N_("Use activity ou waiting."),
    "bad_cursor": N_("Cursor inválido: use o next_cursor da página anterior."),
    "bad_date": N_("Data inválida: use AAAA-MM-DD (entre 1970 e 9999)."),
    "date_order": N_("A data final (to) vem antes da inicial (from)."),
    "flow_not_found": N_("O fluxo \"%(flow_id)s\" não existe."),
    "empty_message": N_("Envie um texto ou um anexo."),
    "bad_base64": N_("O conteúdo do anexo não é base64 válido."),
    "template_and_attachment": N_("Envie um modelo ou um anexo, não os dois na mesma mensagem."),
}


class BadRequest(PapoError):
    status, code = 400, "bad_request"


# ---------------------------------------------------------------------- helpers

def _lang() -> str:
    chosen = request.args.get("lang") or request.accept_languages.best_match(["pt", "en"])
    return normalize_lang(chosen)


def _msg(key: str, **params) -> str:
    return gettext(MESSAGES[key], _lang(), **params)


def _actor() -> str:
    return g.user["login"]


def _flows() -> FlowRepository:
    return FlowRepository(get_engine())


def _check_media_type() -> None:
    """A body must be JSON; a request that names no content type at all is taken as JSON."""
    mimetype = request.mimetype
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise BadRequest(_msg("media_type", mimetype=mimetype), code="unsupported_media_type",
                         details=[{"path": "Content-Type",
                                   "message": _msg("media_type", mimetype=mimetype)}])


def _json_path(parts) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _unstorable(value) -> list[dict]:
    """Values no database column takes (NUL, NaN): found before storing. Lone surrogates
    never get here: the body is cleaned first (``engine.clean``, U+FFFD)."""
    problems, stack = [], [((), value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if _bad_text(key):
                    problems.append({"path": _json_path(path), "message": _msg("bad_text")})
                stack.append(((*path, key), item))
        elif isinstance(node, list):
            stack.extend(((*path, i), item) for i, item in enumerate(node))
        elif isinstance(node, str) and _bad_text(node):
            problems.append({"path": _json_path(path), "message": _msg("bad_text")})
        elif isinstance(node, float) and not math.isfinite(node):
            problems.append({"path": _json_path(path), "message": _msg("bad_number")})
    return sorted(problems, key=lambda p: p["path"])


def _bad_text(text: str) -> bool:
    """A NUL (lone surrogates were already replaced by ``engine.clean``)."""
    return "\x00" in text


def _schema_details(error) -> list[dict]:
    """One jsonschema error as ``[{"path", "message"}]`` naming the field at fault."""
    path = list(error.absolute_path)
    kind = error.validator
    if kind == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        return [{"path": _json_path([*path, name]), "message": _msg("required")}
                for name in error.validator_value if name not in instance]
    if kind == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        return [{"path": _json_path([*path, name]), "message": _msg("unknown_field")}
                for name in sorted(set(error.instance) - known)]
    if kind == "type":
        expected = error.validator_value
        expected = expected if isinstance(expected, str) else " / ".join(expected)
        message = _msg("type", expected=expected)
    elif kind == "minLength":
        message = _msg("min_length")
    elif kind == "maxLength":
        message = _msg("max_length", limit=error.validator_value)
    elif kind == "pattern":
        message = _msg("blank")
    elif kind == "enum":
        message = _msg("enum", allowed=", ".join(str(v) for v in error.validator_value))
    elif kind == "minimum":
        message = _msg("minimum", limit=error.validator_value)
    elif kind == "maximum":
        message = _msg("maximum", limit=error.validator_value)
    else:
        message = error.message[:200]
    return [{"path": _json_path(path), "message": message}]


def json_body(schema: str, *, optional: bool = False) -> dict:
    """The request's JSON body, valid against ``schemas/api/<schema>.json``.

    Not JSON (or not a JSON content type) → 400; JSON that breaks the schema → 422 with
    every problem in ``details``. ``optional``: no body at all counts as ``{}``.
    """
    raw = request.get_data(cache=True)  # over the size limit: 413 from Flask
    if not raw.strip():
        if optional:
            data = {}
        else:
            raise BadRequest(_msg("empty_body"), code="invalid_json",
                             details=[{"path": "$", "message": _msg("empty_body")}])
    else:
        _check_media_type()
        try:
            data = json.loads(raw, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
            raise BadRequest(_msg("not_json", error=reason), code="invalid_json",
                             details=[{"path": "$", "message": _msg("not_json", error=reason)}]
                             ) from None
    if needs_cleaning(raw):
        data = clean(data)  # lone surrogates → U+FFFD (engine/clean.py)
    details = _unstorable(data)
    if not details and not fast_request_validator(schema).is_valid(data):
        errors = sorted(request_validator(schema).iter_errors(data),
                        key=lambda e: [str(p) for p in e.absolute_path])
        seen: dict[tuple, dict] = {}
        for error in errors:
            for detail in _schema_details(error):
                seen.setdefault((detail["path"], detail["message"]), detail)
        details = list(seen.values())
    if details:
        raise Invalid(_msg("invalid_body", count=len(details)), code="invalid_body",
                      details=details)
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def flow_document() -> dict:
    """The request's flow document, parsed, migrated and checked (nothing stored yet)."""
    raw = request.get_data(cache=True)
    _check_media_type()
    lang = _lang()
    try:
        doc = load_document(raw, lang)
    except FlowDocumentError as exc:
        error = PapoError(exc.problems[0]["message"] if len(exc.problems) == 1 else str(exc),
                          code=exc.code, details=[
                              {k: v for k, v in p.items() if k in ("path", "message", "block_id")}
                              for p in exc.problems])
        error.status = exc.status
        raise error from None
    problems = _unstorable(doc)
    if problems:
        raise Invalid(_msg("invalid_body", count=len(problems)), code="invalid_flow",
                      details=problems)
    return doc


def _flow_id(flow_id: str) -> str:
    """A path's flow id; one that could never exist is simply not found."""
    if not _FLOW_ID.match(flow_id):
        raise NotFound(_msg("flow_not_found", flow_id=flow_id[:80]), code="flow_not_found")
    return flow_id


def _bad_parameter(name: str, message_key: str) -> BadRequest:
    return BadRequest(_msg("bad_parameter", name=name), code="invalid_parameter",
                      details=[{"path": name, "message": _msg(message_key)}])


def _query_text(name: str) -> str | None:
    value = request.args.get(name)
    if value is None or not value.strip():
        return None
    if _bad_text(value):
        raise _bad_parameter(name, "bad_text")
    return value.strip()


def _limit() -> int:
    value = request.args.get("limit")
    if value is None or not value.strip():
        return DEFAULT_LIMIT
    # The one range-checked parser (engine.clean.parse_int); over 200 still counts as 200.
    number = parse_int(value.strip().lstrip("+"), minimum=1, maximum=MAX_ID)
    if number is None:
        raise _bad_parameter("limit", "bad_limit")
    return min(number, MAX_LIMIT)


def _cursor() -> str | None:
    """The cursor, if it is one the service handed out (checked so that no forged id
    overflows a database integer)."""
    cursor = _query_text("cursor")
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, last_id, *mark = raw.split("|")
        if mark not in ([], ["w"]):  # "w": a position among waiting customers (sort=waiting)
            raise ValueError(raw)
        datetime.fromisoformat(at)
        if parse_int(last_id, minimum=0, maximum=MAX_ID) is None:
            raise ValueError(last_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise _bad_parameter("cursor", "bad_cursor") from None
    return cursor


def _date(name: str) -> date | None:
    value = request.args.get(name)
    if value is None or not value.strip():
        return None
    try:
        if not _DATE.match(value.strip()):
            raise ValueError(value)
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise _bad_parameter(name, "bad_date") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise _bad_parameter(name, "bad_date")
    return day


def _action_result(result: dict):
    return jsonify({"conversation": result["conversation"], "replies": result["replies"]})


def _visible_conversation(conversation_id: int) -> dict:
    """The conversation, unless it does not exist or is the simulator's (404 either way)."""
    return get_service().get_conversation(conversation_id, include_test=False)


# ---------------------------------------------------------------------- authentication

def _granted():
    return None


@bp.before_request
def _authenticate():
    """Every route but the OpenAPI document needs a token (401 JSON otherwise)."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    return token_required(_granted)()


# ---------------------------------------------------------------------- parameters

_IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
             "description": "The revision you edited, quoted (as in the ETag) or bare. "
                            "Missing: 428; not the latest: 409.",
             "schema": {"type": "string"}}
_ETAG = {"ETag": {"description": "The draft's revision, quoted.", "schema": {"type": "string"}}}
_LIST_PARAMETERS = (
    {"name": "status", "in": "query", "schema": {"enum": ["open", "concluded"]}},
    {"name": "q", "in": "query", "description": "Part of the contact's name (case- and "
     "accent-insensitive).", "schema": {"type": "string"}},
    {"name": "assignee", "in": "query", "description": "A user login.",
     "schema": {"type": "string"}},
    {"name": "sort", "in": "query", "description": "`activity` (default): newest activity "
     "first; `waiting`: customers waiting for an answer first, longest waiting first, then "
     "the others by newest activity.", "schema": {"enum": ["activity", "waiting"]}},
    {"name": "text", "in": "query", "description": "Words found in the conversation's "
     "messages (every word, case-insensitive).", "schema": {"type": "string"}},
    {"name": "cursor", "in": "query", "description": "next_cursor of the previous page.",
     "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "description": "Page size: default 50, over 200 "
     "counts as 200.", "schema": {"type": "integer", "minimum": 1, "default": DEFAULT_LIMIT}},
)
_REPORT_PARAMETERS = (
    {"name": "from", "in": "query", "description": "First day (in PAPO_TIMEZONE, inclusive); default: "
     "29 days before `to`.", "schema": {"type": "string", "format": "date"}},
    {"name": "to", "in": "query", "description": "Last day (in PAPO_TIMEZONE, inclusive); default: today.",
     "schema": {"type": "string", "format": "date"}},
)


# ---------------------------------------------------------------------- OpenAPI

@bp.get("/openapi.json")
@operation("This document (OpenAPI 3.1)", tag="meta", public=True,
           ok_description="The OpenAPI document.")
def openapi():
    ext = current_app.extensions["papo"]
    if "openapi" not in ext:
        ext["openapi"] = build_document(current_app)
    return jsonify(ext["openapi"])


# ---------------------------------------------------------------------- flows

@bp.post("/flows")
@admin_only
@operation("Create a flow (its first draft)", tag="flows", body=FLOW, ok=201,
           ok_schema="FlowSaved", ok_headers=_ETAG, errors=(403, 409),
           description="Structural problems → 422 and nothing stored; graph problems are "
                       "returned as findings with the draft stored.")
def create_flow():
    doc = flow_document()
    saved = _flows().create(doc, actor=_actor(), lang=_lang())
    response = jsonify(saved)
    response.status_code = 201
    response.headers["Location"] = url_for(".get_flow", flow_id=saved["id"])
    response.headers["ETag"] = f'"{saved["revision"]}"'
    return response


@bp.get("/flows")
@operation("List flows", tag="flows", ok_schema="FlowList")
def list_flows():
    return jsonify([{"id": f["id"], "name": f["name"], "published_version": f["published_version"],
                     "revision": f["revision"]} for f in _flows().list()])


@bp.get("/flows/<flow_id>")
@operation("A flow's latest draft, as stored", tag="flows", ok_schema=FLOW, ok_headers=_ETAG,
           errors=(404,))
def get_flow(flow_id: str):
    doc, revision = _flows().get(_flow_id(flow_id), _lang())
    response = jsonify(doc)
    response.headers["ETag"] = f'"{revision}"'
    return response


@bp.put("/flows/<flow_id>")
@admin_only
@operation("Save a new draft revision", tag="flows", body=FLOW, ok_schema="FlowSaved",
           ok_headers=_ETAG, parameters=(_IF_MATCH,), errors=(403, 404, 409, 428))
def update_flow(flow_id: str):
    flow_id = _flow_id(flow_id)
    seen = parse_revision(request.headers.get("If-Match"), _lang())  # missing → 428
    doc = flow_document()
    saved = _flows().update(flow_id, doc, seen, actor=_actor(), lang=_lang())
    response = jsonify(saved)
    response.headers["ETag"] = f'"{saved["revision"]}"'
    return response


@bp.post("/flows/<flow_id>/publish")
@admin_only
@operation("Publish the latest draft, or roll back to an older version", tag="flows",
           body="publish", body_required=False, ok_schema="Published", errors=(403, 404, 409),
           description="Lint errors → 422 with code flow_has_errors and the findings. Then the "
                       "draft's tests run: a failing one → 422 with code flow_tests_failed and "
                       "one {path: tests/<name>, message} per failing test in details, unless "
                       "{\"force\": true}. A rollback ({\"version\": N}) runs no tests "
                        "and also copies that version into the draft.")
def publish_flow(flow_id: str):
    flow_id = _flow_id(flow_id)
    body = json_body("publish", optional=True)
    published = _flows().publish(flow_id, actor=_actor(), version=body.get("version"),
                                 lang=_lang(), force=bool(body.get("force")),
                                 settings=get_settings())
    return jsonify({"version": published["version"]})


@bp.post("/flows/<flow_id>/tests/run")
@operation("Run the tests saved in the latest draft", tag="flows", ok_schema="FlowTestRun",
           errors=(404,),
           description="On a private in-memory database with a simulated clock; HTTP requests "
                       "are answered by each test's http_mocks only. Nothing is stored, so "
                       "agents (who may read flows) may run them too.")
def run_flow_tests(flow_id: str):
    from engine.flowtests import summary

    results = _flows().run_tests(_flow_id(flow_id), lang=_lang(), settings=get_settings())
    return jsonify(summary(results))


@bp.get("/flows/<flow_id>/versions")
@operation("A flow's published versions, oldest first", tag="flows", ok_schema="VersionList",
           errors=(404,))
def flow_versions(flow_id: str):
    return jsonify(_flows().versions(_flow_id(flow_id), _lang()))


@bp.delete("/flows/<flow_id>")
@admin_only
@operation("Delete a flow (running conversations finish on their version)", tag="flows",
           ok=204, ok_description="Deleted.", errors=(403, 404))
def delete_flow(flow_id: str):
    _flows().delete(_flow_id(flow_id), actor=_actor(), lang=_lang())
    return "", 204


# ---------------------------------------------------------------------- inbound

@bp.post("/inbound")
@operation("A customer's message: the bot answers", tag="channels", body="inbound",
           ok_schema="InboundResult",
           errors=(422,),
           description="Idempotent on (channel, message.id): a repeat gets the first answer. "
                       "`channel` can only be `api` (422 otherwise): WhatsApp and web chat "
                       "messages come only through their own signed or cookie endpoints.")
def inbound():
    with inbound_request("api"):  # a refused body counts as an invalid inbound message too
        body = json_body("inbound")
        return jsonify(handle_inbound(body.get("channel", "api"), body["contact"], body["message"]))


# ---------------------------------------------------------------------- conversations

_CONVERSATION = "/conversations/<int(min=1, max=9223372036854775807):conversation_id>"


@bp.get("/conversations")
@operation("Conversations, newest activity first", tag="conversations",
           ok_schema="ConversationPage", parameters=_LIST_PARAMETERS, errors=(400,))
def list_conversations():
    status = _query_text("status")
    if status is not None and status not in ("open", "concluded"):
        raise _bad_parameter("status", "bad_status")
    sort = _query_text("sort")
    if sort is not None and sort not in ("activity", "waiting"):
        raise _bad_parameter("sort", "bad_sort")
    limit = _limit()
    page = get_service().list_conversations(status=status, q=_query_text("q"),
                                            assignee=_query_text("assignee"),
                                            cursor=_cursor(), limit=limit, sort=sort,
                                            text=_query_text("text"))
    return jsonify({"items": page["items"], "next_cursor": page["next_cursor"]})


@bp.get(_CONVERSATION)
@operation("A conversation with its messages, activity and timers", tag="conversations",
           ok_schema="Conversation", errors=(404,))
def get_conversation(conversation_id: int):
    return jsonify(_visible_conversation(conversation_id))


def _action_view(action: str, schema: str):
    def view(conversation_id: int):
        body = json_body(schema, optional=schema != "assign")
        _visible_conversation(conversation_id)
        result = get_service().act(conversation_id, action, _actor(), user=body.get("user"))
        return _action_result(result)

    view.__name__ = f"conversation_{action}"
    return view


_ACTIONS = (
    ("open", "conversation_action", "Open the conversation (the bot pauses)"),
    ("reopen", "conversation_action", "Reopen the conversation (the bot pauses)"),
    ("conclude", "conversation_action",
     "Conclude: the bot takes over again (its replies are returned)"),
    ("unassign_and_conclude", "unassign_and_conclude",
     "Remove `user` (default: you) from the assignees, then conclude"),
    ("assign", "assign", "Add `user` to the assignees (opens the conversation)"),
    ("unassign", "assign", "Remove `user` from the assignees (status unchanged)"),
)
for _action, _schema, _summary in _ACTIONS:
    bp.add_url_rule(
        f"{_CONVERSATION}/{_action}", endpoint=f"conversation_{_action}", methods=["POST"],
        view_func=operation(_summary, tag="conversations", body=_schema,
                            body_required=_schema == "assign", ok_schema="ActionResult",
                            errors=(404,),
                            description="A no-op (e.g. concluding a concluded conversation) "
                                        "answers 200 and writes no activity entry."
                            )(_action_view(_action, _schema)))


@bp.post(f"{_CONVERSATION}/messages")
@operation("Send an agent message (opens the conversation)", tag="conversations",
           body="message", ok_schema="ActionResult", errors=(404, 409),
           description="WhatsApp: outside the 24-hour window free text and attachments are "
                       "refused with 409 `window_closed`; send an approved `template` instead.")
def conversation_message(conversation_id: int):
    body = json_body("message")
    _visible_conversation(conversation_id)
    template = body.get("template")
    if template is not None and body.get("attachment") is not None:
        raise Invalid(_msg("template_and_attachment"), details=[
            {"path": "$.attachment", "message": _msg("template_and_attachment")}])
    if template is not None:
        return _action_result(get_service().agent_template(
            conversation_id, _actor(), template["name"], template["language"], template.get("params") or []))
    text, attachment = body.get("text") or "", body.get("attachment")
    if attachment is None:
        if not text.strip():
            raise Invalid(_msg("empty_message"), details=[{"path": "$.text", "message": _msg("blank")}])
        return _action_result(get_service().agent_message(conversation_id, _actor(), text))
    try:
        data = base64.b64decode(attachment["data"], validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(_msg("bad_base64"), details=[
            {"path": "$.attachment.data", "message": _msg("bad_base64")}]) from None
    cache = whatsapp_media.cache_for(get_settings(), current_app.instance_path)
    result, problem = whatsapp_media.send_attachment(
        get_service(), cache, conversation_id, _actor(), text, attachment["filename"],
        attachment["mime_type"], data, _lang())
    if problem is not None:
        raise Invalid(problem, details=[{"path": "$.attachment", "message": problem}])
    return _action_result(result)


# A message may carry a file up to WhatsApp's 100 MB, in base64 (4/3 larger).
MESSAGE_BODY_LIMIT = whatsapp_media.LARGEST * 4 // 3 + 1024 * 1024


@bp.url_value_preprocessor
def _message_body_limit(endpoint, values):
    if endpoint == "api.conversation_message":
        request.max_content_length = MESSAGE_BODY_LIMIT


@bp.post(f"{_CONVERSATION}/transfer")
@operation("Transfer: assign `user` and leave the assignees, in one step", tag="conversations",
           body="transfer", ok_schema="ActionResult", errors=(404,),
           description="One activity entry (`transferred`, detail `user` and `from_user`); "
                       "`note` is stored as a private note (direction `note`), never sent.")
def conversation_transfer(conversation_id: int):
    body = json_body("transfer")
    _visible_conversation(conversation_id)
    return _action_result(get_service().transfer(conversation_id, _actor(), body["user"],
                                                 note=body.get("note")))


@bp.post(f"{_CONVERSATION}/notes")
@operation("Add a private note (agents only, never sent to the customer)", tag="conversations",
           body="note", ok_schema="ActionResult", errors=(404,))
def conversation_note(conversation_id: int):
    body = json_body("note")
    _visible_conversation(conversation_id)
    return _action_result(get_service().add_note(conversation_id, _actor(), body["text"]))


# ---------------------------------------------------------------------- people (§10.3)

def _user_json(user: dict) -> dict:
    return {"login": user["login"], "name": user["name"], "role": user["role"],
            "availability": user["availability"], "max_open": user["max_open"],
            "disabled": user["disabled"]}


def _fresh_user(login: str) -> dict:
    """The user as stored now (a token's user is remembered for a few seconds)."""
    user = accounts.get_user(get_engine(), login)
    if user is None:
        raise NotFound(gettext(accounts.MESSAGES_NO_USER, _lang(), login=login[:64]),
                       code="user_not_found")
    return user


@bp.get("/users")
@operation("People: roles, availability and capacity", tag="people", ok_schema="UserList")
def list_users():
    return jsonify([_user_json(u) for u in accounts.list_users(get_engine())])


@bp.get("/me")
@operation("You: role, availability and capacity", tag="people", ok_schema="User")
def me():
    return jsonify(_user_json(_fresh_user(_actor())))


@bp.put("/me/availability")
@operation("Go online (take new conversations) or away", tag="people", body="availability",
           ok_schema="User",
           description="Under automatic assignment (PAPO_ASSIGNMENT round_robin or balanced), "
                       "going online takes conversations waiting with nobody assigned at once.")
def my_availability():
    body = json_body("availability")
    get_service().set_availability(_actor(), body["availability"], lang=_lang())
    return jsonify(_user_json(_fresh_user(_actor())))


@bp.get("/users/<login>")
@operation("One person: role, availability and capacity", tag="people", ok_schema="User",
           errors=(404,))
def get_user(login: str):
    return jsonify(_user_json(_fresh_user(login)))


@bp.put("/users/<login>")
@admin_only
@operation("Change a person's capacity (admins)", tag="people", body="user_change",
           ok_schema="User", errors=(403, 404),
           description="max_open: how many open conversations automatic assignment gives "
                       "this person (0: no limit).")
def change_user(login: str):
    body = json_body("user_change")
    _fresh_user(login)
    get_service().set_max_open(login, body["max_open"], lang=_lang())
    return jsonify(_user_json(_fresh_user(login)))


# ---------------------------------------------------------------------- canned responses

_CANNED = "/canned-responses/<canned_id>"


def _canned_id(raw: str) -> int:
    """A path's canned response id; one that could never exist is simply not found."""
    number = parse_int(raw, minimum=1, maximum=MAX_ID)
    if number is None:
        raise NotFound(gettext(canned.MESSAGES["not_found"], _lang()), code="canned_response_not_found")
    return number


@bp.get("/canned-responses")
@operation("Canned responses, by shortcut", tag="canned-responses", ok_schema="CannedResponseList")
def list_canned():
    return jsonify(canned.list_all(get_engine()))


@bp.post("/canned-responses")
@admin_only
@operation("Create a canned response (admins)", tag="canned-responses", body="canned_response",
           ok=201, ok_schema="CannedResponse", errors=(403, 409),
           description="A shortcut taken → 409 (code shortcut_taken); a bad shortcut or a "
                       "text that is not a valid template → 422 naming the field.")
def create_canned():
    body = json_body("canned_response")
    created = canned.create(get_engine(), body["shortcut"], body["text"], actor=_actor(), lang=_lang())
    response = jsonify(created)
    response.status_code = 201
    response.headers["Location"] = url_for(".change_canned", canned_id=created["id"])
    return response


@bp.put(_CANNED)
@admin_only
@operation("Change a canned response (admins)", tag="canned-responses",
           body="canned_response_change", ok_schema="CannedResponse", errors=(403, 404, 409))
def change_canned(canned_id: str):
    body = json_body("canned_response_change")
    return jsonify(canned.change(get_engine(), _canned_id(canned_id), body.get("shortcut"), body.get("text"),
                                 actor=_actor(), lang=_lang()))


@bp.delete(_CANNED)
@admin_only
@operation("Delete a canned response (admins)", tag="canned-responses", ok=204,
           ok_description="Deleted.", errors=(403, 404))
def delete_canned(canned_id: str):
    canned.remove(get_engine(), _canned_id(canned_id), lang=_lang())
    return "", 204


@bp.get(f"{_CONVERSATION}/canned-responses")
@operation("Canned responses rendered for one conversation", tag="canned-responses",
           ok_schema="RenderedCannedResponseList", errors=(404,),
           description="`rendered`: the text with the contact's name and the conversation's "
                       "variables filled in, ready to edit and send.")
def conversation_canned(conversation_id: int):
    conversation = _visible_conversation(conversation_id)
    return jsonify(canned.render_for(canned.list_all(get_engine()), conversation))


# ---------------------------------------------------------------------- reports

@bp.get("/reports/summary")
@operation("Open conversations, conclusions, times and CSAT in a period", tag="reports",
           ok_schema="Report", parameters=_REPORT_PARAMETERS, errors=(400,))
def report():
    service = get_service()
    date_from, date_to = _date("from"), _date("to")
    zone = service.settings.timezone
    if date_to is None:  # today in the business's zone (PAPO_TIMEZONE)
        today = datetime.fromtimestamp(service.clock(), UTC).astimezone(business_hours.zone(zone)).date()
        date_to = max(today, date_from) if date_from else today
    if date_from is None:
        date_from = max(FIRST_DAY, date_to - timedelta(days=REPORT_DAYS - 1))
    if date_to < date_from:
        raise _bad_parameter("to", "date_order")
    return jsonify(reports.summary(service.db, service.settings.csat_variable, date_from, date_to, zone))


# ---------------------------------------------------------------------- settings

def _business_hours_json(hours: BusinessHours | None) -> dict:
    if hours is not None:
        return hours.to_json()
    return {"timezone": get_settings().timezone, "week": None, "holidays": [], "closed_message": ""}


@bp.get("/settings/business-hours")
@operation("The business hours setting", tag="settings", ok_schema="BusinessHours",
           description="`week` is null while no schedule is set (always open).")
def get_business_hours():
    return jsonify(_business_hours_json(hours_store.load(get_engine())))


@bp.put("/settings/business-hours")
@admin_only
@operation("Replace the business hours setting", tag="settings", body="business_hours",
           ok_schema="BusinessHours", errors=(403,),
           description="The whole setting at once. Overlapping ranges, a time that is not "
                       "HH:MM (\"25:00\"), an unknown weekday or time zone → 422 with one "
                       "{path, message} per problem in details; nothing stored.")
def put_business_hours():
    body = json_body("business_hours")
    hours = None
    if body.get("week") is not None:
        hours = business_hours.parse(body, _lang(), default_timezone=get_settings().timezone)
    else:
        business_hours.parse({k: v for k, v in body.items() if k != "week"}, _lang(),
                             default_timezone=get_settings().timezone)  # the rest still checked
    hours_store.save(get_engine(), hours, _actor(), get_service().clock())
    return jsonify(_business_hours_json(hours))
