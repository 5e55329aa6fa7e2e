"""REST API v1, flows (DESIGN §6): create, read, save with If-Match, publish, rollback, delete."""
from __future__ import annotations

import copy
import json

import pytest

FLOWS = "/api/v1/flows"


@pytest.fixture
def welcome(sample_flow) -> dict:
    return sample_flow("boas-vindas")


def _error(response) -> dict:
    assert response.is_json, response.data[:200]
    body = response.get_json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str) and body["error"]["message"]
    return body["error"]


def test_create_flow_answers_201_with_id_revision_and_findings(api, welcome):
    response = api.post(FLOWS, json=welcome)
    assert response.status_code == 201
    assert response.get_json() == {"id": "boas-vindas", "revision": 1, "findings": []}
    assert response.headers["ETag"] == '"1"'


def test_created_flow_reads_back_as_stored_with_its_revision_as_etag(api, welcome):
    api.post(FLOWS, json=welcome)
    response = api.get(f"{FLOWS}/boas-vindas")
    assert response.status_code == 200
    assert response.get_json() == welcome
    assert response.headers["ETag"] == '"1"'


def test_server_owned_fields_are_ignored_on_import(api, welcome):
    exported = {**welcome, "revision": 9, "published_version": 3, "updated_at": "2026-01-01T00:00:00Z"}
    assert api.post(FLOWS, json=exported).status_code == 201
    assert api.get(f"{FLOWS}/boas-vindas").get_json() == welcome


def test_graph_problems_store_the_draft_with_findings_and_block_publishing(api, welcome):
    doc = copy.deepcopy(welcome)
    doc["edges"].append({"from": "obrigado", "port": "next", "to": "nowhere"})
    response = api.post(FLOWS, json=doc)
    assert response.status_code == 201
    findings = response.get_json()["findings"]
    assert any(f["level"] == "error" and f["block_id"] == "obrigado" for f in findings)
    assert api.get(f"{FLOWS}/boas-vindas").get_json() == doc

    refused = api.post(f"{FLOWS}/boas-vindas/publish")
    assert refused.status_code == 422
    error = _error(refused)
    assert error["code"] == "flow_has_errors"
    assert any(f["level"] == "error" for f in error["findings"])
    assert api.get(FLOWS).get_json()[0]["published_version"] is None


@pytest.mark.parametrize("breakage", ["duplicate_block", "unknown_key", "unknown_type", "two_edges"])
def test_structural_problems_are_422_with_details_and_store_nothing(api, welcome, breakage):
    doc = copy.deepcopy(welcome)
    if breakage == "duplicate_block":
        doc["blocks"].append(copy.deepcopy(doc["blocks"][0]))
    elif breakage == "unknown_key":
        doc["colour"] = "blue"
    elif breakage == "unknown_type":
        doc["blocks"][0]["type"] = "teleport"
    else:
        doc["edges"].append({"from": "saudacao", "port": "next", "to": "obrigado"})
    response = api.post(FLOWS, json=doc)
    assert response.status_code == 422
    details = _error(response)["details"]
    assert isinstance(details, list) and details
    assert all(isinstance(d["path"], str) and d["message"] for d in details)
    assert api.get(FLOWS).get_json() == []


def test_not_json_is_422_and_a_missing_field_names_its_path(api, welcome):
    response = api.post(FLOWS, data=b"{not json", content_type="application/json")
    assert response.status_code == 422
    assert _error(response)["details"][0]["path"] == "$"

    doc = {k: v for k, v in welcome.items() if k != "start"}
    details = _error(api.post(FLOWS, json=doc))["details"]
    assert any(d["path"].endswith("start") or "start" in d["message"] for d in details)
    assert api.get(FLOWS).get_json() == []


def test_a_form_body_is_refused_with_400(api, welcome):
    response = api.post(FLOWS, data={"doc": json.dumps(welcome)})
    assert response.status_code == 400
    assert _error(response)["code"] == "unsupported_media_type"
    assert api.get(FLOWS).get_json() == []


def test_a_body_without_content_type_is_read_as_json(api, welcome):
    response = api.post(FLOWS, data=json.dumps(welcome).encode())
    assert response.status_code == 201


def test_a_document_over_2_mib_is_413_and_nothing_is_stored(api, welcome):
    doc = copy.deepcopy(welcome)
    doc["description"] = "x" * (2 * 1024 * 1024)
    response = api.post(FLOWS, data=json.dumps(doc), content_type="application/json")
    assert response.status_code == 413
    assert _error(response)
    padded = json.dumps(welcome) + " " * (5 * 1024 * 1024)
    response = api.post(FLOWS, data=padded, content_type="application/json")
    assert response.status_code == 413
    assert _error(response)
    assert api.get(FLOWS).get_json() == []


