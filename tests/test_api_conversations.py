"""REST API v1, inbound messages and conversations (DESIGN §3, §6)."""
from __future__ import annotations

import itertools

import pytest

from editor.app import get_service

INBOUND = "/api/v1/inbound"
CONVERSATIONS = "/api/v1/conversations"
_ids = itertools.count(1)


def inbound(api, text: str, contact: str = "c1", name: str = "José Silva", message_id=None,
            user: str = "admin") -> dict:
    body = {"channel": "api", "contact": {"external_id": contact, "name": name},
            "message": {"id": message_id or f"m{next(_ids)}", "text": text}}
    response = api.post(INBOUND, json=body, user=user)
    assert response.status_code == 200, response.data
    return response.get_json()


def act(api, conversation_id: int, action: str, body: dict | None = None, by: str = "ana"):
    """``by`` performs ``action`` (with ``body``) and the answer is checked for 200."""
    response = api.post(f"{CONVERSATIONS}/{conversation_id}/{action}", user=by, json=body)
    assert response.status_code == 200, (action, response.data)
    result = response.get_json()
    assert set(result) == {"conversation", "replies"}
    return result


def activity(api, conversation_id: int) -> list[tuple]:
    entries = api.get(f"{CONVERSATIONS}/{conversation_id}").get_json()["activity"]
    return [(e["actor"], e["action"], e["from"], e["to"]) for e in entries]


def _error(response) -> dict:
    assert response.is_json, response.data[:200]
    error = response.get_json()["error"]
    assert error["code"] and error["message"]
    if "details" in error:
        assert isinstance(error["details"], list)
    return error


@pytest.fixture
def welcome(api, sample_flow):
    """boas-vindas published: "oi" → menu; option 3 opens; conclusion asks for CSAT."""
    assert api.post("/api/v1/flows", json=sample_flow("boas-vindas")).status_code == 201
    assert api.post("/api/v1/flows/boas-vindas/publish").status_code == 200


@pytest.fixture
def conversation(api, api_clock) -> int:
    """A conversation with no flow running (nothing published), concluded."""
    return inbound(api, "bom dia")["conversation_id"]


# ---------------------------------------------------------------------- inbound

def test_inbound_answers_with_the_bots_replies(api, welcome):
    result = inbound(api, "oi", name="José")
    assert result["status"] == "concluded"
    assert isinstance(result["conversation_id"], int)
    assert result["replies"] == [
        {"text": "Olá, José! 👋 Bem-vindo(a) à Loja da Ana.", "buttons": []},
        {"text": "Como posso te ajudar hoje?",
         "buttons": ["Ver produtos", "Status do pedido", "Falar com atendente"]},
    ]


def test_inbound_channel_defaults_to_api_and_agents_may_send(api, welcome):
    response = api.post(INBOUND, user="ana", json={
        "contact": {"external_id": 5511999, "name": "Ana"}, "message": {"id": 77, "text": "oi"}})
    assert response.status_code == 200
    conversation = api.get(f"{CONVERSATIONS}/{response.get_json()['conversation_id']}").get_json()
    assert conversation["channel"] == "api"
    assert conversation["contact"] == {"external_id": "5511999", "name": "Ana"}


def test_the_same_message_id_twice_gets_the_same_answer_and_is_stored_once(api, welcome):
    first = inbound(api, "oi", message_id="wamid.1")
    again = inbound(api, "oi", message_id="wamid.1")
    assert again == first
    conversation = api.get(f"{CONVERSATIONS}/{first['conversation_id']}").get_json()
    assert [m["text"] for m in conversation["messages"] if m["direction"] == "in"] == ["oi"]
    assert len([m for m in conversation["messages"] if m["direction"] == "out"]) == 2


