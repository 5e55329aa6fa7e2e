"""The support desk's API (DESIGN §10.3, §10.6): availability, capacity and canned
responses over HTTP, on both databases."""
from __future__ import annotations

from dataclasses import replace

import pytest


@pytest.fixture
def round_robin(app):
    """The app under PAPO_ASSIGNMENT=round_robin."""
    papo = app.extensions["papo"]
    papo["settings"] = replace(papo["settings"], assignment="round_robin")
    papo["service"] = None
    return app


def _handoff(api, who: str) -> int:
    answer = api.post("/api/v1/inbound", json={
        "channel": "api", "contact": {"external_id": who, "name": who.title()},
        "message": {"id": f"m-{who}", "text": "atendente"}})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["conversation_id"]


# ---------------------------------------------------------------------- availability

def test_people_start_away_and_go_online_through_the_api(api):
    me = api.get("/api/v1/me", user="ana").get_json()
    assert (me["login"], me["availability"], me["max_open"]) == ("ana", "away", 10)
    answer = api.put("/api/v1/me/availability", json={"availability": "online"}, user="ana")
    assert answer.status_code == 200
    assert answer.get_json()["availability"] == "online"
    people = {u["login"]: u for u in api.get("/api/v1/users", user="bruno").get_json()}
    assert people["ana"]["availability"] == "online" and people["bruno"]["availability"] == "away"
    assert set(people["ana"]) == {"login", "name", "role", "availability", "max_open", "disabled"}


def test_a_bad_availability_is_a_422_naming_the_field(api):
    answer = api.put("/api/v1/me/availability", json={"availability": "busy"}, user="ana")
    assert answer.status_code == 422
    details = answer.get_json()["error"]["details"]
    assert details[0]["path"] == "$.availability"
    answer = api.put("/api/v1/me/availability?lang=en", json={"availability": "busy"}, user="ana")
    assert "Use one of" in answer.get_json()["error"]["details"][0]["message"]
    assert api.get("/api/v1/me", user="ana").get_json()["availability"] == "away"


def test_only_admins_change_capacity(api):
    answer = api.put("/api/v1/users/ana", json={"max_open": 3}, user="bruno")
    assert answer.status_code == 403
    answer = api.put("/api/v1/users/ana", json={"max_open": 3})
    assert answer.status_code == 200 and answer.get_json()["max_open"] == 3
    assert api.put("/api/v1/users/ninguem", json={"max_open": 3}).status_code == 404
    for bad in (-1, 1001, "5", 2.5, True):
        answer = api.put("/api/v1/users/ana", json={"max_open": bad})
        assert answer.status_code == 422, bad
        assert answer.get_json()["error"]["details"][0]["path"] == "$.max_open"
    assert api.get("/api/v1/me", user="ana").get_json()["max_open"] == 3
    assert api.get("/api/v1/users/ana", user="bruno").get_json()["max_open"] == 3
    assert api.get("/api/v1/users/ninguem").status_code == 404


def test_going_online_takes_the_queue_with_system_activity(api, round_robin):
    first, second = _handoff(api, "maria"), _handoff(api, "jose")
    for conversation in (first, second):
        assert api.get(f"/api/v1/conversations/{conversation}").get_json()["assignees"] == []
    waiting = api.get("/api/v1/conversations?status=open").get_json()["items"]
    assert {c["id"] for c in waiting} == {first, second}
    api.put("/api/v1/users/bruno", json={"max_open": 1})
    api.put("/api/v1/me/availability", json={"availability": "online"}, user="bruno")
    got = api.get(f"/api/v1/conversations/{first}").get_json()
    assert got["assignees"] == ["bruno"]  # the oldest first
    assert [(a["actor"], a["action"]) for a in got["activity"]][-1] == ("system", "assigned")
    assert api.get(f"/api/v1/conversations/{second}").get_json()["assignees"] == []
    api.put("/api/v1/users/bruno", json={"max_open": 2})  # more room: the next one at once
    assert api.get(f"/api/v1/conversations/{second}").get_json()["assignees"] == ["bruno"]
    third = _handoff(api, "rita")  # full again: it waits
    assert api.get(f"/api/v1/conversations/{third}").get_json()["assignees"] == []


# ---------------------------------------------------------------------- canned responses