def test_newer_schema_version_is_refused(api, welcome):
    response = api.post(FLOWS, json={**welcome, "schema_version": 99})
    assert response.status_code == 422
    assert _error(response)["details"][0]["path"] == "$.schema_version"


def test_a_negative_schema_version_is_422(api, welcome):
    response = api.post(FLOWS, json={**welcome, "schema_version": -1})
    assert response.status_code == 422
    assert _error(response)["details"][0]["path"] == "$.schema_version"


def test_text_a_database_cannot_hold_is_422_not_a_crash(api, welcome):
    doc = copy.deepcopy(welcome)
    doc["blocks"][0]["data"]["text"] = "Olá\u0000"
    response = api.post(FLOWS, json=doc)
    assert response.status_code == 422
    assert _error(response)["details"][0]["path"] == "$.blocks[0].data.text"
    assert api.get(FLOWS).get_json() == []


def test_a_taken_id_is_409(api, welcome):
    assert api.post(FLOWS, json=welcome).status_code == 201
    response = api.post(FLOWS, json={**welcome, "name": "Outro"})
    assert response.status_code == 409
    assert _error(response)["code"]
    assert api.get(f"{FLOWS}/boas-vindas").get_json()["name"] == "Boas-vindas"


def test_list_shows_published_version_null_until_published(api, welcome, sample_flow):
    api.post(FLOWS, json=welcome)
    api.post(FLOWS, json=sample_flow("lembrete"))
    api.post(f"{FLOWS}/boas-vindas/publish")
    listed = api.get(FLOWS).get_json()
    assert listed == [
        {"id": "boas-vindas", "name": "Boas-vindas", "published_version": 1, "revision": 1},
        {"id": "lembrete", "name": sample_flow("lembrete")["name"], "published_version": None,
         "revision": 1},
    ]


@pytest.mark.parametrize("if_match", ['"1"', "1", 'W/"1"'])
def test_save_with_if_match_quoted_or_bare(api, welcome, if_match):
    api.post(FLOWS, json=welcome)
    changed = {**welcome, "name": "Recepção"}
    response = api.put(f"{FLOWS}/boas-vindas", json=changed, headers={"If-Match": if_match})
    assert response.status_code == 200
    assert response.get_json() == {"id": "boas-vindas", "revision": 2, "findings": []}
    assert response.headers["ETag"] == '"2"'
    got = api.get(f"{FLOWS}/boas-vindas")
    assert got.get_json()["name"] == "Recepção" and got.headers["ETag"] == '"2"'


def test_save_from_a_stale_revision_is_409_and_keeps_the_newer_draft(api, welcome):
    api.post(FLOWS, json=welcome)
    api.put(f"{FLOWS}/boas-vindas", json={**welcome, "name": "A"}, headers={"If-Match": '"1"'})
    response = api.put(f"{FLOWS}/boas-vindas", json={**welcome, "name": "B"},
                       headers={"If-Match": '"1"'})
    assert response.status_code == 409
    assert _error(response)
    assert api.get(f"{FLOWS}/boas-vindas").get_json()["name"] == "A"


def test_save_without_if_match_is_428(api, welcome):
    api.post(FLOWS, json=welcome)
    response = api.put(f"{FLOWS}/boas-vindas", json={**welcome, "name": "B"})
    assert response.status_code == 428
    assert _error(response)
    assert api.get(f"{FLOWS}/boas-vindas").headers["ETag"] == '"1"'


def test_save_with_a_garbled_if_match_is_400(api, welcome):
    api.post(FLOWS, json=welcome)
    response = api.put(f"{FLOWS}/boas-vindas", json=welcome, headers={"If-Match": "latest"})
    assert response.status_code == 400
    assert _error(response)


def test_save_under_another_id_is_422(api, welcome):
    api.post(FLOWS, json=welcome)
    response = api.put(f"{FLOWS}/boas-vindas", json={**welcome, "id": "outro"},
                       headers={"If-Match": "1"})
    assert response.status_code == 422
    assert _error(response)["details"][0]["path"] == "$.id"


def test_save_with_a_structural_problem_is_422_and_keeps_the_draft(api, welcome):
    api.post(FLOWS, json=welcome)
    response = api.put(f"{FLOWS}/boas-vindas", json={**welcome, "blocks": "none"},
                       headers={"If-Match": "1"})
    assert response.status_code == 422
    assert isinstance(_error(response)["details"], list)
    assert api.get(f"{FLOWS}/boas-vindas").get_json() == welcome


