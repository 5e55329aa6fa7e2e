"""Running a support desk in the browser (DESIGN §10.3): availability and canned responses.

Routes (blueprint ``desk``; every form with its CSRF token)::

    POST /me/availability                          the header's "Disponível" / "Ausente"
    GET  /settings/canned-responses                "Respostas prontas" (admins)
    POST /settings/canned-responses                create one
    POST /settings/canned-responses/<id>           change one
    POST /settings/canned-responses/<id>/delete    delete one
    GET  /inbox/<conversation_id>/canned           the reply box's "/" picker: the options,
                                                   rendered for that conversation (fragment)

The data lives in the engine (:mod:`engine.canned`, :mod:`engine.assignment`); this
module renders it.
"""
from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request
from flask_babel import gettext as _

from editor.app import get_engine, get_service
from editor.auth import admin_required, current_user, login_required, safe_next
from editor.i18n import current_lang
from engine import canned
from engine.assignment import AVAILABILITIES
from engine.errors import NotFound, PapoError

bp = Blueprint("desk", __name__)
_ID = "<int(min=1, max=9223372036854775807):canned_id>"
_CONVERSATION = "<int(min=1, max=9223372036854775807):conversation_id>"
PAGE = "/settings/canned-responses"


@bp.post("/me/availability")
@login_required
def availability():
    """Go online or away, then back to the page the person was on."""
    chosen = request.form.get("availability")
    if chosen in AVAILABILITIES:
        get_service().set_availability(current_user()["login"], chosen, lang=current_lang())
    back = safe_next(request.form.get("next")) or "/inbox"
    return redirect(back, 303)


# ---------------------------------------------------------------------- the admin page

def _page(*, status: int = 200, notice: str | None = None, error: str | None = None,
          form: dict | None = None, editing: int | None = None):
    response = make_response(render_template(
        "desk/canned.html", responses=canned.list_all(get_engine()), notice=notice, error=error,
        form=form or {}, editing=editing, max_text=canned.MAX_TEXT), status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _form() -> dict:
    return {"shortcut": (request.form.get("shortcut") or "").strip().lstrip("/").lower()[:64],
            "text": (request.form.get("text") or "")[:2 * canned.MAX_TEXT]}


def _problem(exc: PapoError) -> str:
    """The error in one sentence naming the field ("Atalho: …", "Texto: …")."""
    details = exc.details or []
    if not details:
        return exc.message
    labels = {"$.shortcut": _("Atalho"), "$.text": _("Texto")}
    return " ".join(f"{labels.get(d['path'], d['path'])}: {d['message']}" for d in details)


@bp.get(PAGE)
@admin_required
def index():
    return _page()


@bp.post(PAGE)
@admin_required
def create():
    form = _form()
    try:
        created = canned.create(get_engine(), form["shortcut"], form["text"],
                                actor=current_user()["login"], lang=current_lang())
    except PapoError as exc:
        return _page(status=exc.status, error=_problem(exc), form=form)
    return _page(status=201, notice=_("Resposta “/%(shortcut)s” criada.", shortcut=created["shortcut"]))


@bp.post(f"{PAGE}/{_ID}")
@admin_required
def change(canned_id: int):
    form = _form()
    try:
        changed = canned.change(get_engine(), canned_id, form["shortcut"], form["text"],
                                actor=current_user()["login"], lang=current_lang())
    except PapoError as exc:
        return _page(status=exc.status, error=_problem(exc), editing=canned_id,
                     form={**form, "id": canned_id})
    return _page(notice=_("Resposta “/%(shortcut)s” salva.", shortcut=changed["shortcut"]))


@bp.post(f"{PAGE}/{_ID}/delete")
@admin_required
def delete(canned_id: int):
    try:
        gone = canned.get(get_engine(), canned_id, lang=current_lang())
        canned.remove(get_engine(), canned_id, lang=current_lang())
    except NotFound as exc:
        return _page(status=404, error=exc.message)
    return _page(notice=_("Resposta “/%(shortcut)s” excluída.", shortcut=gone["shortcut"]))


# ---------------------------------------------------------------------- the "/" picker

@bp.get(f"/inbox/{_CONVERSATION}/canned")
@login_required
def picker(conversation_id: int):
    conversation = get_service().get_conversation(conversation_id, include_test=False)
    responses = canned.render_for(canned.list_all(get_engine()), conversation)
    response = make_response(render_template("desk/_picker.html", responses=responses))
    response.headers["Cache-Control"] = "no-store"
    return response

