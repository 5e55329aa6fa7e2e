"""Question block: asks, waits for the answer, validates it and saves it.

Ports: ``answered`` (or one per option id for a choice), ``invalid`` after
``max_attempts`` invalid answers, ``timeout`` when ``timeout_s`` passes unanswered.
A ``rating`` question takes a score from 1 to 5 (digits, emoji stars or number words,
see :func:`parse_rating`), offers five buttons "1".."5" and saves an integer;
``csat: true`` marks the question whose answers the reports count as CSAT.
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
    LintContext,
    Problem,
    Reply,
    Result,
    TimerKind,
    Translate,
    load_schema,
    message,
    whatsapp_problems,
)
from blocks.text import normalize

FOLDER = Path(__file__).parent
DEFAULT_MAX_ATTEMPTS = 3
UNSAVED_PORTS = frozenset({"invalid", "timeout"})  # taken without an answer to save
# Sent to the customer (in the flow's language, pt-BR) when ``invalid_text`` is not set.
DEFAULT_INVALID_TEXT = {
    "text": "Não entendi sua resposta. Pode tentar de novo?",
    "number": "Por favor, responda com um número.",
    "email": "Por favor, informe um e-mail válido (exemplo: nome@dominio.com).",
    "phone": "Por favor, informe um telefone válido com DDD.",
    "date": "Por favor, informe uma data no formato DD/MM/AAAA.",
    "choice": "Por favor, escolha uma das opções (pode responder com o número).",
    "rating": "Por favor, responda com uma nota de 1 a 5.",
}

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


RATING_BUTTONS = ["1", "2", "3", "4", "5"]


def option_labels(data: dict) -> list[str]:
    """The buttons shown with the question: a choice's options, a rating's five scores."""
    if data.get("input") == "rating":
        return list(RATING_BUTTONS)
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


STARS = {"\u2b50", "\u2605", "\U0001f31f"}  # ⭐ ★ 🌟 (each counts as one)
# Invisible parts of emoji sequences (variation selector, zero-width joiner) and spaces.
_EMOJI_GLUE = re.compile(r"[\ufe0e\ufe0f\u200d\s]+")
RATING_WORDS = {
    "um": 1, "uma": 1, "one": 1,
    "dois": 2, "duas": 2, "two": 2,
    "tres": 3, "three": 3,
    "quatro": 4, "four": 4,
    "cinco": 5, "five": 5,
}
# Words people wrap a score in: "nota 4", "dou 5 estrelas", "my rating is 4".
RATING_FILLERS = {
    "nota", "notas", "dou", "daria", "eu", "minha", "meu", "e", "a", "o", "de", "sua",
    "estrela", "estrelas", "estrelinha", "estrelinhas", "ponto", "pontos", "avaliacao",
    "i", "give", "would", "it", "my", "is", "rating", "score", "star", "stars", "points",
}
_RATING_TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[^\W\d_]+")
_RATING_ALLOWED = re.compile(r"^[\w\s/.,:!?]*$")
_OUT_OF_FIVE = re.compile(r"(?:/|\bde\b|\bout of\b)\s*(?:5|cinco|five)\s*[.!?]*$")


def parse_rating(text: str) -> int | None:
    """A score from 1 to 5 in a customer's answer, or None.

    ``"5"``, ``"⭐⭐⭐"`` (each star counts), ``"cinco"``, ``"nota 4"``, ``"4/5"``, ``"four"``
    are scores; ``"4.5"``, ``"0"``, ``"6"``, six stars or any other text are not.
    """
    if not isinstance(text, str) or len(text) > 80:
        return None
    stars = sum(1 for c in text if c in STARS)
    if stars:
        rest = _EMOJI_GLUE.sub("", "".join(c for c in text if c not in STARS))
        if not rest:
            return stars if stars <= 5 else None
        if stars > 1:
            return None  # "⭐⭐ 5": which one did they mean?
        text = "".join(c for c in text if c not in STARS)  # "5 ⭐": the star is decoration
    norm = normalize(text)
    if not norm or not _RATING_ALLOWED.match(norm):
        return None
    norm = _OUT_OF_FIVE.sub("", norm).strip()
    tokens = [t for t in _RATING_TOKEN.findall(norm) if t not in RATING_FILLERS]
    if len(tokens) != 1:
        return None
    token = tokens[0]
    if token.isdigit():
        value = int(token)
        return value if 1 <= value <= 5 and len(token) == 1 else None
    return RATING_WORDS.get(token)


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
    if data["input"] == "rating":
        score = parse_rating(text)
        return Reply(valid=False) if score is None else Reply(valid=True, value=score, port="answered")
    value = PARSERS[data["input"]](text)
    if value is None:
        return Reply(valid=False)
    pattern = data.get("pattern")
    if pattern and not pattern_matches(pattern, text.strip()):
        return Reply(valid=False)
    return Reply(valid=True, value=value, port="answered")


def lint(data: dict, ctx: LintContext) -> list[Problem]:
    """WhatsApp limits, answers that lead nowhere, an unconnected ``invalid`` or
    ``timeout``, a pattern that does not compile."""
    problems = whatsapp_problems(data.get("text", ""), [o["label"] for o in data.get("options") or []])
    problems += [("warning", "port_unconnected", {"port": port}) for port in ports(data)
                 if port not in UNSAVED_PORTS and not ctx.connected(port)]
    # A csat question never takes "invalid": an answer that is not a rating ends the
    # run and is handled as a new message (DESIGN §10.8).
    if not data.get("csat") and not ctx.connected("invalid"):
        problems.append(("warning", "invalid_port_unconnected",
                         {"port": "invalid", "attempts": data.get("max_attempts", DEFAULT_MAX_ATTEMPTS)}))
    if data.get("timeout_s") and not ctx.connected("timeout"):
        problems.append(("warning", "timeout_port_unconnected", {"port": "timeout"}))
    if data.get("pattern"):
        try:
            regex.compile(data["pattern"])
        except regex.error as exc:
            problems.append(("error", "bad_pattern", {"error": str(exc)}))
    return problems


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
    label=N_("Pergunta"),
    timers=(TimerKind("question_timeout", "timeout", N_("Prazo da pergunta")),),
    default_attempts=DEFAULT_MAX_ATTEMPTS, pauses_run=True, template_fields=template_fields,
    saves=lambda data: data.get("save_as"), unsaved_ports=UNSAVED_PORTS, lint=lint,
    preset=preset, port_labels=port_labels,
    buttons=option_labels,
    invalid_text=lambda data: DEFAULT_INVALID_TEXT.get(data.get("input"), DEFAULT_INVALID_TEXT["text"]),
    variants=lambda _: [{"key": "csat", "label": _("Avaliação (CSAT)"),
                         "data": {"text": _("Como você avalia o nosso atendimento, de 1 a 5?"),
                                  "input": "rating", "save_as": "csat", "csat": True}}],
)