def test_publish_then_roll_back_to_an_older_version(api, welcome):
    api.post(FLOWS, json=welcome)
    assert api.post(f"{FLOWS}/boas-vindas/publish").get_json() == {"version": 1}
    api.put(f"{FLOWS}/boas-vindas", json={**welcome, "name": "Nova"}, headers={"If-Match": "1"})
    assert api.post(f"{FLOWS}/boas-vindas/publish", json={}).get_json() == {"version": 2}

    rollback = api.post(f"{FLOWS}/boas-vindas/publish", json={"version": 1})
    assert rollback.status_code == 200
    assert rollback.get_json() == {"version": 3}

    versions = api.get(f"{FLOWS}/boas-vindas/versions")
    assert versions.status_code == 200
    listed = versions.get_json()
    assert [(v["version"], v["revision"], v["published_by"]) for v in listed] == [
        (1, 1, "admin"), (2, 2, "admin"), (3, 3, "admin")]  # rollback also restores the draft
    draft = api.get(f"{FLOWS}/boas-vindas")
    assert draft.headers["ETag"] == '"3"' and draft.get_json()["name"] == welcome["name"]
    assert all(v["published_at"].endswith("Z") for v in listed)
    assert api.get(FLOWS).get_json()[0]["published_version"] == 3


def test_rollback_to_an_unknown_version_is_404(api, welcome):
    api.post(FLOWS, json=welcome)
    api.post(f"{FLOWS}/boas-vindas/publish")
    response = api.post(f"{FLOWS}/boas-vindas/publish", json={"version": 7})
    assert response.status_code == 404
    assert _error(response)
    assert len(api.get(f"{FLOWS}/boas-vindas/versions").get_json()) == 1


@pytest.mark.parametrize("body", [{"version": "1"}, {"version": 0}, {"versao": 1}, [1]])
def test_publish_with_a_bad_body_is_422(api, welcome, body):
    api.post(FLOWS, json=welcome)
    response = api.post(f"{FLOWS}/boas-vindas/publish", json=body)
    assert response.status_code == 422
    assert isinstance(_error(response)["details"], list)
    assert api.get(f"{FLOWS}/boas-vindas/versions").get_json() == []


def test_delete_answers_204_and_the_flow_is_gone(api, welcome):
    api.post(FLOWS, json=welcome)
    response = api.delete(f"{FLOWS}/boas-vindas")
    assert response.status_code == 204
    assert response.data == b""
    assert api.get(f"{FLOWS}/boas-vindas").status_code == 404
    assert api.get(FLOWS).get_json() == []
    assert api.delete(f"{FLOWS}/boas-vindas").status_code == 404


@pytest.mark.parametrize("flow_id", ["nada", "Not-A-Slug", "x" * 100, "a%00b"])
def test_unknown_flows_are_404_on_every_route(api, welcome, flow_id):
    api.post(FLOWS, json=welcome)
    calls = [
        api.get(f"{FLOWS}/{flow_id}"),
        api.put(f"{FLOWS}/{flow_id}", json={**welcome, "id": flow_id}, headers={"If-Match": "1"}),
        api.post(f"{FLOWS}/{flow_id}/publish"),
        api.get(f"{FLOWS}/{flow_id}/versions"),
        api.delete(f"{FLOWS}/{flow_id}"),
    ]
    for response in calls:
        assert response.status_code == 404, (response.request.method, response.data)
        assert _error(response)


def test_agents_read_flows(api, welcome):
    api.post(FLOWS, json=welcome)
    api.post(f"{FLOWS}/boas-vindas/publish")
    assert api.get(FLOWS, user="ana").status_code == 200
    got = api.get(f"{FLOWS}/boas-vindas", user="ana")
    assert got.status_code == 200 and got.headers["ETag"] == '"1"'
    assert api.get(f"{FLOWS}/boas-vindas/versions", user="ana").status_code == 200


def test_agents_cannot_create_edit_publish_or_delete_flows(api, welcome):
    api.post(FLOWS, json=welcome)
    attempts = [
        api.post(FLOWS, json={**welcome, "id": "copia"}, user="ana"),
        api.put(f"{FLOWS}/boas-vindas", json={**welcome, "name": "X"}, headers={"If-Match": "1"},
                user="ana"),
        api.post(f"{FLOWS}/boas-vindas/publish", user="ana"),
        api.delete(f"{FLOWS}/boas-vindas", user="ana"),
    ]
    for response in attempts:
        assert response.status_code == 403, (response.request.method, response.request.path)
        assert _error(response)["code"] == "forbidden"
    assert api.get(FLOWS).get_json() == [
        {"id": "boas-vindas", "name": "Boas-vindas", "published_version": None, "revision": 1}]
