"""WhatsApp message templates (DESIGN §10.4): the approved ones, synced from Meta.

Outside the 24-hour customer service window WhatsApp only delivers *templates* that Meta
approved beforehand. :func:`sync` reads the business account's templates
(``GET {API_BASE}/{WABA_ID}/message_templates``, every page) and keeps the approved ones in
``whatsapp_templates``; lint (:func:`index`), the editor's picker and the inbox composer
(:func:`list_templates`) and the outbox (:func:`find`) read that table.

A template's parameters are the ``{{1}}``, ``{{2}}``… placeholders of its BODY text:
:func:`param_count` counts them, :func:`fill` shows the body with them filled in, and
:func:`message_body` builds the Cloud API ``type: template`` request with one ``body``
component of text parameters.
"""
from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection, Engine

from engine.db import read_only
from engine.i18n import N_
from engine.moments import iso, utc
from engine.store import whatsapp_templates

log = logging.getLogger("papo.whatsapp")

PLACEHOLDER = re.compile(r"\{\{\s*(\d{1,2})\s*\}\}")
MAX_PAGES = 100  # 100 pages of 100 templates: far above Meta's 250-template cap per account
PAGE_SIZE = 100
HTTP_TIMEOUT_S = 15.0
FIELDS = "name,language,status,category,components"
NOT_CONFIGURED = N_("Configure PAPO_WHATSAPP_BUSINESS_ACCOUNT_ID e PAPO_WHATSAPP_TOKEN para buscar os modelos.")

# ``http_get(url, headers) -> (status, body text)``; raises ``OSError`` when no answer came.
HttpGet = Callable[[str, dict], tuple[int, str]]


@dataclass(frozen=True)
class SyncResult:
    """What :func:`sync` did: ``error`` is None when the table was replaced."""

    approved: int = 0  # templates kept (approved)
    skipped: int = 0  # templates read but not approved (pending, rejected, paused…)
    pages: int = 0
    error: str | None = None  # pt-BR, for the person who asked for the sync
    not_configured: bool = False  # the error is a missing setting, not Meta's answer

    @property
    def ok(self) -> bool:
        return self.error is None


def param_count(body: str) -> int:
    """How many parameters a BODY text takes: its highest ``{{n}}``."""
    return max((int(n) for n in PLACEHOLDER.findall(body or "")), default=0)


def fill(body: str, params: list[str]) -> str:
    """The body as the customer reads it: ``{{n}}`` replaced by the n-th parameter."""
    def one(found: re.Match) -> str:
        n = int(found.group(1))
        return str(params[n - 1]) if 0 < n <= len(params) else found.group(0)

    return PLACEHOLDER.sub(one, body or "")


def _body_text(components) -> str:
    for component in components if isinstance(components, list) else []:
        if isinstance(component, dict) and str(component.get("type", "")).upper() == "BODY":
            text = component.get("text")
            return text if isinstance(text, str) else ""
    return ""


# ---------------------------------------------------------------------- reading Meta's list
def _http_get(url: str, headers: dict) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.read(4 * 1024 * 1024).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(65536).decode("utf-8", "replace")


def templates_url(settings) -> str:
    account = urllib.parse.quote(str(settings.whatsapp_business_account_id), safe="")
    query = urllib.parse.urlencode({"fields": FIELDS, "limit": PAGE_SIZE})
    return f"{settings.whatsapp_api_base.rstrip('/')}/{account}/message_templates?{query}"


def _graph_error(status: int, text: str) -> str:
    try:
        error = json.loads(text)["error"]
        message = str(error.get("message") or "").strip()
        code = error.get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"HTTP {status}"
    return f"HTTP {status}: {message}" + (f" (código {code})" if code is not None else "")


