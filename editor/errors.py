"""Every error as the client expects it: JSON for the API, a friendly page for people.

Under ``/api/`` and ``/channels/`` every error is ``{"error": {"code", "message",
"details"?}}`` with the right status, never a stack trace. Pages get a short
explanation in the interface language; an htmx request gets just that message as a
fragment (``papo.js`` shows it as a notice).

Unexpected exceptions reach the 500 handler through Flask's ``handle_exception`` (which
logs them first); with ``TESTING`` or ``PROPAGATE_EXCEPTIONS`` Flask re-raises them
instead, so tests see the real error.
"""
from __future__ import annotations

from flask import Flask, current_app, jsonify, render_template_string, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from werkzeug.exceptions import HTTPException

from engine.errors import PapoError

JSON_PREFIXES = ("/api/", "/channels/")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    428: "precondition_required",
    429: "too_many_requests",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}

ERROR_PAGE = """{% extends "base.html" %}
{% block title %}{{ title }} · papo{% endblock %}
{% block content %}
<section class="error-page" aria-labelledby="error-title">
  <p class="error-code">{{ status }}</p>
  <h1 id="error-title">{{ title }}</h1>
  <p>{{ message }}</p>
  <p><a class="btn btn-primary" href="{{ back_url }}">{{ back_label }}</a></p>
</section>
{% endblock %}
"""


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES) or request.blueprint in ("api", "channels")


def _titles() -> dict[int, str]:
    return {
        400: _("Pedido inválido"),
        401: _("É preciso entrar"),
        403: _("Acesso negado"),
        404: _("Página não encontrada"),
        405: _("Ação não permitida"),
        409: _("Conflito"),
        413: _("Conteúdo grande demais"),
        422: _("Dados inválidos"),
        429: _("Muitas tentativas"),
        500: _("Algo deu errado"),
    }


def _messages() -> dict[int, str]:
    return {
        400: _("O pedido não pôde ser entendido."),
        401: _("Entre com seu login e senha para continuar."),
        403: _("Você não tem permissão para ver ou fazer isto."),
        404: _("O endereço não existe ou foi removido. Confira o link."),
        405: _("Este endereço não aceita esta ação."),
        409: _("Os dados mudaram enquanto você trabalhava. Recarregue a página."),
        413: _("O conteúdo enviado passa do limite de 2 MiB."),
        422: _("Alguns dados não são válidos."),
        429: _("Muitas tentativas seguidas. Espere um pouco e tente de novo."),
        500: _("Tivemos um problema inesperado. Tente de novo; se continuar, avise o "
               "administrador."),
    }


def _api_messages() -> dict[int, str]:
    return {
        404: _("Recurso não encontrado."),
        405: _("Método HTTP não permitido neste endereço."),
        500: _("Erro interno. Tente de novo; se continuar, avise o administrador."),
    }


def _json_response(status: int, body: dict, headers=None):
    response = jsonify(body)
    response.status_code = status
    for name, value in headers or ():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _html_response(status: int, message: str, title: str | None = None, headers=None):
    title = title or _titles().get(status) or _titles()[500 if status >= 500 else 400]
    if getattr(request, "htmx", False):
        body = f'<div class="notice notice-error" role="alert">{escape(message)}</div>'
    else:
        try:
            body = render_template_string(
                ERROR_PAGE, status=status, title=title, message=message,
                back_url="/", back_label=_("Voltar ao início"))
        except Exception:  # the page itself failed (e.g. database down): keep it plain
            current_app.logger.exception("error page could not be rendered")
            body = (f"<!doctype html><meta charset=utf-8><title>{escape(title)}</title>"
                    f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")
    response = current_app.make_response((body, status))
    for name, value in headers or ():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _translated(text):
    """An engine message that is a pt-BR id of the one catalog (marked ``N_`` where it is
    raised), in the reader's language; any other text as it is."""
    return _(text) if isinstance(text, str) and text else text


def handle_papo_error(error: PapoError):
    if wants_json():
        body = error.to_json()
        body["error"]["message"] = _translated(body["error"]["message"])
        for detail in body["error"].get("details") or []:
            if isinstance(detail, dict) and "message" in detail:
                detail["message"] = _translated(detail["message"])
        return _json_response(error.status, body)
    return _html_response(error.status, _translated(error.message))


def handle_flow_document_error(error):
    """``schemas.FlowDocumentError`` that escaped the view: 413/422 with its problems."""
    message = (error.problems[0]["message"] if len(error.problems) == 1
               else _("O documento do fluxo tem %(count)d problemas.",
                      count=len(error.problems)))
    if wants_json():
        details = [{k: v for k, v in p.items() if k in ("path", "message", "block_id")}
                   for p in error.problems]
        return _json_response(error.status, {"error": {
            "code": error.code, "message": message, "details": details}})
    return _html_response(error.status, message)


def handle_csrf_error(error: CSRFError):
    message = _("Sua sessão expirou, recarregue a página.")
    if wants_json():
        return _json_response(400, {"error": {"code": "csrf_failed", "message": message}})
    return _html_response(400, message, title=_("Sessão expirada"))


def handle_http_error(error: HTTPException):
    status = error.code or 500
    headers = error.get_headers()
    if wants_json():
        message = _api_messages().get(status) or _messages().get(status) or error.name
        return _json_response(status, {"error": {
            "code": _CODES.get(status, error.name.lower().replace(" ", "_")),
            "message": message}}, headers)
    return _html_response(status, _messages().get(status) or error.name, headers=headers)


def init_app(app: Flask) -> None:
    app.register_error_handler(PapoError, handle_papo_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    try:
        from schemas import FlowDocumentError
    except ImportError:  # pragma: no cover - schemas is part of the distribution
        return
    app.register_error_handler(FlowDocumentError, handle_flow_document_error)
