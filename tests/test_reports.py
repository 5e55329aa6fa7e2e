"""/reports and /reports.csv: the figures of a history built through the service with a
hand-moved clock equal the ones worked out by hand, and the API's summary."""
from __future__ import annotations

import csv
import html
import io
import itertools
import re

import pytest

from editor.app import get_engine, get_service
from editor.reports import duration, flow_order
from engine.accounts import get_user
from engine.flows import FlowRepository
from engine.service import funnel

DAY = 86_400
_ids = itertools.count(1)
PERIOD = "from=2026-11-19&to=2026-11-21"


def login(client, app, user: str) -> None:
    with client.session_transaction() as session:
        account = get_user(get_engine(app), user)
        session.update(user_id=account["id"], role=account["role"], login=user)


def say(service, contact: str, text: str, channel: str = "web") -> int:
    return service.handle_inbound(channel, {"external_id": contact, "name": contact.title()},
                                  {"id": f"r{next(_ids)}", "text": text})["conversation_id"]


@pytest.fixture
def history(app, api_tokens, api_clock, sample_flow):
    """Conversations on 2026-11-19, 2026-11-20 and 2026-11-22 (UTC); times in seconds.

    2026-11-19  eva:   menu → open; ana concludes after 100, no reply; CSAT 4
    2026-11-20  maria: menu → open; ana replies after 60, concludes after 300; CSAT 5
                joao:  "atendente" → open (no flow); bruno replies after 30, concludes after 3600
                lia:   menu → open, still open
                caio:  menu → open; bruno concludes after 7500 without a reply;
                       rates "⭐⭐" (2: stars count)
                a simulator conversation (channel "test") opened and concluded: left out
    2026-11-22  rui:   menu → open; ana concludes after 45; CSAT 3 (outside the period)

    Period 2026-11-19..21: open now 1 (lia); concluded 4; resolution [100, 300, 3600,
    7500] → avg 2875, median 1950, p90 7500; first response [60, 30] → avg 45, median
    45, p90 60; CSAT [4, 5, 2] → avg 3.667, count 3; by agent: ana 2 (avg 200),
    bruno 2 (avg 5550). Per day: 19th opened 1 concluded 1; 20th opened 4 concluded 3.
    """
    repo = FlowRepository(get_engine(app))
    repo.create(sample_flow("boas-vindas"))
    repo.publish("boas-vindas")
    service = get_service(app)
    clock = api_clock
    start = clock.now  # 2026-11-20T10:00:00Z

    def menu_to_person(contact: str) -> int:
        conversation = say(service, contact, "oi")
        say(service, contact, "3")
        return conversation

    clock.now = start - DAY
    eva = menu_to_person("eva")
    clock.advance(100)
    service.act(eva, "conclude", "ana")
    say(service, "eva", "4")

    clock.now = start
    maria = menu_to_person("maria")
    clock.advance(60)
    service.agent_message(maria, "ana", "Olá Maria!")
    clock.advance(240)
    service.act(maria, "conclude", "ana")
    clock.advance(5)
    say(service, "maria", "5")

    clock.now = start + 1000
    joao = say(service, "joao", "atendente")
    clock.advance(30)
    service.agent_message(joao, "bruno", "Oi João")
    clock.advance(3570)
    service.act(joao, "conclude", "bruno")

    clock.now = start + 5000
    menu_to_person("lia")

    clock.now = start + 6000
    caio = menu_to_person("caio")
    clock.advance(7500)
    service.act(caio, "conclude", "bruno")
    say(service, "caio", "⭐⭐")

    clock.now = start + 200
    simulated = say(service, "sim", "atendente", channel="test")
    clock.advance(50)
    service.act(simulated, "conclude", "ana")

    clock.now = start + 2 * DAY
    rui = menu_to_person("rui")
    clock.advance(45)
    service.act(rui, "conclude", "ana")
    say(service, "rui", "3")

    clock.now = start + 3 * DAY  # "today" is 2026-11-23
    return service


@pytest.fixture
def agent(client, app, api_tokens):
    login(client, app, "bruno")
    return client


def card(page: str, metric: str) -> str:
    found = re.search(rf'<div class="report-card" data-metric="{metric}"(.*?)</div>\s*(?=<div class="report-card"|</section>)',
                      page, re.S)
    assert found, metric
    return found.group(0)


def value(fragment: str, stat: str | None = None) -> str:
    pattern = rf'data-stat="{stat}" data-value="([^"]*)"' if stat else r'data-value="([^"]*)"'
    return re.search(pattern, fragment).group(1)


def number(text: str) -> float | None:
    return float(text) if text else None


