"""The Flask application factory and the helpers every blueprint shares.

``create_app(config)`` reads ``PAPO_*`` settings (``config`` may override them), opens one
SQLAlchemy Engine, and registers the blueprints. Per-app state lives in
``app.extensions["papo"]``::

    {"engine": Engine, "settings": Settings, "service": Service | None (see get_service),
     "login_throttle": LoginThrottle, "csrf": CSRFProtect, "service_lock": Lock}

Nothing is kept in module globals, so several apps (tests) can live side by side and
any number of web processes can share one database.
"""
from __future__ import annotations

import gc
import importlib
import logging
import os
import secrets
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, current_app, make_response, redirect, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from engine import logs
from engine.db import default_url, ensure_schema, make_engine
from engine.settings import Settings, SettingsError

log = logging.getLogger(__name__)

# Blueprints other areas provide: (blueprint name, module exposing ``bp``).
OPTIONAL_BLUEPRINTS = (
    ("api", "editor.api"),
    ("flows", "editor.flows_ui"),
    ("simulator", "editor.simulator"),
    ("flowtests", "editor.flowtests_ui"),
    ("inbox", "editor.inbox"),
    ("reports", "editor.reports"),
    ("channels", "editor.channels"),
    ("webchat", "editor.webchat"),
    ("team", "editor.team"),
    ("whatsapp_settings", "editor.whatsapp_settings"),
    ("desk", "editor.desk"),
    ("settings", "editor.settings_ui"),
)
# Paths authenticated by tokens or signatures, not by the session cookie: no CSRF token.
CSRF_EXEMPT_PREFIXES = ("/api/", "/channels/")
CSRF_EXEMPT_BLUEPRINTS = ("api", "channels")
# 2 MiB flow documents plus room for the JSON/form envelope (DESIGN §2: bigger → 413).
MAX_BODY_BYTES = 2 * 1024 * 1024 + 64 * 1024
VENDOR_FILES = ("htmx.min.js", "drawflow.min.js", "drawflow.min.css")

def default_instance_path() -> str:
    """The instance folder: ``PAPO_INSTANCE_PATH``, else ``./instance``.

    The same rule as ``engine.db.default_url`` (used by ``papo db upgrade`` and the
    worker), so the web app and every command find the same SQLite file and secret key.
    """
    return str(Path(os.environ.get("PAPO_INSTANCE_PATH") or "instance").resolve())


def database_url(settings: Settings, instance_path: str | None = None) -> str:
    """``PAPO_DATABASE_URL``, else ``sqlite:///<instance folder>/papo.db``."""
    return settings.database_url or default_url(instance_path or default_instance_path())


def open_database(settings: Settings | None = None, *, ensure: bool = False) -> Engine:
    """An Engine for command-line tools, configured exactly as the web app's.

    ``ensure=True`` creates the schema when the database is empty (see ``ensure_schema``).
    """
    settings = settings or Settings.from_env()
    engine = make_engine(database_url(settings))
    if ensure:
        ensure_schema(engine)
    return engine


