"""Business hours block: goes on by ``open`` while the shop is open (the schedule of the
"Configurações" page, DESIGN §10.3), by ``closed`` outside it. No schedule set, and in
the simulator and flow tests, it is always open."""
from pathlib import Path

from blocks.base import N_, BlockKind, Context, Result, fixed_ports, load_schema

FOLDER = Path(__file__).parent


def execute(block: dict, ctx: Context) -> Result:
    return Result(port="open" if ctx.is_open() else "closed")


BLOCK = BlockKind(
    type="business_hours", family="action", ports=fixed_ports("open", "closed"), execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER,
    label=N_("Horário de atendimento"),
    preset=lambda _, flow_id: {},
    port_labels=lambda _, data: {"open": _("Aberto"), "closed": _("Fechado")},
)
