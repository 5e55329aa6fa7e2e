"""``papo chat`` (DESIGN §5) and the simulation helper behind it (``engine.simulator``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from editor.cli import main
from engine.flows import FlowRepository
from engine.service import TEST_CHANNEL, Service
from engine.simulator import Simulation

ROOT = Path(__file__).resolve().parent.parent
WELCOME = str(ROOT / "sample_flows" / "boas-vindas.json")
REMINDER = str(ROOT / "sample_flows" / "lembrete.json")
MENU = ["Ver produtos", "Status do pedido", "Falar com atendente"]
START = 1_795_600_000.0  # 2026-11-25 07:06:40 UTC


def chat(*args: str, lines: list[str] | str = (), env: dict | None = None):
    text = lines if isinstance(lines, str) else "".join(f"{line}\n" for line in lines)
    return CliRunner().invoke(main, ["chat", *args], input=text, env=env, catch_exceptions=False)


def events(result) -> list[dict]:
    """Every stdout line is one JSON object (nothing else is allowed there)."""
    return [json.loads(line) for line in result.stdout.splitlines()]


RATING = ["1", "2", "3", "4", "5"]  # a rating question's buttons


def bot(text: str, buttons: list[str] | None = None) -> dict:
    return {"event": "bot", "text": text, "buttons": buttons or []}


def status(value: str) -> dict:
    return {"event": "status", "status": value}


def flow_doc(blocks: list[dict], edges: list[dict], flow_id: str = "teste") -> dict:
    for i, block in enumerate(blocks):
        block.setdefault("position", {"x": 40 + 280 * i, "y": 80})
    return {"schema_version": 1, "id": flow_id, "name": "Teste", "triggers": [],
            "start": blocks[0]["id"], "blocks": blocks, "edges": edges}


def write(tmp_path: Path, doc: dict, name: str = "flow.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return str(path)


@pytest.fixture(autouse=True)
def _no_handoff_or_conclude_overrides(monkeypatch):
    # The behaviour under test is the default one, whatever the developer's shell exports.
    for name in ("PAPO_HANDOFF_KEYWORDS", "PAPO_ON_CONCLUDE_FLOW", "PAPO_AUTO_CONCLUDE_AFTER"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------- the welcome flow
def test_welcome_flow_greets_with_menu_buttons():
    result = chat(WELCOME, "--jsonl", "--name", "Ana", lines=["oi"])
    assert result.exit_code == 0
    assert events(result) == [
        bot("Olá, Ana! 👋 Bem-vindo(a) à Loja da Ana."),
        bot("Como posso te ajudar hoje?", MENU),
    ]


def test_full_service_journey_with_csat():
    result = chat(WELCOME, "--jsonl", "--name", "Ana",
                  lines=["oi", "Falar com atendente", "ainda estou aqui?", "/conclude", "5", "/vars"])
    assert result.exit_code == 0
    assert events(result)[2:] == [
        bot("Certo! Já vou te passar para uma pessoa da nossa equipe. Aguarde um instante, por favor. 🙂"),
        status("open"),
        # the message while open: stored for the agents, nothing from the bot
        status("concluded"),
        bot("De 1 a 5, como foi o atendimento?", RATING),
        bot("Obrigada pela avaliação, Ana! 💛 Volte sempre à Loja da Ana."),
        {"event": "vars", "vars": {"escolha": "Falar com atendente", "csat": 5}},
    ]


def test_choosing_the_human_option_by_number_opens():
    result = chat(WELCOME, "--jsonl", lines=["oi", "3"])
    assert events(result)[-1] == status("open")


def test_vars_prints_exactly_one_event_even_when_empty():
    result = chat(WELCOME, "--jsonl", lines=["/vars"])
    assert events(result) == [{"event": "vars", "vars": {}}]


def test_handoff_keyword_as_first_message_opens_and_no_flow_starts():
    result = chat(WELCOME, "--jsonl", lines=["quero falar com um atendente", "oi", "/vars"])
    assert result.exit_code == 0
    assert events(result) == [status("open"), {"event": "vars", "vars": {}}]


def test_handoff_keyword_during_a_question_interrupts_the_run():
    result = chat(WELCOME, "--jsonl", lines=["oi", "2", "humano", "/conclude", "oi"])
    out = events(result)
    assert out[2] == bot("Qual é o número do seu pedido? (só os números, ex.: 12345)")
    assert out[3:6] == [status("open"), status("concluded"), bot("Olá, Visitante! 👋 Bem-vindo(a) à Loja da Ana.")]


def test_flow_starts_again_after_its_run_ends():
    result = chat(WELCOME, "--jsonl", lines=["oi", "1", "qualquer coisa"])
    out = events(result)
    assert out[2]["text"].startswith("Nossos destaques da semana")
    assert out[3:] == [bot("Olá, Visitante! 👋 Bem-vindo(a) à Loja da Ana."), bot("Como posso te ajudar hoje?", MENU)]


def test_the_given_flow_starts_whatever_its_triggers(tmp_path):
    doc = flow_doc([{"id": "m", "type": "message", "data": {"text": "Oi, {{ contact.name }}."}}], [])
    doc["triggers"] = [{"type": "keyword", "match": "exact", "value": "palavra secreta"}]
    result = chat(write(tmp_path, doc), "--jsonl", "--name", "Bia", lines=["bom dia"])
    assert events(result) == [bot("Oi, Bia.")]


def test_open_then_messages_are_silent_until_conclude():
    result = chat(WELCOME, "--jsonl", lines=["/open", "oi", "/open", "/conclude", "/conclude", "oi"])
    assert events(result) == [
        status("open"),
        status("concluded"),  # the second /open and /conclude change nothing: no event
        bot("Olá, Visitante! 👋 Bem-vindo(a) à Loja da Ana."),
        bot("Como posso te ajudar hoje?", MENU),
    ]


def test_agent_takeover_ends_the_run_at_conclusion():
    result = chat(WELCOME, "--jsonl", lines=["oi", "/open", "2", "/conclude"])
    # not paused by the flow: concluding ends the run instead of resuming it
    assert events(result)[2:] == [status("open"), status("concluded")]


def test_flow_that_opens_and_concludes_reports_every_status_change(tmp_path):
    doc = flow_doc(
        [{"id": "a", "type": "message", "data": {"text": "Chamando alguém."}},
         {"id": "abre", "type": "open_conversation", "data": {"note": "teste"}},
         {"id": "volta", "type": "message", "data": {"text": "Voltei."}},
         {"id": "fim", "type": "conclude_conversation", "data": {}}],
        [{"from": "a", "port": "next", "to": "abre"}, {"from": "abre", "port": "next", "to": "volta"},
         {"from": "volta", "port": "next", "to": "fim"}])
    result = chat(write(tmp_path, doc), "--jsonl", lines=["oi", "/conclude"])
    assert events(result) == [bot("Chamando alguém."), status("open"), status("concluded"), bot("Voltei.")]


# ---------------------------------------------------------------------- commands and errors
def test_unknown_command_and_bad_wait_are_error_events_and_exit_zero():
    result = chat(WELCOME, "--jsonl", lines=["/dance", "/wait abc", "/wait", "/wait -5"])
    assert result.exit_code == 0
    out = events(result)
    assert [e["event"] for e in out] == ["error"] * 4
    assert "/dance" in out[0]["message"]
    assert all(e["message"] for e in out)


def test_quit_stops_reading_input():
    result = chat(WELCOME, "--jsonl", lines=["/quit", "oi"])
    assert result.exit_code == 0
    assert result.stdout == ""


def test_end_of_input_without_newline_exits_zero():
    result = chat(WELCOME, "--jsonl", lines="oi")
    assert result.exit_code == 0
    assert len(events(result)) == 2


def test_blank_lines_are_ignored():
    result = chat(WELCOME, "--jsonl", lines=["", "   ", "/vars"])
    assert events(result) == [{"event": "vars", "vars": {}}]


# ---------------------------------------------------------------------- time
def test_wait_fires_the_reminder_of_a_wait_block():
    result = chat(REMINDER, "--jsonl", "--name", "Ana",
                  lines=["oi", "Sim, em 1 hora", "/wait 3599", "/vars", "/wait 1"])
    out = events(result)
    assert out[0] == bot("Oi, Ana! Quer que eu te lembre de finalizar sua compra na Loja da Ana?",
                         ["Sim, em 1 hora", "Sim, amanhã", "Não, obrigado"])
    assert out[1] == bot("Combinado! ⏰ Seus itens continuam separados e eu te aviso no horário escolhido.")
    assert out[2] == {"event": "vars", "vars": {"quando_lembrar": "Sim, em 1 hora"}}  # 3599 s: not yet
    assert out[3] == bot("⏰ Lembrete da Loja da Ana: Ana, seus itens ainda estão no carrinho! "
                         "Finalize em https://lojadaana.com.br/carrinho ou responda *oi* para falar com a gente.")
    assert len(out) == 4


def test_wait_accepts_units_and_fires_the_next_day_reminder():
    result = chat(REMINDER, "--jsonl", lines=["oi", "2", "/wait 23h", "/wait 1h"])
    out = events(result)
    assert len(out) == 3 and out[2]["text"].startswith("⏰ Lembrete da Loja da Ana")


def test_wait_fires_a_question_timeout():
    result = chat(REMINDER, "--jsonl", lines=["oi", "/wait 1800", "/wait 86400"])
    assert events(result)[1:] == [
        bot("Como não tive resposta, não vou agendar o lembrete. Se quiser, é só mandar *lembrete* 😉")]


def test_wait_fires_timers_created_during_the_window(tmp_path):
    doc = flow_doc(
        [{"id": "a", "type": "message", "data": {"text": "um"}},
         {"id": "w1", "type": "wait", "data": {"seconds": 60}},
         {"id": "b", "type": "message", "data": {"text": "dois"}},
         {"id": "w2", "type": "wait", "data": {"seconds": 60}},
         {"id": "c", "type": "message", "data": {"text": "três"}},
         {"id": "w3", "type": "wait", "data": {"seconds": 60}},
         {"id": "d", "type": "message", "data": {"text": "quatro"}}],
        [{"from": x, "port": "next", "to": y}
         for x, y in [("a", "w1"), ("w1", "b"), ("b", "w2"), ("w2", "c"), ("c", "w3"), ("w3", "d")]])
    result = chat(write(tmp_path, doc), "--jsonl", lines=["oi", "/wait 150", "/wait 29", "/wait 1"])
    assert [e["text"] for e in events(result)] == ["um", "dois", "três", "quatro"]


def test_wait_while_open_sends_nothing():
    result = chat(REMINDER, "--jsonl", lines=["oi", "1", "/open", "/wait 7200", "/conclude"])
    assert events(result)[2:] == [status("open"), status("concluded")]


def test_auto_conclude_during_wait_is_a_status_event():
    env = {"PAPO_AUTO_CONCLUDE_AFTER": "PT1H"}
    result = chat(WELCOME, "--jsonl", lines=["oi", "3", "/wait 3599", "/wait 1"], env=env)
    out = events(result)
    assert out[3:] == [status("open"), status("concluded"), bot("De 1 a 5, como foi o atendimento?", RATING)]


# ---------------------------------------------------------------------- people's output
def test_human_mode_shows_bot_lines_buttons_and_status():
    result = chat(WELCOME, "--name", "Ana", lines=["oi", "3", "/vars", "/conclude", "/nada"])
    out = result.stdout
    assert result.exit_code == 0
    assert "/open" in out.splitlines()[0] and "/wait" in out.splitlines()[0]  # the help line
    assert "🤖 Olá, Ana! 👋 Bem-vindo(a) à Loja da Ana.\n" in out
    assert "  [1] Ver produtos  [2] Status do pedido  [3] Falar com atendente\n" in out
    assert "— atendimento aberto: o robô fica em silêncio —" in out
    assert "— atendimento concluído: o robô volta a responder —" in out
    assert 'escolha = "Falar com atendente"' in out
    assert "/nada" in out.splitlines()[-1]


def test_human_mode_indents_multiline_messages():
    result = chat(WELCOME, lines=["oi", "1"])
    assert "🤖 Nossos destaques da semana:\n   • Vestido midi floral — R$ 159,90\n" in result.stdout


def test_default_contact_name_is_visitante():
    result = chat(WELCOME, "--jsonl", lines=["oi"])
    assert events(result)[0]["text"] == "Olá, Visitante! 👋 Bem-vindo(a) à Loja da Ana."


# ---------------------------------------------------------------------- loading the flow
def test_structural_errors_are_printed_and_exit_1(tmp_path):
    doc = flow_doc([{"id": "m", "type": "message", "data": {"txt": "oi"}}], [])
    path = write(tmp_path, doc)
    result = chat(path, lines=["oi"])
    assert result.exit_code == 1
    assert f'{path}: error [m] invalid_flow: Bloco "Mensagem" (m): o campo "txt" não existe' in result.stdout
    assert "🤖" not in result.stdout


def test_structural_errors_in_jsonl_mode_are_error_events(tmp_path):
    path = write(tmp_path, flow_doc([{"id": "m", "type": "message", "data": {}}], []))
    result = chat(path, "--jsonl", lines=["oi"])
    assert result.exit_code == 1
    out = events(result)
    assert out and all(e["event"] == "error" and "[m]" in e["message"] for e in out)


def test_a_file_that_is_not_json_exits_2(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{ not json", encoding="utf-8")
    result = chat(str(path), lines=["oi"])
    assert result.exit_code == 2
    assert "not_json" in result.stdout


def test_missing_file_path_exits_2(tmp_path):
    result = chat(str(tmp_path / "nope.json"))
    assert result.exit_code == 2


def test_lint_errors_are_shown_but_the_draft_runs(tmp_path):
    doc = flow_doc([{"id": "m", "type": "message", "data": {"text": "oi!"}}],
                   [{"from": "m", "port": "next", "to": "fantasma"}])
    result = chat(write(tmp_path, doc), lines=["oi"])
    assert result.exit_code == 0
    assert "dangling_edge" in result.stdout
    assert "🤖 oi!" in result.stdout


def test_flow_id_is_read_from_the_database(db_url, sample_flow, monkeypatch):
    from engine.db import make_engine
    from engine.migrate import upgrade

    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        doc = sample_flow("boas-vindas")
        doc["blocks"][0]["data"]["text"] = "Olá do banco, {{ contact.name }}!"
        FlowRepository(engine).create(doc)
    finally:
        engine.dispose()
    monkeypatch.setenv("PAPO_DATABASE_URL", db_url)
    result = chat("boas-vindas", "--jsonl", "--name", "Ana", lines=["oi", "3"])
    assert result.exit_code == 0
    assert events(result)[0] == bot("Olá do banco, Ana!")
    # the simulation ran in memory: nothing was written to the real database
    engine = make_engine(db_url)
    try:
        assert Service(engine).list_conversations()["items"] == []
        with engine.connect() as conn:
            from sqlalchemy import func, select

            from engine.store import conversations
            assert conn.execute(select(func.count()).select_from(conversations)).scalar() == 0
    finally:
        engine.dispose()


def test_unknown_flow_id_exits_1(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPO_DATABASE_URL", f"sqlite:///{tmp_path / 'papo.db'}")
    result = chat("nao-existe", "--jsonl")
    assert result.exit_code == 1
    assert "nao-existe" in result.output


# ---------------------------------------------------------------------- HTTP blocks are real
class _Echo(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        body = json.dumps({"pedido": self.path.rsplit("/", 1)[-1], "situacao": "enviado"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_http_request_blocks_make_real_requests(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        doc = flow_doc(
            [{"id": "q", "type": "question", "data": {"text": "Pedido?", "input": "text", "save_as": "n"}},
             {"id": "h", "type": "http_request",
              "data": {"method": "GET", "url": f"http://127.0.0.1:{port}/pedidos/{{{{ n }}}}",
                       "save_as": "resp"}},
             {"id": "ok", "type": "message", "data": {"text": "Chegou resposta."}},
             {"id": "erro", "type": "message", "data": {"text": "Falhou."}}],
            [{"from": "q", "port": "answered", "to": "h"}, {"from": "h", "port": "ok", "to": "ok"},
             {"from": "h", "port": "error", "to": "erro"}])
        result = chat(write(tmp_path, doc), "--jsonl", lines=["oi", "123", "/vars"],
                      env={"PAPO_HTTP_ALLOW_HOSTS": f"127.0.0.1:{port}"})
    finally:
        server.shutdown()
        server.server_close()
    out = events(result)
    assert out[1] == bot("Chegou resposta.")
    assert "enviado" in json.dumps(out[2]["vars"]["resp"], ensure_ascii=False)


# ---------------------------------------------------------------------- a real process
def test_chat_through_pipes_answers_line_by_line():
    """A script writes one line and reads the answer before writing the next."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("PAPO_HANDOFF_KEYWORDS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from editor.cli import main; main()", "chat", WELCOME, "--jsonl",
         "--name", "Ana"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, encoding="utf-8", bufsize=1, cwd=ROOT, env=env)
    timer = threading.Timer(60, proc.kill)  # a hung child must not hang the suite
    timer.start()
    try:
        def say(line: str, answers: int) -> list[dict]:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            return [json.loads(proc.stdout.readline()) for _ in range(answers)]

        assert say("oi", 2)[1] == bot("Como posso te ajudar hoje?", MENU)
        assert say("Falar com atendente", 2)[1] == status("open")
        assert say("/vars", 1) == [{"event": "vars", "vars": {"escolha": "Falar com atendente"}}]
        assert say("/conclude", 2) == [status("concluded"), bot("De 1 a 5, como foi o atendimento?", RATING)]
        assert say("4", 1)[0]["text"].startswith("Obrigada pela avaliação, Ana!")
        assert say("/nope", 1)[0]["event"] == "error"
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read() == ""
    finally:
        timer.cancel()
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()


