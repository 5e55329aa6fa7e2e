"""The "Equipe" (Team) page: admins manage users and API tokens (DESIGN §10.5).

Routes (blueprint ``team``, admins only, every form with its CSRF token)::

    GET  /team                                   users, roles, status, tokens
    POST /team/users                             create a user (password typed or generated)
    POST /team/<login>/role                      change the role (their sessions end)
    POST /team/<login>/disable | /enable         disable (sessions end at once, tokens
                                                 within 5 s) / enable again
    POST /team/<login>/password                  set (or generate) a password; sessions end
    POST /team/<login>/tokens                    create a token, shown on this answer only
    POST /team/<login>/tokens/<id>/revoke        revoke a token
    POST /team/<login>/capacity                  how many open conversations automatic
                                                 assignment gives them (0: no limit)

A generated password or a new token is shown once, in the answer to the POST that made
it (never put in the session cookie or a redirect). An admin cannot disable themselves
nor take away their own admin role (nobody would be left to undo it). The same
operations exist on the command line (``papo user …``, ``papo token …``).
"""
from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from editor.app import get_engine, get_service, get_settings
from editor.auth import admin_required, current_user, login_user
from editor.i18n import current_lang
from editor.security import query_int
from engine import accounts, assignment
from engine.errors import NotFound, PapoError

bp = Blueprint("team", __name__)
_TOKEN_ID = "<int(min=1, max=9223372036854775807):token_id>"


def _page(*, status: int = 200, notice: str | None = None, error: str | None = None,
          secret: dict | None = None, form: dict | None = None):
    engine = get_engine()
    people = accounts.list_users(engine)
    for person in people:
        person["tokens"] = accounts.list_tokens(engine, person["login"])
    response = make_response(render_template(
        "team/index.html", people=people, roles=accounts.ROLES, notice=notice, error=error,
        secret=secret, form=form or {}, me=current_user(), desk=assignment.desk(engine),
        policy=get_settings().assignment,
        min_password=accounts.MIN_PASSWORD_LENGTH), status)
    response.headers["Cache-Control"] = "no-store"  # may show a password or token once
    return response


def _refused(exc: PapoError, form: dict | None = None):
    return _page(status=exc.status, error=exc.message, form=form)


def _person(login: str) -> dict:
    person = accounts.get_user(get_engine(), login)
    if person is None:
        raise NotFound(_("Não existe usuário com o login “%(login)s”.", login=login[:64]),
                                code="user_not_found")
    return person


def _is_me(login: str) -> bool:
    me = current_user()
    return bool(me and me["login"] == login)


@bp.get("/team")
@admin_required
def index():
    return _page()


@bp.post("/team/users")
@admin_required
def create_user():
    form = {"login": (request.form.get("login") or "").strip().lower()[:64],
            "name": (request.form.get("name") or "").strip()[:200],
            "role": request.form.get("role") or "agent"}
    password = request.form.get("password") or None
    try:
        created, generated = accounts.create_user(
            get_engine(), form["login"], form["role"], password=password, name=form["name"],
            lang=current_lang())
    except PapoError as exc:
        return _refused(exc, form)
    secret = {"kind": "password", "login": created["login"], "value": generated} if generated else None
    return _page(status=201, notice=_("Usuário “%(login)s” criado.", login=created["login"]),
                 secret=secret)


@bp.post("/team/<login>/role")
@admin_required
def change_role(login: str):
    person = _person(login)
    role = request.form.get("role") or ""
    if _is_me(login) and role != "admin":
        return _page(status=409, error=_("Você não pode tirar seu próprio papel de "
                                         "administrador. Peça a outro administrador."))
    if role == person["role"]:
        return redirect(url_for("team.index"), 303)
    try:
        accounts.set_role(get_engine(), login, role, lang=current_lang())
    except PapoError as exc:
        return _refused(exc)
    return _page(notice=_("Papel de “%(login)s” alterado; as sessões dele foram encerradas.",
                          login=login))


@bp.post("/team/<login>/disable")
@admin_required
def disable(login: str):
    _person(login)
    if _is_me(login):
        return _page(status=409, error=_("Você não pode desativar a si mesmo."))
    accounts.set_disabled(get_engine(), login, True, lang=current_lang())
    return _page(notice=_("“%(login)s” desativado: as sessões foram encerradas e os tokens "
                          "de API pararam de funcionar.", login=login))


@bp.post("/team/<login>/enable")
@admin_required
def enable(login: str):
    _person(login)
    accounts.set_disabled(get_engine(), login, False, lang=current_lang())
    return _page(notice=_("“%(login)s” reativado.", login=login))


@bp.post("/team/<login>/password")
@admin_required
def password(login: str):
    _person(login)
    typed = request.form.get("password") or None
    try:
        generated = accounts.set_password(get_engine(), login, typed, lang=current_lang())
    except PapoError as exc:
        return _refused(exc)
    if _is_me(login):  # keep this session; the others end
        login_user(accounts.get_user(get_engine(), login))
    secret = {"kind": "password", "login": login, "value": generated} if generated else None
    return _page(notice=_("Senha de “%(login)s” alterada; as outras sessões dele foram "
                          "encerradas.", login=login), secret=secret)


@bp.post("/team/<login>/tokens")
@admin_required
def create_token(login: str):
    _person(login)
    days = query_int("expires_days", minimum=1, maximum=3650, source=request.form)
    try:
        token_id, token = accounts.create_token_record(
            get_engine(), login, name=request.form.get("name") or "", expires_in_days=days,
            lang=current_lang())
    except PapoError as exc:
        return _refused(exc)
    return _page(status=201, notice=_("Token criado para “%(login)s”.", login=login),
                 secret={"kind": "token", "login": login, "value": token, "id": token_id})


@bp.post(f"/team/<login>/tokens/{_TOKEN_ID}/revoke")
@admin_required
def revoke_token(login: str, token_id: int):
    try:
        accounts.revoke_token(get_engine(), token_id, login=login, lang=current_lang())
    except PapoError as exc:
        return _refused(exc)
    return _page(notice=_("Token %(id)d de “%(login)s” revogado.", id=token_id, login=login))


@bp.post("/team/<login>/capacity")
@admin_required
def capacity(login: str):
    _person(login)
    raw = (request.form.get("max_open") or "").strip()
    number = int(raw) if raw.isdigit() and len(raw) <= 4 else -1
    try:
        get_service().set_max_open(login, number, lang=current_lang())
    except PapoError as exc:
        return _refused(exc)
    return _page(notice=_("Limite de “%(login)s”: %(count)s atendimentos abertos.", login=login,
                          count=number) if number else
                 _("“%(login)s” agora não tem limite de atendimentos abertos.", login=login))
