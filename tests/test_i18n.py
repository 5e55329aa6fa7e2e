"""Interface language: pt-BR by default, English with ?lang=en, and a complete catalog."""
from __future__ import annotations

import io
import re
import shutil

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from editor import create_app
from editor.i18n import TRANSLATIONS, normalize_locale, untranslated
from engine import accounts
from engine.db import create_schema, make_engine

PASSWORD = "uma senha longa"
PO = TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po"
MO = TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.mo"


@pytest.fixture(scope="module")
def _seed_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("seed-i18n") / "papo.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    accounts.create_user(engine, "ana", "agent", password=PASSWORD)
    engine.dispose()
    return path


@pytest.fixture
def _app(tmp_path, _seed_db):
    shutil.copyfile(_seed_db, tmp_path / "papo.db")
    app = create_app({
        "PAPO_DATABASE_URL": f"sqlite:///{tmp_path / 'papo.db'}",
        "PAPO_INSTANCE_PATH": str(tmp_path / "instance"),
        "TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": False,
    })

    @app.get("/_test/page")
    def _page():
        from flask import render_template

        return render_template("login.html", login_value="")

    yield app
    app.extensions["papo"]["engine"].dispose()


@pytest.fixture
def _client(_app):
    return _app.test_client()


def test_login_page_is_portuguese_by_default(_client):
    html = _client.get("/login").get_data(as_text=True)
    assert '<html lang="pt-BR">' in html
    assert "Entrar no papo" in html and ">Senha<" in html
    assert '<a href="?lang=en" lang="en" hreflang="en">English</a>' in html


