"""Who is asking: browser sessions (login form) and API tokens.

For pages (blueprints ``flows``, ``inbox``...)::

    from editor.auth import login_required, admin_required, current_user

    @bp.get("/inbox")
    @login_required
    def inbox(): user = current_user()  # {"id","login","name","role","lang","created_at"}

For the JSON API (``/api/...``)::

    from editor.auth import token_required, require_role

    @bp.post("/api/v1/flows")
    @token_required            # sets g.user, else 401 JSON
    @require_role("admin")     # else 403 JSON
    def create_flow(): ...

``token_required`` also accepts a logged-in browser session when the request carries the
page's CSRF token in ``X-CSRFToken`` (so the editor's own scripts can call the API).
"""
from __future__ import annotations

import functools
import threading
import time
from collections import deque
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import ValidationError, validate_csrf

from engine import accounts
from engine.errors import Forbidden

bp = Blueprint("auth", __name__)

SESSION_USER = "user_id"
SESSION_ROLE = "role"
SESSION_LOGIN = "login"
SESSION_GENERATION = "generation"
HOME = "/inbox"


# ------------------------------------------------------------------ login throttle

class LoginThrottle:
    """Slows down password guessing: too many failures → refuse for a while.

    Counts failed logins per (login, client address) and per client address inside a
    sliding window. It lives in the process's memory (one per app): with N web
    processes an attacker gets up to N times the budget, and a restart forgets it. That
    is an accepted trade-off until a shared table exists (the database has none for
    this); the per-login limit still turns millions of guesses into thousands.
    """

    def __init__(self, per_login: int = 5, per_address: int = 30, window_s: float = 900.0,
                 max_keys: int = 10_000):
        self.per_login = per_login
        self.per_address = per_address
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: dict[tuple, deque] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple, now: float) -> deque:
        stamps = self._failures.get(key)
        if stamps is None:
            return deque()
        while stamps and now - stamps[0] > self.window_s:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
        return stamps

    def retry_after(self, login: str, address: str, now: float | None = None) -> float:
        """Seconds to wait before another try is allowed (0 = go ahead)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = []
            for key, limit in ((("login", login, address), self.per_login),
                               (("address", address), self.per_address)):
                stamps = self._recent(key, now)
                if len(stamps) >= limit:
                    waits.append(stamps[-limit] + self.window_s - now)
            return max(waits, default=0.0)

    def failed(self, login: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) >= self.max_keys:  # bounded memory under a flood
                for key in list(self._failures):
                    self._recent(key, now)
                if len(self._failures) >= self.max_keys:
                    self._failures.pop(next(iter(self._failures)))
            for key in (("login", login, address), ("address", address)):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, login: str, address: str) -> None:
        with self._lock:
            self._failures.pop(("login", login, address), None)


# ------------------------------------------------------------------ current user

def _engine():
    return current_app.extensions["papo"]["engine"]


def current_user() -> dict | None:
    """The logged-in user of this request (browser session or API token), else None."""
    if "user" in g:
        return g.user
    user = None
    user_id = session.get(SESSION_USER)
    if user_id is not None:
        user = accounts.get_user_by_id(_engine(), user_id)
        if user is None or user["disabled"] or user["role"] != session.get(SESSION_ROLE) or \
                user["session_generation"] != session.get(SESSION_GENERATION, 0):
            # Deleted, disabled, the role changed, or the session was ended server-side
            # (logout elsewhere, a password change): log in again.
            _clear_session()
            user = None
    g.user = user
    return user


def is_admin() -> bool:
    user = current_user()
    return bool(user and user["role"] == "admin")


def _clear_session() -> None:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def login_user(user: dict) -> None:
    """Start a browser session for ``user`` (a fresh session: no fixation)."""
    _clear_session()
    session.permanent = True
    session[SESSION_USER] = user["id"]
    session[SESSION_ROLE] = user["role"]
    session[SESSION_LOGIN] = user["login"]
    session[SESSION_GENERATION] = user.get("session_generation", 0)
    if user.get("lang") and "lang" not in session:
        session["lang"] = user["lang"]
    g.user = user


def logout_user() -> None:
    """End this session and every other session of the same user (server-side)."""
    user = current_user()
    if user is not None:
        accounts.end_sessions(_engine(), user["id"])
    _clear_session()
    g.user = None


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site (no open redirects), else None."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


# ------------------------------------------------------------------ decorators (pages)

def _to_login():
    if getattr(request, "htmx", False):
        # A fragment request: send the whole page to the login form (htmx follows
        # HX-Redirect whatever the status), coming back to the page afterwards.
        current = urlsplit(request.headers.get("HX-Current-URL") or "/")
        back = current.path + (f"?{current.query}" if current.query else "")
        response = current_app.response_class(status=401)
        response.headers["HX-Redirect"] = url_for("auth.login", next=safe_next(back) or "/")
        return response
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=target))


def login_required(view):
    """Pages: anonymous visitors are sent to /login (and back here afterwards)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_user() is None:
            return _to_login()
        return view(*args, **kwargs)
    return wrapper


