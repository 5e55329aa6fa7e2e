"""What a block kind is, and the one shape every executor returns.

Executors are pure: they get the block, a :class:`Context` (variables, contact, the
current time as data, a template renderer) and return a :class:`Result`. Only
``engine/service/`` (:mod:`engine.service.effects`) performs the effects a result names.

A :class:`BlockKind` also describes itself to the rest of papo, so that a new kind is
one folder plus one registry line: the engine asks it which timers it waits on and what
to do when they fire, when an HTTP answer comes back or when a paused conversation is
concluded; the linter which texts are templates, which rules are JSONLogic, which
variable it saves and whether a cycle through it can spin; the editor its palette preset
and port names; the inbox and the OpenAPI document its timer kinds.

Texts for people (port names, presets, timer names) are pt-BR message ids of the one
catalog: the editor passes its ``gettext`` in as ``_`` (so extraction finds them), and
:data:`TimerKind.label` is marked with :func:`N_`.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAMILIES = ("message", "question", "action")


@dataclass
class Result:
    """What running one block produced.

    ``port`` is the out port to follow at once (None: the run stops here, see ``wait``).
    ``wait`` names what the run now waits for: ``"input"``, ``"timer"``, ``"suspended"``,
    ``"http"`` or ``"jump"``; None with no port ends the run.
    """

    port: str | None = None
    outbound: list[dict] = field(default_factory=list)
    set_vars: dict[str, Any] = field(default_factory=dict)
    effects: list[dict] = field(default_factory=list)
    wait: str | None = None
    log: list[dict] = field(default_factory=list)


@dataclass
class Reply:
    """How a question judged a customer's answer."""

    valid: bool
    value: Any = None
    port: str | None = None


@dataclass
class Context:
    """What an executor may read. ``now`` is epoch seconds, passed in by the event."""

    now: float
    vars: dict[str, Any]
    contact: dict[str, Any]
    tags: list[str]
    render: Callable[[str], str]
    evaluate: Callable[[Any], Any]
    flow_id: str = ""
    # Business hours (DESIGN §10.3): whether the shop is open now (no schedule set:
    # always), and the closed message to send instead of a handoff text (None: open, or
    # no message set).
    is_open: Callable[[], bool] = lambda: True
    closed_message: Callable[[], str | None] = lambda: None


def N_(msgid: str) -> str:
    """Marks a pt-BR text for the message catalog; returns it unchanged."""
    return msgid


Translate = Callable[..., str]  # the editor's gettext: ``_("Em seguida")``


@dataclass(frozen=True)
class TimerKind:
    """A timer a block schedules (the ``kind`` of its effect and of the timers row)."""

    name: str  # e.g. "wait", "question_timeout"
    port: str  # the port the run follows when it fires while the run waits here
    label: str  # what people call it (the inbox), a pt-BR message id marked with N_


def no_texts(data: dict) -> list:
    return []


# WhatsApp's limits for what a customer reads (DESIGN §2: lint warns over them).
WHATSAPP_MAX_BUTTONS = 3
WHATSAPP_MAX_LABEL = 20
WHATSAPP_MAX_TEXT = 4096

# A kind's own lint finding: (level, code, params). A ``port`` param is a port id; the
# linter names it as the editor does. Codes and messages are ``lint.<code>`` in
# ``engine.i18n``.
Problem = tuple[str, str, dict]


@dataclass(frozen=True)
class LintContext:
    """What a kind's own checks may ask the linter about the block and the flow."""

    connected: Callable[[str], bool]  # whether this port of the block leads to a block
    flows: Mapping[str, set[str]]  # every known flow id -> its block ids (jump targets)
    unknown_operators: Callable[[Any], set[str]]  # JSONLogic operators that do not exist
    # The synced WhatsApp templates, ``{(name, language): parameter count}``; None when
    # not known (a file linted without a database): templates are not checked then.
    whatsapp_templates: Mapping[tuple[str, str], int] | None = None


def no_problems(data: dict, ctx: LintContext) -> list[Problem]:
    return []


def whatsapp_problems(text: str, labels: list[str]) -> list[Problem]:
    """What WhatsApp would cut or refuse in a text with buttons (warnings)."""
    problems: list[Problem] = []
    if len(text) > WHATSAPP_MAX_TEXT:
        problems.append(("warning", "text_too_long", {"length": len(text)}))
    if len(labels) > WHATSAPP_MAX_BUTTONS:
        problems.append(("warning", "too_many_buttons", {"count": len(labels)}))
    problems += [("warning", "button_too_long", {"label": label, "length": len(label)})
                 for label in labels if len(label) > WHATSAPP_MAX_LABEL]
    return problems


