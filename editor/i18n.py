"""Interface language: pt-BR by default, English with ``?lang=en``.

The language comes from ``?lang=`` (remembered in the session and, for a logged-in
user, in ``users.lang``), else the session, else the user's saved choice, else pt-BR.
Message ids are the Portuguese texts; ``translations/en`` holds the English ones.

Keeping the catalog current (run from the repository root)::

    python -m editor.i18n update   # extract, merge into messages.po, compile messages.mo
    python -m editor.i18n check    # list strings without an English translation
"""
from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, g, has_request_context, request, session
from flask_babel import Babel, get_locale

DEFAULT_LOCALE = "pt_BR"
TRANSLATIONS = Path(__file__).with_name("translations")
SESSION_KEY = "lang"


def normalize_locale(value: str | None) -> str | None:
    """``"en"``, ``"en-US"`` → ``"en"``; ``"pt"``, ``"pt-BR"``, ``"pt_br"`` → ``"pt_BR"``; else None."""
    if not value:
        return None
    value = value.strip().lower().replace("-", "_")
    if value.startswith("en"):
        return "en"
    if value.startswith("pt"):
        return "pt_BR"
    return None


def select_locale() -> str:
    """Flask-Babel's locale selector (see the module docstring for the order)."""
    cached = g.get("_papo_locale")
    if cached:
        return cached
    if not has_request_context():  # CLI or background work inside an app context
        return DEFAULT_LOCALE
    chosen = normalize_locale(request.args.get("lang"))
    if chosen:
        if session.get(SESSION_KEY) != chosen:
            session[SESSION_KEY] = chosen
            _remember_for_user(chosen)
    else:
        chosen = normalize_locale(session.get(SESSION_KEY))
    if not chosen:
        from editor.auth import current_user

        user = current_user()
        chosen = normalize_locale(user.get("lang")) if user else None
    g._papo_locale = chosen or DEFAULT_LOCALE
    return g._papo_locale


def _remember_for_user(locale: str) -> None:
    from editor.app import get_engine
    from editor.auth import current_user
    from engine.accounts import set_user_lang

    user = current_user()
    if user and user.get("lang") != locale:
        set_user_lang(get_engine(), user["id"], locale)


def current_lang() -> str:
    """``"pt"`` or ``"en"``: the code ``engine.i18n.t()`` and ``schemas`` expect."""
    return "en" if str(get_locale()) == "en" else "pt"


def html_lang() -> str:
    """The value for ``<html lang>``: ``"pt-BR"`` or ``"en"``."""
    return "en" if current_lang() == "en" else "pt-BR"


def lang_switch_url(lang: str) -> str:
    """The current page's query string with ``lang`` replaced (other filters kept)."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"]
    args.append(("lang", lang))
    return "?" + urlencode(args)


def init_app(app: Flask) -> None:
    # Every date people read is in the business's zone (PAPO_TIMEZONE), not the server's
    # nor UTC: Flask-Babel's format_datetime/datetimeformat, the inbox, the reports.
    timezone = app.extensions["papo"]["settings"].timezone
    app.config["BABEL_DEFAULT_TIMEZONE"] = timezone
    Babel(app, locale_selector=select_locale)

    @app.before_request
    def _remember_lang_choice():
        # Even a page that only redirects (/login → /inbox) must keep ?lang=.
        if "lang" in request.args:
            select_locale()

    @app.context_processor
    def _i18n_context():
        return {"current_lang": current_lang, "html_lang": html_lang,
                "lang_switch_url": lang_switch_url, "papo_timezone": timezone}


# ---------------------------------------------------------------- catalog maintenance

def _run_pybabel(*args: str) -> None:
    from babel.messages.frontend import CommandLineInterface

    CommandLineInterface().run(["pybabel", "-q", *args])


def update_catalog() -> None:
    """Extract every marked string, merge into the English catalog and compile it."""
    root = Path(__file__).resolve().parent.parent
    pot = TRANSLATIONS / "messages.pot"
    # The engine's and the schemas' messages (``N_``-marked, engine/i18n.py) share the catalog.
    sources = [str(root / name) for name in ("editor", "blocks", "engine", "schemas")
               if (root / name).is_dir()]
    _run_pybabel("extract", "-F", str(Path(__file__).with_name("babel.cfg")), "--no-location",
                 "--sort-output", "-k", "lazy_gettext", "-k", "_l", "-o", str(pot), *sources)
    po = TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po"
    if po.exists():
        _run_pybabel("update", "-i", str(pot), "-d", str(TRANSLATIONS), "-l", "en",
                     "--no-fuzzy-matching", "--ignore-obsolete")
    else:
        _run_pybabel("init", "-i", str(pot), "-d", str(TRANSLATIONS), "-l", "en")
    _run_pybabel("compile", "-d", str(TRANSLATIONS), "-l", "en", "--use-fuzzy")
    pot.unlink(missing_ok=True)


def untranslated() -> list[str]:
    """Message ids in the English catalog that have no translation yet."""
    from babel.messages.pofile import read_po

    po = TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as handle:
        catalog = read_po(handle)
    missing = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            missing.append(message.id if isinstance(message.id, str) else message.id[0])
    return missing


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "update":
        update_catalog()
    missing = untranslated()
    for msgid in missing:
        print(f"sem tradução / untranslated: {msgid!r}")
    return 1 if missing and command == "check" else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
