"""Add tag block: labels the conversation (tags live in the conversation's state)."""
from pathlib import Path

from blocks.base import N_, BlockKind, Context, Result, fixed_ports, load_schema

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    return Result(port="next", effects=[{"type": "add_tag", "tag": block["data"]["tag"]}])


BLOCK = BlockKind(
    type="add_tag", family="action", ports=fixed_ports("next"), execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, label=N_("Adicionar etiqueta"),
    preset=lambda _, flow_id: {"tag": _("etiqueta")},
)
