"""Configurações › WhatsApp (DESIGN §10.4): what is configured, and the approved message
templates with a button that syncs them from Meta (admins only, CSRF on the form).

Routes (blueprint ``whatsapp_settings``)::

    GET  /settings/whatsapp                  the settings (secrets never shown) and the templates
    POST /settings/whatsapp/templates/sync   read the approved templates again (like
                                             ``papo whatsapp templates sync``)
"""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint
from flask_babel import gettext as _

from editor.app import get_engine, get_service, get_settings, render_page
from editor.auth import admin_required
from engine import whatsapp_templates

bp = Blueprint("whatsapp_settings", __name__)


@bp.app_template_filter("fill_template")
def fill_template(body: str, params) -> str:
    """A template's body with its ``{{n}}`` filled from ``params`` (the picker's preview)."""
    return whatsapp_templates.fill(body or "", list(params or []))


def _page(notice: dict | None = None, status: int = 200):
    settings = get_settings()
    configured = [
        {"name": "PAPO_WHATSAPP_PHONE_NUMBER_ID", "label": _("Número (phone number ID)"),
         "value": settings.whatsapp_phone_number_id},
        {"name": "PAPO_WHATSAPP_BUSINESS_ACCOUNT_ID", "label": _("Conta comercial (WABA ID)"),
         "value": settings.whatsapp_business_account_id},
        {"name": "PAPO_WHATSAPP_TOKEN", "label": _("Token de acesso"),
         "value": _("configurado") if settings.whatsapp_token else None},
        {"name": "PAPO_WHATSAPP_APP_SECRET", "label": _("Segredo do app"),
         "value": _("configurado") if settings.whatsapp_app_secret else None},
        {"name": "PAPO_WHATSAPP_VERIFY_TOKEN", "label": _("Token de verificação do webhook"),
         "value": _("configurado") if settings.whatsapp_verify_token else None},
        {"name": "PAPO_WHATSAPP_API_BASE", "label": _("Endereço da API"),
         "value": settings.whatsapp_api_base},
    ]
    templates = whatsapp_templates.list_templates(get_engine())
    synced_at = datetime.fromisoformat(templates[0]["synced_at"].replace("Z", "+00:00")) if templates else None
    response = render_page(
        "settings/whatsapp.html", configured=configured, notice=notice,
        templates=templates, synced_at=synced_at,
        can_sync=bool(settings.whatsapp_business_account_id and settings.whatsapp_token))
    response.status_code = status
    return response


@bp.get("/settings/whatsapp")
@admin_required
def index():
    return _page()


@bp.post("/settings/whatsapp/templates/sync")
@admin_required
def sync():
    service = get_service()
    result = whatsapp_templates.sync(get_engine(), get_settings(), service.clock())
    if not result.ok:
        # 422: a setting is missing; 502: the Graph API refused or did not answer.
        error = _(result.error) if result.not_configured else result.error  # Meta's own words
        return _page({"level": "error", "text": _("Os modelos não foram sincronizados: %(error)s",
                                                  error=error)}, 422 if result.not_configured else 502)
    return _page({"level": "success", "text": _(
        "%(count)d modelos aprovados sincronizados (%(skipped)d ainda não aprovados ficaram de fora).",
        count=result.approved, skipped=result.skipped)})
