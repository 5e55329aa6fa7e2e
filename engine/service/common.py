"""What every part of the service shares: channels, limits, input checks."""
from __future__ import annotations

from blocks import timer_kinds
from engine.errors import Invalid
from engine.queries import TEST_CHANNEL

CHANNELS = ("api", "whatsapp", "web")
MAX_TEXT = 4096 * 4
MAX_JUMPS = 10
BOT_TIMER_KINDS = tuple(timer_kinds())  # every timer a block schedules (blocks/<kind>)


def _check_channel(channel: str) -> str:
    if channel not in CHANNELS and channel != TEST_CHANNEL:
        raise Invalid(f"Canal desconhecido: {channel}.", details=[
            {"path": "$.channel", "message": "Use api, whatsapp ou web."}])
    return channel


def _clean(value, path: str, limit: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"Campo obrigatório ausente: {path}.", details=[
            {"path": f"$.{path}", "message": "Campo obrigatório."}])
    if len(value) > limit:
        raise Invalid(f"Campo longo demais: {path}.", details=[
            {"path": f"$.{path}", "message": f"No máximo {limit} caracteres."}])
    return value.strip()
