"""REST API v1, GET /api/v1/reports/summary: figures equal the ones worked out by hand."""
from __future__ import annotations

import itertools

import pytest

from editor.app import get_service

REPORT = "/api/v1/reports/summary"
_ids = itertools.count(1)
DAY = 86_400


def say(api, contact: str, text: str) -> dict:
    response = api.post("/api/v1/inbound", json={
        "channel": "api", "contact": {"external_id": contact, "name": contact.title()},
        "message": {"id": f"m{next(_ids)}", "text": text}})
    assert response.status_code == 200, response.data
    return response.get_json()


def act(api, conversation_id: int, action: str, by: str, body: dict | None = None) -> dict:
    response = api.post(f"/api/v1/conversations/{conversation_id}/{action}", json=body, user=by)
    assert response.status_code == 200, response.data
    return response.get_json()


@pytest.fixture
def history(api, api_clock, sample_flow):
    """Conversations on 2026-11-19 and 2026-11-20 (UTC); times in seconds.

    - ana:   opened by the flow; ana replies after 60, concludes after 300; CSAT "5"
    - bruno: opened by the flow; bruno replies after 120, concludes after 900; CSAT "4"
    - carla: asks for a human; ana unassigns-and-concludes after 600 without replying;
             then opens again through the menu and bruno concludes at once (0); she
             answers the CSAT question with "ótimo" (not 1–5: ignored)
    - davi:  asks for a human and is still open
    - eva:   on 2026-11-19; ana concludes after 100; CSAT "1"

    2026-11-20: open 1; concluded 4; resolution [300, 900, 600, 0] → avg 450,
    median 450, p90 900 (nearest rank); first response [60, 120] → avg 90, median 90,
    p90 120; CSAT [5, 4] → avg 4.5, count 2; by agent: ana 2 (avg 450), bruno 2 (avg 450).
    """
    assert api.post("/api/v1/flows", json=sample_flow("boas-vindas")).status_code == 201
    assert api.post("/api/v1/flows/boas-vindas/publish").status_code == 200
    clock = api_clock
    day_before = clock.now - DAY

    def handoff_via_menu(contact: str) -> int:
        conversation_id = say(api, contact, "oi")["conversation_id"]
        assert say(api, contact, "3")["status"] == "open"
        return conversation_id

    start = clock.now
    clock.now = day_before
    eva = handoff_via_menu("eva")
    clock.advance(100)
    act(api, eva, "conclude", "ana")
    say(api, "eva", "1")

    clock.now = start
    ana = handoff_via_menu("ana")
    clock.advance(60)
    assert api.post(f"/api/v1/conversations/{ana}/messages", json={"text": "Olá!"},
                    user="ana").status_code == 200
    clock.advance(240)
    act(api, ana, "conclude", "ana")
    clock.advance(5)
    say(api, "ana", "5")

    clock.now = start + 1000
    bruno = handoff_via_menu("bruno")
    clock.advance(120)
    api.post(f"/api/v1/conversations/{bruno}/messages", json={"text": "Oi"}, user="bruno")
    clock.advance(780)
    act(api, bruno, "conclude", "bruno")
    say(api, "bruno", "4")

    clock.now = start + 3000
    carla = say(api, "carla", "quero falar com um humano")["conversation_id"]
    act(api, carla, "assign", "ana", {"user": "ana"})
    clock.advance(600)
    act(api, carla, "unassign_and_conclude", "ana")
    say(api, "carla", "oi")
    say(api, "carla", "3")
    act(api, carla, "conclude", "bruno")  # a second open period, also concluded
    say(api, "carla", "ótimo")

    clock.now = start + 5000
    assert say(api, "davi", "atendente")["status"] == "open"
    clock.now = start + 6000
    return {"ana": ana, "bruno": bruno, "carla": carla, "eva": eva}


def test_summary_of_a_day_equals_the_hand_computed_figures(api, history):
    response = api.get(f"{REPORT}?from=2026-11-20&to=2026-11-20", user="ana")
    assert response.status_code == 200
    report = response.get_json()
    assert report["open"] == 1
    assert report["concluded"] == 4
    assert report["resolution_s"] == {"avg": 450, "median": 450, "p90": 900}
    assert report["first_response_s"] == {"avg": 90, "median": 90, "p90": 120}
    assert report["csat"] == {"avg": 4.5, "count": 2}
    assert report["by_agent"] == [
        {"user": "ana", "concluded": 2, "resolution_s_avg": 450},
        {"user": "bruno", "concluded": 2, "resolution_s_avg": 450},
    ]


def test_dates_are_inclusive_and_the_day_before_counts_when_included(api, history):
    report = api.get(f"{REPORT}?from=2026-11-19&to=2026-11-20").get_json()
    assert report["concluded"] == 5
    assert report["csat"] == {"avg": round(10 / 3, 3), "count": 3}
    only_before = api.get(f"{REPORT}?from=2026-11-19&to=2026-11-19").get_json()
    assert only_before["concluded"] == 1
    assert only_before["resolution_s"] == {"avg": 100, "median": 100, "p90": 100}
    assert only_before["first_response_s"] == {"avg": None, "median": None, "p90": None}
    assert only_before["csat"] == {"avg": 1, "count": 1}
    assert only_before["open"] == 1  # open *now*, whatever the period


def test_without_dates_the_period_is_the_last_30_days(api, history, api_clock):
    default = api.get(REPORT).get_json()
    assert default == api.get(f"{REPORT}?from=2026-10-22&to=2026-11-20").get_json()
    assert default["concluded"] == 5
    api_clock.advance(30 * DAY)  # 2026-12-20: the 19th of November is 31 days back
    assert api.get(REPORT).get_json()["concluded"] == 0
    assert api.get(f"{REPORT}?to=2026-11-20").get_json()["concluded"] == 5
    assert api.get(f"{REPORT}?from=2026-11-20").get_json()["concluded"] == 4


def test_an_empty_period_has_nulls_not_errors(api, api_clock):
    report = api.get(f"{REPORT}?from=2026-01-01&to=2026-01-31").get_json()
    assert report == {
        "open": 0, "concluded": 0,
        "resolution_s": {"avg": None, "median": None, "p90": None},
        "first_response_s": {"avg": None, "median": None, "p90": None},
        "csat": {"avg": None, "count": 0}, "by_agent": []}


def test_simulator_conversations_are_left_out(app, api, api_clock, sample_flow):
    api.post("/api/v1/flows", json=sample_flow("boas-vindas"))
    api.post("/api/v1/flows/boas-vindas/publish")
    with app.app_context():
        service = get_service(app)
        service.handle_inbound("test", {"external_id": "sim"}, {"id": "s1", "text": "atendente"})
    assert api.get(REPORT).get_json()["open"] == 0


@pytest.mark.parametrize("query", ["from=2026-13-01", "from=yesterday", "to=2026-1-1",
                                   "from=20261120", "to=2026-02-30", "from=0001-01-01",
                                   "to=9999-12-31", "from=2026-11-20&to=2026-11-19",
                                   "from=2026-11-20T00:00:00"])
def test_bad_dates_are_400(api, api_clock, query):
    response = api.get(f"{REPORT}?{query}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] and error["message"]
    assert error["details"][0]["path"] in ("from", "to")
