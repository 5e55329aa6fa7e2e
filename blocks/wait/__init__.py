"""Wait block: holds the run for ``seconds`` (1 s to 365 days) through a durable timer."""
from pathlib import Path

from blocks.base import N_, BlockKind, Context, Result, TimerKind, fixed_ports, load_schema

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    due = ctx.now + block["data"]["seconds"]
    timer = {"type": "schedule_timer", "kind": "wait", "due_at": due, "block_id": block["id"]}
    return Result(effects=[timer], wait="timer")


BLOCK = BlockKind(
    type="wait", family="action", ports=fixed_ports("next"), execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, label=N_("Esperar"),
    timers=(TimerKind("wait", "next", N_("Espera do fluxo")),), pauses_run=True,
    preset=lambda _, flow_id: {"seconds": 60},
)