def test_admins_manage_canned_responses_and_agents_read_them(api):
    created = api.post("/api/v1/canned-responses",
                       json={"shortcut": "ola", "text": "Olá, {{ contact.name }}!"})
    assert created.status_code == 201
    item = created.get_json()
    assert set(item) == {"id", "shortcut", "text"} and item["shortcut"] == "ola"
    assert api.get("/api/v1/canned-responses", user="ana").get_json() == [item]
    changed = api.put(f"/api/v1/canned-responses/{item['id']}", json={"text": "Oi, {{ contact.name }}."})
    assert changed.status_code == 200
    assert changed.get_json() == {**item, "text": "Oi, {{ contact.name }}."}
    assert api.delete(f"/api/v1/canned-responses/{item['id']}").status_code == 204
    assert api.get("/api/v1/canned-responses").get_json() == []
    assert api.delete(f"/api/v1/canned-responses/{item['id']}").status_code == 404
    assert api.put("/api/v1/canned-responses/999", json={"text": "x"}).status_code == 404


def test_agents_cannot_change_canned_responses(api):
    item = api.post("/api/v1/canned-responses", json={"shortcut": "pix", "text": "Chave: 123"}).get_json()
    assert api.post("/api/v1/canned-responses", json={"shortcut": "x", "text": "y"},
                    user="ana").status_code == 403
    assert api.put(f"/api/v1/canned-responses/{item['id']}", json={"text": "z"},
                   user="ana").status_code == 403
    assert api.delete(f"/api/v1/canned-responses/{item['id']}", user="ana").status_code == 403
    assert api.get("/api/v1/canned-responses").get_json() == [item]


def test_a_taken_shortcut_is_a_409_and_nothing_changes(api):
    first = api.post("/api/v1/canned-responses", json={"shortcut": "pix", "text": "A"}).get_json()
    answer = api.post("/api/v1/canned-responses", json={"shortcut": "pix", "text": "B"})
    assert answer.status_code == 409
    assert answer.get_json()["error"]["code"] == "shortcut_taken"
    other = api.post("/api/v1/canned-responses", json={"shortcut": "boleto", "text": "C"}).get_json()
    answer = api.put(f"/api/v1/canned-responses/{other['id']}", json={"shortcut": "pix"})
    assert answer.status_code == 409
    assert api.get("/api/v1/canned-responses").get_json() == [other, first]


@pytest.mark.parametrize("body, field", [
    ({"shortcut": "Boas Vindas", "text": "Oi"}, "$.shortcut"),
    ({"shortcut": "x" * 33, "text": "Oi"}, "$.shortcut"),
    ({"shortcut": "", "text": "Oi"}, "$.shortcut"),
    ({"shortcut": "ola", "text": "   "}, "$.text"),
    ({"shortcut": "ola", "text": "Olá {{ contact.name "}, "$.text"),
    ({"shortcut": "ola", "text": "{{ nome|naoexiste }}"}, "$.text"),
    ({"shortcut": "ola"}, "$.text"),
    ({"shortcut": "ola", "text": "Oi", "extra": 1}, "$.extra"),
])
def test_bad_canned_responses_are_a_422_naming_the_field(api, body, field):
    answer = api.post("/api/v1/canned-responses", json=body)
    assert answer.status_code == 422
    assert field in [d["path"] for d in answer.get_json()["error"]["details"]]
    assert api.get("/api/v1/canned-responses").get_json() == []


def test_canned_responses_render_with_the_contact_and_variables(api):
    api.post("/api/v1/canned-responses",
             json={"shortcut": "pedido", "text": "{{ contact.name }}, seu pedido {{ pedido }} saiu."})
    conversation = _handoff(api, "maria")
    rendered = api.get(f"/api/v1/conversations/{conversation}/canned-responses", user="ana").get_json()
    assert [(r["shortcut"], r["rendered"]) for r in rendered] == [("pedido", "Maria, seu pedido  saiu.")]
    assert api.get("/api/v1/conversations/999/canned-responses").status_code == 404


def test_the_openapi_document_lists_the_desk_routes(api):
    paths = api.get("/api/v1/openapi.json", user=None).get_json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/canned-responses"])
    assert {"put", "delete"} <= set(paths["/api/v1/canned-responses/{canned_id}"])
    assert "put" in paths["/api/v1/me/availability"]
    assert "put" in paths["/api/v1/users/{login}"]


