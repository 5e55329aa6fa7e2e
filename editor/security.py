"""What every request and response goes through (DESIGN §10.5).

- **Entry cleaning**: query strings and form posts holding a NUL are refused with a
  400 (a path with one is a 404) in the user's language before any view runs (nothing is stored).
  Lone surrogates cannot arrive through them (Werkzeug keeps an undecodable ``%ED%A0%80``
  as literal text); JSON bodies, where ``"\\ud800"`` can, are cleaned where they are parsed
  (``editor.api.json_body``, ``schemas.load_document``, the WhatsApp webhook), all through
  ``engine.clean``.
- **Numbers in query strings**: :func:`query_int` is the one range-checked parser (400
  naming the parameter when malformed or out of range).
- **Headers** on every response: a Content-Security-Policy without inline scripts or
  styles, ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: same-origin``; ``Cache-Control: no-store`` on pages with customer
  data (``/inbox…``, ``/reports…``, ``/c/…``).
"""
from __future__ import annotations

from flask import Flask, request
from flask_babel import gettext as _
from werkzeug.exceptions import NotFound

from engine.clean import NUL, parse_int
from engine.errors import PapoError

# The largest id a BIGINT column holds: numbers beyond it never reach the database.
MAX_ID = 9_223_372_036_854_775_807

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "media-src 'self'",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
# Pages showing what customers wrote: never kept by the browser or a shared cache.
NO_STORE_PREFIXES = ("/inbox", "/reports", "/c/", "/media/")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class BadText(PapoError):
    """A NUL in a query string, form field or path segment."""

    status, code = 400, "bad_text"


class BadParameter(PapoError):
    """A number in a query string (or form field) that is malformed or out of range."""

    status, code = 400, "invalid_parameter"


def query_int(name: str, *, default: int | None = None, minimum: int = 0,
              maximum: int = MAX_ID, source=None) -> int | None:
    """``request.args[name]`` as an integer in ``[minimum, maximum]``; ``default`` when it
    is absent or empty; else ``BadParameter`` (400) naming it.

    ``source`` may be ``request.form`` for a number posted by a form.
    """
    raw = (source if source is not None else request.args).get(name)
    if raw is None or not raw.strip():
        return default
    number = parse_int(raw.strip(), minimum=minimum, maximum=maximum)
    if number is None:
        message = _("Parâmetro inválido: %(name)s. Use um número inteiro entre %(minimum)d e "
                    "%(maximum)d.", name=name, minimum=minimum, maximum=maximum)
        raise BadParameter(message, details=[{"path": name, "message": message}])
    return number


def _nul_in(items) -> str | None:
    for key, value in items:
        if (isinstance(key, str) and NUL in key) or (isinstance(value, str) and NUL in value):
            return key.replace(NUL, "") if isinstance(key, str) else str(key)
    return None


def refuse_nul() -> None:
    """``before_request``: a NUL in the query string or a form post → 400; in the path →
    404 (no flow, conversation or page has a NUL in its name)."""
    if NUL in request.path:
        raise NotFound()
    where = _nul_in(request.args.items(multi=True))
    if where is None and request.mimetype in FORM_TYPES:
        where = _nul_in(request.form.items(multi=True))
    if where is not None:
        message = _("Texto com caractere não permitido (NUL) em “%(field)s”. Remova-o e "
                    "tente de novo.", field=where[:64])
        raise BadText(message, details=[{"path": where[:64], "message": message}])


def security_headers(response):
    """``after_request``: the §10.5 headers (CSP and frame options on HTML only)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith(NO_STORE_PREFIXES):
        headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    # First of the before_request hooks: nothing (CSRF, login, locale) reads a NUL.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_nul)
    app.after_request(security_headers)
