"""Reports count days in the business's time zone (DESIGN §10.6: ``PAPO_TIMEZONE``), both
databases: a Brazilian day ends at 03:00 UTC, not at 21:00 local time."""
from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest

from engine import reports
from engine.service import Service
from engine.settings import Settings, SettingsError

_ids = itertools.count(1)


def moment(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def late_evening(db):
    """Two conversations opened and concluded on Friday 2026-11-20, São Paulo time: one at
    14:00 (17:00 UTC), one at 22:30 (01:30 UTC on Saturday); one on Saturday at 10:00."""
    clock = Clock(0)
    service = Service(db, Settings.from_env({}), clock=clock)

    def opened_and_concluded(contact: str, at: str) -> None:
        clock.now = moment(at)
        cid = service.handle_inbound("api", {"external_id": contact, "name": contact},
                                     {"id": f"tz{next(_ids)}", "text": "atendente"})["conversation_id"]
        clock.now += 60
        service.act(cid, "conclude", "ana")

    opened_and_concluded("tarde", "2026-11-20T14:00:00-03:00")
    opened_and_concluded("noite", "2026-11-20T22:30:00-03:00")
    opened_and_concluded("sabado", "2026-11-21T10:00:00-03:00")
    return db


def test_a_conclusion_late_in_the_evening_counts_on_that_day_in_sao_paulo(late_evening):
    friday, saturday = date(2026, 11, 20), date(2026, 11, 21)
    sp = "America/Sao_Paulo"
    assert reports.summary(late_evening, "csat", friday, friday, sp)["concluded"] == 2
    assert reports.summary(late_evening, "csat", saturday, saturday, sp)["concluded"] == 1
    assert [(d["day"], d["opened"], d["concluded"]) for d in
            reports.daily(late_evening, friday, saturday, sp)] == [(friday, 2, 2), (saturday, 1, 1)]
    # the same history in UTC days: the 22:30 one is Saturday's
    assert reports.summary(late_evening, "csat", friday, friday, "UTC")["concluded"] == 1
    assert [(d["day"], d["concluded"]) for d in reports.daily(late_evening, friday, saturday, "UTC")] == [
        (friday, 1), (saturday, 2)]


def test_days_in_a_zone_ahead_of_utc_and_with_half_hours(late_evening):
    friday, saturday = date(2026, 11, 20), date(2026, 11, 21)
    # Kolkata is UTC+05:30: 14:00 in São Paulo is 22:30 there, still Friday; 22:30 is
    # 07:00 on Saturday; Saturday 10:00 is 18:30 on Saturday
    assert [(d["day"], d["concluded"]) for d in reports.daily(late_evening, friday, saturday, "Asia/Kolkata")] == [
        (friday, 1), (saturday, 2)]


def test_the_reports_api_reads_from_and_to_in_papo_timezone(late_evening, tmp_path, monkeypatch):
    from editor import create_app

    def report(zone: str | None) -> int:
        if zone:
            monkeypatch.setenv("PAPO_TIMEZONE", zone)
        else:
            monkeypatch.delenv("PAPO_TIMEZONE", raising=False)
        app = create_app({"PAPO_DATABASE_URL": late_evening.url.render_as_string(hide_password=False),
                          "PAPO_INSTANCE_PATH": str(tmp_path / zone.replace("/", "-") if zone else tmp_path),
                          "TESTING": True, "SECRET_KEY": "t"})
        from engine import accounts

        engine = app.extensions["papo"]["engine"]
        if accounts.get_user(engine, "admin") is None:
            accounts.create_user(engine, "admin", "admin", password="senha-de-teste")
        token = accounts.create_token(engine, "admin")
        response = app.test_client().get("/api/v1/reports/summary?from=2026-11-20&to=2026-11-20",
                                         headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.get_json()
        engine.dispose()
        return response.get_json()["concluded"]

    assert report(None) == 2  # the default: America/Sao_Paulo
    assert report("UTC") == 1


def test_a_bad_papo_timezone_stops_the_start_with_a_clear_error():
    with pytest.raises(SettingsError, match="PAPO_TIMEZONE"):
        Settings.from_env({"PAPO_TIMEZONE": "Brasil/Sao_Paulo"})
    assert Settings.from_env({}).timezone == "America/Sao_Paulo"
    assert Settings.from_env({"PAPO_TIMEZONE": "Europe/Lisbon"}).timezone == "Europe/Lisbon"


def test_the_period_bounds_follow_daylight_saving(late_evening):
    start, end = reports.bounds(date(2026, 3, 29), date(2026, 3, 29), "Europe/Lisbon")
    assert start == datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # winter time at midnight
    assert end == datetime(2026, 3, 29, 23, 0, tzinfo=UTC)  # a 23-hour day


def test_the_inbox_shows_times_in_papo_timezone(api, api_clock, app):
    """2026-11-20T10:00:00Z is 07:00 in São Paulo: that is what an agent reads."""
    body = {"channel": "api", "contact": {"external_id": "c1", "name": "José"},
            "message": {"id": "tz-ui-1", "text": "atendente"}}
    cid = api.post("/api/v1/inbound", json=body).get_json()["conversation_id"]
    client = app.test_client()
    assert client.post("/login", data={"login": "ana", "password": "senha-de-teste"}).status_code == 302
    html = client.get(f"/inbox/{cid}").get_data(as_text=True)
    assert "20/11/2026 07:00" in html
    assert "10:00 UTC" not in html and "20/11/2026 10:00" not in html
    assert 'data-timezone="America/Sao_Paulo"' in html
    english = client.get(f"/inbox/{cid}?lang=en").get_data(as_text=True)
    assert "2026-11-20 07:00" in english
