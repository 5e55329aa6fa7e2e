"""What a block kind is, and the one shape every executor returns.

Executors are pure: they get the block, a :class:`Context` (variables, contact, the
current time as data, a template renderer) and return a :class:`Result`. Only
``engine/service/`` (:mod:`engine.service.effects`) performs the effects a result names.
"""
from __future__ import annotations

import json
from collections.abc import Callable
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


@dataclass(frozen=True)
class BlockKind:
    type: str
    family: str
    ports: Callable[[dict], list[str]]
    execute: Callable[[dict, Context], Result]
    data_schema: dict
    folder: Path
    parse_reply: Callable[[dict, str, Context], Reply] | None = None
    # Port names that always exist regardless of data (used by the editor's palette).
    label_pt: str = ""
    label_en: str = ""

    def template(self, name: str) -> str:
        """The text of ``form.html`` or ``node.html`` beside this kind."""
        return (self.folder / name).read_text(encoding="utf-8")


def load_schema(folder: Path) -> dict:
    return json.loads((folder / "schema.json").read_text(encoding="utf-8"))


def fixed_ports(*names: str) -> Callable[[dict], list[str]]:
    names_list = list(names)
    return lambda data: list(names_list)


def message(text: str, buttons: list[str] | None = None, block_id: str | None = None) -> dict:
    return {"text": text, "buttons": list(buttons or []), "block_id": block_id}
