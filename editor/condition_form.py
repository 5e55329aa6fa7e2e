"""The condition block's form: rules as builder rows or raw JSONLogic (DESIGN §10.1).

The conversion itself is pure (``blocks/condition/builder.py``); this module turns a
rule list into what the form shows (:func:`rule_views`), reads the submitted form back
(:func:`read_rules`) and names variables and operators in the interface language.

Form fields, one set per rule (every rule's ``<li>`` carries exactly one of each)::

    rules.key    a key naming this rule's rows in this rendering
    rules.mode   "builder" or "advanced"
    rules.port   the rule's out port
    rules.when   the raw JSONLogic (advanced; empty in builder mode)
    cond.<key>.join                          "all" | "any"
    cond.<key>.var / .op / .value / .type    one per row

Buttons that re-render the form without saving (htmx posts the form with the button's
name): ``_add_rule``, ``_add_row=<key>``, ``_switch=<key>`` (builder ⇄ advanced).
"""
from __future__ import annotations

import json
import uuid
from typing import Any

from flask_babel import gettext as _

from blocks.condition.builder import (
    JOINS,
    OPERATORS,
    TAGS_VARIABLE,
    UNARY,
    read_value,
    rows_to_rule,
    rule_to_rows,
    value_text,
    value_type,
)

CONTACT_VARIABLES = ("contact.name", "contact.phone", TAGS_VARIABLE)
PREVIEW_BUTTONS = ("_add_rule", "_add_row", "_switch")


def operator_labels() -> dict[str, str]:
    return {"==": _("é igual a"), "!=": _("é diferente de"), "<": _("é menor que"),
            "<=": _("é no máximo"), ">": _("é maior que"), ">=": _("é no mínimo"),
            "in": _("contém"), "filled": _("está preenchida"), "empty": _("está vazia")}


def variable_label(name: str) -> str:
    if name not in CONTACT_VARIABLES:
        return name
    labels = {"contact.name": _("Nome do contato"), "contact.phone": _("Telefone do contato"),
              TAGS_VARIABLE: _("Etiquetas do contato")}
    return labels[name]


def variable_choices(saved: list[str]) -> list[tuple[str, str]]:
    """``[(name, label)]`` for the variable picker: saved variables, then the contact's."""
    names = [n for n in saved if n not in CONTACT_VARIABLES and not n.startswith("contact.")]
    return [(n, n) for n in names] + [(n, variable_label(n)) for n in CONTACT_VARIABLES]


def _new_key() -> str:
    return "n" + uuid.uuid4().hex[:8]


def _row_view(row: dict) -> dict:
    return {"var": row["var"], "op": row["op"], "value": value_text(row.get("value")),
            "type": value_type(row.get("value")) if row.get("value") is not None else ""}


def blank_row() -> dict:
    return {"var": "", "op": "==", "value": "", "type": ""}


def rule_views(rules: list[dict]) -> list[dict]:
    """What the form shows for each rule: builder rows when the rule fits, else its JSON."""
    views = []
    for index, rule in enumerate(rules):
        when = rule.get("when")
        parsed = rule_to_rows(when)
        view = {"key": f"r{index}", "port": rule.get("port", ""), "join": "all", "rows": [],
                "when_text": ""}
        if parsed is None:
            view["mode"] = "advanced"
            view["when_text"] = when if isinstance(when, str) else json.dumps(
                when, ensure_ascii=False, indent=2)
        else:
            view["mode"] = "builder"
            view["join"], rows = parsed
            view["rows"] = [_row_view(r) for r in rows]
        views.append(view)
    return views


def new_rule_view(port: str = "") -> dict:
    return {"key": _new_key(), "port": port, "mode": "builder", "join": "all",
            "rows": [blank_row()], "when_text": ""}


def _rows_of(form, key: str) -> list[dict]:
    columns = {c: form.getlist(f"cond.{key}.{c}") for c in ("var", "op", "value", "type")}
    count = len(columns["op"])
    return [{c: (columns[c][i] if i < len(columns[c]) else "") for c in columns}
            for i in range(count)]


