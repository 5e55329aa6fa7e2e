"""Message block: sends a text (a template), optionally with quick-reply buttons."""
from pathlib import Path

from blocks.base import (
    N_,
    BlockKind,
    Context,
    Result,
    fixed_ports,
    load_schema,
    message,
    rendered_template,
    template_problems,
    whatsapp_problems,
)

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    data = block["data"]
    text = ctx.render(data["text"])
    return Result(port="next", outbound=[message(text, data.get("buttons"), block["id"],
                                                 rendered_template(data, ctx))])


BLOCK = BlockKind(
    type="message", family="message", ports=fixed_ports("next"), execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, label=N_("Mensagem"),
    template_fields=lambda data: [data.get("text", ""), *(data.get("template") or {}).get("params", [])],
    preset=lambda _, flow_id: {"text": _("Nova mensagem")},
    lint=lambda data, ctx: whatsapp_problems(data.get("text", ""), data.get("buttons") or [])
    + template_problems(data, ctx),
    buttons=lambda data: list(data.get("buttons") or []),
)
