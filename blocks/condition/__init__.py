"""Condition block: JSONLogic rules evaluated in order; the first true one picks the port."""
from pathlib import Path

from blocks.base import BlockKind, Context, Result, load_schema

FOLDER = Path(__file__).parent


def ports(data: dict) -> list[str]:
    return [rule["port"] for rule in data.get("rules", [])] + ["else"]


def execute(block: dict, ctx: Context) -> Result:
    for rule in block["data"]["rules"]:
        if ctx.evaluate(rule["when"]):
            return Result(port=rule["port"])
    return Result(port="else")


BLOCK = BlockKind(
    type="condition", family="action", ports=ports, execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, label_pt="Condição", label_en="Condition",
    logic_fields=lambda data: [rule.get("when") for rule in data.get("rules", [])],
    # No rule yet: the form opens with a blank builder row, never a made-up variable.
    preset=lambda _, flow_id: {"rules": []},
    port_labels=lambda _, data: {"else": _("Senão")},
)