@pytest.mark.parametrize(("body", "path"), [
    ({"contact": {"external_id": "c1"}, "message": {"id": "m"}}, "$.message.text"),
    ({"contact": {"name": "x"}, "message": {"id": "m", "text": "oi"}}, "$.contact.external_id"),
    ({"message": {"id": "m", "text": "oi"}}, "$.contact"),
    ({"contact": {"external_id": "c1"}, "message": {"id": "m", "text": "   "}}, "$.message.text"),
    ({"channel": "test", "contact": {"external_id": "c1"}, "message": {"id": "m", "text": "oi"}},
     "$.channel"),
    ({"contact": {"external_id": "c1"}, "message": {"id": "m", "text": "oi\u0000"}},
     "$.message.text"),
    ({"contact": {"external_id": "c1"}, "message": {"id": "m", "text": "oi"}, "extra": 1},
     "$.extra"),
    ([], "$"),
])
def test_an_invalid_inbound_body_is_422_naming_the_field_and_stores_nothing(api, body, path):
    response = api.post(INBOUND, json=body)
    assert response.status_code == 422
    assert path in [d["path"] for d in _error(response)["details"]]
    assert api.get(CONVERSATIONS).get_json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(("data", "content_type"), [
    (b'{"contact": ', "application/json"),
    (b"", "application/json"),
    (b"contact=1", "application/x-www-form-urlencoded"),
    (b'{"contact": {}}', "text/plain"),
    (b"\xff\xfe{", "application/json"),
    (b"NaN", "application/json"),
])
def test_a_body_that_is_not_json_is_400(api, data, content_type):
    response = api.post(INBOUND, data=data, content_type=content_type)
    assert response.status_code == 400
    error = _error(response)
    assert isinstance(error["details"], list) and error["details"]
    assert api.get(CONVERSATIONS).get_json()["items"] == []


# ---------------------------------------------------------------------- the handoff path

def test_handoff_conclusion_and_csat_end_to_end(api, welcome, api_clock):
    started = inbound(api, "oi", name="Maria")
    conversation_id = started["conversation_id"]
    api_clock.advance(30)
    asked = inbound(api, "Falar com atendente", name="Maria")
    assert asked["status"] == "open"
    conversation = api.get(f"{CONVERSATIONS}/{conversation_id}").get_json()
    assert conversation["status"] == "open"
    assert conversation["run"]["state"] == "suspended"
    assert conversation["run"]["block_id"] == "atendente"

    api_clock.advance(60)
    sent = act_message(api, conversation_id, "Oi Maria, sou a Ana. Como posso ajudar?")
    assert sent["replies"] == []
    assert sent["conversation"]["messages"][-1]["author"] == "ana"
    assert sent["conversation"]["messages"][-1]["direction"] == "out"

    api_clock.advance(240)
    concluded = act(api, conversation_id, "conclude")
    assert concluded["conversation"]["status"] == "concluded"
    assert "De 1 a 5, como foi o atendimento?" in [r["text"] for r in concluded["replies"]]
    assert concluded["conversation"]["run"]["block_id"] == "csat"

    api_clock.advance(20)
    thanked = inbound(api, "5", name="Maria")
    assert thanked["replies"][0]["text"].startswith("Obrigada pela avaliação, Maria!")

    day = "2026-11-20"
    report = api.get(f"/api/v1/reports/summary?from={day}&to={day}").get_json()
    assert report["csat"] == {"avg": 5, "count": 1}
    assert report["concluded"] == 1
    assert report["resolution_s"]["avg"] == 300
    assert report["first_response_s"]["avg"] == 60
    assert report["by_agent"] == [{"user": "ana", "concluded": 1, "resolution_s_avg": 300}]
    assert activity(api, conversation_id) == [
        ("bot", "opened_by_flow", "concluded", "open"),
        ("ana", "concluded", "open", "concluded"),
    ]


def act_message(api, conversation_id: int, text: str, user: str = "ana") -> dict:
    response = api.post(f"{CONVERSATIONS}/{conversation_id}/messages", json={"text": text},
                        user=user)
    assert response.status_code == 200, response.data
    return response.get_json()