def admin_required(view):
    """Pages: admins only (anonymous → /login, agents → 403 page)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        user = current_user()
        if user is None:
            return _to_login()
        if user["role"] != "admin":
            raise Forbidden(_("Esta página é só para administradores."))
        return view(*args, **kwargs)
    return wrapper


# ------------------------------------------------------------------ decorators (API)

def json_error(status: int, code: str, message: str, **extra):
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    return response


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _session_user_with_csrf() -> dict | None:
    """A logged-in browser session, accepted only with a valid CSRF header."""
    if SESSION_USER not in session:
        return None
    token = request.headers.get("X-CSRFToken") or request.headers.get("X-CSRF-Token")
    if not token:
        return None
    try:
        validate_csrf(token)
    except ValidationError:
        return None
    return current_user()


def token_required(view):
    """API: needs ``Authorization: Bearer <token>``; sets ``g.user``; else 401 JSON."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        token = bearer_token()
        user = accounts.user_for_token(_engine(), token) if token else _session_user_with_csrf()
        if user is None:
            response = json_error(
                401, "unauthorized",
                _("Token de acesso inválido ou ausente. Envie o cabeçalho "
                  "Authorization: Bearer <token> (crie um com: papo token create --user LOGIN)."))
            response.headers["WWW-Authenticate"] = 'Bearer realm="papo"'
            return response
        g.user = user
        return view(*args, **kwargs)
    return wrapper


def require_role(*roles: str):
    """API: the user set by ``token_required`` must have one of ``roles``; else 403 JSON."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = g.get("user")
            if user is None:
                return json_error(401, "unauthorized", _("Autenticação necessária."))
            if user["role"] not in roles:
                return json_error(403, "forbidden",
                                  _("Seu papel (%(role)s) não permite esta ação.",
                                    role=user["role"]))
            return view(*args, **kwargs)
        return wrapper
    return decorator


# ------------------------------------------------------------------ routes

def _throttle() -> LoginThrottle:
    return current_app.extensions["papo"]["login_throttle"]


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user() is not None:
            return redirect(next_url or HOME)
        return render_template("login.html", next_url=next_url, login_value="")

    login_value = (request.form.get("login") or "").strip().lower()[:64]
    password = request.form.get("password") or ""
    address = request.remote_addr or "?"
    wait = _throttle().retry_after(login_value, address)
    if wait > 0:
        minutes = max(1, round(wait / 60))
        error = _("Muitas tentativas sem sucesso. Tente de novo em %(minutes)d minuto(s).",
                  minutes=minutes)
        response = current_app.make_response(render_template(
            "login.html", next_url=next_url, login_value=login_value, error=error))
        response.status_code = 429
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response

    user = accounts.authenticate(_engine(), login_value, password)
    if user is None:
        _throttle().failed(login_value, address)
        current_app.logger.info("failed login for %r from %s", login_value, address)
        error = _("Login ou senha incorretos.")
        response = current_app.make_response(render_template(
            "login.html", next_url=next_url, login_value=login_value, error=error))
        response.status_code = 401
        return response

    _throttle().succeeded(login_value, address)
    login_user(user)
    return redirect(next_url or HOME)


@bp.post("/logout")
def logout():
    logout_user()
    if getattr(request, "htmx", False):  # a button with hx-post: leave the page entirely
        response = current_app.response_class(status=204)
        response.headers["HX-Redirect"] = url_for("auth.login")
        return response
    return redirect(url_for("auth.login"))


def init_app(app: Flask) -> None:
    app.extensions["papo"]["login_throttle"] = LoginThrottle()

    @app.context_processor
    def _auth_context():
        return {"current_user": current_user(), "is_admin": is_admin()}
