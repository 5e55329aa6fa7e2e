"""engine/reports.py: the reports page's figures from a history built through the service,
on both databases (the simulator's conversations never count)."""
from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest

from engine import reports
from engine.service import Service
from engine.settings import Settings

DAY = 86_400
START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC).timestamp()
_ids = itertools.count(1)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def history(db, flows, sample_flow):
    """2026-11-20 maria: menu → open; ana concludes after 100 s; CSAT 5.
    2026-11-20 joao: "atendente" → open; concluded after 2 h; answers nothing.
    2026-11-21 lia: "atendente" → open, still open.
    2026-11-20 a simulator conversation opened and concluded: never counted."""
    flows.create(sample_flow("boas-vindas"))
    flows.publish("boas-vindas")
    clock = Clock()
    service = Service(db, Settings.from_env(), clock=clock)

    def say(contact: str, text: str, channel: str = "api") -> int:
        return service.handle_inbound(channel, {"external_id": contact, "name": contact},
                                      {"id": f"r{next(_ids)}", "text": text})["conversation_id"]

    maria = say("maria", "oi")
    say("maria", "3")  # Falar com atendente: the flow opens the conversation
    clock.now += 100
    service.act(maria, "conclude", "ana")  # resumes at the CSAT question
    say("maria", "5")
    joao = say("joao", "atendente")
    clock.now += 7200
    service.act(joao, "conclude", "bruno")
    sim = say("sim", "atendente", channel="test")
    service.act(sim, "conclude", "ana")
    clock.now = START + DAY
    say("lia", "atendente")
    return db


def test_daily_counts_openings_and_conclusions_per_day_with_zeros(history):
    days = reports.daily(history, date(2026, 11, 19), date(2026, 11, 21))
    assert days == [
        {"day": date(2026, 11, 19), "opened": 0, "concluded": 0},
        {"day": date(2026, 11, 20), "opened": 2, "concluded": 2},
        {"day": date(2026, 11, 21), "opened": 1, "concluded": 0},
    ]


def test_resolution_histogram_puts_each_conclusion_in_its_bucket(history):
    found = reports.resolution_histogram(history, date(2026, 11, 20), date(2026, 11, 20))
    assert [b["key"] for b in found] == [key for _bound, key in reports.RESOLUTION_BUCKETS]
    assert {b["key"]: b["count"] for b in found if b["count"]} == {"lt5m": 1, "1_4h": 1}


def test_csat_distribution_counts_valid_scores_of_the_period(history):
    found = reports.csat_distribution(history, "csat", date(2026, 11, 20), date(2026, 11, 20))
    assert found == [{"score": s, "count": 1 if s == 5 else 0} for s in range(1, 6)]
    outside = reports.csat_distribution(history, "csat", date(2026, 11, 21), date(2026, 11, 21))
    assert sum(c["count"] for c in outside) == 0


@pytest.mark.parametrize(("value", "score"), [
    ("5", 5), ("1", 1), (" 3 ", 3), ("0", None), ("6", None), ("4.5", None), ("true", None),
    ("ótimo", None), ('"4"', None), ("", None)])
def test_csat_score_accepts_only_whole_numbers_from_one_to_five(value, score):
    assert reports.csat_score(value) == score


def test_summary_counts_the_period_per_agent_with_times_and_csat(history):
    found = reports.summary(history, "csat", date(2026, 11, 20), date(2026, 11, 21))
    assert found["open"] == 1 and found["concluded"] == 2
    assert found["resolution_s"] == {"avg": 3650.0, "median": 3650.0, "p90": 7200.0}
    assert found["csat"] == {"avg": 5.0, "count": 1}
    assert found["by_agent"] == [{"user": "ana", "concluded": 1, "resolution_s_avg": 100.0},
                                 {"user": "bruno", "concluded": 1, "resolution_s_avg": 7200.0}]


def test_summary_refuses_a_period_that_ends_before_it_starts(history):
    from engine.errors import Invalid

    with pytest.raises(Invalid):
        reports.summary(history, "csat", date(2026, 11, 21), date(2026, 11, 20))


def test_funnel_counts_the_runs_that_reached_each_block(history):
    counts = {row["block_id"]: row["runs"] for row in reports.funnel(history, "boas-vindas")}
    assert counts["saudacao"] >= 1 and counts["menu"] >= 1 and counts["csat"] == 1
    assert reports.funnel(history, "nao-existe") == []


def test_stats_use_the_nearest_rank_p90():
    assert reports.stats([]) == {"avg": None, "median": None, "p90": None}
    assert reports.stats([1, 2, 3, 4]) == {"avg": 2.5, "median": 2.5, "p90": 4}
