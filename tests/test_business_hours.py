"""Business hours (DESIGN §10.3, §10.6): the schedule, the settings API, the
``business_hours`` block, and the closed message when a conversation opens outside hours.

The pure rules (engine/hours.py) are tested on their own; everything else through the
REST API on both databases, with the hand-moved clock of ``api_clock``.
"""
from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from engine import hours
from engine.errors import Invalid
from engine.flowtests import run_tests
from engine.simulator import Simulation

URL = "/api/v1/settings/business-hours"
_ids = itertools.count(1)


def at(text: str) -> float:
    """Epoch seconds of an ISO moment with its offset ("2026-11-23T09:00-03:00")."""
    return datetime.fromisoformat(text).timestamp()


WEEKDAYS_9_TO_18 = {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def schedule(**changes) -> hours.BusinessHours:
    body = {"timezone": "America/Sao_Paulo", "week": WEEKDAYS_9_TO_18, "holidays": [],
            "closed_message": "Voltamos {{ next_open }}."}
    body.update(changes)
    return hours.parse(body)


# ---------------------------------------------------------------------- the rules (pure)

def test_no_schedule_set_is_always_open():
    assert hours.is_open(None, at("2026-12-25T03:00-03:00"))
    assert hours.next_open_text(None, at("2026-12-25T03:00-03:00")) == ""
    assert hours.closed_message(None, at("2026-12-25T03:00-03:00"), {}, {}) is None


def test_a_range_across_midnight_is_two_ranges_and_both_count():
    night = schedule(week={"fri": [["18:00", "24:00"]], "sat": [["00:00", "02:00"]]})
    assert hours.is_open(night, at("2026-11-20T23:30-03:00"))  # Friday night
    assert hours.is_open(night, at("2026-11-21T00:00-03:00"))  # midnight itself
    assert hours.is_open(night, at("2026-11-21T01:59-03:00"))
    assert not hours.is_open(night, at("2026-11-21T02:00-03:00"))  # the end is not included
    assert not hours.is_open(night, at("2026-11-20T17:59-03:00"))
    assert hours.next_open_text(night, at("2026-11-21T03:00-03:00")) == "sexta-feira às 18:00"


def test_a_holiday_is_closed_all_day_and_next_open_skips_it():
    christmas = schedule(holidays=["2026-12-25"])  # a Friday
    assert not hours.is_open(christmas, at("2026-12-25T10:00-03:00"))
    assert hours.is_open(christmas, at("2026-12-24T10:00-03:00"))
    # Thursday evening: Friday is a holiday, so the next opening is Monday
    assert hours.next_open_text(christmas, at("2026-12-24T19:00-03:00")) == "segunda-feira às 09:00"


def test_sao_paulo_has_no_daylight_saving_09_00_is_12_00_utc_all_year():
    sp = schedule()
    for day in ("2026-01-14", "2026-07-15", "2026-11-18"):  # summer, winter, spring (Wednesdays)
        assert not hours.is_open(sp, at(f"{day}T11:59:59+00:00"))
        assert hours.is_open(sp, at(f"{day}T12:00:00+00:00"))


def test_a_daylight_saving_zone_keeps_the_wall_clock_time_across_the_change():
    lisbon = schedule(timezone="Europe/Lisbon")
    # Lisbon moved to summer time (UTC+1) on Sunday 2026-03-29
    assert hours.is_open(lisbon, at("2026-03-27T09:00+00:00"))  # Friday, winter: 09:00 local
    assert not hours.is_open(lisbon, at("2026-03-27T08:30+00:00"))
    assert hours.is_open(lisbon, at("2026-03-30T08:00+00:00"))  # Monday, summer: 09:00 local
    assert not hours.is_open(lisbon, at("2026-03-30T17:30+00:00"))  # 18:30 local
    opening = hours.next_open(lisbon, at("2026-03-28T12:00+00:00"))  # Saturday
    assert opening.astimezone(UTC) == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


def test_new_york_across_the_november_change():
    ny = schedule(timezone="America/New_York")
    # Eastern time left daylight saving on Sunday 2026-11-01: 09:00 was 13:00 UTC, then 14:00
    assert hours.is_open(ny, at("2026-10-30T13:00+00:00"))
    assert not hours.is_open(ny, at("2026-11-02T13:00+00:00"))
    assert hours.is_open(ny, at("2026-11-02T14:00+00:00"))


def test_next_open_reads_today_tomorrow_or_the_weekday():
    shop = schedule(week={"mon": [["09:00", "12:00"], ["14:00", "18:00"]],
                          "tue": [["09:00", "18:00"]], "fri": [["09:00", "18:00"]]})
    assert hours.next_open_text(shop, at("2026-11-23T12:30-03:00")) == "hoje às 14:00"
    assert hours.next_open_text(shop, at("2026-11-23T19:00-03:00")) == "amanhã às 09:00"
    assert hours.next_open_text(shop, at("2026-11-25T10:00-03:00")) == "sexta-feira às 09:00"
    assert hours.next_open_text(shop, at("2026-11-21T10:00-03:00")) == "segunda-feira às 09:00"
    assert hours.next_open_text(shop, at("2026-11-21T10:00-03:00"), "en") == "Monday at 09:00"
    assert hours.next_open_text(shop, at("2026-11-23T19:00-03:00"), "en") == "tomorrow at 09:00"


def test_next_open_is_empty_when_nothing_opens_in_14_days():
    closed = schedule(week={})
    assert hours.next_open_text(closed, at("2026-11-23T10:00-03:00")) == ""
    away = schedule(holidays=[f"2026-12-{d:02d}" for d in range(1, 32)])
    assert hours.next_open_text(away, at("2026-11-30T19:00-03:00")) == ""
    # 12 days ahead: the weekday alone would be ambiguous, so the date comes with it
    assert hours.next_open_text(away, at("2026-12-20T10:00-03:00")) == "sexta-feira, 01/01 às 09:00"


def test_the_closed_message_renders_next_open_and_the_contact():
    shop = schedule(closed_message="Olá, {{ contact.name }}! Voltamos {{ next_open }}.")
    text = hours.closed_message(shop, at("2026-11-21T10:00-03:00"), {}, {"name": "Ana"})
    assert text == "Olá, Ana! Voltamos segunda-feira às 09:00."
    assert hours.closed_message(shop, at("2026-11-23T10:00-03:00"), {}, {"name": "Ana"}) is None


@pytest.mark.parametrize(("body", "path"), [
    ({"week": {"mon": [["09:00", "12:00"], ["11:00", "14:00"]]}}, "$.week.mon[1]"),
    ({"week": {"mon": [["09:00", "25:00"]]}}, "$.week.mon[0][1]"),
    ({"week": {"mon": [["24:00", "24:00"]]}}, "$.week.mon[0][0]"),
    ({"week": {"mon": [["18:00", "09:00"]]}}, "$.week.mon[0]"),
    ({"week": {"segunda": [["09:00", "18:00"]]}}, "$.week.segunda"),
    ({"week": {}, "timezone": "America/Sao_Pablo"}, "$.timezone"),
    ({"week": {}, "holidays": ["2026-02-30"]}, "$.holidays[0]"),
    ({"week": {}, "closed_message": "Voltamos {{ next_open "}, "$.closed_message"),
])
def test_a_bad_schedule_names_the_field(body, path):
    with pytest.raises(Invalid) as caught:
        hours.parse(body)
    assert [d["path"] for d in caught.value.details] == [path]


def test_touching_ranges_and_24_00_are_fine():
    shop = hours.parse({"week": {"sat": [["12:00", "24:00"], ["08:00", "12:00"]]}})
    assert shop.to_json()["week"]["sat"] == [["08:00", "12:00"], ["12:00", "24:00"]]
    assert shop.to_json()["week"]["sun"] == []


# ---------------------------------------------------------------------- the settings API

BODY = {"timezone": "America/Sao_Paulo",
        "week": {"mon": [["09:00", "18:00"]], "tue": [["09:00", "18:00"]],
                 "wed": [["09:00", "18:00"]], "thu": [["09:00", "18:00"]],
                 "fri": [["09:00", "18:00"]], "sat": [["09:00", "13:00"]], "sun": []},
        "holidays": ["2026-12-25"],
        "closed_message": "Oi, {{ contact.name }}! Nossa equipe volta {{ next_open }}."}


def test_no_schedule_at_first_then_put_replaces_the_whole_setting(api):
    first = api.get(URL, user="ana")
    assert first.status_code == 200
    assert first.get_json() == {"timezone": "America/Sao_Paulo", "week": None, "holidays": [],
                                "closed_message": ""}
    assert api.put(URL, json=BODY).get_json() == BODY
    assert api.get(URL, user="ana").get_json() == BODY
    replaced = api.put(URL, json={"week": {"mon": [["10:00", "11:00"]]}})
    assert replaced.status_code == 200
    after = api.get(URL).get_json()
    assert after["week"]["mon"] == [["10:00", "11:00"]] and after["week"]["tue"] == []
    assert after["holidays"] == [] and after["closed_message"] == ""
    cleared = api.put(URL, json={"week": None})
    assert cleared.status_code == 200 and api.get(URL).get_json()["week"] is None


def test_agents_may_read_but_not_change_business_hours(api):
    assert api.get(URL, user="ana").status_code == 200
    refused = api.put(URL, json=BODY, user="ana")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"]
    assert api.get(URL).get_json()["week"] is None
    assert api.put(URL, json=BODY, user=None).status_code == 401


@pytest.mark.parametrize(("change", "path"), [
    ({"week": {"mon": [["09:00", "12:00"], ["11:30", "18:00"]]}}, "$.week.mon[1]"),
    ({"week": {"tue": [["09:00", "25:00"]]}}, "$.week.tue[0][1]"),
    ({"week": {"funday": [["09:00", "18:00"]]}}, "$.week.funday"),
    ({"timezone": "Mars/Olympus_Mons"}, "$.timezone"),
    ({"timezone": "America"}, "$.timezone"),  # a folder of zones, not a zone
    ({"holidays": ["25/12/2026"]}, "$.holidays[0]"),
    ({"week": "9 às 18"}, "$.week"),
])
def test_a_bad_schedule_is_422_naming_the_field_and_nothing_changes(api, change, path):
    assert api.put(URL, json=BODY).status_code == 200
    response = api.put(URL, json={**BODY, **change})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert path in [d["path"] for d in error["details"]]
    assert all(d["message"] for d in error["details"])
    assert api.get(URL).get_json() == BODY


def test_validation_messages_follow_the_callers_language(api):
    bad = {**BODY, "timezone": "Mars/Olympus_Mons"}
    pt = api.put(URL, json=bad).get_json()["error"]["details"][0]["message"]
    en = api.put(f"{URL}?lang=en", json=bad).get_json()["error"]["details"][0]["message"]
    assert "Fuso horário desconhecido" in pt
    assert "Unknown time zone" in en


def test_the_route_is_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert set(paths[URL]) >= {"get", "put"}
    assert "403" in paths[URL]["put"]["responses"]


# ---------------------------------------------------------------------- in conversations

def publish(api, doc: dict) -> None:
    assert api.post("/api/v1/flows", json=doc).status_code == 201, doc["id"]
    response = api.post(f"/api/v1/flows/{doc['id']}/publish")
    assert response.status_code == 200, response.get_json()


def say(api, text: str, contact: str = "c1") -> dict:
    body = {"channel": "api", "contact": {"external_id": contact, "name": "José"},
            "message": {"id": f"bh-{next(_ids)}", "text": text}}
    response = api.post("/api/v1/inbound", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def texts(result: dict) -> list[str]:
    return [r["text"] for r in result["replies"]]


SATURDAY_EVENING = "2026-11-21T20:00:00-03:00"
MONDAY_MORNING = "2026-11-23T10:00:00-03:00"

HOURS_FLOW = {
    "schema_version": 1, "id": "horario", "name": "Horário", "triggers": [{"type": "default"}],
    "start": "h",
    "blocks": [
        {"id": "h", "type": "business_hours", "data": {}},
        {"id": "aberto", "type": "message", "data": {"text": "Estamos abertos!"}},
        {"id": "fechado", "type": "message", "data": {"text": "Estamos fechados."}},
    ],
    "edges": [{"from": "h", "port": "open", "to": "aberto"},
              {"from": "h", "port": "closed", "to": "fechado"}],
}

OPEN_FLOW = {
    "schema_version": 1, "id": "atendente", "name": "Atendente",
    "triggers": [{"type": "keyword", "match": "exact", "value": "ajuda"}],
    "start": "abrir",
    "blocks": [{"id": "abrir", "type": "open_conversation",
                "data": {"text": "Um momento, vou te passar para alguém da nossa equipe."}}],
    "edges": [],
}


def test_the_business_hours_block_takes_open_or_closed(api, api_clock):
    publish(api, HOURS_FLOW)
    api_clock.now = at(SATURDAY_EVENING)
    assert texts(say(api, "oi")) == ["Estamos abertos!"]  # no schedule set: always open
    assert api.put(URL, json=BODY).status_code == 200
    assert texts(say(api, "oi")) == ["Estamos fechados."]
    api_clock.now = at(MONDAY_MORNING)
    assert texts(say(api, "oi")) == ["Estamos abertos!"]
    api_clock.now = at("2026-12-25T10:00:00-03:00")  # a holiday
    assert texts(say(api, "oi")) == ["Estamos fechados."]


def test_a_handoff_keyword_outside_hours_opens_and_sends_the_closed_message(api, api_clock):
    assert api.put(URL, json=BODY).status_code == 200
    api_clock.now = at(SATURDAY_EVENING)
    result = say(api, "quero falar com atendente")
    assert result["status"] == "open"
    assert texts(result) == ["Oi, José! Nossa equipe volta segunda-feira às 09:00."]
    conversation = api.get(f"/api/v1/conversations/{result['conversation_id']}").get_json()
    assert conversation["messages"][-1] == {**conversation["messages"][-1], "direction": "out",
                                            "author": "bot", "text": texts(result)[0]}


def test_a_handoff_keyword_inside_hours_or_without_a_schedule_sends_nothing(api, api_clock):
    api_clock.now = at(SATURDAY_EVENING)
    result = say(api, "atendente", contact="sem-horario")
    assert result["status"] == "open" and result["replies"] == []
    assert api.put(URL, json=BODY).status_code == 200
    api_clock.now = at(MONDAY_MORNING)
    result = say(api, "atendente", contact="no-horario")
    assert result["status"] == "open" and result["replies"] == []


def test_an_open_conversation_block_outside_hours_sends_the_closed_message_instead(api, api_clock):
    publish(api, OPEN_FLOW)
    assert api.put(URL, json=BODY).status_code == 200
    api_clock.now = at("2026-11-23T18:30:00-03:00")  # Monday after closing
    result = say(api, "ajuda")
    assert result["status"] == "open"
    assert texts(result) == ["Oi, José! Nossa equipe volta amanhã às 09:00."]
    api_clock.now = at("2026-11-24T09:30:00-03:00")
    result = say(api, "ajuda", contact="c2")
    assert texts(result) == ["Um momento, vou te passar para alguém da nossa equipe."]


def test_without_a_closed_message_the_block_text_is_kept(api, api_clock):
    publish(api, OPEN_FLOW)
    assert api.put(URL, json={**BODY, "closed_message": ""}).status_code == 200
    api_clock.now = at(SATURDAY_EVENING)
    assert texts(say(api, "ajuda")) == ["Um momento, vou te passar para alguém da nossa equipe."]


def test_the_simulator_and_flow_tests_count_as_always_open(api, api_clock, app):
    assert api.put(URL, json=BODY).status_code == 200
    api_clock.now = at(SATURDAY_EVENING)
    doc = {**HOURS_FLOW, "tests": [{"name": "aberto", "steps": [
        {"say": "oi"}, {"expect": "Estamos abertos!"}]}]}
    assert [r.passed for r in run_tests(doc)] == [True]
    # the editor's simulator pane: the real database, where the schedule says closed
    papo = app.extensions["papo"]
    sim = Simulation({**HOURS_FLOW, "id": "horario-sim"}, db=papo["engine"],
                     settings=papo["settings"], start_at=at(SATURDAY_EVENING))
    assert [m["text"] for m in sim.send("oi")] == ["Estamos abertos!"]


# ---------------------------------------------------------------------- decided purely

def test_the_decision_reads_the_schedule_from_the_snapshot_only():
    """The one unit of work: ``load`` brings the schedule, ``decide`` is pure over it."""
    from test_decide import OPENS, inbound, snapshot

    from engine.service.decide import decide

    shop = schedule(closed_message="Fechados. Voltamos {{ next_open }}.")
    saturday = at(SATURDAY_EVENING)
    closed = snapshot(OPENS, users=frozenset({"bia"}))
    closed.hours = shop
    changes = decide(closed, inbound("oi", at=saturday))
    assert changes.write and changes.status == "open"
    assert changes.replies == [{"text": "Fechados. Voltamos segunda-feira às 09:00.", "buttons": []}]

    handoff = snapshot(users=frozenset())
    handoff.hours = shop
    changes = decide(handoff, inbound("atendente", at=saturday))
    assert changes.status == "open" and [r["text"] for r in changes.replies] == [
        "Fechados. Voltamos segunda-feira às 09:00."]
    assert [a["action"] for a in changes.activity] == ["handoff_requested"]

    open_now = snapshot(users=frozenset())
    open_now.hours = shop
    assert decide(open_now, inbound("atendente", at=at(MONDAY_MORNING))).replies == []


# ---------------------------------------------------------------------- the Configurações page

def _logged_in(app, login: str):
    client = app.test_client()
    assert client.post("/login", data={"login": login, "password": "senha-de-teste"}).status_code == 302
    return client


def test_the_settings_page_saves_refuses_and_switches_off(api, app):
    admin = _logged_in(app, "admin")
    page = admin.get("/settings")
    assert page.status_code == 200 and "Horário de atendimento" in page.get_data(as_text=True)
    form = {"enabled": "on", "timezone": "America/Sao_Paulo", "mon-0-start": "9h",
            "mon-0-end": "18:00", "mon-1-start": "", "mon-1-end": "", "holidays": "25/12/2026",
            "closed_message": "Voltamos {{ next_open }}."}
    assert admin.post("/settings/business-hours", data=form).status_code == 200
    saved = api.get(URL).get_json()
    assert saved["week"]["mon"] == [["09:00", "18:00"]] and saved["holidays"] == ["2026-12-25"]

    bad = admin.post("/settings/business-hours", data={**form, "mon-1-start": "17:00", "mon-1-end": "19:00"})
    assert bad.status_code == 422
    assert "se sobrepõe" in bad.get_data(as_text=True)
    assert api.get(URL).get_json() == saved  # nothing stored

    off = admin.post("/settings/business-hours", data={**form, "enabled": ""})
    assert off.status_code == 200 and "09:00" in off.get_data(as_text=True)  # typed hours kept on the page
    assert api.get(URL).get_json()["week"] is None


def test_agents_see_the_settings_page_but_cannot_post_it(api, app):
    agent = _logged_in(app, "ana")
    assert agent.get("/settings").status_code == 200
    refused = agent.post("/settings/business-hours", data={"enabled": "on", "mon-0-start": "09:00",
                                                          "mon-0-end": "18:00"})
    assert refused.status_code == 403
    assert api.get(URL).get_json()["week"] is None
    assert app.test_client().get("/settings").status_code in (302, 303)  # anonymous: to the login


@pytest.mark.parametrize(("timezone", "week", "moments"), [
    # across midnight: Friday 18:00–24:00 and Saturday 00:00–02:00 (São Paulo)
    ("America/Sao_Paulo", {"fri": [["18:00", "24:00"]], "sat": [["00:00", "02:00"]]},
     [("2026-11-20T23:59:00-03:00", True), ("2026-11-21T00:30:00-03:00", True),
      ("2026-11-21T02:00:00-03:00", False), ("2026-11-20T17:00:00-03:00", False)]),
    # the zone's boundary: 09:00 in Lisbon is 09:00 UTC in winter and 08:00 UTC in summer
    ("Europe/Lisbon", {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
     [("2026-03-27T08:59:00+00:00", False), ("2026-03-27T09:00:00+00:00", True),
      ("2026-03-30T07:59:00+00:00", False), ("2026-03-30T08:00:00+00:00", True)]),
    # São Paulo has no daylight saving: 09:00 is 12:00 UTC in January and in July
    ("America/Sao_Paulo", {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
     [("2026-01-14T11:59:00+00:00", False), ("2026-01-14T12:00:00+00:00", True),
      ("2026-07-15T11:59:00+00:00", False), ("2026-07-15T12:00:00+00:00", True)]),
])
def test_the_block_follows_the_schedule_at_its_boundaries(api, api_clock, timezone, week, moments):
    publish(api, HOURS_FLOW)
    body = {"timezone": timezone, "week": week, "holidays": [], "closed_message": ""}
    assert api.put(URL, json=body).status_code == 200
    for when, expected in moments:
        api_clock.now = at(when)
        assert texts(say(api, "oi")) == ["Estamos abertos!" if expected else "Estamos fechados."], when
