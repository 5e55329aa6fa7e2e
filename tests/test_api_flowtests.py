"""Flow tests through the REST API (DESIGN §10.2, §10.6): run them, and publishing runs them."""
from __future__ import annotations

import copy

import pytest

FLOWS = "/api/v1/flows"
GOOD = {"name": "Saudação", "steps": [{"say": "oi"}, {"expect_contains": "Bem-vindo(a)"}]}
BAD = {"name": "Sabor", "steps": [{"say": "oi"}, {"expect_contains": "Bem-vindo(a)"}, {"expect": "Qual sabor?"}]}
BAD_TOO = {"name": "Status", "steps": [{"say": "oi"}, {"expect_status": "open"}]}


@pytest.fixture
def welcome(sample_flow) -> dict:
    doc = sample_flow("boas-vindas")
    doc["tests"] = [GOOD, BAD]
    return doc


def _save(api, doc) -> None:
    current = api.get(f"{FLOWS}/{doc['id']}")
    if current.status_code == 404:
        assert api.post(FLOWS, json=doc).status_code == 201
    else:
        assert api.put(f"{FLOWS}/{doc['id']}", json=doc, headers={"If-Match": current.headers["ETag"]}).status_code == 200


def _published(api) -> int | None:
    return api.get(FLOWS).get_json()[0]["published_version"]


def test_run_answers_each_test_with_passed_step_and_message(api, welcome):
    _save(api, welcome)
    response = api.post(f"{FLOWS}/boas-vindas/tests/run")
    assert response.status_code == 200
    assert response.get_json() == {"passed": 1, "failed": 1, "results": [
        {"name": "Saudação", "passed": True, "step": None, "message": None},
        {"name": "Sabor", "passed": False, "step": 3,
         "message": 'passo 3: esperado "Qual sabor?", recebido "Como posso te ajudar hoje?"'},
    ]}


def test_run_speaks_english_with_lang_en(api, welcome):
    _save(api, welcome)
    body = api.post(f"{FLOWS}/boas-vindas/tests/run?lang=en").get_json()
    assert body["results"][1]["message"] == 'step 3: expected "Qual sabor?", got "Como posso te ajudar hoje?"'


def test_run_of_a_flow_without_tests_and_of_an_unknown_flow(api, sample_flow):
    doc = sample_flow("boas-vindas")
    doc.pop("tests", None)
    _save(api, doc)
    assert api.post(f"{FLOWS}/boas-vindas/tests/run").get_json() == {"passed": 0, "failed": 0, "results": []}
    missing = api.post(f"{FLOWS}/nao-existe/tests/run")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "flow_not_found"


def test_running_tests_changes_nothing_stored(api, welcome):
    _save(api, welcome)
    before = api.get(f"{FLOWS}/boas-vindas")
    api.post(f"{FLOWS}/boas-vindas/tests/run")
    after = api.get(f"{FLOWS}/boas-vindas")
    assert after.headers["ETag"] == before.headers["ETag"]
    assert api.get("/api/v1/conversations").get_json()["items"] == []


def test_agents_may_run_tests_as_they_may_read_flows_but_not_publish(api, welcome):
    _save(api, welcome)
    response = api.post(f"{FLOWS}/boas-vindas/tests/run", user="ana")
    assert response.status_code == 200
    assert response.get_json()["failed"] == 1
    assert api.post(f"{FLOWS}/boas-vindas/publish", user="ana", json={"force": True}).status_code == 403
    assert api.post(f"{FLOWS}/boas-vindas/tests/run", user=None).status_code == 401


def test_publish_with_a_failing_test_is_refused_with_one_detail_per_failing_test(api, welcome):
    welcome["tests"].append(BAD_TOO)
    _save(api, welcome)
    refused = api.post(f"{FLOWS}/boas-vindas/publish")
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["code"] == "flow_tests_failed"
    assert error["message"]
    assert error["details"] == [
        {"path": "tests/Sabor", "message": 'passo 3: esperado "Qual sabor?", recebido "Como posso te ajudar hoje?"'},
        {"path": "tests/Status", "message": 'passo 2: esperado o status "open", recebido "concluded"'},
    ]
    assert _published(api) is None
    assert api.get(f"{FLOWS}/boas-vindas/versions").get_json() == []


def test_force_publishes_despite_failing_tests(api, welcome):
    _save(api, welcome)
    published = api.post(f"{FLOWS}/boas-vindas/publish", json={"force": True})
    assert published.status_code == 200
    assert published.get_json() == {"version": 1}
    assert _published(api) == 1


def test_passing_tests_publish_as_before(api, welcome):
    welcome["tests"] = [GOOD]
    _save(api, welcome)
    assert api.post(f"{FLOWS}/boas-vindas/publish").get_json() == {"version": 1}


def test_lint_errors_win_over_failing_tests_and_force_does_not_skip_them(api, welcome):
    doc = copy.deepcopy(welcome)
    doc["edges"].append({"from": "obrigado", "port": "next", "to": "nowhere"})
    _save(api, doc)
    for body in (None, {"force": True}):
        refused = api.post(f"{FLOWS}/boas-vindas/publish", json=body)
        assert refused.status_code == 422
        assert refused.get_json()["error"]["code"] == "flow_has_errors"
    assert _published(api) is None


def test_rollback_runs_no_tests(api, welcome):
    _save(api, welcome)  # its test "Sabor" fails
    assert api.post(f"{FLOWS}/boas-vindas/publish", json={"force": True}).get_json() == {"version": 1}
    assert api.post(f"{FLOWS}/boas-vindas/publish").status_code == 422
    rolled = api.post(f"{FLOWS}/boas-vindas/publish", json={"version": 1})
    assert rolled.status_code == 200
    assert rolled.get_json() == {"version": 2}


def test_force_must_be_a_boolean(api, welcome):
    _save(api, welcome)
    refused = api.post(f"{FLOWS}/boas-vindas/publish", json={"force": "sim"})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "invalid_body"
    assert _published(api) is None


def test_the_route_and_the_force_flag_are_in_openapi(api):
    document = api.get("/api/v1/openapi.json").get_json()
    run = document["paths"]["/api/v1/flows/{flow_id}/tests/run"]["post"]
    assert "200" in run["responses"]
    schemas = document["components"]["schemas"]
    assert schemas["Publish"]["properties"]["force"] == {"type": "boolean"}
    assert set(schemas["FlowTestResult"]["required"]) == {"name", "passed", "step", "message"}


def test_the_on_conclude_flow_runs_in_tests_as_in_production(flows, sample_flow):
    from engine.settings import Settings

    flows.create(sample_flow("avaliacao"), actor="ana")
    flows.publish("avaliacao", actor="ana")
    doc = sample_flow("boas-vindas")
    doc["tests"] = [{"name": "Avaliação", "steps": [
        {"say": "oi"}, {"open": True}, {"conclude": True}, {"expect_contains": "Como você avalia o atendimento?"}]}]
    flows.create(doc, actor="ana")
    with_setting = Settings.from_env({"PAPO_ON_CONCLUDE_FLOW": "avaliacao"})
    assert [r.passed for r in flows.run_tests("boas-vindas", settings=with_setting)] == [True]
    assert [r.passed for r in flows.run_tests("boas-vindas", settings=Settings.from_env({}))] == [False]