def _load_secret_key(instance_path: str) -> str:
    """A random key kept in ``<instance>/secret_key`` (0600) so sessions survive restarts.

    Several processes may start at once: the key is written to a temporary file and
    linked into place, so exactly one key wins and everyone reads that one. Processes on
    different machines must share ``PAPO_SECRET_KEY`` instead.
    """
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def _settings_from(config: dict) -> Settings:
    overrides = {key: str(value) for key, value in config.items()
                 if key.startswith("PAPO_") and value is not None}
    return Settings.from_env({**os.environ, **overrides})


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus building the signer for requests that carry
    no session cookie (every API call with a token, every channel webhook)."""

    def open_session(self, app, request):
        if app.config.get("SECRET_KEY") and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app) -> bool:
        # Served over HTTPS (directly, or behind PAPO_TRUSTED_PROXIES saying so in
        # X-Forwarded-Proto): the cookie never travels over plain HTTP.
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def create_app(config: dict | None = None, *, upkeep: bool = True) -> Flask:
    """Build the papo web application.

    ``upkeep`` (outside tests): SQLite's upkeep thread (text search index, WAL checkpoints,
    ``engine.db.SqliteUpkeep``) runs in this process; ``papo serve`` turns it off for the app
    it builds only to check the settings before forking its workers.

    ``config`` overrides ``PAPO_*`` environment variables (``{"PAPO_DATABASE_URL": ...}``)
    and sets Flask options (``TESTING``, ``SECRET_KEY``, ``WTF_CSRF_ENABLED``...).
    """
    config = dict(config or {})
    instance_path = config.get("PAPO_INSTANCE_PATH") or default_instance_path()
    app = Flask("editor", instance_path=str(Path(instance_path).resolve()))
    settings = _settings_from(config)
    logs.configure(*logs.from_env({**os.environ, **{k: str(v) for k, v in config.items()
                                                   if k.startswith("PAPO_LOG_")}}))

    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_BODY_BYTES,  # a flow pasted into a form field
        # A token per session, not per hour: an inbox left open all day keeps working.
        WTF_CSRF_TIME_LIMIT=None,
        # Checked by our own hook below, which also exempts /api/ and /channels/ by path.
        WTF_CSRF_CHECK_DEFAULT=False,
        BABEL_DEFAULT_LOCALE="pt_BR",
        BABEL_TRANSLATION_DIRECTORIES="translations",
    )
    app.session_interface = _CookieSessions()
    app.json.sort_keys = False  # answers keep their declared key order (code, message, ...)
    app.config.update({k: v for k, v in config.items() if not k.startswith("PAPO_")})
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = settings.secret_key or _load_secret_key(app.instance_path)

    url = settings.database_url or default_url(app.instance_path)
    app.extensions["papo"] = {
        # Tests' apps come and go by the thousand: no checkpointer thread for each.
        "engine": make_engine(url, sqlite_upkeep=upkeep and not app.testing),
        "settings": settings,
        "service": None,
        "service_lock": threading.Lock(),
    }

    proxies = _trusted_proxies(config)
    if proxies:
        # Behind N reverse proxies: take the client address and scheme from their
        # X-Forwarded-* headers (login throttling counts per client address).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

    Htmx(app)
    csrf = CSRFProtect(app)
    app.extensions["papo"]["csrf"] = csrf

    @app.before_request
    def _csrf_protect():
        if not app.config.get("WTF_CSRF_ENABLED", True):
            return
        if request.path.startswith(CSRF_EXEMPT_PREFIXES):
            return
        csrf.protect(apply_exemptions=True)

    from editor import auth, errors, i18n, ops, security

    security.init_app(app)
    ops.init_app(app)
    i18n.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    app.register_blueprint(auth.bp)
    for name, module_name in OPTIONAL_BLUEPRINTS:
        module = _optional_module(module_name)
        if module is None:
            log.debug("blueprint %s not available (%s missing)", name, module_name)
            continue
        app.register_blueprint(module.bp)
        if module.bp.name in CSRF_EXEMPT_BLUEPRINTS:
            _exempt_recursively(csrf, module.bp)

    app.add_url_rule("/", "index", _index)
    _warn_if_assets_missing(app)
    if not app.testing:
        # A server process: what start-up loaded (modules, the app, its caches) lives as long
        # as the process. Frozen out of the collector's reach, a full collection no longer walks
        # those ~130,000 objects (50–90 ms, a stalled request, every few seconds under load).
        gc.freeze()
    return app


def _trusted_proxies(config: dict) -> int:
    raw = str(config.get("PAPO_TRUSTED_PROXIES") or os.environ.get("PAPO_TRUSTED_PROXIES") or "0")
    try:
        count = int(raw)
        if count < 0:
            raise ValueError
    except ValueError:
        raise SettingsError(
            f"PAPO_TRUSTED_PROXIES={raw!r} must be the number of reverse proxies in front "
            "of papo (0 when browsers reach it directly).") from None
    return count


def _optional_module(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # a real missing dependency inside the module
            raise
        return None


def _exempt_recursively(csrf: CSRFProtect, bp) -> None:
    csrf.exempt(bp)
    for child, _options in getattr(bp, "_blueprints", ()):
        _exempt_recursively(csrf, child)


def _index():
    from editor.auth import current_user

    return redirect("/inbox" if current_user() else "/login")


def _warn_if_assets_missing(app: Flask) -> None:
    vendor = Path(app.static_folder or "") / "vendor"
    missing = [name for name in VENDOR_FILES if not (vendor / name).is_file()]
    if missing:
        app.logger.warning(
            "Front-end files missing in %s: %s. Run `make assets` (npm install, then "
            "python -m editor.assets) or the editor and inbox will not work.",
            vendor, ", ".join(missing))


def papo(app: Flask | None = None) -> dict[str, Any]:
    """This app's ``extensions["papo"]`` dict (engine, settings, service)."""
    return (app or current_app).extensions["papo"]


def get_engine(app: Flask | None = None) -> Engine:
    return papo(app)["engine"]


def get_settings(app: Flask | None = None) -> Settings:
    return papo(app)["settings"]


def get_service(app: Flask | None = None):
    """The app's ``engine.service.Service(engine, settings)``, built on first use."""
    ext = papo(app)
    if ext.get("service") is None:
        with ext["service_lock"]:
            if ext.get("service") is None:
                from engine.service import Service

                ext["service"] = Service(ext["engine"], ext["settings"])
    return ext["service"]


def render_page(template: str, fragment_template: str | None = None, **ctx):
    """One URL, full page or fragment (htmx).

    A normal request gets ``template`` (a full page extending ``base.html``). An htmx
    request (``HX-Request``, not boosted, not a history restore) gets
    ``fragment_template`` if given, else only the ``content`` block of ``template``.
    Returns a Response (set ``.status_code`` on it if needed); ``Vary: HX-Request``
    keeps caches from mixing the two.
    """
    htmx = getattr(request, "htmx", None)
    wants_fragment = bool(htmx) and not htmx.boosted and not htmx.history_restore_request
    if not wants_fragment:
        body = render_template(template, **ctx)
    elif fragment_template:
        body = render_template(fragment_template, **ctx)
    else:
        body = render_block(template, "content", **ctx)
    response = make_response(body)
    response.vary.add("HX-Request")
    return response


def render_block(template: str, block: str, **ctx) -> str:
    """Render one ``{% block %}`` of a template with the usual context processors."""
    app = current_app._get_current_object()
    app.update_template_context(ctx)
    tmpl = app.jinja_env.get_or_select_template(template)
    if block not in tmpl.blocks:
        raise KeyError(f"template {template!r} has no block {block!r}")
    context = tmpl.new_context(ctx)
    # Run the template's top level up to its first output, so that top-level
    # {% from ... import %} / {% set %} and the block chain (super()) exist for the block.
    top_level = tmpl.root_render_func(context)
    try:
        next(top_level, None)
    finally:
        top_level.close()
    return "".join(tmpl.blocks[block](context))
