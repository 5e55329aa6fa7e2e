"""Open conversation block: hands the customer to a person. The run is suspended here and
resumes from ``next`` when an agent concludes the conversation. The optional ``text`` (a
template) tells the customer so, instead of leaving them in silence."""
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
)

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    data = block["data"]
    effect = {"type": "open", "block_id": block["id"],
              "assign_to": data.get("assign_to"), "note": data.get("note", "")}
    # Outside business hours the conversation still opens (agents see it when they
    # arrive), and the customer is told when that is instead (DESIGN §10.3).
    text = ctx.closed_message() or (ctx.render(data["text"]) if data.get("text") else "")
    outbound = [message(text, None, block["id"], rendered_template(data, ctx))] if text else []
    return Result(outbound=outbound, effects=[effect], wait="suspended")


BLOCK = BlockKind(
    type="open_conversation", family="action", ports=fixed_ports("next"), execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER,
    label=N_("Abrir atendimento"),
    pauses_run=True, resume_on_conclude="next", preset=lambda _, flow_id: {"text": _("Um momento, vou te passar para alguém da nossa equipe.")},
    template_fields=lambda data: ([data["text"]] if data.get("text") else [])
    + list((data.get("template") or {}).get("params", [])),
    lint=template_problems,
    # DESIGN: `next` is taken when the conversation is concluded
    port_labels=lambda _, data: {"next": _("Depois de concluído")},
)