def table(page: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table class="report-table" id="{table_id}">(.*?)</table>', page, re.S).group(1)
    body = re.search(r"<tbody>(.*?)</tbody>", body, re.S).group(1)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in rows]


# ---------------------------------------------------------------------- the page

def test_cards_show_the_figures_worked_out_by_hand(history, agent):
    response = agent.get(f"/reports?{PERIOD}")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert value(card(page, "open")) == "1"
    assert value(card(page, "concluded")) == "4"
    resolution = card(page, "resolution_s")
    assert [number(value(resolution, s)) for s in ("avg", "median", "p90")] == [2875, 1950, 7500]
    assert "47 min 55 s" in resolution and "32 min 30 s" in resolution and "2 h 5 min" in resolution
    first = card(page, "first_response_s")
    assert [number(value(first, s)) for s in ("avg", "median", "p90")] == [45, 45, 60]
    assert "45 s" in first and "1 min" in first
    csat = card(page, "csat")
    assert number(value(csat)) == pytest.approx(3.667)
    assert 'data-count="3"' in csat and "3,7" in csat and "3 respostas" in csat


def test_page_numbers_equal_the_api_summary(history, agent, api):
    summary = api.get(f"/api/v1/reports/summary?{PERIOD}").get_json()
    page = agent.get(f"/reports?{PERIOD}").get_data(as_text=True)

    assert value(card(page, "open")) == str(summary["open"])
    assert value(card(page, "concluded")) == str(summary["concluded"])
    for metric in ("resolution_s", "first_response_s"):
        for stat in ("avg", "median", "p90"):
            assert number(value(card(page, metric), stat)) == summary[metric][stat]
    assert number(value(card(page, "csat"))) == summary["csat"]["avg"]
    assert f'data-count="{summary["csat"]["count"]}"' in card(page, "csat")
    agents = table(page, "table-agents")
    assert [(row[0].split("(")[-1].rstrip(")"), int(row[1])) for row in agents] == \
        [(a["user"], a["concluded"]) for a in summary["by_agent"]]


def test_agents_table_and_distributions(history, agent):
    page = agent.get(f"/reports?{PERIOD}").get_data(as_text=True)

    assert table(page, "table-agents") == [["ana", "2", "3 min 20 s"],
                                           ["bruno", "2", "1 h 32 min"]]
    assert table(page, "table-csat") == [["1", "0"], ["2", "1"], ["3", "0"], ["4", "1"], ["5", "1"]]
    assert table(page, "table-resolution") == [
        ["< 5 min", "1"], ["5–15 min", "1"], ["15–60 min", "0"], ["1–4 h", "2"],
        ["4–24 h", "0"], ["> 1 dia", "0"]]


def test_opened_and_concluded_per_day(history, agent):
    page = agent.get(f"/reports?{PERIOD}").get_data(as_text=True)

    assert table(page, "table-daily") == [["2026-11-19", "1", "1"], ["2026-11-20", "4", "3"],
                                          ["2026-11-21", "0", "0"]]
    assert re.search(r'<svg class="chart" role="img" aria-label="Abertos e concluídos por dia\. Total no '
                     r'período: aberturas 5, conclusões 4\."', page)
    assert page.count('class="bar-opened"') == 3 and page.count('class="bar-concluded"') == 3


def test_every_chart_is_an_image_with_a_text_alternative(history, agent):
    page = agent.get(f"/reports?{PERIOD}").get_data(as_text=True)

    charts = re.findall(r"<svg[^>]*>", page)
    chart_tags = [tag for tag in charts if 'class="chart' in tag]
    assert len(chart_tags) == 4  # per day, resolution, CSAT, funnel
    assert all('role="img"' in tag and 'aria-label="' in tag for tag in chart_tags)


def test_funnel_bars_follow_the_flow_order_with_the_engine_counts(history, agent, app):
    page = agent.get(f"/reports?{PERIOD}&flow=boas-vindas").get_data(as_text=True)

    rows = table(page, "table-funnel")
    counts = {row["block_id"]: row["runs"] for row in funnel(get_service(app), "boas-vindas")}
    assert [row[1] for row in rows] == ["saudacao", "menu", "produtos", "numero_pedido",
                                        "chama_atendente", "menu_nao_entendi", "status_pedido",
                                        "pedido_nao_entendi", "atendente", "csat", "obrigado"]
    assert [int(row[3]) for row in rows] == [counts.get(row[1], 0) for row in rows]
    # bars and rows are named by block title, the id secondary (DESIGN §10.1)
    assert rows[0][0] == "Olá, {{ contact.name }}! 👋 Bem-vindo(a)…"
    assert rows[1][:3] == ["Como posso te ajudar hoje?", "menu", "Pergunta"]
    assert rows[8][:3] == ["Abrir atendimento", "atendente", "Abrir atendimento"]
    assert '<text class="row-label"' in page and ">Como posso te ajudar hoje?</text>" in page
    assert ">menu</text>" not in page
    assert counts["saudacao"] == 5 and counts["csat"] == 4 and counts.get("produtos", 0) == 0
    assert rows[0][4] == "100%"