def fetch(settings, http_get: HttpGet | None = None) -> tuple[list[dict], int, str | None]:
    """Every template of the business account, following ``paging.next``:
    ``(templates, pages, error)``; ``error`` (pt-BR) when a page could not be read."""
    if not settings.whatsapp_business_account_id or not settings.whatsapp_token:
        return [], 0, NOT_CONFIGURED
    http_get = http_get or _http_get
    headers = {"Authorization": f"Bearer {settings.whatsapp_token}", "User-Agent": "papo"}
    url: str | None = templates_url(settings)
    found: list[dict] = []
    pages = 0
    seen: set[str] = set()
    while url and pages < MAX_PAGES and url not in seen:
        seen.add(url)
        try:
            status, text = http_get(url, headers)
        except OSError as exc:
            return found, pages, f"Sem resposta da API do WhatsApp ({type(exc).__name__}: {exc})."
        if not 200 <= status < 300:
            return found, pages, f"A API do WhatsApp recusou: {_graph_error(status, text)}."
        try:
            page = json.loads(text)
        except ValueError:
            return found, pages, "A API do WhatsApp respondeu algo que não é JSON."
        pages += 1
        data = page.get("data") if isinstance(page, dict) else None
        found += [item for item in data or [] if isinstance(item, dict)]
        paging = page.get("paging") if isinstance(page, dict) else None
        following = paging.get("next") if isinstance(paging, dict) else None
        url = following if isinstance(following, str) and following.startswith(("http://", "https://")) else None
    return found, pages, None


def sync(db: Engine, settings, now: float, http_get: HttpGet | None = None) -> SyncResult:
    """Replace the table with the account's approved templates (nothing changes on error)."""
    if not settings.whatsapp_business_account_id or not settings.whatsapp_token:
        return SyncResult(error=NOT_CONFIGURED, not_configured=True)
    found, pages, error = fetch(settings, http_get)
    if error:
        log.warning("WhatsApp templates not synced: %s", error)
        return SyncResult(pages=pages, error=error)
    rows: dict[tuple[str, str], dict] = {}
    skipped = 0
    for item in found:
        name, language = item.get("name"), item.get("language")
        if str(item.get("status", "")).upper() != "APPROVED" or not isinstance(name, str) \
                or not isinstance(language, str) or not name or not language:
            skipped += 1
            continue
        components = item.get("components") if isinstance(item.get("components"), list) else []
        body = _body_text(components)
        rows[(name[:512], language[:16])] = {
            "name": name[:512], "language": language[:16],
            "category": str(item.get("category") or "")[:32], "body": body,
            "param_count": param_count(body), "components": components, "synced_at": utc(now)}
    with db.begin() as conn:
        conn.execute(delete(whatsapp_templates))
        if rows:
            conn.execute(insert(whatsapp_templates), list(rows.values()))
    log.info("WhatsApp templates synced: %s approved, %s skipped, %s pages", len(rows), skipped, pages)
    return SyncResult(approved=len(rows), skipped=skipped, pages=pages)


# ---------------------------------------------------------------------- reading the table
def _view(row) -> dict:
    return {"name": row["name"], "language": row["language"], "category": row["category"],
            "body": row["body"], "param_count": row["param_count"], "synced_at": iso(row["synced_at"])}


def list_templates(db: Engine) -> list[dict]:
    """The synced templates, by name then language."""
    with read_only(db) as conn:
        rows = conn.execute(select(whatsapp_templates).order_by(
            whatsapp_templates.c.name, whatsapp_templates.c.language)).mappings().all()
    return [_view(r) for r in rows]


def index(db: Engine) -> dict[tuple[str, str], int]:
    """``{(name, language): parameter count}`` of the synced templates (for lint)."""
    with read_only(db) as conn:
        return {(r.name, r.language): r.param_count for r in conn.execute(select(
            whatsapp_templates.c.name, whatsapp_templates.c.language, whatsapp_templates.c.param_count))}


def find(conn: Connection, name: str, language: str) -> dict | None:
    """The synced template ``name`` in ``language``, or None."""
    row = conn.execute(select(whatsapp_templates).where(
        whatsapp_templates.c.name == name, whatsapp_templates.c.language == language)).mappings().first()
    return _view(row) if row is not None else None


# ---------------------------------------------------------------------- sending one
def message_body(to: str, template: dict) -> dict:
    """The Cloud API body of a template message; ``template``: ``{"name", "language",
    "params": [rendered texts]}``. The params fill the BODY's ``{{1}}``, ``{{2}}``…"""
    params = [str(p) if str(p).strip() else "-" for p in template.get("params") or []]
    body = {"name": template["name"], "language": {"code": template["language"]}}
    if params:
        # WhatsApp refuses an empty parameter: a missing value reads "-".
        body["components"] = [{"type": "body", "parameters": [{"type": "text", "text": p[:1024]}
                                                              for p in params]}]
    envelope = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    envelope["to" if str(to).isdigit() else "recipient"] = str(to)
    return {**envelope, "type": "template", "template": body}