def read_rules(form) -> tuple[list[dict], list[dict], dict[str, str]]:
    """The submitted rules: ``(rules, views, errors)``.

    ``views`` is the form as the person left it (to show again); ``errors`` maps
    ``rules.<n>.when`` / ``rules.<n>.port`` to a message. A rule left entirely blank is
    dropped; a rule without a port gets ``regra<n>``.
    """
    ports, whens = form.getlist("rules.port"), form.getlist("rules.when")
    keys, modes = form.getlist("rules.key"), form.getlist("rules.mode")
    rules: list[dict] = []
    views: list[dict] = []
    errors: dict[str, str] = {}
    for index, key in enumerate(keys):
        port = (ports[index] if index < len(ports) else "").strip()
        mode = modes[index] if index < len(modes) else "builder"
        raw = whens[index] if index < len(whens) else ""
        rows = _rows_of(form, key)
        join = form.get(f"cond.{key}.join") or "all"
        join = join if join in JOINS else "all"
        view = {"key": key, "port": port, "mode": mode, "join": join,
                "rows": rows if mode == "builder" else [], "when_text": raw}
        if mode == "builder":
            filled = [r for r in rows if r["var"].strip() or r["value"].strip()]
            if not port and not filled:
                continue  # a rule someone added and left blank
        elif not port and not raw.strip():
            continue
        number = len(rules)
        views.append(view)
        if not port:
            taken = {r["port"] for r in rules} | set(ports)
            port = next(f"regra{n}" for n in range(number + 1, number + 100)
                        if f"regra{n}" not in taken)
            view["port"] = port
        when: Any = raw
        if mode == "builder":
            typed = []
            for row in rows:
                if not (row["var"].strip() or row["value"].strip()):
                    continue
                op = row["op"] if row["op"] in OPERATORS else "=="
                if not row["var"].strip():
                    errors.setdefault(f"rules.{number}.when", _("Escolha a variável de cada condição."))
                    continue
                typed.append({"var": row["var"].strip(), "op": op,
                              "value": read_value(row["value"], row["type"], op)})
            if not typed and f"rules.{number}.when" not in errors:
                errors[f"rules.{number}.when"] = _("Adicione ao menos uma condição.")
            when = rows_to_rule(join, typed) if typed else None
        elif raw.strip():
            try:
                when = json.loads(raw)
            except ValueError as exc:
                errors[f"rules.{number}.when"] = _(
                    "Não é JSON válido (linha %(line)d, coluna %(col)d).", line=exc.lineno,
                    col=exc.colno)
        else:
            errors[f"rules.{number}.when"] = _("Preencha este campo.")
        rules.append({"port": port, "when": when})
    return rules, views, errors


def apply_preview(form, views: list[dict]) -> tuple[list[dict], str | None]:
    """Apply the re-render button that was pressed; ``(views, notice)``."""
    notice = None
    if form.get("_add_rule"):
        views.append(new_rule_view())
    key = form.get("_add_row")
    for view in views:
        if key and view["key"] == key:
            view["rows"].append(blank_row())
    key = form.get("_switch")
    for view in views:
        if not key or view["key"] != key:
            continue
        if view["mode"] == "builder":
            rows = [r for r in view["rows"] if r["var"].strip()]
            typed = [{"var": r["var"].strip(), "op": r["op"] if r["op"] in OPERATORS else "==",
                      "value": read_value(r["value"], r["type"], r["op"])} for r in rows]
            view["mode"] = "advanced"
            view["when_text"] = json.dumps(rows_to_rule(view["join"], typed), ensure_ascii=False,
                                           indent=2) if typed else ""
        else:
            try:
                parsed = rule_to_rows(json.loads(view["when_text"])) if view["when_text"].strip() \
                    else ("all", [])
            except ValueError:
                parsed = None
            if parsed is None:
                notice = _("Esta regra usa recursos que o construtor não mostra; ela continua "
                           "como regra avançada (JSONLogic).")
                continue
            view["mode"] = "builder"
            view["join"] = parsed[0]
            view["rows"] = [_row_view(r) for r in parsed[1]] or [blank_row()]
    return views, notice


def is_preview(form) -> bool:
    return any(form.get(name) for name in PREVIEW_BUTTONS)


def describe_rule(when: Any, labels: dict[str, str] | None = None,
                  joins: tuple[str, str] | None = None) -> str:
    """A rule in words for the card: "sabor é igual a Calabresa e …", else its JSON."""
    parsed = rule_to_rows(when)
    if parsed is None:
        return json.dumps(when, ensure_ascii=False, separators=(", ", ": "))
    join, rows = parsed
    labels = labels or operator_labels()
    joins = joins or (_("e"), _("ou"))
    parts = []
    for row in rows:
        text = f"{variable_label(row['var'])} {labels[row['op']]}"
        if row["op"] not in UNARY:
            text += f" {value_text(row['value'])}"
        parts.append(text)
    return (" " + (joins[0] if join == "all" else joins[1]) + " ").join(parts)
