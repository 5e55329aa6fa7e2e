"""Open conversation block: hands the customer to a person. The run is suspended here and
resumes from ``next`` when an agent concludes the conversation."""
from pathlib import Path

from blocks.base import BlockKind, Context, Result, fixed_ports, load_schema

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    data = block["data"]
    effect = {"type": "open", "block_id": block["id"],
              "assign_to": data.get("assign_to"), "note": data.get("note", "")}
    return Result(effects=[effect], wait="suspended")


BLOCK = BlockKind(
    type="open_conversation", family="action", ports=fixed_ports("next"), execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER,
    label_pt="Abrir atendimento", label_en="Open conversation",
    pauses_run=True, resume_on_conclude="next", preset=lambda _, flow_id: {},
)
