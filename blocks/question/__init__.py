"""Question block: asks, waits for the answer, validates it and saves it.

Ports: ``answered`` (or one per option id for a choice), ``invalid`` after
``max_attempts`` invalid answers, ``timeout`` when ``timeout_s`` passes unanswered.
"""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import regex

from blocks.base import (
    N_,
    BlockKind,
    Context,
    Reply,
    Result,
    TimerKind,
    Translate,
    load_schema,
    message,
)
from blocks.text import normalize

FOLDER = Path(__file__).parent
DEFAULT_MAX_ATTEMPTS = 3

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATE_FORMATS = (
    re.compile(r"^(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>\d{4})$"),
    re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$"),
)


def ports(data: dict) -> list[str]:
    if data.get("input") == "choice":
        first = [o["id"] for o in data.get("options", [])]
    else:
        first = ["answered"]
    return [*first, "invalid", "timeout"]


def option_labels(data: dict) -> list[str]:
    return [o["label"] for o in data.get("options", [])] if data.get("input") == "choice" else []


def execute(block: dict, ctx: Context) -> Result:
    data = block["data"]
    out = message(ctx.render(data["text"]), option_labels(data), block["id"])
    effects = []
    if data.get("timeout_s"):
        effects.append({"type": "schedule_timer", "kind": "question_timeout",
                        "due_at": ctx.now + data["timeout_s"], "block_id": block["id"]})
    return Result(outbound=[out], effects=effects, wait="input")


def match_option(data: dict, text: str) -> dict | None:
    """The option a reply picks: by its number ("1") or its label, ignoring case and accents."""
    options = data.get("options") or []
    wanted = normalize(text)
    if wanted.isdigit() and len(wanted) <= 6 and 1 <= int(wanted) <= len(options):
        return options[int(wanted) - 1]
    for option in options:
        if normalize(option["label"]) == wanted:
            return option
    return None


def _number(text: str):
    cleaned = text.strip().replace(" ", "")
    if len(cleaned) > 40:  # no one answers a question with a 40-digit number
        return None
    if re.fullmatch(r"-?\d{1,3}(\.\d{3})+(,\d+)?", cleaned):  # 1.234,56
        cleaned = cleaned.replace(".", "").replace(",", ".")
    else:
        cleaned = cleaned.replace(",", ".")
    if not re.fullmatch(r"-?\d+(\.\d+)?", cleaned):
        return None
    value = float(cleaned)
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return int(value) if value.is_integer() and "." not in cleaned else value


def _phone(text: str):
    digits = re.sub(r"[\s().-]", "", text.strip())
    if not re.fullmatch(r"\+?\d{8,15}", digits):
        return None
    return digits


def _date(text: str):
    for pattern in DATE_FORMATS:
        found = pattern.match(text.strip())
        if found:
            try:
                return date(int(found["y"]), int(found["m"]), int(found["d"])).isoformat()
            except ValueError:
                return None
    return None


PATTERN_TIMEOUT_S = 0.05
MAX_PATTERN_INPUT = 1000


def pattern_matches(pattern: str, text: str) -> bool:
    """The author's regex against a customer's answer, bounded so that a pathological
    pattern can never stall the bot (the ``regex`` module supports a timeout)."""
    if len(text) > MAX_PATTERN_INPUT:
        return False
    try:
        return regex.fullmatch(pattern, text, timeout=PATTERN_TIMEOUT_S) is not None
    except (regex.error, TimeoutError):
        return False


PARSERS = {
    "text": lambda t: t.strip() or None,
    "number": _number,
    "email": lambda t: t.strip() if EMAIL.match(t.strip()) else None,
    "phone": _phone,
    "date": _date,
}


def parse_reply(block: dict, text: str, ctx: Context) -> Reply:
    data = block["data"]
    if data["input"] == "choice":
        option = match_option(data, text)
        if option is None:
            return Reply(valid=False)
        return Reply(valid=True, value=option["label"], port=option["id"])
    value = PARSERS[data["input"]](text)
    if value is None:
        return Reply(valid=False)
    pattern = data.get("pattern")
    if pattern and not pattern_matches(pattern, text.strip()):
        return Reply(valid=False)
    return Reply(valid=True, value=value, port="answered")


def template_fields(data: dict) -> list[str]:
    return [data.get("text", "")] + ([data["invalid_text"]] if data.get("invalid_text") else [])


def preset(_: Translate, flow_id: str) -> dict:
    return {"text": _("Qual opção você prefere?"), "input": "choice",
            "options": [{"id": "o1", "label": _("Opção 1")}, {"id": "o2", "label": _("Opção 2")}],
            "save_as": "resposta"}


def port_labels(_: Translate, data: dict) -> dict[str, str]:
    labels = {"answered": _("Respondida"), "invalid": _("Resposta inválida"),
              "timeout": _("Sem resposta")}
    for option in data.get("options") or []:
        if isinstance(option, dict) and "id" in option:
            labels[option["id"]] = option.get("label") or option["id"]
    return labels


BLOCK = BlockKind(
    type="question", family="question", ports=ports, execute=execute,
    data_schema=load_schema(FOLDER), folder=FOLDER, parse_reply=parse_reply,
    label_pt="Pergunta", label_en="Question",
    timers=(TimerKind("question_timeout", "timeout", N_("Prazo da pergunta")),),
    default_attempts=DEFAULT_MAX_ATTEMPTS, pauses_run=True, template_fields=template_fields,
    saves=lambda data: data.get("save_as"), preset=preset, port_labels=port_labels,
)