def test_an_agent_message_opens_the_conversation_and_pauses_the_bot(api, welcome):
    conversation_id = inbound(api, "oi")["conversation_id"]
    result = act_message(api, conversation_id, "Posso ajudar?", user="bruno")
    assert result["conversation"]["status"] == "open"
    assert result["conversation"]["run"]["state"] == "suspended"
    assert activity(api, conversation_id) == [("bruno", "agent_message", "concluded", "open")]
    assert inbound(api, "1")["replies"] == []  # the bot stays silent while people talk


@pytest.mark.parametrize("body", [{"text": ""}, {"text": "  "}, {}, {"text": 5}])
def test_an_empty_agent_message_is_422_and_changes_nothing(api, conversation, body):
    response = api.post(f"{CONVERSATIONS}/{conversation}/messages", json=body, user="ana")
    assert response.status_code == 422
    assert _error(response)["details"][0]["path"] == "$.text"
    got = api.get(f"{CONVERSATIONS}/{conversation}").get_json()
    assert got["status"] == "concluded" and len(got["messages"]) == 1


# ---------------------------------------------------------------------- transitions

def test_each_transition_writes_its_activity_entry_and_no_ops_write_none(api, conversation):
    steps = [
        ("open", {}, "open"),
        ("open", {}, "open"),  # no-op
        ("assign", {"user": "bruno"}, "open"),
        ("assign", {"user": "bruno"}, "open"),  # no-op
        ("unassign", {"user": "bruno"}, "open"),
        ("conclude", {}, "concluded"),
        ("conclude", {}, "concluded"),  # no-op
        ("reopen", {}, "open"),
        ("reopen", {}, "open"),  # no-op
        ("unassign_and_conclude", {}, "concluded"),
    ]
    for action, body, status in steps:
        assert act(api, conversation, action, body)["conversation"]["status"] == status
    assert activity(api, conversation) == [
        ("ana", "opened", "concluded", "open"),
        ("ana", "assigned", "open", "open"),
        ("ana", "unassigned", "open", "open"),
        ("ana", "concluded", "open", "concluded"),
        ("ana", "reopened", "concluded", "open"),
        ("ana", "unassigned_and_concluded", "open", "concluded"),
    ]
    entries = api.get(f"{CONVERSATIONS}/{conversation}").get_json()["activity"]
    assert all(e["at"].endswith("Z") for e in entries)


def test_admins_perform_conversation_actions_too(api, conversation):
    result = act(api, conversation, "open", by="admin")
    assert result["conversation"]["status"] == "open"
    assert activity(api, conversation) == [("admin", "opened", "concluded", "open")]


def test_assigning_an_unknown_login_is_422_and_changes_nothing(api, conversation):
    response = api.post(f"{CONVERSATIONS}/{conversation}/assign", json={"user": "ghost"},
                        user="ana")
    assert response.status_code == 422
    assert _error(response)["details"][0]["path"] == "$.user"
    got = api.get(f"{CONVERSATIONS}/{conversation}").get_json()
    assert got["status"] == "concluded" and got["assignees"] == [] and got["activity"] == []


@pytest.mark.parametrize("action", ["assign", "unassign"])
@pytest.mark.parametrize("body", [None, {}, {"user": ""}, {"user": 3}, {"login": "ana"}])
def test_assign_and_unassign_need_a_user(api, conversation, action, body):
    response = api.post(f"{CONVERSATIONS}/{conversation}/{action}", json=body, user="ana")
    assert response.status_code in (400, 422)
    assert _error(response)
    assert activity(api, conversation) == []


def test_a_conversation_has_several_assignees(api, conversation):
    act(api, conversation, "assign", {"user": "ana"})
    result = act(api, conversation, "assign", {"user": "bruno"})
    assert result["conversation"]["assignees"] == ["ana", "bruno"]
    assert result["conversation"]["status"] == "open"
    assert result["replies"] == []
    result = act(api, conversation, "unassign", {"user": "ana"})
    assert result["conversation"]["assignees"] == ["bruno"]
    result = act(api, conversation, "unassign", {"user": "bruno"})
    assert result["conversation"]["assignees"] == []
    assert result["conversation"]["status"] == "open"  # unassigning the last keeps the status