# ---------------------------------------------------------------------- the Simulation API
def test_simulation_clock_and_timers(sample_flow):
    sim = Simulation(sample_flow("lembrete"), start_at=START, contact_name="Ana")
    assert sim.send("oi")[0]["buttons"] == ["Sim, em 1 hora", "Sim, amanhã", "Não, obrigado"]
    assert sim.run()["block_id"] == "oferta" and sim.run()["state"] == "waiting_input"
    sim.send("1")
    assert sim.run()["state"] == "waiting_timer"
    assert [t["kind"] for t in sim.timers()] == ["wait"]
    assert sim.wait(600) == []
    assert sim.now == START + 600
    replies = sim.advance()  # straight to the reminder, one hour after the answer
    assert sim.now == START + 3600
    assert replies[0]["text"].startswith("⏰ Lembrete")
    assert sim.run()["state"] == "ended"
    assert sim.advance() == [] and sim.now == START + 3600
    assert sim.wait(10) == [] and sim.now == START + 3610


def test_simulation_wait_fires_in_due_order_at_each_due_time(sample_flow):
    doc = flow_doc(
        [{"id": "w1", "type": "wait", "data": {"seconds": 100}},
         {"id": "a", "type": "set_variable", "data": {"name": "t1", "value": "x"}},
         {"id": "w2", "type": "wait", "data": {"seconds": 50}},
         {"id": "b", "type": "message", "data": {"text": "fim"}}],
        [{"from": "w1", "port": "next", "to": "a"}, {"from": "a", "port": "next", "to": "w2"},
         {"from": "w2", "port": "next", "to": "b"}])
    sim = Simulation(doc, start_at=START)
    assert sim.send("oi") == []
    seen = []
    original = sim.service.fire_timer

    def spy(timer_id, now):
        seen.append(now - START)
        return original(timer_id, now)

    sim.service.fire_timer = spy
    assert sim.wait(1000) == [{"text": "fim", "buttons": []}]
    assert seen == [100, 150]
    assert sim.now == START + 1000


