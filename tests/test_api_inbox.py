"""The inbox at a busy hour through the REST API (DESIGN §10.8): transfer, private notes,
``waiting_since`` and ``sort=waiting``, ``text=`` search. Both databases."""
from __future__ import annotations

import itertools

from sqlalchemy import select
from test_outbox import customer_says, whatsapp_service

from engine import accounts
from engine import outbox as sender
from engine.flows import FlowRepository
from engine.service import Service
from engine.store import outbox

CONVERSATIONS = "/api/v1/conversations"
_ids = itertools.count(1)


def inbound(api, text: str, contact: str = "c1", name: str = "José Silva") -> dict:
    body = {"channel": "api", "contact": {"external_id": contact, "name": name},
            "message": {"id": f"inbox-m{next(_ids)}", "text": text}}
    response = api.post("/api/v1/inbound", json=body, user="admin")
    assert response.status_code == 200, response.data
    return response.get_json()


def post(api, conversation_id: int, action: str, body: dict | None = None, by: str = "ana"):
    return api.post(f"{CONVERSATIONS}/{conversation_id}/{action}", user=by, json=body)


def get(api, conversation_id: int) -> dict:
    return api.get(f"{CONVERSATIONS}/{conversation_id}", user="ana").get_json()


def listing(api, query: str = "") -> list[int]:
    response = api.get(f"{CONVERSATIONS}{query}", user="ana")
    assert response.status_code == 200, response.data
    return [c["id"] for c in response.get_json()["items"]]


# ---------------------------------------------------------------------- transfer

def test_transfer_hands_over_in_one_activity_entry_with_a_private_note(api, api_clock):
    cid = inbound(api, "bom dia")["conversation_id"]
    assert post(api, cid, "assign", {"user": "bruno"}, by="bruno").status_code == 200
    before = len(get(api, cid)["activity"])

    response = post(api, cid, "transfer", {"user": "ana", "note": "Cliente quer trocar o tamanho"},
                    by="bruno")

    assert response.status_code == 200, response.data
    result = response.get_json()
    assert result["replies"] == []
    conversation = result["conversation"]
    assert conversation["assignees"] == ["ana"]
    assert conversation["status"] == "open"
    new = conversation["activity"][before:]
    assert [(e["actor"], e["action"]) for e in new] == [("bruno", "transferred")]
    assert new[0]["detail"] == {"user": "ana", "from_user": "bruno"}
    note = conversation["messages"][-1]
    assert (note["direction"], note["author"], note["text"]) == ("note", "bruno", "Cliente quer trocar o tamanho")


def test_transfer_without_a_note_adds_no_message(api, api_clock):
    cid = inbound(api, "bom dia")["conversation_id"]
    post(api, cid, "assign", {"user": "ana"})
    count = len(get(api, cid)["messages"])

    assert post(api, cid, "transfer", {"user": "bruno"}).status_code == 200

    conversation = get(api, cid)
    assert conversation["assignees"] == ["bruno"]
    assert len(conversation["messages"]) == count


def test_transfer_to_an_unknown_user_or_to_oneself_is_422_and_changes_nothing(api, api_clock):
    cid = inbound(api, "bom dia")["conversation_id"]
    post(api, cid, "assign", {"user": "ana"})
    before = get(api, cid)

    for body in ({"user": "ninguem"}, {"user": "ana"}, {}, {"user": "bruno", "extra": 1}):
        response = post(api, cid, "transfer", body)
        assert response.status_code == 422, (body, response.data)
        assert response.get_json()["error"]["details"][0]["path"].startswith("$")

    assert get(api, cid) == before
    assert post(api, 999999, "transfer", {"user": "bruno"}).status_code == 404


# ---------------------------------------------------------------------- notes

def test_a_note_is_shown_to_agents_and_never_in_replies_nor_opens(api, api_clock):
    cid = inbound(api, "bom dia")["conversation_id"]
    status = get(api, cid)["status"]

    response = post(api, cid, "notes", {"text": "Já liguei para ela"})

    assert response.status_code == 200, response.data
    result = response.get_json()
    assert result["replies"] == []
    assert result["conversation"]["status"] == status  # a note changes no status
    assert result["conversation"]["messages"][-1]["direction"] == "note"
    assert result["conversation"]["messages"][-1]["text"] == "Já liguei para ela"
    # the customer's next message gets no note in its replies
    assert all("liguei" not in r["text"] for r in inbound(api, "e aí?")["replies"])


def test_an_empty_note_is_422_and_stores_nothing(api, api_clock):
    cid = inbound(api, "bom dia")["conversation_id"]
    before = get(api, cid)
    for body in ({"text": "   "}, {}, {"text": 5}):
        assert post(api, cid, "notes", body).status_code == 422
    assert get(api, cid) == before