def test_the_funnel_alone_for_htmx(history, agent):
    response = agent.get(f"/reports?{PERIOD}&flow=boas-vindas", headers={"HX-Request": "true"})

    page = response.get_data(as_text=True)
    assert 'id="report-funnel"' in page and "<html" not in page


def test_default_period_is_the_last_30_days(history, agent):
    page = agent.get("/reports").get_data(as_text=True)

    assert 'name="from" type="date" value="2026-10-25"' in page
    assert 'name="to" type="date" value="2026-11-23"' in page
    assert value(card(page, "concluded")) == "5"  # rui on the 22nd too


def test_admins_see_it_and_anonymous_visitors_are_sent_to_login(history, client, app):
    assert client.get("/reports").status_code == 302
    login(client, app, "admin")
    assert client.get("/reports").status_code == 200


@pytest.mark.parametrize("query, message", [
    ("from=2026-02-30", "Data inválida"),
    ("from=ontem", "Data inválida"),
    ("to=20261120", "Data inválida"),
    ("from=0001-01-01", "Data inválida"),
    ("from=2026-11-21&to=2026-11-01", "A data final vem antes da inicial."),
    ("from=2020-01-01&to=2026-11-01", "Escolha um período de até 366 dias."),
])
def test_bad_dates_get_a_friendly_error_not_a_500(agent, api_clock, query, message):
    response = agent.get(f"/reports?{query}")
    csv_response = agent.get(f"/reports.csv?{query}")

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page and 'role="alert"' in page
    assert '<input id="r-from" name="from" type="date"' in page  # the form, to fix it
    assert csv_response.status_code == 400
    assert message in csv_response.get_data(as_text=True)


# ---------------------------------------------------------------------- CSV

def test_csv_has_the_per_day_and_per_agent_figures(history, agent):
    response = agent.get(f"/reports.csv?{PERIOD}")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"] == \
        'attachment; filename="papo-relatorio-2026-11-19-2026-11-21.csv"'
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows == [
        ["dia", "abertos", "concluídos"],
        ["2026-11-19", "1", "1"],
        ["2026-11-20", "4", "3"],
        ["2026-11-21", "0", "0"],
        [],
        ["agente", "concluídos", "resolução média (s)"],
        ["ana", "2", "200.0"],
        ["bruno", "2", "5550.0"],
    ]


def test_csv_needs_a_login(client):
    assert client.get(f"/reports.csv?{PERIOD}").status_code == 302


# ---------------------------------------------------------------------- helpers

@pytest.mark.parametrize("seconds, text", [
    (None, "—"), (0, "0 s"), (45, "45 s"), (60, "1 min"), (150, "2 min 30 s"),
    (3600, "1 h"), (3900, "1 h 5 min"), (90_000, "1 d 1 h"), (172_800, "2 d"), (59.6, "1 min"),
])
def test_durations_read_like_people_write_them(seconds, text):
    assert duration(seconds) == text


def test_flow_order_is_breadth_first_from_start_then_unreachable_blocks():
    doc = {"start": "a", "blocks": [{"id": i} for i in "zabcd"],
           "edges": [{"from": "a", "to": "c"}, {"from": "a", "to": "b"}, {"from": "c", "to": "d"},
                     {"from": "d", "to": "a"}]}

    assert flow_order(doc) == ["a", "c", "b", "d", "z"]


def test_the_page_and_csv_speak_english_with_lang_en(history, agent):
    page = agent.get(f"/reports?{PERIOD}&lang=en").get_data(as_text=True)
    rows = agent.get(f"/reports.csv?{PERIOD}").get_data(as_text=True).lstrip("\ufeff").splitlines()

    assert "<h1>Reports</h1>" in page and "Satisfaction (CSAT)" in page
    assert "3.7" in card(page, "csat") and "3 answers" in card(page, "csat")
    assert rows[0] == "day,opened,concluded"


def test_chart_dates_follow_the_chosen_language(history, agent):
    portuguese = agent.get(f"/reports?{PERIOD}").get_data(as_text=True)
    english = agent.get(f"/reports?{PERIOD}&lang=en").get_data(as_text=True)
    assert ">20/11</text>" in portuguese and ">11/20</text>" not in portuguese
    assert ">11/20</text>" in english and ">20/11</text>" not in english
