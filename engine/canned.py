"""Canned responses (DESIGN §10.3): texts an agent inserts with "/" in the reply box.

``{"id", "shortcut", "text"}``: ``shortcut`` matches ``^[a-z0-9_-]{1,32}$`` and is unique
(409 when taken); ``text`` is a template over ``contact.*`` and the conversation's
variables, rendered by :mod:`engine.templates` (sandboxed, under its limits) for one
conversation before the agent edits and sends it. Admins change them; everyone reads.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine import templates
from engine.db import read_only
from engine.errors import Conflict, Invalid, NotFound
from engine.i18n import N_, gettext
from engine.store import canned_responses

SHORTCUT = re.compile(r"^[a-z0-9_-]{1,32}$")
MAX_TEXT = 4096  # what a rendered message may hold anyway (engine.templates)

MESSAGES = {
    "bad_shortcut": N_("Use de 1 a 32 letras minúsculas, números, hífen ou sublinhado, sem espaços (ex.: boas-vindas)."),
    "bad_text": N_("Escreva o texto da resposta (até %(limit)s caracteres)."),
    "bad_template": N_("O texto tem um erro: %(problem)s."),
    "taken": N_("Já existe uma resposta pronta com o atalho \"/%(shortcut)s\"."),
    "not_found": N_("Resposta pronta não encontrada."),
    "nothing": N_("Informe o que mudar: shortcut, text ou os dois."),
    "invalid": N_("A resposta pronta tem %(count)s problema(s)."),
}


def _msg(key: str, lang: str | None, **params) -> str:
    return gettext(MESSAGES[key], lang, **params)


def _row(row) -> dict:
    return {"id": row.id, "shortcut": row.shortcut, "text": row.text}


_COLUMNS = (canned_responses.c.id, canned_responses.c.shortcut, canned_responses.c.text)


def problems(shortcut, text, lang: str | None = None) -> list[dict]:
    """``[{"path", "message"}]`` for every field of a canned response that cannot be stored
    (a field given as None is not checked: an update that leaves it as it is)."""
    found = []
    if shortcut is not None and (not isinstance(shortcut, str) or not SHORTCUT.match(shortcut)):
        found.append({"path": "$.shortcut", "message": _msg("bad_shortcut", lang)})
    if text is not None:
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            found.append({"path": "$.text", "message": _msg("bad_text", lang, limit=MAX_TEXT)})
        else:
            error = templates.syntax_error(text, lang)
            if error:
                found.append({"path": "$.text", "message": _msg("bad_template", lang, problem=error)})
    return found


def _check(shortcut, text, lang: str | None) -> None:
    found = problems(shortcut, text, lang)
    if found:
        message = found[0]["message"] if len(found) == 1 else _msg("invalid", lang, count=len(found))
        raise Invalid(message, code="invalid_canned_response", details=found)


def _taken(shortcut: str, lang: str | None) -> Conflict:
    return Conflict(_msg("taken", lang, shortcut=shortcut), code="shortcut_taken",
                    details=[{"path": "$.shortcut", "message": _msg("taken", lang, shortcut=shortcut)}])


def list_all(engine: Engine) -> list[dict]:
    """Every canned response, by shortcut."""
    with read_only(engine) as conn:
        rows = conn.execute(select(*_COLUMNS).order_by(canned_responses.c.shortcut)).all()
    return [_row(r) for r in rows]


def get(engine: Engine, canned_id: int, *, lang: str | None = None) -> dict:
    with read_only(engine) as conn:
        row = conn.execute(select(*_COLUMNS).where(canned_responses.c.id == canned_id)).first()
    if row is None:
        raise NotFound(_msg("not_found", lang), code="canned_response_not_found")
    return _row(row)


def create(engine: Engine, shortcut, text, *, actor: str | None = None,
           lang: str | None = None) -> dict:
    """A new canned response; ``Invalid`` (422) naming the field, ``Conflict`` (409) when
    the shortcut is taken."""
    if shortcut is None or text is None:
        _check(shortcut or "", text or "", lang)
    _check(shortcut, text, lang)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            if conn.execute(select(canned_responses.c.id)
                            .where(canned_responses.c.shortcut == shortcut)).first():
                raise _taken(shortcut, lang)
            new_id = conn.execute(insert(canned_responses).values(
                shortcut=shortcut, text=text, created_at=now, updated_at=now, updated_by=actor)
            ).inserted_primary_key[0]
    except IntegrityError:  # lost a race with another admin
        raise _taken(shortcut, lang) from None
    return {"id": new_id, "shortcut": shortcut, "text": text}


def change(engine: Engine, canned_id: int, shortcut=None, text=None, *, actor: str | None = None,
           lang: str | None = None) -> dict:
    """Change the shortcut and/or the text (None: as it is)."""
    if shortcut is None and text is None:
        raise Invalid(_msg("nothing", lang), code="invalid_canned_response",
                      details=[{"path": "$", "message": _msg("nothing", lang)}])
    _check(shortcut, text, lang)
    values = {k: v for k, v in (("shortcut", shortcut), ("text", text)) if v is not None}
    try:
        with engine.begin() as conn:
            if shortcut is not None and conn.execute(
                    select(canned_responses.c.id).where(canned_responses.c.shortcut == shortcut,
                                                        canned_responses.c.id != canned_id)).first():
                raise _taken(shortcut, lang)
            changed = conn.execute(update(canned_responses).where(canned_responses.c.id == canned_id)
                                   .values(**values, updated_at=datetime.now(UTC), updated_by=actor)
                                   ).rowcount
    except IntegrityError:
        raise _taken(shortcut, lang) from None
    if not changed:
        raise NotFound(_msg("not_found", lang), code="canned_response_not_found")
    return get(engine, canned_id, lang=lang)


def remove(engine: Engine, canned_id: int, *, lang: str | None = None) -> None:
    with engine.begin() as conn:
        gone = conn.execute(delete(canned_responses).where(canned_responses.c.id == canned_id)).rowcount
    if not gone:
        raise NotFound(_msg("not_found", lang), code="canned_response_not_found")


def render_for(responses: list[dict], conversation: dict) -> list[dict]:
    """Each response with ``rendered``: its text for this conversation (the API's
    conversation JSON: ``contact`` and ``variables``). A missing variable renders empty."""
    contact = dict(conversation.get("contact") or {})
    variables = dict(conversation.get("variables") or {})
    out = []
    for response in responses:
        text, _missing, _error = templates.render(response["text"], variables, contact)
        out.append({**response, "rendered": text})
    return out
