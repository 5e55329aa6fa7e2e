"""Condition block: JSONLogic rules evaluated in order; the first true one picks the port."""
from pathlib import Path

from blocks.base import N_, BlockKind, Context, LintContext, Problem, Result, load_schema

FOLDER = Path(__file__).parent


def ports(data: dict) -> list[str]:
    return [rule["port"] for rule in data.get("rules", [])] + ["else"]


def execute(block: dict, ctx: Context) -> Result:
    for rule in block["data"]["rules"]:
        if ctx.evaluate(rule["when"]):
            return Result(port=rule["port"])
    return Result(port="else")


def lint(data: dict, ctx: LintContext) -> list[Problem]:
    """Rules with operators JSONLogic does not know (a typo makes a rule silently false),
    and ports that lead nowhere."""
    problems: list[Problem] = []
    for rule in data.get("rules", []):
        unknown = ctx.unknown_operators(rule.get("when"))
        if unknown:
            problems.append(("error", "bad_jsonlogic", {"error": ", ".join(sorted(unknown))}))
    return problems + [("warning", "port_unconnected", {"port": port})
                       for port in ports(data) if not ctx.connected(port)]


BLOCK = BlockKind(
    type="condition", family="action", ports=ports, execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, label=N_("Condição"),
    logic_fields=lambda data: [rule.get("when") for rule in data.get("rules", [])],
    # No rule yet: the form opens with a blank builder row, never a made-up variable.
    preset=lambda _, flow_id: {"rules": []},
    port_labels=lambda _, data: {"else": _("Senão")}, lint=lint,
)