def test_simulation_status_actions_and_events(sample_flow):
    sim = Simulation(sample_flow("boas-vindas"), contact_name="Ana")
    assert sim.status() == "concluded" and sim.variables() == {} and sim.run() is None
    assert sim.open() == "open"
    assert sim.last_events == [status("open")]
    assert sim.send("oi") == []
    assert sim.conclude() == []
    assert sim.status() == "concluded"
    sim.send("oi")
    sim.send("3")
    assert sim.status() == "open" and sim.last_events[-1] == status("open")
    assert sim.conclude() == [{"text": "De 1 a 5, como foi o atendimento?", "buttons": RATING}]
    assert sim.last_events == [status("concluded"), bot("De 1 a 5, como foi o atendimento?", RATING)]
    sim.send("5")
    assert sim.variables() == {"escolha": "Falar com atendente", "csat": 5}


def test_simulations_on_a_shared_database_are_hidden_and_separate(db, sample_flow):
    FlowRepository(db).create(sample_flow("boas-vindas"))
    one = Simulation(None, db=db, flow_id="boas-vindas", contact_name="Ana")
    two = Simulation(None, db=db, flow_id="boas-vindas", contact_name="Bia")
    assert one.send("oi")[0]["text"].startswith("Olá, Ana!")
    assert two.send("oi")[0]["text"].startswith("Olá, Bia!")
    assert one.conversation_id != two.conversation_id
    assert one.conversation()["channel"] == TEST_CHANNEL
    assert Service(db).list_conversations()["items"] == []
    one.restart()
    assert one.conversation_id is None and one.status() == "concluded"
    assert one.send("oi")[0]["text"].startswith("Olá, Ana!")


