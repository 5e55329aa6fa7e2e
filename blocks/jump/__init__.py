"""Jump block: continues in another published flow (at its start or a given block)."""
from pathlib import Path

from blocks.base import BlockKind, Context, Result, load_schema

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    data = block["data"]
    jump = {"type": "jump", "flow_id": data["flow_id"], "block_id": data.get("block_id")}
    return Result(effects=[jump], wait="jump")


BLOCK = BlockKind(
    type="jump", family="action", ports=lambda data: [], execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, label_pt="Ir para fluxo", label_en="Jump to flow",
    preset=lambda _, flow_id: {"flow_id": flow_id}, port_labels=lambda _, data: {},
)