def test_lang_en_shows_the_english_login_page(_client):
    html = _client.get("/login?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Log in to papo" in html and ">Password<" in html and "Entrar no papo" not in html
    assert ">Português</a>" in html


def test_language_choice_is_remembered_and_can_be_switched_back(_client):
    _client.get("/login?lang=en")
    assert "Log in to papo" in _client.get("/login").get_data(as_text=True)
    _client.get("/login?lang=pt")
    assert "Entrar no papo" in _client.get("/login").get_data(as_text=True)


def test_language_choice_survives_a_redirect_and_login(_client):
    _client.get("/login?lang=en")
    _client.post("/login", data={"login": "ana", "password": PASSWORD})
    html = _client.get("/_test/page").get_data(as_text=True)
    assert ">Log out<" in html and ">Inbox<" in html and ">Reports<" in html


def test_logged_in_users_language_is_saved_for_next_time(_app, _client):
    _client.post("/login", data={"login": "ana", "password": PASSWORD})
    _client.get("/_test/page?lang=en")
    assert accounts.get_user(_app.extensions["papo"]["engine"], "ana")["lang"] == "en"
    other = _app.test_client()  # a new browser: no session yet
    other.post("/login", data={"login": "ana", "password": PASSWORD})
    assert ">Log out<" in other.get("/_test/page").get_data(as_text=True)


def test_language_switch_keeps_the_other_filters(_client):
    html = _client.get("/_test/page?status=open&q=ana").get_data(as_text=True)
    assert 'href="?status=open&amp;q=ana&amp;lang=en"' in html


def test_errors_speak_the_chosen_language(_client):
    assert "Page not found" in _client.get("/nowhere?lang=en").get_data(as_text=True)
    api = _client.get("/api/v1/nowhere?lang=en")
    assert api.json["error"]["message"] == "Resource not found."


@pytest.mark.parametrize("value,expected", [
    ("en", "en"), ("en-US", "en"), ("pt", "pt_BR"), ("pt-BR", "pt_BR"), ("pt_br", "pt_BR"),
    ("fr", None), ("", None), (None, None),
])
def test_locale_names_are_normalized(value, expected):
    assert normalize_locale(value) == expected


def test_every_message_has_an_english_translation():
    assert untranslated() == []


def test_compiled_catalog_matches_the_po_file():
    """The committed .mo must be rebuilt whenever the .po changes (python -m editor.i18n update)."""
    def entries(messages) -> dict:
        # Plural entries have tuple/list ids and strings; compare them as tuples.
        return {_key(m.id): _key(m.string) for m in messages if m.id}

    with PO.open("rb") as handle:
        po = entries(read_po(handle))
    with MO.open("rb") as handle:
        mo = entries(read_mo(io.BytesIO(handle.read())))
    assert po == mo


def _key(value):
    return tuple(value) if isinstance(value, list | tuple) else value


def test_public_button_names_are_translated():
    with PO.open("rb") as handle:
        catalog = {m.id: m.string for m in read_po(handle) if m.id}
    names = {"Validar": "Validate", "Publicar": "Publish", "Desfazer": "Undo",
             "Refazer": "Redo", "Exportar": "Export", "Importar": "Import", "Enviar": "Send",
             "Abrir atendimento": "Open conversation", "Concluir": "Conclude",
             "Avançar tempo": "Advance time", "Reiniciar": "Restart", "Abertos": "Open",
             "Concluídos": "Concluded", "Buscar": "Search", "Reabrir": "Reopen",
             "Atribuir a mim": "Assign to me", "Atribuir": "Assign", "Desatribuir": "Unassign",
             "Desatribuir e concluir": "Unassign and conclude"}
    assert {k: catalog.get(k) for k in names} == names


def test_templates_mark_no_text_without_translation(_client):
    """Portuguese words must not leak into the English page (a forgotten _())."""
    html = _client.get("/login?lang=en").get_data(as_text=True)
    visible = re.sub(r"<[^>]+>", " ", html)
    for word in ("Entrar", "Senha", "Pular", "Idioma"):
        assert word not in visible


# ---------------------------------------------------------------- the one catalog

def test_engine_messages_come_from_the_same_catalog_in_both_languages():
    from engine.i18n import t

    assert t("lint.unreachable") == "Nenhum caminho chega a este bloco a partir do início."
    assert t("lint.unreachable", "en") == "No path from the start reaches this block."
    assert t("flows.flow_not_found", "en-US", flow_id="x") == 'Flow "x" does not exist.'
    assert t("accounts.no_user", "pt-BR", login="ana") == 'Não existe usuário com o login "ana".'


def test_every_engine_api_and_cli_message_has_an_english_text():
    from editor.api import MESSAGES as API_MESSAGES
    from editor.commands.validate import MESSAGES as CLI_MESSAGES
    from engine.i18n import MESSAGES, gettext

    with PO.open("rb") as handle:
        translated = {m.id for m in read_po(handle) if m.id and m.string}
    msgids = [*MESSAGES.values(), *API_MESSAGES.values(), *CLI_MESSAGES.values()]
    assert [m for m in msgids if m not in translated] == []
    assert all(gettext(m, "en") != m for m in msgids)


def test_api_errors_speak_english_from_the_same_catalog(_app, _client):
    engine = _app.extensions["papo"]["engine"]
    accounts.create_user(engine, "bia", "admin", password=PASSWORD)
    token = accounts.create_token(engine, "bia")
    headers = {"Authorization": f"Bearer {token}"}
    missing = _client.get("/api/v1/flows/nao-existe?lang=en", headers=headers)
    assert missing.status_code == 404
    assert missing.json["error"]["message"] == 'Flow "nao-existe" does not exist.'
    bad = _client.post("/api/v1/flows?lang=en", headers={**headers, "Content-Type": "application/json"},
                       data="{nope")
    assert bad.status_code == 422  # the engine's import error, in English
    assert bad.json["error"]["details"][0]["message"].startswith("The file is not valid JSON: ")
    assert "(line 1, column 2)" in bad.json["error"]["details"][0]["message"]
    pt = _client.post("/api/v1/flows", headers={**headers, "Content-Type": "application/json"}, data="{nope")
    assert pt.json["error"]["details"][0]["message"].startswith("O arquivo não é JSON válido: ")


def test_engine_errors_raised_with_a_catalog_id_speak_the_readers_language(_app, _client):
    engine = _app.extensions["papo"]["engine"]
    accounts.create_user(engine, "caio", "admin", password=PASSWORD)
    headers = {"Authorization": f"Bearer {accounts.create_token(engine, 'caio')}"}
    english = _client.get("/api/v1/conversations/999999?lang=en", headers=headers)
    assert english.status_code == 404 and english.json["error"]["message"] == "Conversation not found."
    portuguese = _client.get("/api/v1/conversations/999999?lang=pt", headers=headers)
    assert portuguese.json["error"]["message"] == "Conversa não encontrada."
