"""The public web chat /c/<flow_id> through the test client (CSRF on, as in production):
published flows only, the first message starts the chat's flow, reloads keep the
conversation, double submits are stored once, floods are refused, text is escaped."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from editor import create_app
from editor.app import get_engine, get_service
from engine.db import create_schema
from engine.flows import FlowRepository
from engine.store import contacts, conversations, messages

SAMPLE_FLOWS = Path(__file__).resolve().parent.parent / "sample_flows"
TEAM_HINT = "Você está falando com a nossa equipe"

# A flow whose only trigger is a keyword nobody types: the chat must start it anyway.
SALES = {
    "schema_version": 1, "id": "vendas", "name": "Vendas", "description": "", "priority": 0,
    "triggers": [{"type": "keyword", "match": "exact", "value": "quero comprar agora"}],
    "start": "m1",
    "blocks": [
        {"id": "m1", "type": "message", "position": {"x": 0, "y": 0},
         "data": {"text": "Oi, {{ contact.name }}! Aqui é o time de vendas."}},
        {"id": "q1", "type": "question", "position": {"x": 200, "y": 0},
         "data": {"text": "Qual produto?", "input": "text", "save_as": "produto"}},
    ],
    "edges": [{"from": "m1", "port": "next", "to": "q1"}],
}


def welcome_doc() -> dict:
    return json.loads((SAMPLE_FLOWS / "boas-vindas.json").read_text(encoding="utf-8"))


@pytest.fixture
def chat_app(db_url, tmp_path):
    """The web app with CSRF checks on (the customer's form carries the session token)."""
    app = create_app({
        "PAPO_DATABASE_URL": db_url,
        "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
        "TESTING": True,
        "SECRET_KEY": "chat-secret",
    })
    engine = get_engine(app)
    create_schema(engine)
    repo = FlowRepository(engine)
    for doc in (welcome_doc(), SALES):
        repo.create(doc)
        repo.publish(doc["id"])
    yield app
    engine.dispose()


class Customer:
    """One browser: its cookies, the page's CSRF token and the form's message id."""

    def __init__(self, app, flow_id: str = "boas-vindas", name: str | None = None):
        self.app = app
        self.client = app.test_client()
        self.flow_id = flow_id
        self.name = name
        self.page = None
        self.open()

    def open(self, query: str = "") -> str:
        if not query and self.name:
            query = f"?name={self.name}"
        response = self.client.get(f"/c/{self.flow_id}{query}")
        assert response.status_code == 200, response.data
        self.page = response.get_data(as_text=True)
        self.token = re.search(r'name="csrf_token" value="([^"]+)"', self.page).group(1)
        self.message_id = re.search(r'name="message_id" value="([^"]+)"', self.page).group(1)
        self.form_name = html.unescape(re.search(r'name="name" value="([^"]*)"', self.page).group(1))
        self.marker = re.search(r'name="since" value="([^"]+)"', self.page).group(1)
        return self.page

    def send(self, text: str, *, message_id: str | None = None, field: str = "text", htmx: bool = True):
        data = {field: text, "message_id": message_id or self.message_id, "name": self.form_name,
                "csrf_token": self.token, "since": self.marker}
        headers = {"HX-Request": "true"} if htmx else {}
        response = self.client.post(f"/c/{self.flow_id}/messages", data=data, headers=headers)
        if response.status_code == 200 and htmx:
            body = response.get_data(as_text=True)
            found = re.search(r'id="chat-message-id" name="message_id" value="([^"]+)"', body)
            self.message_id = found.group(1) if found else self.message_id
            self.marker = re.search(r'name="since" value="([^"]+)"', body).group(1)
        return response

    def poll(self):
        return self.client.get(f"/c/{self.flow_id}/messages", query_string={"since": self.marker},
                               headers={"HX-Request": "true"})


def stored(app, external_like: str = "%") -> list[tuple[str, str, str]]:
    """(direction, author, text) of every web message, oldest first."""
    with get_engine(app).connect() as conn:
        rows = conn.execute(
            select(messages.c.direction, messages.c.author, messages.c.text)
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .join(contacts, contacts.c.id == conversations.c.contact_id)
            .where(contacts.c.channel == "web", contacts.c.external_id.like(external_like))
            .order_by(messages.c.id)).all()
    return [tuple(r) for r in rows]


def web_conversation(app) -> dict:
    with get_engine(app).connect() as conn:
        ids = conn.execute(select(conversations.c.id).where(conversations.c.channel == "web")).scalars().all()
    assert len(ids) == 1, ids
    return get_service(app).get_conversation(ids[0])


# ---------------------------------------------------------------------- which chats exist

@pytest.mark.parametrize("slug", ["nao-existe", "Boas-Vindas", "rascunho", "apagado"])
def test_unknown_unpublished_or_deleted_chat_is_a_friendly_404(chat_app, slug):
    repo = FlowRepository(get_engine(chat_app))
    repo.create({**SALES, "id": "rascunho", "name": "Rascunho"})  # a draft, never published
    repo.create({**SALES, "id": "apagado", "name": "Apagado"})
    repo.publish("apagado")
    repo.delete("apagado")
    browser = Customer(chat_app)  # a session with a CSRF token
    client = browser.client

    page = client.get(f"/c/{slug}")
    sent = client.post(f"/c/{slug}/messages", data={"text": "oi", "csrf_token": browser.token})

    assert page.status_code == 404
    assert "Este chat não existe ou ainda não foi publicado" in page.get_data(as_text=True)
    assert sent.status_code == 404
    assert stored(chat_app) == []


def test_the_page_has_a_message_box_and_enviar(chat_app):
    page = Customer(chat_app).page

    assert re.search(r'<label[^>]*for="chat-text"[^>]*>Mensagem</label>', page)
    assert re.search(r'<button type="submit"[^>]*>Enviar</button>', page)
    assert "Escreva uma mensagem para começar." in page


# ---------------------------------------------------------------------- conversation

def test_first_message_starts_the_chats_flow_whatever_its_triggers(chat_app):
    # "oi" is boas-vindas' exact keyword; the sales chat must still start "vendas".
    customer = Customer(chat_app, "vendas", name="Maria")

    answer = customer.send("oi")

    assert answer.status_code == 200
    body = answer.get_data(as_text=True)
    assert "Oi, Maria! Aqui é o time de vendas." in body and "Qual produto?" in body
    conversation = web_conversation(chat_app)
    assert conversation["run"]["flow_id"] == "vendas"
    assert conversation["channel"] == "web"
    assert conversation["contact"]["name"] == "Maria"


def test_after_the_first_message_the_usual_rules_apply(chat_app):
    customer = Customer(chat_app, "vendas")
    customer.send("olá")
    customer.send("Vestido floral")  # the answer to the sales question; the run ends

    customer.send("oi")  # an ended run: now triggers decide (boas-vindas' keyword)

    conversation = web_conversation(chat_app)
    assert conversation["variables"]["produto"] == "Vestido floral"
    assert conversation["run"]["flow_id"] == "boas-vindas"


def test_a_handoff_keyword_as_first_message_opens_and_starts_no_flow(chat_app):
    customer = Customer(chat_app)

    body = customer.send("quero falar com atendente").get_data(as_text=True)

    conversation = web_conversation(chat_app)
    assert conversation["status"] == "open" and conversation["run"] is None
    assert TEAM_HINT in body


def test_reload_keeps_the_conversation_and_another_browser_gets_its_own(chat_app):
    maria = Customer(chat_app, name="Maria")
    maria.send("oi")

    again = maria.open()
    stranger = Customer(chat_app)

    assert "Olá, Maria!" in again and "Como posso te ajudar hoje?" in again
    assert "Olá, Maria!" not in stranger.page
    assert maria.form_name == "Maria"  # kept from the contact even without ?name=
    assert stranger.form_name == "Visitante"


def test_name_defaults_to_visitante(chat_app):
    customer = Customer(chat_app)

    customer.send("oi")

    assert web_conversation(chat_app)["contact"]["name"] == "Visitante"
    assert "Olá, Visitante!" in customer.open()


def test_a_bot_button_sends_its_label(chat_app):
    customer = Customer(chat_app, name="Maria")
    page = customer.send("oi").get_data(as_text=True)
    assert re.search(r'<input type="hidden" name="choice" value="Falar com atendente">\s*'
                     r'<button type="submit"[^>]*>Falar com atendente</button>', page)

    body = customer.send("Falar com atendente", field="choice").get_data(as_text=True)

    assert "Já vou te passar para uma pessoa da nossa equipe" in body
    assert TEAM_HINT in body
    assert web_conversation(chat_app)["status"] == "open"


def test_double_submit_is_stored_once(chat_app):
    customer = Customer(chat_app)
    message_id = customer.message_id

    first = customer.send("oi", message_id=message_id)
    second = customer.send("oi", message_id=message_id)

    assert first.status_code == second.status_code == 200
    assert stored(chat_app) == [
        ("in", "customer", "oi"),
        ("out", "bot", "Olá, Visitante! 👋 Bem-vindo(a) à Loja da Ana."),
        ("out", "bot", "Como posso te ajudar hoje?"),
    ]


def test_each_answer_gives_the_form_a_new_message_id(chat_app):
    customer = Customer(chat_app)
    before = customer.message_id

    customer.send("oi")

    assert customer.message_id != before
    customer.send("oi")
    assert [m for m in stored(chat_app) if m[0] == "in"] == [("in", "customer", "oi")] * 2


def test_message_ids_of_different_visitors_never_collide(chat_app):
    one, two = Customer(chat_app), Customer(chat_app)

    one.send("oi", message_id="00000000-0000-4000-8000-000000000000")
    two.send("menu", message_id="00000000-0000-4000-8000-000000000000")

    assert sorted(t for d, _a, t in stored(chat_app) if d == "in") == ["menu", "oi"]


def test_empty_message_is_refused_and_not_processed(chat_app):
    customer = Customer(chat_app)

    response = customer.send("   ")

    assert response.status_code == 422
    assert "Escreva uma mensagem antes de enviar." in response.get_data(as_text=True)
    assert stored(chat_app) == []


def test_without_javascript_the_form_posts_and_comes_back_to_the_chat(chat_app):
    customer = Customer(chat_app, name="Maria")

    response = customer.send("oi", htmx=False)

    assert response.status_code == 303 and response.headers["Location"].endswith("/c/boas-vindas")
    assert "Olá, Maria!" in customer.open("")


def test_a_bot_button_without_javascript_keeps_the_contacts_name(chat_app):
    customer = Customer(chat_app, name="Maria")
    customer.send("oi")

    response = customer.client.post("/c/boas-vindas/messages", data={
        "choice": "Ver produtos", "csrf_token": customer.token})  # what the button's form sends

    assert response.status_code == 303
    conversation = web_conversation(chat_app)
    assert conversation["contact"]["name"] == "Maria"
    assert conversation["variables"]["escolha"] == "Ver produtos"


# ---------------------------------------------------------------------- live updates

def test_poll_answers_204_until_something_changes(chat_app):
    customer = Customer(chat_app, name="Maria")
    assert customer.poll().status_code == 204  # no conversation yet
    customer.send("oi")
    customer.send("3")
    assert customer.poll().status_code == 204

    conversation_id = web_conversation(chat_app)["id"]
    get_service(chat_app).agent_message(conversation_id, "bruno", "Olá Maria, sou o Bruno")
    update = customer.poll()

    assert update.status_code == 200
    body = update.get_data(as_text=True)
    assert "Olá Maria, sou o Bruno" in body and 'class="webchat-msg from-agent"' in body
    assert "Já vou te passar" not in body  # only what is new
    assert TEAM_HINT in body


def test_conclusion_reaches_the_customer_with_the_csat_question(chat_app):
    customer = Customer(chat_app, name="Maria")
    customer.send("oi")
    customer.send("3")
    conversation_id = web_conversation(chat_app)["id"]

    get_service(chat_app).act(conversation_id, "conclude", "bruno")
    body = customer.poll().get_data(as_text=True)

    assert "De 1 a 5, como foi o atendimento?" in body
    assert TEAM_HINT not in body
    customer.send("5")
    assert web_conversation(chat_app)["variables"]["csat"] == 5


# ---------------------------------------------------------------------- safety

def test_customer_text_and_name_are_escaped(chat_app):
    evil_name = '<img src=x onerror="alert(1)">'
    customer = Customer(chat_app)
    customer.form_name = evil_name

    body = customer.send("<script>alert('oi')</script>").get_data(as_text=True)
    page = customer.open()

    for text in (body, page):
        assert "<script>alert(" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(" in page
    assert "Olá, &lt;img src=x onerror=" in page  # the bot's greeting, name escaped


def test_name_from_the_address_is_escaped(chat_app):
    page = chat_app.test_client().get('/c/boas-vindas?name="><script>alert(1)</script>').get_data(as_text=True)

    assert "<script>alert(1)</script>" not in page
    assert 'value="&#34;&gt;&lt;script&gt;' in page


def test_a_post_without_the_csrf_token_is_refused(chat_app):
    customer = Customer(chat_app)
    customer.token = "forged"

    response = customer.send("oi")

    assert response.status_code == 400
    assert stored(chat_app) == []


def test_a_forged_visitor_cookie_gets_a_new_conversation(chat_app):
    maria = Customer(chat_app, name="Maria")
    maria.send("oi")
    other = Customer(chat_app)
    cookie = other.client.get_cookie("papo_chat", path="/c/boas-vindas")
    other.client.set_cookie("papo_chat", cookie.value + "x", path="/c/boas-vindas")

    page = other.open()

    assert "Olá, Maria!" not in page


def test_flooding_gets_the_calm_down_message_and_is_not_processed(chat_app):
    from editor.webchat import RateLimiter

    now = [1000.0]
    chat_app.extensions["papo"]["webchat_limiter"] = RateLimiter(
        {"visitor": (10, 10.0), "address": (30, 10.0)}, clock=lambda: now[0])
    customer = Customer(chat_app, "vendas")
    for n in range(10):
        assert customer.send(f"mensagem {n}").status_code == 200

    refused = customer.send("mensagem 10")

    assert refused.status_code == 429
    assert "Calma! Você está enviando mensagens rápido demais" in refused.get_data(as_text=True)
    assert refused.headers["HX-Retarget"] == "#chat-notice"
    texts = [t for d, _a, t in stored(chat_app) if d == "in"]
    assert "mensagem 10" not in texts and len(texts) == 10
    now[0] += 1.0  # one token back after a second
    assert customer.send("mensagem 11").status_code == 200


def test_flood_from_one_address_with_many_cookies_is_refused_too(chat_app):
    from editor.webchat import RateLimiter

    chat_app.extensions["papo"]["webchat_limiter"] = RateLimiter(
        {"visitor": (10, 10.0), "address": (3, 10.0)}, clock=lambda: 0.0)
    answers = [Customer(chat_app).send("oi").status_code for _ in range(4)]

    assert answers == [200, 200, 200, 429]


def test_rate_limiter_buckets_refill_and_stay_bounded():
    from editor.webchat import RateLimiter

    now = [0.0]
    limiter = RateLimiter({"visitor": (2, 10.0)}, max_keys=3, clock=lambda: now[0])
    assert limiter.take(visitor="a") and limiter.take(visitor="a")
    assert not limiter.take(visitor="a")
    now[0] = 5.0  # half the window: one token back
    assert limiter.take(visitor="a") and not limiter.take(visitor="a")
    for key in "bcde":
        limiter.take(visitor=key)
    assert len(limiter._buckets) == 3


def test_each_chat_keeps_its_own_conversation_in_one_browser(chat_app):
    maria = Customer(chat_app, name="Maria")
    maria.send("oi")

    sales_page = maria.client.get("/c/vendas").get_data(as_text=True)  # same browser, other chat

    assert "Olá, Maria!" not in sales_page
    with get_engine(chat_app).connect() as conn:
        assert conn.execute(select(func.count()).select_from(conversations)).scalar() == 1


def test_the_chat_speaks_english_with_lang_en(chat_app):
    customer = Customer(chat_app)

    page = customer.open("?lang=en")

    assert re.search(r'<label[^>]*for="chat-text"[^>]*>Message</label>', page)
    assert re.search(r'<button type="submit"[^>]*>Send</button>', page)
    assert "This chat does not exist" in customer.client.get("/c/nope?lang=en").get_data(as_text=True)
