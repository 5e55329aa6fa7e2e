"""Message block: sends a text (a template), optionally with quick-reply buttons."""
from pathlib import Path

from blocks.base import BlockKind, Context, Result, fixed_ports, load_schema, message

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    data = block["data"]
    text = ctx.render(data["text"])
    return Result(port="next", outbound=[message(text, data.get("buttons"), block["id"])])


BLOCK = BlockKind(
    type="message", family="message", ports=fixed_ports("next"), execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, label_pt="Mensagem", label_en="Message",
    template_fields=lambda data: [data.get("text", "")],
    preset=lambda _, flow_id: {"text": _("Nova mensagem")},
)
