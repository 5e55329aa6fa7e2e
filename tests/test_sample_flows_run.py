"""The sample flows, played through the pure engine the way a customer would use them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.core import Concluded, Start, Timer, UserMessage, new_state, step
from engine.lint import lint
from schemas import load_document

SAMPLES = Path(__file__).resolve().parent.parent / "sample_flows"
T0 = 1_764_000_000  # 2025-11-24, epoch seconds; the engine never reads the clock itself


def load(name: str) -> dict:
    return load_document((SAMPLES / f"{name}.json").read_bytes())


class Chat:
    """One conversation with one flow: feed events, remember what the bot said."""

    def __init__(self, flow_id: str, name: str = "Ana"):
        self.flow = load(flow_id)
        self.state = new_state({"name": name})
        self.now = T0
        self.effects: list[dict] = []

    def send(self, event) -> list[str]:
        self.state, outbound, self.effects = step(self.flow, self.state, event)
        self.last_outbound = outbound
        return [m["text"] for m in outbound]

    def start(self) -> list[str]:
        return self.send(Start(self.now, "r-1"))

    def say(self, text: str, after: float = 5) -> list[str]:
        self.now += after
        return self.send(UserMessage(self.now, text))

    @property
    def run(self) -> dict:
        return self.state["run"]

    @property
    def vars(self) -> dict:
        return self.state["vars"]

    def timers(self, kind: str) -> list[dict]:
        return [e for e in self.effects if e["type"] == "schedule_timer" and e["kind"] == kind]


@pytest.mark.parametrize("name", ["boas-vindas", "captura-leads", "lembrete"])
def test_sample_flow_loads_and_lints_clean(name):
    raw = (SAMPLES / f"{name}.json").read_text(encoding="utf-8")
    doc = load_document(raw)
    assert doc["id"] == name == json.loads(raw)["id"]
    assert lint(doc) == []


# --- boas-vindas --------------------------------------------------------------------------

def test_welcome_greets_by_name_and_shows_the_menu():
    chat = Chat("boas-vindas")
    texts = chat.start()
    assert texts[0] == "Olá, Ana! 👋 Bem-vindo(a) à Loja da Ana."
    assert chat.last_outbound[-1]["buttons"] == ["Ver produtos", "Status do pedido", "Falar com atendente"]
    assert chat.run["state"] == "waiting_input"
    assert chat.run["block_id"] == "menu"


@pytest.mark.parametrize("answer", ["3", "falar com atendente", "FALAR COM ATENDENTE"])
def test_welcome_handoff_then_csat_after_conclusion(answer):
    chat = Chat("boas-vindas")
    chat.start()

    texts = chat.say(answer)
    assert texts == ["Certo! Já vou te passar para uma pessoa da nossa equipe. "
                     "Aguarde um instante, por favor. 🙂"]
    assert chat.run["state"] == "suspended"
    assert chat.run["block_id"] == "atendente"
    opened = [e for e in chat.effects if e["type"] == "open"]
    assert opened and opened[0]["block_id"] == "atendente"
    assert chat.vars["escolha"] == "Falar com atendente"

    # While an agent talks to the customer, the bot stays quiet.
    assert chat.say("oi, tudo bem?") == []
    assert chat.run["state"] == "suspended"

    chat.now += 600
    texts = chat.send(Concluded(chat.now))
    assert texts == ["De 1 a 5, como foi o atendimento?"]
    assert chat.run["block_id"] == "csat"

    assert chat.last_outbound[-1]["buttons"] == ["1", "2", "3", "4", "5"]

    texts = chat.say("⭐⭐⭐⭐⭐")
    assert texts == ["Obrigada pela avaliação, Ana! 💛 Volte sempre à Loja da Ana."]
    assert chat.vars["csat"] == 5
    assert chat.run["state"] == "ended"


def test_welcome_csat_never_traps_a_customer_who_moves_on():
    chat = Chat("boas-vindas")
    chat.start()
    chat.say("3")
    chat.now += 600
    chat.send(Concluded(chat.now))
    assert chat.say("9") == []  # not a rating: the question lets go, no nagging
    assert chat.run["state"] == "ended" and "csat" not in chat.vars


def test_welcome_menu_hands_over_after_three_answers_it_cannot_understand():
    chat = Chat("boas-vindas")
    chat.start()
    chat.say("pizza")
    chat.say("pizza?")
    texts = chat.say("PIZZA!")
    assert texts == ["Não consegui entender sua escolha 😕 Vou te passar para uma pessoa da nossa equipe."]
    assert chat.run["state"] == "suspended" and chat.run["block_id"] == "atendente"


def test_rating_sample_thanks_for_a_rating():
    chat = Chat("avaliacao")
    texts = chat.start()
    assert texts == ["Como você avalia o atendimento? Responda de 1 (ruim) a 5 (ótimo)."]
    assert chat.say("nota 4") == ["Obrigada pela avaliação, Ana! 💛"]
    assert chat.vars["csat"] == 4


def test_welcome_order_status_checks_the_number():
    chat = Chat("boas-vindas")
    chat.start()
    assert chat.say("Status do pedido") == ["Qual é o número do seu pedido? (só os números, ex.: 12345)"]
    texts = chat.say("meu pedido é o doze")
    assert texts[0].startswith("Esse número não parece certo.")
    texts = chat.say(" 123456 ")
    assert texts == ["Seu pedido 123456 está em separação e sai para entrega em até 2 dias úteis. "
                     "Você recebe o código de rastreio por e-mail. 📦"]
    assert chat.run["state"] == "ended"


def test_welcome_products_answer_ends_the_run():
    chat = Chat("boas-vindas")
    chat.start()
    texts = chat.say("1")
    assert "Nossos destaques da semana" in texts[0]
    assert chat.run["state"] == "ended"


# --- captura-leads ------------------------------------------------------------------------

def test_leads_collects_contact_data_and_retries_a_bad_email():
    chat = Chat("captura-leads")
    texts = chat.start()
    assert texts[-1] == "Qual é o seu nome?"

    assert chat.say("Ana Souza") == ["Prazer, Ana Souza! Qual é o seu e-mail?"]

    texts = chat.say("ana arroba gmail")
    assert texts == ["Hmm, esse e-mail não parece válido. Pode conferir? (exemplo: ana@gmail.com)",
                     "Prazer, Ana Souza! Qual é o seu e-mail?"]
    assert chat.run["block_id"] == "email"
    assert "email" not in chat.vars

    assert chat.say("ana.souza@exemplo.com.br") == ["E um telefone com DDD para contato?"]
    assert chat.vars["email"] == "ana.souza@exemplo.com.br"

    assert chat.say("(11) 98765-4321") == ["Quantas unidades você pretende comprar?"]
    assert chat.vars["telefone"] == "11987654321"
    assert chat.state["tags"] == ["lead"]

    texts = chat.say("3")
    assert texts == ["Obrigada, Ana Souza! Anotei seu pedido de orçamento: 3 unidade(s), com preço de "
                     "varejo. Vamos responder em até 1 dia útil no e-mail ana.souza@exemplo.com.br "
                     "ou no telefone 11987654321. 📝"]
    assert chat.vars["tipo_cliente"] == "varejo"
    assert chat.state["tags"] == ["lead"]
    assert chat.run["state"] == "ended"


def test_leads_over_ten_units_is_wholesale():
    chat = Chat("captura-leads")
    chat.start()
    for answer in ("Bruno", "bruno@exemplo.com", "21 99876-5432"):
        chat.say(answer)
    texts = chat.say("50")
    assert "com preço de atacado" in texts[0]
    assert chat.vars["quantidade"] == 50
    assert chat.vars["tipo_cliente"] == "atacado"
    assert chat.state["tags"] == ["lead", "atacado"]


# --- lembrete -----------------------------------------------------------------------------

def test_reminder_waits_an_hour_then_reminds():
    chat = Chat("lembrete")
    texts = chat.start()
    assert texts == ["Oi, Ana! Quer que eu te lembre de finalizar sua compra na Loja da Ana?"]
    question_timeout = chat.timers("question_timeout")
    assert question_timeout[0]["due_at"] == T0 + 1800

    texts = chat.say("1")
    assert texts == ["Combinado! ⏰ Seus itens continuam separados e eu te aviso no horário escolhido."]
    assert chat.run["state"] == "waiting_timer"
    assert chat.run["block_id"] == "espera_1h"
    [wait] = chat.timers("wait")
    assert wait["due_at"] == chat.now + 3600
    assert wait["token"] == chat.run["token"]

    # The question's timeout fires late: the run has moved on, so nothing happens.
    assert chat.send(Timer(T0 + 1800, "question_timeout", question_timeout[0]["token"])) == []
    assert chat.run["block_id"] == "espera_1h"

    texts = chat.send(Timer(wait["due_at"], "wait", wait["token"]))
    assert len(texts) == 1 and texts[0].startswith("⏰ Lembrete da Loja da Ana: Ana,")
    assert chat.run["state"] == "ended"


def test_reminder_tomorrow_waits_a_day():
    chat = Chat("lembrete")
    chat.start()
    chat.say("sim, amanha")
    [wait] = chat.timers("wait")
    assert wait["due_at"] == chat.now + 86400
    assert chat.vars["quando_lembrar"] == "Sim, amanhã"


def test_reminder_question_times_out_politely():
    chat = Chat("lembrete")
    chat.start()
    [timeout] = chat.timers("question_timeout")
    texts = chat.send(Timer(timeout["due_at"], "question_timeout", timeout["token"]))
    assert texts == ["Como não tive resposta, não vou agendar o lembrete. "
                     "Se quiser, é só mandar *lembrete* 😉"]
    assert chat.run["state"] == "ended"


def test_reminder_declined():
    chat = Chat("lembrete")
    chat.start()
    assert chat.say("Não, obrigado") == ["Tudo bem! Se mudar de ideia, é só mandar *lembrete*."]
    assert chat.timers("wait") == []
    assert chat.run["state"] == "ended"