def test_unassign_and_conclude_removes_the_caller(api, conversation):
    act(api, conversation, "assign", {"user": "ana"})
    act(api, conversation, "assign", {"user": "bruno"})
    result = act(api, conversation, "unassign_and_conclude")
    assert result["conversation"]["assignees"] == ["bruno"]
    assert result["conversation"]["status"] == "concluded"


def test_unassign_and_conclude_removes_the_given_user(api, conversation):
    act(api, conversation, "assign", {"user": "ana"})
    act(api, conversation, "assign", {"user": "bruno"})
    result = act(api, conversation, "unassign_and_conclude", {"user": "bruno"})
    assert result["conversation"]["assignees"] == ["ana"]
    assert result["conversation"]["status"] == "concluded"
    assert activity(api, conversation)[-1] == ("ana", "unassigned_and_concluded", "open",
                                               "concluded")


@pytest.mark.parametrize("action", ["open", "reopen", "conclude"])
def test_plain_actions_refuse_unknown_body_fields(api, conversation, action):
    response = api.post(f"{CONVERSATIONS}/{conversation}/{action}", json={"user": "ana"},
                        user="ana")
    assert response.status_code == 422
    assert _error(response)["details"] == [{"path": "$.user", "message": _error(response)[
        "details"][0]["message"]}]
    assert activity(api, conversation) == []


# ---------------------------------------------------------------------- reading

def test_a_conversation_has_the_documented_shape(api, welcome):
    conversation_id = inbound(api, "oi", name="José")["conversation_id"]
    got = api.get(f"{CONVERSATIONS}/{conversation_id}", user="ana")
    assert got.status_code == 200
    body = got.get_json()
    assert {"id", "status", "channel", "contact", "assignees", "run", "variables", "tags",
            "messages", "activity", "timers", "updated_at"} <= set(body)
    assert body["run"] == {"state": "waiting_input", "flow_id": "boas-vindas", "flow_version": 1,
                           "block_id": "menu"}
    assert body["messages"][0] == {"id": body["messages"][0]["id"], "direction": "in",
                                   "author": "customer", "text": "oi", "buttons": [],
                                   "at": body["messages"][0]["at"]}
    ids = [m["id"] for m in body["messages"]]  # every message has an id (DESIGN §10.6)
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids) == 3
    assert body["messages"][0]["at"].endswith("Z") and body["updated_at"].endswith("Z")


@pytest.mark.parametrize("suffix", ["999", "abc", "0", "-1", "1.5", "99999999999999999999999"])
def test_unknown_or_non_integer_conversations_are_404(api, conversation, suffix):
    routes = [("GET", ""), ("POST", "/open"), ("POST", "/reopen"), ("POST", "/conclude"),
              ("POST", "/unassign_and_conclude"), ("POST", "/assign"), ("POST", "/unassign"),
              ("POST", "/messages")]
    for method, tail in routes:
        body = {"user": "ana"} if tail in ("/assign", "/unassign") else \
            {"text": "oi"} if tail == "/messages" else None
        response = api.call(method, f"{CONVERSATIONS}/{suffix}{tail}", json=body, user="ana")
        assert response.status_code == 404, (method, tail, response.data)
        assert _error(response)


def test_simulator_conversations_are_not_reachable(app, api, conversation):
    with app.app_context():
        hidden = get_service(app).handle_inbound(
            "test", {"external_id": "sim-1", "name": "Simulador"},
            {"id": "s1", "text": "oi"})["conversation_id"]
    assert api.get(f"{CONVERSATIONS}/{hidden}").status_code == 404
    for action in ("open", "reopen", "conclude", "unassign_and_conclude"):
        assert api.post(f"{CONVERSATIONS}/{hidden}/{action}").status_code == 404
    assert api.post(f"{CONVERSATIONS}/{hidden}/assign", json={"user": "ana"}).status_code == 404
    assert api.post(f"{CONVERSATIONS}/{hidden}/messages", json={"text": "x"}).status_code == 404
    ids = [c["id"] for c in api.get(CONVERSATIONS).get_json()["items"]]
    assert ids == [conversation]
    with app.app_context():
        assert get_service(app).get_conversation(hidden)["status"] == "concluded"


