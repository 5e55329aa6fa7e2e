"""Conclude conversation block: marks the conversation concluded and goes on."""
from pathlib import Path

from blocks.base import N_, BlockKind, Context, Result, fixed_ports, load_schema

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    effect = {"type": "conclude", "block_id": block["id"], "reason": block["data"].get("reason", "")}
    return Result(port="next", effects=[effect])


BLOCK = BlockKind(
    type="conclude_conversation", family="action", ports=fixed_ports("next"), execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER,
    label=N_("Concluir atendimento"),
    preset=lambda _, flow_id: {},
)