def test_notes_are_never_sent_on_whatsapp(db, fake_graph, sample_flow):
    repo = FlowRepository(db)
    repo.create(sample_flow("boas-vindas"))
    repo.publish("boas-vindas")
    clock = [1_800_000_000.0]
    service: Service = whatsapp_service(db, fake_graph.api_base, clock)
    cid = customer_says(service, "oi")
    sender.send_due(service, now=clock[0])
    sent_before = len(fake_graph.delivered)

    for login in ("ana", "bruno"):
        accounts.create_user(db, login, "agent", password="senha-de-teste")
    service.add_note(cid, "ana", "Nota interna: cliente VIP")
    service.act(cid, "assign", "ana", user="ana")
    service.transfer(cid, "ana", "bruno", note="VIP de novo: cuide bem")
    sender.send_due(service, now=clock[0] + 60)

    assert len(fake_graph.delivered) == sent_before
    with db.connect() as conn:
        payloads = [r.payload for r in conn.execute(select(outbox.c.payload))]
    assert all("VIP" not in (p.get("text") or "") for p in payloads)


# ---------------------------------------------------------------------- waiting

def test_waiting_since_is_the_first_unanswered_customer_message(api, api_clock):
    cid = inbound(api, "bom dia")["conversation_id"]  # nothing published: the bot says nothing
    first_at = get(api, cid)["messages"][0]["at"]
    api_clock.advance(30)
    inbound(api, "alguém?")

    assert get(api, cid)["waiting_since"] == first_at
    assert api.get(CONVERSATIONS, user="ana").get_json()["items"][0]["waiting_since"] == first_at

    post(api, cid, "notes", {"text": "vejo já"})
    assert get(api, cid)["waiting_since"] == first_at  # a note answers no one

    post(api, cid, "messages", {"text": "Olá! Em que posso ajudar?"})
    assert get(api, cid)["waiting_since"] is None


def test_a_bot_answer_ends_the_wait(api, api_clock, sample_flow):
    assert api.post("/api/v1/flows", json=sample_flow("boas-vindas")).status_code == 201
    assert api.post("/api/v1/flows/boas-vindas/publish").status_code == 200

    cid = inbound(api, "oi")["conversation_id"]

    assert get(api, cid)["waiting_since"] is None


def test_sort_waiting_puts_the_longest_waiting_first_then_newest_activity(api, api_clock):
    ids = {}
    for name in ("Ana", "Beto", "Caio", "Duda"):
        api_clock.advance(10)
        ids[name] = inbound(api, "bom dia", contact=name, name=name)["conversation_id"]
    api_clock.advance(10)
    post(api, ids["Caio"], "messages", {"text": "Oi Caio!"})  # answered: not waiting
    api_clock.advance(10)
    inbound(api, "e aí?", contact="Ana", name="Ana")  # Ana still waits since her first message

    assert listing(api) == [ids["Ana"], ids["Caio"], ids["Duda"], ids["Beto"]]
    assert listing(api, "?sort=waiting") == [ids["Ana"], ids["Beto"], ids["Duda"], ids["Caio"]]

    pages, cursor = [], None
    while True:
        page = api.get(f"{CONVERSATIONS}?sort=waiting&limit=2" + (f"&cursor={cursor}" if cursor else ""),
                       user="ana").get_json()
        pages.append([c["id"] for c in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [[ids["Ana"], ids["Beto"]], [ids["Duda"], ids["Caio"]]]

    response = api.get(f"{CONVERSATIONS}?sort=idade", user="ana")
    assert response.status_code == 400
    assert response.get_json()["error"]["details"][0]["path"] == "sort"


# ---------------------------------------------------------------------- text search

def test_text_finds_words_in_messages_and_combines_with_names(api, api_clock):
    maria1 = inbound(api, "Meu pedido 48219 não chegou", contact="m1", name="Maria")["conversation_id"]
    maria2 = inbound(api, "Vocês têm ração para o Caramelo?", contact="m2", name="Maria")["conversation_id"]
    other = inbound(api, "bom dia", contact="j1", name="João")["conversation_id"]

    assert listing(api, "?text=48219") == [maria1]
    assert listing(api, "?text=caramelo") == [maria2]  # case-insensitive
    assert listing(api, "?text=ração%20caramelo") == [maria2]  # every word
    assert listing(api, "?text=ração%2048219") == []
    assert listing(api, "?text=bom&q=jo") == [other]
    assert listing(api, "?text=100%25") == []  # LIKE wildcards are literal


def test_text_search_takes_any_characters_without_an_error(api, api_clock):
    found = inbound(api, 'Ele disse "oi" e-mail: a*b (OR) NEAR', contact="x1", name="Zé")["conversation_id"]
    for query in ('"', "*", "(", "OR", "NEAR", "a*b", "e-mail", '"oi"', "^", ":", "-"):
        response = api.get(f"{CONVERSATIONS}", query_string={"text": query}, user="ana")
        assert response.status_code == 200, (query, response.data)
    assert listing(api, "?text=e-mail") == [found]
    assert listing(api, "?text=%22oi%22") == [found]


def test_text_search_follows_new_messages(api, api_clock):
    cid = inbound(api, "bom dia", contact="y1", name="Rui")["conversation_id"]
    assert listing(api, "?text=parafuso") == []
    inbound(api, "preciso de um parafuso", contact="y1", name="Rui")
    assert listing(api, "?text=parafuso") == [cid]