# ---------------------------------------------------------------------- the pages' forms

def _login(client, login: str) -> None:
    answer = client.post("/login", data={"login": login, "password": "senha-de-teste"})
    assert answer.status_code in (302, 303)


def test_the_header_switch_goes_online_and_back_to_the_page(api, client):
    _login(client, "ana")
    page = client.get("/reports").get_data(as_text=True)
    assert 'name="availability" value="online"' in page and "availability-toggle is-away" in page
    answer = client.post("/me/availability", data={"availability": "online", "next": "/reports?x=1"})
    assert (answer.status_code, answer.headers["Location"]) == (303, "/reports?x=1")
    assert api.get("/api/v1/me", user="ana").get_json()["availability"] == "online"
    page = client.get("/reports").get_data(as_text=True)
    assert 'name="availability" value="away"' in page and "availability-toggle is-online" in page
    answer = client.post("/me/availability", data={"availability": "away", "next": "//evil.example"})
    assert answer.headers["Location"] == "/inbox"  # never off the site
    assert api.get("/api/v1/me", user="ana").get_json()["availability"] == "away"
    assert client.post("/me/availability", data={"availability": "sumido"}).status_code == 303
    assert api.get("/api/v1/me", user="ana").get_json()["availability"] == "away"


def test_the_team_page_sets_a_capacity_and_refuses_a_bad_one(api, client):
    _login(client, "admin")
    answer = client.post("/team/bruno/capacity", data={"max_open": "4"})
    assert answer.status_code == 200
    assert api.get("/api/v1/users/bruno").get_json()["max_open"] == 4
    answer = client.post("/team/bruno/capacity", data={"max_open": "-2"})
    assert answer.status_code == 422
    assert "0 a 1000" in answer.get_data(as_text=True)
    assert api.get("/api/v1/users/bruno").get_json()["max_open"] == 4
    _login(client, "ana")
    assert client.post("/team/bruno/capacity", data={"max_open": "9"}).status_code == 403


def test_the_canned_responses_page_creates_changes_and_deletes(api, client):
    _login(client, "admin")
    answer = client.post("/settings/canned-responses", data={"shortcut": "/Pix", "text": "Chave: 1"})
    assert answer.status_code == 201
    item = api.get("/api/v1/canned-responses").get_json()[0]
    assert item["shortcut"] == "pix"
    answer = client.post("/settings/canned-responses", data={"shortcut": "pix", "text": "Outra"})
    assert answer.status_code == 409
    assert "Outra" in answer.get_data(as_text=True)  # what was typed is kept
    answer = client.post(f"/settings/canned-responses/{item['id']}", data={"shortcut": "pix", "text": "{{ x"})
    assert answer.status_code == 422 and "Texto:" in answer.get_data(as_text=True)
    answer = client.post(f"/settings/canned-responses/{item['id']}", data={"shortcut": "pix", "text": "Chave: 2"})
    assert answer.status_code == 200
    assert api.get("/api/v1/canned-responses").get_json()[0]["text"] == "Chave: 2"
    assert client.post(f"/settings/canned-responses/{item['id']}/delete").status_code == 200
    assert api.get("/api/v1/canned-responses").get_json() == []
    _login(client, "ana")
    assert client.get("/settings/canned-responses").status_code == 403


def test_the_picker_lists_responses_rendered_and_escaped(api, client):
    api.post("/api/v1/canned-responses", json={"shortcut": "ola", "text": "Olá, {{ contact.name }}!"})
    answer = api.post("/api/v1/inbound", json={
        "channel": "api", "contact": {"external_id": "x1", "name": "<b>Zé</b>"},
        "message": {"id": "m1", "text": "atendente"}})
    conversation = answer.get_json()["conversation_id"]
    assert client.get(f"/inbox/{conversation}/canned").status_code in (302, 303)  # login first
    _login(client, "ana")
    html = client.get(f"/inbox/{conversation}/canned").get_data(as_text=True)
    assert 'role="option"' in html and 'data-shortcut="ola"' in html
    assert 'data-text="Olá, &lt;b&gt;Zé&lt;/b&gt;!"' in html and "<b>" not in html
    assert client.get("/inbox/999999/canned").status_code == 404
