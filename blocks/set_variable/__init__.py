"""Set variable block: a template string, a JSONLogic expression, or a literal value."""
from pathlib import Path

from blocks.base import N_, BlockKind, Context, Result, fixed_ports, load_schema

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    data = block["data"]
    value = data["value"]
    if isinstance(value, str):
        value = ctx.render(value)
    elif isinstance(value, dict):
        value = ctx.evaluate(value)
    return Result(port="next", set_vars={data["name"]: value})


BLOCK = BlockKind(
    type="set_variable", family="action", ports=fixed_ports("next"), execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, label=N_("Definir variável"),
    template_fields=lambda data: [data["value"]] if isinstance(data.get("value"), str) else [],
    logic_fields=lambda data: [data["value"]] if isinstance(data.get("value"), dict) else [],
    saves=lambda data: data.get("name"),
    preset=lambda _, flow_id: {"name": "variavel", "value": ""},
)
