"""Remove tag block."""
from pathlib import Path

from blocks.base import N_, BlockKind, Context, Result, fixed_ports, load_schema

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    return Result(port="next", effects=[{"type": "remove_tag", "tag": block["data"]["tag"]}])


BLOCK = BlockKind(
    type="remove_tag", family="action", ports=fixed_ports("next"), execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, label=N_("Remover etiqueta"),
    preset=lambda _, flow_id: {"tag": _("etiqueta")},
)
