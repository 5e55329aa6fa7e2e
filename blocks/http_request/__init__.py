"""HTTP request block: the service performs the call (with the SSRF guard) and feeds the
response back to the engine, which follows ``ok`` (2xx) or ``error``."""
from pathlib import Path
from typing import Any

from blocks.base import N_, BlockKind, Context, Result, fixed_ports, load_schema

FOLDER = Path(__file__).parent
DEFAULT_TIMEOUT_S = 10


def _render_body(body, ctx: Context):
    if isinstance(body, str):
        return ctx.render(body)
    if isinstance(body, dict):
        return {k: _render_body(v, ctx) for k, v in body.items()}
    if isinstance(body, list):
        return [_render_body(v, ctx) for v in body]
    return body


def execute(block: dict, ctx: Context) -> Result:
    data = block["data"]
    call = {
        "type": "http",
        "block_id": block["id"],
        "method": data["method"],
        "url": ctx.render(data["url"]),
        "headers": {k: ctx.render(v) for k, v in (data.get("headers") or {}).items()},
        "body": _render_body(data.get("body"), ctx),
        "timeout_s": min(float(data.get("timeout_s", DEFAULT_TIMEOUT_S)), 30.0),
    }
    return Result(effects=[call], wait="http")


def on_http_result(block: dict, ok: bool, status: int | None, body: Any) -> Result:
    """The answer came back: ``ok`` (2xx) or ``error``, saved as ``{status, body}``."""
    save_as = block["data"].get("save_as")
    return Result(port="ok" if ok else "error",
                  set_vars={save_as: {"status": status, "body": body}} if save_as else {})


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def template_fields(data: dict) -> list[str]:
    return [data.get("url", ""),
            *(v for v in (data.get("headers") or {}).values() if isinstance(v, str)),
            *_strings(data.get("body"))]


BLOCK = BlockKind(
    type="http_request", family="action", ports=fixed_ports("ok", "error"), execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, label=N_("Requisição HTTP"),
    on_http_result=on_http_result, template_fields=template_fields,
    saves=lambda data: data.get("save_as"),
    preset=lambda _, flow_id: {"method": "GET", "url": "https://example.com/"},
    port_labels=lambda _, data: {"ok": _("Sucesso"), "error": _("Erro")},
)
