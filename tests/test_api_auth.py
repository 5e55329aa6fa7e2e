"""REST API v1: every route needs a token (but the OpenAPI document); errors are JSON."""
from __future__ import annotations

import re

import pytest

SAMPLE_ARGUMENTS = {"flow_id": "boas-vindas", "conversation_id": "1", "login": "ana", "canned_id": "1"}


def api_routes(app) -> list[tuple[str, str]]:
    """``(method, concrete path)`` of every rule under /api/v1, from the URL map."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?(\w+)>", lambda m: SAMPLE_ARGUMENTS[m.group(1)], rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    return sorted(routes)


def _json_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.data[:300]
    assert response.is_json
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]


def test_the_route_list_covers_design_section_6(app):
    routes = set(api_routes(app))
    expected = {
        ("POST", "/api/v1/flows"), ("GET", "/api/v1/flows"),
        ("GET", "/api/v1/flows/boas-vindas"), ("PUT", "/api/v1/flows/boas-vindas"),
        ("DELETE", "/api/v1/flows/boas-vindas"), ("POST", "/api/v1/flows/boas-vindas/publish"),
        ("GET", "/api/v1/flows/boas-vindas/versions"), ("POST", "/api/v1/inbound"),
        ("GET", "/api/v1/conversations"), ("GET", "/api/v1/conversations/1"),
        ("POST", "/api/v1/conversations/1/messages"), ("GET", "/api/v1/reports/summary"),
        ("GET", "/api/v1/openapi.json"),
    } | {("POST", f"/api/v1/conversations/1/{action}") for action in (
        "open", "reopen", "conclude", "unassign_and_conclude", "assign", "unassign")}
    assert expected <= routes


def test_every_route_but_the_openapi_document_needs_a_token(app, api):
    for method, path in api_routes(app):
        if path == "/api/v1/openapi.json":
            assert api.call(method, path, user=None).status_code == 200
            continue
        for headers in ({}, {"Authorization": "Bearer papo_not-a-real-token"},
                        {"Authorization": "Bearer "}, {"Authorization": "Basic YWRtaW46eA=="},
                        {"Authorization": api.tokens["admin"]}):
            response = api.call(method, path, user=None, headers=headers, json={})
            _json_error(response, 401, "unauthorized")
            assert "Bearer" in response.headers.get("WWW-Authenticate", "")


def test_nothing_is_stored_by_unauthenticated_requests(api, sample_flow):
    doc = sample_flow("boas-vindas")
    assert api.post("/api/v1/flows", json=doc, user=None).status_code == 401
    assert api.post("/api/v1/inbound", user=None, json={
        "contact": {"external_id": "1"}, "message": {"id": "1", "text": "oi"}}).status_code == 401
    assert api.get("/api/v1/flows").get_json() == []
    assert api.get("/api/v1/conversations").get_json()["items"] == []


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/v1/flows"),
    ("PUT", "/api/v1/flows/boas-vindas"),
    ("POST", "/api/v1/flows/boas-vindas/publish"),
    ("DELETE", "/api/v1/flows/boas-vindas"),
])
def test_agents_get_403_on_every_flow_change(api, sample_flow, method, path):
    doc = sample_flow("boas-vindas")
    api.post("/api/v1/flows", json=doc)
    response = api.call(method, path, user="ana", json=doc, headers={"If-Match": "1"})
    _json_error(response, 403, "forbidden")
    assert api.get("/api/v1/flows").get_json() == [
        {"id": "boas-vindas", "name": "Boas-vindas", "published_version": None, "revision": 1}]


def test_unknown_paths_and_methods_under_the_api_answer_json(api):
    _json_error(api.get("/api/v1/nothing-here"), 404, "not_found")
    _json_error(api.call("PATCH", "/api/v1/flows"), 405, "method_not_allowed")
    _json_error(api.call("DELETE", "/api/v1/conversations"), 405, "method_not_allowed")
