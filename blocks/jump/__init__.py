"""Jump block: continues in another published flow (at its start or a given block)."""
from pathlib import Path

from blocks.base import N_, BlockKind, Context, LintContext, Problem, Result, load_schema

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    data = block["data"]
    jump = {"type": "jump", "flow_id": data["flow_id"], "block_id": data.get("block_id")}
    return Result(effects=[jump], wait="jump")


def lint(data: dict, ctx: LintContext) -> list[Problem]:
    """A jump to a flow (or a block of it) that does not exist."""
    target = data["flow_id"]
    if target not in ctx.flows:
        return [("error", "unknown_jump_flow", {"flow_id": target})]
    if data.get("block_id") and data["block_id"] not in ctx.flows[target]:
        return [("error", "unknown_jump_block", {"flow_id": target, "target": data["block_id"]})]
    return []


BLOCK = BlockKind(
    type="jump", family="action", ports=lambda data: [], execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, label=N_("Ir para fluxo"),
    preset=lambda _, flow_id: {"flow_id": flow_id}, port_labels=lambda _, data: {},
    jumps_to=lambda data: data.get("flow_id"), lint=lint,
)