# ---------------------------------------------------------------------- listing

def _many(api, api_clock, names):
    ids = []
    for i, name in enumerate(names):
        api_clock.advance(10)
        ids.append(inbound(api, "bom dia", contact=f"c{i}", name=name)["conversation_id"])
    return ids


def test_list_pages_with_a_cursor_newest_activity_first(api, api_clock):
    ids = _many(api, api_clock, [f"Cliente {i}" for i in range(7)])
    pages, cursor = [], None
    while True:
        query = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
        page = api.get(CONVERSATIONS + query, user="ana").get_json()
        pages.append([c["id"] for c in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [ids[::-1][0:3], ids[::-1][3:6], ids[::-1][6:]]
    assert [len(p) for p in pages] == [3, 3, 1]


def test_activity_moves_a_conversation_to_the_top(api, api_clock):
    ids = _many(api, api_clock, ["A", "B", "C"])
    api_clock.advance(10)
    act(api, ids[0], "open")
    listed = api.get(CONVERSATIONS).get_json()["items"]
    assert [c["id"] for c in listed] == [ids[0], ids[2], ids[1]]
    assert set(listed[0]) == {"id", "status", "channel", "contact", "assignees", "run", "tags",
                              "updated_at", "waiting_since", "window_closes_at"}  # §10.8, §10.6


def test_search_matches_names_partially_ignoring_case_and_accents(api, api_clock):
    ids = _many(api, api_clock, ["José Silva", "Maria Souza", "JOSEFA Lima", "Zé"])
    for query, expected in [("jose", [ids[2], ids[0]]), ("JOSÉ", [ids[2], ids[0]]),
                            ("silv", [ids[0]]), ("souza", [ids[1]]), ("ze", [ids[3]]),
                            ("nobody", [])]:
        page = api.get(f"{CONVERSATIONS}?q={query}").get_json()
        assert [c["id"] for c in page["items"]] == expected, query


def test_filter_by_status_and_assignee(api, api_clock):
    ids = _many(api, api_clock, ["A", "B", "C"])
    act(api, ids[0], "assign", {"user": "ana"})
    act(api, ids[1], "assign", {"user": "bruno"})
    act(api, ids[1], "assign", {"user": "ana"})
    open_ids = [c["id"] for c in api.get(f"{CONVERSATIONS}?status=open").get_json()["items"]]
    assert sorted(open_ids) == sorted(ids[:2])
    assert [c["id"] for c in api.get(f"{CONVERSATIONS}?status=concluded").get_json()["items"]] \
        == [ids[2]]
    by_bruno = api.get(f"{CONVERSATIONS}?assignee=bruno").get_json()["items"]
    assert [c["id"] for c in by_bruno] == [ids[1]]
    by_ana = api.get(f"{CONVERSATIONS}?assignee=ana&status=open").get_json()["items"]
    assert sorted(c["id"] for c in by_ana) == sorted(ids[:2])


def test_limit_defaults_to_50_and_is_clamped_to_200(api, api_clock):
    _many(api, api_clock, [f"Cliente {i}" for i in range(201)])
    default = api.get(CONVERSATIONS).get_json()
    assert len(default["items"]) == 50 and default["next_cursor"]
    clamped = api.get(f"{CONVERSATIONS}?limit=5000").get_json()
    assert len(clamped["items"]) == 200 and clamped["next_cursor"]
    rest = api.get(f"{CONVERSATIONS}?limit=200&cursor={clamped['next_cursor']}").get_json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None


@pytest.mark.parametrize("query", ["limit=abc", "limit=0", "limit=-3", "limit=1.5",
                                   "status=closed", "cursor=not-a-cursor", "cursor=%00",
                                   "q=a%00b", "assignee=%00"])
def test_bad_list_parameters_are_400(api, conversation, query):
    response = api.get(f"{CONVERSATIONS}?{query}")
    assert response.status_code == 400
    error = _error(response)
    assert error["details"][0]["path"] == query.split("=")[0]
