"""The condition builder's rows ⇄ JSONLogic (DESIGN §10.1), pure functions.

A rule the builder can show is one comparison, or two or more joined by ``and``/``or``::

    {"==": [{"var": V}, X]}   "!=" "<" "<=" ">" ">=" likewise
    {"in": [X, {"var": V}]}   contains
    {"!!": {"var": V}}        is filled
    {"!": {"var": V}}         is empty

with ``V`` a variable name and ``X`` a text or a number. Anything else is an advanced
rule (:func:`rule_to_rows` answers ``None``) and is edited as raw JSONLogic, so nothing is
ever lost: ``rows_to_rule(*rule_to_rows(r)) == r`` for every rule the builder shows.
"""
from __future__ import annotations

import math
import re
from typing import Any

JOINS = ("all", "any")
JOIN_OPERATOR = {"all": "and", "any": "or"}
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
#: Every operator of a row, in the order the builder lists them.
OPERATORS = (*COMPARISONS, "in", "filled", "empty")
UNARY = {"filled": "!!", "empty": "!"}
ORDERING = ("<", "<=", ">", ">=")
#: The variable holding the contact's tags in a rule's data (see engine.core.rule_data).
TAGS_VARIABLE = "contact.tags"

def _is_var(node: Any) -> bool:
    return (isinstance(node, dict) and len(node) == 1 and isinstance(node.get("var"), str)
            and node["var"] != "")


def _is_value(value: Any) -> bool:
    """A value a row can hold: text, or a finite number (booleans are advanced)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int)


def comparison_to_row(node: Any) -> dict | None:
    """One comparison as ``{"var", "op", "value"}``, or None when it is not in the subset."""
    if not isinstance(node, dict) or len(node) != 1:
        return None
    (op, args), = node.items()
    if op in COMPARISONS:
        if (isinstance(args, list) and len(args) == 2 and _is_var(args[0])
                and _is_value(args[1])):
            return {"var": args[0]["var"], "op": op, "value": args[1]}
        return None
    if op == "in":
        if (isinstance(args, list) and len(args) == 2 and _is_var(args[1])
                and _is_value(args[0])):
            return {"var": args[1]["var"], "op": "in", "value": args[0]}
        return None
    for name, symbol in UNARY.items():
        if op == symbol and _is_var(args):
            return {"var": args["var"], "op": name, "value": None}
    return None


def rule_to_rows(rule: Any) -> tuple[str, list[dict]] | None:
    """``(join, rows)`` for a rule in the builder's subset, else None (advanced)."""
    row = comparison_to_row(rule)
    if row is not None:
        return "all", [row]
    if isinstance(rule, dict) and len(rule) == 1:
        (op, args), = rule.items()
        join = next((j for j, symbol in JOIN_OPERATOR.items() if symbol == op), None)
        if join and isinstance(args, list) and len(args) >= 2:
            rows = [comparison_to_row(part) for part in args]
            if all(r is not None for r in rows):
                return join, rows  # type: ignore[return-value]
    return None


def row_to_comparison(row: dict) -> dict:
    op, var = row["op"], {"var": row["var"]}
    if op in UNARY:
        return {UNARY[op]: var}
    if op == "in":
        return {"in": [row["value"], var]}
    return {op: [var, row["value"]]}


def rows_to_rule(join: str, rows: list[dict]) -> dict:
    """The JSONLogic for rows (one row: the comparison alone; more: joined)."""
    if len(rows) == 1:
        return row_to_comparison(rows[0])
    return {JOIN_OPERATOR[join]: [row_to_comparison(r) for r in rows]}


def value_text(value: Any) -> str:
    """How a row's value shows in its text box."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def value_type(value: Any) -> str:
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else "text"


def read_value(text: str, kind: str, op: str) -> Any:
    """A row's typed value from its text box.

    ``kind`` is the type the value had when the form was shown (``number``/``text``),
    or empty for a new row: then an ordering comparison ("é maior que 18") takes a
    number and the rest take text, as the author typed it.
    """
    if op in UNARY:
        return None
    stripped = text.strip()
    wants_number = kind == "number" or (kind == "" and op in ORDERING)
    if wants_number:
        number = _number(stripped)
        if number is not None:
            return number
    return text if kind == "text" else stripped


def _number(text: str) -> int | float | None:
    """``18`` → 18, ``12,5`` / ``12.5`` → 12.5; anything else (or not finite) → None."""
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        number = float(text.replace(",", ".") if "." not in text else text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