def test_simulation_runs_the_latest_draft(db, sample_flow):
    repo = FlowRepository(db)
    doc = sample_flow("boas-vindas")
    repo.create(doc)
    repo.publish("boas-vindas")
    doc["blocks"][0]["data"]["text"] = "Rascunho novo."
    sim = Simulation(doc, db=db)
    assert sim.send("oi")[0]["text"] == "Rascunho novo."
    assert repo.get("boas-vindas")[1] == 2


def test_simulation_without_a_flow_follows_published_triggers(db, sample_flow):
    repo = FlowRepository(db)
    for name in ("boas-vindas", "lembrete"):
        repo.create(sample_flow(name))
        repo.publish(name)
    sim = Simulation(None, db=db)
    assert sim.send("quero um lembrete")[0]["text"].startswith("Oi, Você! Quer que eu te lembre")


def test_simulation_resumes_from_a_snapshot(db, sample_flow):
    FlowRepository(db).create(sample_flow("lembrete"))
    first = Simulation(None, db=db, flow_id="lembrete", start_at=START, contact_name="Ana")
    first.send("oi")
    first.send("1")
    snapshot = json.loads(json.dumps(first.snapshot()))  # it survives a session cookie
    again = Simulation.resume(snapshot, db=db)
    assert again.conversation_id == first.conversation_id and again.now == START
    assert again.advance()[0]["text"].startswith("⏰ Lembrete da Loja da Ana: Ana,")
    assert again.send("oi")[0]["text"].startswith("Oi, Ana!")  # a fresh message, not a duplicate
    # the same text again is a new message too: an invalid answer to the waiting question
    assert again.send("oi")[0]["text"].startswith("Não entendi")
