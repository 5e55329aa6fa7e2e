"""The flow document format: one schema, valid JSON Schema 2020-12, and structural errors
refused on import with a path (DESIGN §2)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from jsonschema import Draft202012Validator

import schemas
from schemas import FlowDocumentError, load_document
from schemas.build import FLOW_SCHEMA_PATH, build_flow_schema
from schemas.migrations import migrate

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def committed_schema() -> dict:
    return json.loads(Path(FLOW_SCHEMA_PATH).read_text(encoding="utf-8"))


@pytest.fixture
def doc() -> dict:
    return fixture("welcome.json")


def refused(raw, lang=None) -> FlowDocumentError:
    with pytest.raises(FlowDocumentError) as caught:
        load_document(raw, lang)
    return caught.value


def paths(error: FlowDocumentError) -> list[str]:
    return [p["path"] for p in error.problems]


def nested_lists(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


# -- one source of truth, and a real JSON Schema --------------------------------------


def test_committed_schema_is_what_schemas_build_generates():
    assert committed_schema() == build_flow_schema(), "run `python -m schemas.build` and commit the result"


def test_schema_is_valid_json_schema_2020_12():
    schema = committed_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", ["welcome.json", "every_kind.json"])
def test_valid_document_validates_with_plain_jsonschema(name):
    jsonschema.validate(fixture(name), committed_schema(), cls=Draft202012Validator)


def test_plain_jsonschema_refuses_unknown_block_type_and_unknown_data_key(doc):
    validator = Draft202012Validator(committed_schema())
    bad_type = copy.deepcopy(doc)
    bad_type["blocks"][0]["type"] = "video"
    bad_data = copy.deepcopy(doc)
    bad_data["blocks"][0]["data"]["colour"] = "red"
    assert not validator.is_valid(bad_type)
    assert not validator.is_valid(bad_data)


@pytest.mark.parametrize("name", ["welcome.json", "every_kind.json"])
def test_valid_document_loads_unchanged(name):
    raw = fixture(name)
    assert load_document(json.dumps(raw)) == raw


def test_export_shape_is_kept_without_defaults_filled_in(doc):
    loaded = load_document(doc)
    assert "max_attempts" not in loaded["blocks"][1]["data"]
    assert loaded == doc


# -- structural errors: refused with a path ---------------------------------------------


def test_not_json_is_refused():
    error = refused('{"schema_version": 1, "id": ')
    assert error.status == 422
    assert error.code == "not_json"
    assert paths(error) == ["$"]
    assert "JSON" in error.problems[0]["message"]


def test_bytes_that_are_not_utf8_are_refused_as_not_json():
    error = refused(b'{"name": "Caf\xe9"}')
    assert error.status == 422
    assert error.code == "not_json"
    assert "JSON" in error.problems[0]["message"]


def test_nan_is_not_json_and_is_refused(doc):
    text = json.dumps(doc).replace('"x": 40', '"x": NaN')
    assert "NaN" in text
    error = refused(text)
    assert error.status == 422
    assert error.code == "not_json"


def test_document_that_is_not_an_object_is_refused():
    error = refused("[1, 2]")
    assert error.status == 422
    assert paths(error) == ["$"]


def test_unknown_top_level_key_is_refused(doc):
    doc["colour"] = "blue"
    error = refused(doc)
    assert error.status == 422
    assert paths(error) == ["$"]
    assert "colour" in error.problems[0]["message"]


def test_unknown_block_type_is_refused(doc):
    doc["blocks"][2]["type"] = "video"
    error = refused(doc)
    assert error.status == 422
    assert paths(error) == ["$.blocks[2].type"]
    assert "video" in error.problems[0]["message"]
    assert error.problems[0]["block_id"] == "b3"


def test_unknown_data_key_is_refused(doc):
    doc["blocks"][0]["data"]["colour"] = "red"
    error = refused(doc)
    assert error.status == 422
    assert paths(error) == ["$.blocks[0].data"]
    assert "colour" in error.problems[0]["message"]
    assert error.problems[0]["block_id"] == "b1"


def test_missing_required_data_field_is_refused_with_its_block(doc):
    del doc["blocks"][1]["data"]["save_as"]
    error = refused(doc)
    assert paths(error) == ["$.blocks[1].data"]
    assert "save_as" in error.problems[0]["message"]


def test_duplicate_block_ids_are_refused(doc):
    doc["blocks"][3]["id"] = "b1"
    error = refused(doc)
    assert error.status == 422
    assert paths(error) == ["$.blocks[3].id"]
    assert "b1" in error.problems[0]["message"]


def test_two_edges_from_one_port_are_refused(doc):
    doc["edges"].append({"from": "b1", "port": "next", "to": "b4"})
    error = refused(doc)
    assert error.status == 422
    assert paths(error) == [f"$.edges[{len(doc['edges']) - 1}]"]
    assert error.problems[0]["message"].startswith('Bloco "')
    assert '"Em seguida" tem mais de uma ligação' in error.problems[0]["message"]


def test_more_than_2000_blocks_are_refused(doc):
    doc["blocks"] = [{"id": f"m{i}", "type": "message", "data": {"text": "oi"}} for i in range(2001)]
    doc["edges"] = []
    doc["start"] = "m0"
    error = refused(doc)
    assert error.status == 422
    assert paths(error) == ["$.blocks"]
    assert "2000" in error.problems[0]["message"]


def test_exactly_2000_blocks_are_accepted(doc):
    doc["blocks"] = [{"id": f"m{i}", "type": "message", "data": {"text": "oi"}} for i in range(2000)]
    doc["edges"] = []
    doc["start"] = "m0"
    assert len(load_document(doc)["blocks"]) == 2000


def test_more_than_10000_edges_are_refused(doc):
    doc["edges"] = [{"from": "b1", "port": f"p{i}", "to": "b2"} for i in range(10001)]
    error = refused(doc)
    assert error.status == 422
    assert paths(error) == ["$.edges"]
    assert "10000" in error.problems[0]["message"]


def _with_deep_body(doc: dict, depth: int) -> dict:
    # document (1) > blocks (2) > block (3) > data (4) > body (5 …)
    doc["blocks"].append({"id": "deep", "type": "http_request",
                          "data": {"method": "POST", "url": "https://example.com",
                                   "body": nested_lists(depth - 4)}})
    return doc


def test_nesting_deeper_than_32_is_refused(doc):
    error = refused(json.dumps(_with_deep_body(doc, 33)))
    assert error.status == 422
    assert paths(error) == ["$"]
    assert "32" in error.problems[0]["message"]


def test_nesting_of_exactly_32_is_accepted(doc):
    assert load_document(json.dumps(_with_deep_body(doc, 32)))["blocks"][-1]["id"] == "deep"


def test_very_deep_json_text_is_refused_without_crashing():
    error = refused("[" * 100_000 + "]" * 100_000)
    assert error.status == 422


def test_document_over_2_mib_is_refused_with_413(doc):
    doc["description"] = "x" * (2 * 1024 * 1024)
    error = refused(json.dumps(doc))
    assert error.status == 413
    assert paths(error) == ["$"]
    assert "2 MiB" in error.problems[0]["message"]


def test_newer_schema_version_is_refused_with_a_clear_message(doc):
    doc["schema_version"] = schemas.CURRENT_VERSION + 1
    error = refused(doc, lang="en")
    assert error.status == 422
    assert paths(error) == ["$.schema_version"]
    message = error.problems[0]["message"]
    assert str(schemas.CURRENT_VERSION + 1) in message and "newer" in message and "Upgrade" in message


def test_structural_messages_are_portuguese_by_default_and_english_on_request(doc):
    doc["colour"] = "blue"
    assert refused(doc).problems[0]["message"].startswith('Fluxo: o campo "colour" não existe')
    assert refused(doc, lang="en").problems[0]["message"].startswith('Flow: there is no field "colour"')


# -- import rules ----------------------------------------------------------------------------


def test_server_owned_fields_are_ignored_on_import(doc):
    exported = dict(doc, revision=7, version=3, published_version=2,
                    created_at="2026-11-25T14:03:00Z", updated_at="2026-11-25T14:04:00Z")
    loaded = load_document(json.dumps(exported))
    assert loaded == doc
    for key in ("revision", "version", "published_version", "created_at", "updated_at"):
        assert key not in loaded


def test_v0_fixture_migrates_to_v1_through_the_chain():
    old = fixture("v0_welcome.json")
    migrated = migrate(old)
    assert old["schema_version"] == 0 and "nodes" in old, "migrate must not modify its input"
    assert migrated["schema_version"] == schemas.CURRENT_VERSION
    assert "nodes" not in migrated and "links" not in migrated
    assert migrated["blocks"][0] == {"id": "n1", "type": "message", "position": {"x": 40, "y": 80},
                                     "data": {"text": "Olá, {{ contact.name }}!"}}
    assert {"from": "n1", "port": "next", "to": "n2"} in migrated["edges"]
    jsonschema.validate(migrated, committed_schema(), cls=Draft202012Validator)


def test_v0_fixture_loads_as_current_version():
    loaded = load_document((FIXTURES / "v0_welcome.json").read_text(encoding="utf-8"))
    assert loaded["schema_version"] == schemas.CURRENT_VERSION
    assert [b["id"] for b in loaded["blocks"]] == ["n1", "n2", "n3"]
    assert loaded["edges"][1] == {"from": "n2", "port": "answered", "to": "n3"}
