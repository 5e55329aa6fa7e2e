"""A person logs in through the real login page in Chromium."""
import pytest
from browser_support import ADMIN

pytestmark = pytest.mark.browser


def test_login_page_logs_a_person_in_and_shows_their_name(new_page, live_server):
    page = new_page(login=ADMIN)
    assert "/login" not in page.url
    assert page.locator(".user-name").inner_text().strip() == "Admin"


def test_wrong_password_shows_a_friendly_message_in_portuguese(new_page, live_server):
    page = new_page(login=None)
    page.goto(f"{live_server.url}/login")
    page.fill("input[name=login]", "admin")
    page.fill("input[name=password]", "errada")
    page.locator("form button[type=submit]").first.click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "/login" in page.url
    assert "senha" in alert.inner_text().lower()