def template_problems(data: dict, ctx: LintContext) -> list[Problem]:
    """A block's WhatsApp ``template`` against the synced ones: unknown name, unknown
    language, wrong parameter count (errors: WhatsApp would refuse it, DESIGN §10.4)."""
    template = data.get("template")
    if not isinstance(template, dict) or ctx.whatsapp_templates is None:
        return []
    name, language = template.get("name", ""), template.get("language", "")
    params = template.get("params") or []
    known = ctx.whatsapp_templates
    if (name, language) not in known:
        languages = sorted(lang for (n, lang) in known if n == name)
        if languages:
            return [("error", "template_language_unknown",
                     {"name": name, "language": language, "languages": ", ".join(languages)})]
        return [("error", "template_unknown", {"name": name})]
    expected = known[(name, language)]
    if len(params) != expected:
        return [("error", "template_param_count", {"name": name, "expected": expected,
                                                    "count": len(params)})]
    return []


def rendered_template(data: dict, ctx: Context) -> dict | None:
    """The block's WhatsApp template with its parameters rendered (None: it has none)."""
    template = data.get("template")
    if not isinstance(template, dict):
        return None
    return {"name": template["name"], "language": template["language"],
            "params": [ctx.render(p) for p in template.get("params") or []]}


def no_variable(data: dict) -> str | None:
    return None


def next_port_label(_: Translate, data: dict) -> dict[str, str]:
    return {"next": _("Em seguida")}


@dataclass(frozen=True)
class BlockKind:
    type: str
    family: str
    ports: Callable[[dict], list[str]]
    execute: Callable[[dict, Context], Result]
    data_schema: dict
    folder: Path
    parse_reply: Callable[[dict, str, Context], Reply] | None = None
    label: str = ""  # what people call the kind: a pt-BR message id, marked with N_
    # -- what the engine needs ------------------------------------------------------
    # The timers it schedules; a timer of one of these kinds that fires while the run
    # waits at this block follows the timer's port.
    timers: tuple[TimerKind, ...] = ()
    # Invalid answers a question takes before its ``invalid`` port (``max_attempts``).
    default_attempts: int = 0
    # ``data -> text``: what an answer the kind refused gets when the block sets no
    # ``invalid_text`` (before the question is asked again).
    invalid_text: Callable[[dict], str] = lambda data: ""
    # The port followed when the conversation is concluded while the flow paused here.
    resume_on_conclude: str | None = None
    # ``(block, ok, status, body) -> Result`` (port + variables) when an HTTP call it
    # asked for comes back.
    on_http_result: Callable[[dict, bool, int | None, Any], Result] | None = None
    # -- what the linter needs -------------------------------------------------------
    # The run stops here until the customer, a timer or a person moves it: a cycle
    # through this block cannot spin.
    pauses_run: bool = False
    template_fields: Callable[[dict], list[str]] = no_texts  # the texts it renders
    logic_fields: Callable[[dict], list] = no_texts  # the JSONLogic rules it evaluates
    saves: Callable[[dict], str | None] = no_variable  # the variable it saves
    # Ports taken without having saved that variable (a question's invalid/timeout).
    unsaved_ports: frozenset[str] = frozenset()
    jumps_to: Callable[[dict], str | None] = no_variable  # the flow it continues in
    # ``(data, LintContext) -> [Problem]``: its own checks (unconnected answers, WhatsApp
    # limits, a bad pattern…), after the generic ones (templates, graph, variables).
    lint: Callable[[dict, LintContext], list[Problem]] = no_problems
    buttons: Callable[[dict], list[str]] = no_texts  # the buttons its message carries
    # -- what the editor needs ---------------------------------------------------------
    # ``(_, flow_id) -> data`` for a block dropped from the palette (valid, so the draft
    # saves at once); None: filled from the schema's required fields.
    preset: Callable[[Translate, str], dict] | None = None
    # ``(_, data) -> {port: name}``: names people read on the canvas and in the forms.
    port_labels: Callable[[Translate, dict], dict[str, str]] = next_port_label
    # ``_ -> [{"key", "label", "data"}]``: extra palette items, the kind preconfigured for
    # a common job (``key`` names the item in the page).
    variants: Callable[[Translate], list[dict]] = no_texts

    def template(self, name: str) -> str:
        """The text of ``form.html`` or ``node.html`` beside this kind."""
        return (self.folder / name).read_text(encoding="utf-8")


def load_schema(folder: Path) -> dict:
    return json.loads((folder / "schema.json").read_text(encoding="utf-8"))


def fixed_ports(*names: str) -> Callable[[dict], list[str]]:
    names_list = list(names)
    return lambda data: list(names_list)


def message(text: str, buttons: list[str] | None = None, block_id: str | None = None,
            template: dict | None = None) -> dict:
    """An outbound message; ``template`` (WhatsApp, rendered) goes out instead of the text
    when the 24-hour window is closed."""
    out = {"text": text, "buttons": list(buttons or []), "block_id": block_id}
    if template is not None:
        out["template"] = template
    return out
