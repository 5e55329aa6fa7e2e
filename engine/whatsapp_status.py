"""Delivery statuses of the messages papo sent on WhatsApp (DESIGN §10.4, §10.6).

Meta reports each message we sent as ``sent``, ``delivered``, ``read`` or ``failed``
(webhook ``statuses[]``). The outbound message keeps the furthest one as
``messages.details["delivery"] = {"status", "at", "error": {"code", "title"} | None}``:
a status never moves a message backwards, so one that arrives late (Meta does not keep
the order) changes nothing. ``failed`` is final. Pure: ``engine.outbox.record_status``
does the storing.
"""
from __future__ import annotations

from engine.i18n import N_, gettext
from engine.moments import iso, utc
from engine.whatsapp import DeliveryStatus

# How far along a message is; a status of a lower or equal rank changes nothing.
RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}

# Meta's error codes that shop staff meet, explained (the title otherwise).
FAILURES = {
    131047: N_("fora da janela de 24 h: o cliente não escreve há mais de 24 horas; envie um modelo aprovado"),
    "window_closed": N_("fora da janela de 24 h: o cliente não escreve há mais de 24 horas; envie um modelo aprovado"),
    131026: N_("não foi possível entregar (o número pode não ter WhatsApp, ou o cliente usa uma versão antiga)"),
    131049: N_("o WhatsApp limitou as mensagens de marketing que este cliente recebe"),
    131050: N_("o cliente pediu para não receber mensagens de marketing"),
    131051: N_("tipo de mensagem não suportado"),
    131052: N_("o WhatsApp não conseguiu baixar a mídia enviada pelo cliente"),
    131053: N_("o WhatsApp não conseguiu receber o arquivo enviado"),
    131048: N_("muitas mensagens em pouco tempo (limite contra spam); tente mais tarde"),
    131056: N_("muitas mensagens para este cliente em pouco tempo; tente mais tarde"),
    131021: N_("o destinatário é o próprio número da empresa"),
    131031: N_("a conta do WhatsApp Business está bloqueada"),
    131042: N_("problema de pagamento na conta do WhatsApp Business"),
    130472: N_("o número do cliente faz parte de um experimento do WhatsApp e não recebeu a mensagem"),
    132000: N_("o modelo recebeu um número errado de parâmetros"),
    132001: N_("o modelo não existe neste idioma ou ainda não foi aprovado"),
    131000: N_("erro desconhecido no WhatsApp; tente de novo"),
}
# Failures of papo's own (engine/outbox.py): the message never went to WhatsApp, and the
# inbox says "Não enviada" rather than "O WhatsApp recusou".
NOT_SENT_CODES = ("window_closed", "template_unknown")
REFUSED = N_("O WhatsApp recusou: %(reason)s")
UNKNOWN_REASON = N_("motivo não informado (código %(code)s)")


def delivery_of(status: DeliveryStatus, now: float) -> dict | None:
    """The ``delivery`` value a status means, or None for one papo does not track
    (``deleted``, ``warning``...)."""
    if status.status not in RANK:
        return None
    error = None
    if status.status == "failed":
        first = status.errors[0] if status.errors else {}
        code = first.get("code")
        title = first.get("title") or first.get("message")
        error = {"code": code if isinstance(code, int | str) and not isinstance(code, bool) else None,
                 "title": str(title)[:200] if title else None}
    return {"status": status.status, "at": iso(utc(status.at if status.at is not None else now)),
            "error": error}


def moves_forward(current: dict | None, new: dict) -> bool:
    """True when ``new`` is further along than what the message already has."""
    before = RANK.get((current or {}).get("status"), 0)
    return RANK[new["status"]] > before


def failure_text(error: dict | None, lang: str | None = None) -> str:
    """A failed delivery in the agent's words: "O WhatsApp recusou: fora da janela de 24 h…"."""
    error = error or {}
    code = error.get("code")
    known = FAILURES.get(code) if isinstance(code, int | str) else None
    if known is None and isinstance(code, str) and code.isdigit():
        known = FAILURES.get(int(code))
    if known is not None:
        reason = gettext(known, lang)
    elif error.get("title"):
        reason = str(error["title"])
    else:
        reason = gettext(UNKNOWN_REASON, lang, code=code if code is not None else "?")
    return gettext(REFUSED, lang, reason=reason)
