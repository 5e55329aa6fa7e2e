"""The OpenAPI 3.1 document at /api/v1/openapi.json: public, complete, valid, truthful."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import schemas
from editor.openapi import REQUEST_SCHEMAS

OPENAPI = "/api/v1/openapi.json"
API_SCHEMAS = Path(schemas.__file__).resolve().parent / "api"


@pytest.fixture
def document(client) -> dict:
    response = client.get(OPENAPI)
    assert response.status_code == 200
    return response.get_json()


def test_the_document_is_public_openapi_3_1_with_bearer_security(document):
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An API token."}
    assert document["security"] == [{"bearerAuth": []}]
    assert document["paths"][OPENAPI]["get"]["security"] == []


def test_every_api_route_appears_with_its_methods(app, document):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:[^>:]+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in document["paths"], path
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            operation = document["paths"][path].get(method.lower())
            assert operation, (method, path)
            assert operation["summary"] and operation["responses"], (method, path)
            if path != OPENAPI:
                assert "401" in operation["responses"], (method, path)


def test_operations_name_their_parameters_bodies_and_answers(document):
    paths = document["paths"]
    create = paths["/api/v1/flows"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Flow"}
    assert {"201", "401", "403", "409", "413", "422"} <= set(create["responses"])
    put = paths["/api/v1/flows/{flow_id}"]["put"]
    assert {"409", "428"} <= set(put["responses"])
    assert "If-Match" in [p["name"] for p in put["parameters"]]
    assert "ETag" in paths["/api/v1/flows/{flow_id}"]["get"]["responses"]["200"]["headers"]
    assert "204" in paths["/api/v1/flows/{flow_id}"]["delete"]["responses"]
    listing = paths["/api/v1/conversations"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"status", "q", "assignee", "cursor",
                                                         "limit", "sort", "text"}
    report = paths["/api/v1/reports/summary"]["get"]
    assert {p["name"] for p in report["parameters"]} == {"from", "to"}
    conversation = paths["/api/v1/conversations/{conversation_id}"]["get"]
    assert conversation["parameters"][0]["schema"]["type"] == "integer"
    assign = paths["/api/v1/conversations/{conversation_id}/assign"]["post"]
    assert assign["requestBody"]["required"] is True
    conclude = paths["/api/v1/conversations/{conversation_id}/conclude"]["post"]
    assert conclude["requestBody"]["required"] is False
    transfer = paths["/api/v1/conversations/{conversation_id}/transfer"]["post"]
    assert transfer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Transfer"}
    notes = paths["/api/v1/conversations/{conversation_id}/notes"]["post"]
    assert notes["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PrivateNote"}


def test_request_schemas_are_the_files_the_api_validates_with(document):
    components = document["components"]["schemas"]
    files = sorted(p.stem for p in API_SCHEMAS.glob("*.json"))
    assert files == sorted(REQUEST_SCHEMAS)
    for stem, name in REQUEST_SCHEMAS.items():
        on_disk = json.loads((API_SCHEMAS / f"{stem}.json").read_text(encoding="utf-8"))
        assert on_disk["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(on_disk)
        del on_disk["$schema"]
        assert components[name] == on_disk, name
    flow = json.loads(json.dumps(schemas.flow_schema()))
    flow.pop("$schema")
    flow.pop("$id")
    embedded = {**components["Flow"], "$defs": {
        name.removeprefix("Flow."): schema for name, schema in components.items()
        if name.startswith("Flow.")}}
    text = json.dumps(embedded).replace("#/components/schemas/Flow.", "#/$defs/")
    assert json.loads(text) == flow


def test_the_embedded_flow_schema_accepts_the_sample_flows(document, sample_flow):
    spec = {**document["components"]["schemas"]["Flow"],
            "components": document["components"]}
    validator = Draft202012Validator(spec)
    validator.validate(sample_flow("boas-vindas"))
    errors = list(validator.iter_errors({**sample_flow("lembrete"), "colour": "red"}))
    assert errors


def test_the_document_validates_as_openapi_3_1(document):
    import openapi_spec_validator as validator
    validator.validate(document)


# ---------------------------------------------------------------------- generated requests

@pytest.fixture
def seeded(api, sample_flow) -> None:
    """A published flow and a conversation, so generated requests also meet real ones."""
    api.post("/api/v1/flows", json=sample_flow("boas-vindas"))
    api.post("/api/v1/flows/boas-vindas/publish")
    api.post("/api/v1/inbound", json={"contact": {"external_id": "c1", "name": "José"},
                                      "message": {"id": "m1", "text": "oi"}})


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_generated_requests_never_get_a_server_error(app, api_tokens, seeded, mode):
    """Schema-driven requests (schemathesis) as the admin: never a 500 (with TESTING on,
    an exception would fail the test), and every answer matches the document's status
    codes, content types and response schemas."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    document = app.test_client().get(OPENAPI).get_json()
    # schemathesis cannot generate from the block kinds' if/then dispatch: let it make
    # blocks with any ``data`` (mostly refused with 422, which is what this exercises).
    document["components"]["schemas"]["Flow.block"].pop("allOf")
    schema = schemathesis.openapi.from_dict(document)
    schema.app = app
    headers = {"Authorization": f"Bearer {api_tokens['admin']}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    generation = schemathesis.GenerationMode(mode)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18  # schemathesis leaves out the document's own path

    for operation in operations:
        raw = operation.definition.raw
        if not generation.is_positive and not raw.get("parameters") and not raw.get("requestBody"):
            continue  # takes no input: nothing invalid to send

        @given(case=operation.as_strategy(generation))
        @settings(max_examples=6, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case):
            case.call_and_validate(headers=headers, checks=checks)

        call()
