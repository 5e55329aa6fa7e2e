"""Browser test support: a live papo server on 127.0.0.1 and Debian's Chromium.

Playwright (from PyPI) drives ``/usr/bin/chromium``; browsers are never downloaded.
Without Chromium the browser tests are skipped with the reason, except under CI
(``CI=true``), where a missing browser is a failure.
"""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PAPO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
ADMIN = ("admin", "admin-senha-123")
AGENT = ("bruno", "bruno-senha-123")
AGENT2 = ("carla", "carla-senha-123")


def _chromium_or_skip() -> str:
    if Path(CHROMIUM).exists() or shutil.which(CHROMIUM):
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"Chromium not found at {CHROMIUM}: CI must install it (apt-get install chromium)")
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")


@dataclass
class LiveServer:
    url: str
    app: object
    db_url: str

    def service(self):
        from editor.app import get_service

        with self.app.app_context():
            return get_service(self.app)


@pytest.fixture
def live_server(tmp_path) -> Iterator[LiveServer]:
    """papo on a real socket (SQLite file), with an admin and two agents."""
    from werkzeug.serving import make_server

    from editor import create_app
    from engine import accounts

    db_url = f"sqlite:///{tmp_path / 'live.db'}"
    app = create_app({"PAPO_DATABASE_URL": db_url, "TESTING": False, "SECRET_KEY": "live-test",
                      "PAPO_INSTANCE_PATH": str(tmp_path)})
    from editor.app import ensure_schema, get_engine

    engine = get_engine(app)
    ensure_schema(engine)
    for (login, password), role in ((ADMIN, "admin"), (AGENT, "agent"), (AGENT2, "agent")):
        accounts.create_user(engine, login, role, password=password, name=login.capitalize())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app, db_url=db_url)
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser():
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, live_server):
    """``new_page(login=None)`` → a fresh browser context's page, logged in if asked."""
    contexts = []

    def make(login: tuple[str, str] | None = ADMIN, lang: str | None = None):
        context = browser.new_context(viewport={"width": 1400, "height": 900},
                                      locale="en-US" if lang == "en" else "pt-BR")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.dialogs = dialogs  # an alert() would mean injected script ran
        watch_csp(page)
        if login:
            page.goto(f"{live_server.url}/login" + ("?lang=en" if lang == "en" else ""))
            page.fill("input[name=login]", login[0])
            page.fill("input[name=password]", login[1])
            page.locator("form button[type=submit]").first.click()
            page.wait_for_url(lambda url: "/login" not in url)
        return page

    yield make
    violations = [v for context in contexts for page in context.pages
                  for v in getattr(page, "csp_violations", [])]
    for context in contexts:
        context.close()
    assert not violations, f"Content-Security-Policy violations in the console: {violations}"


def watch_csp(page) -> list[str]:
    """Collect the page's Content-Security-Policy violations (Chromium reports each one on
    the console) in ``page.csp_violations``; ``new_page`` fails a test that has any."""
    violations: list[str] = []

    def on_console(message):
        if "Content Security Policy" in message.text:
            where = message.location or {}
            violations.append(f"{message.text[:160]}… at {page.url} "
                              f"({where.get('url')}:{where.get('lineNumber')})")

    page.on("console", on_console)
    page.csp_violations = violations
    return violations
