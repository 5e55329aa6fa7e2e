"""Trigger matching: which flow an unsolicited message starts. Pure: no database, no clock.

DESIGN §3: keyword triggers of published flows by priority (highest first, then flow id),
then the first flow with a default trigger. A request for a human (the handoff keywords)
is matched here too.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import regex

from blocks.text import contains_words, normalize
from engine.graph import CompiledFlow


def keyword_matches(trigger: dict, text: str, norm: str) -> bool:
    """Whether a keyword trigger matches ``text`` (``norm``: its normalized form)."""
    value = trigger["value"]
    if trigger["match"] == "exact":
        return normalize(value) == norm
    if trigger["match"] == "contains":
        return normalize(value) in norm
    if len(text) > 2000:
        return False
    try:
        return regex.search(value, norm, regex.IGNORECASE, timeout=0.05) is not None or \
            regex.search(value, text, regex.IGNORECASE, timeout=0.05) is not None
    except (regex.error, TimeoutError):
        return False


def match(candidates: Iterable[CompiledFlow], text: str) -> CompiledFlow | None:
    """The flow ``text`` starts among ``candidates`` (published flows), or None.

    A keyword trigger matches the whole text or one of its lines: a debounced burst
    ("oi" / "quero pedir") is read as one text, one message per line.
    """
    ordered = sorted(candidates, key=lambda f: (-int(f.doc.get("priority", 0)), f.id))
    readings = [(text, normalize(text))]
    if "\n" in text:
        readings += [(line, normalize(line)) for line in text.split("\n") if line.strip()]
    for flow in ordered:
        for trigger in flow.doc.get("triggers", []):
            if trigger["type"] == "keyword" and any(keyword_matches(trigger, t, n) for t, n in readings):
                return flow
    for flow in ordered:
        if any(t["type"] == "default" for t in flow.doc.get("triggers", [])):
            return flow
    return None


def match_interrupting(candidates: Iterable[CompiledFlow], text: str) -> CompiledFlow | None:
    """The flow whose ``"interrupts": true`` keyword trigger matches ``text`` (DESIGN §10.3:
    it also matches while a run waits at a question), by priority as :func:`match`; or None."""
    ordered = sorted(candidates, key=lambda f: (-int(f.doc.get("priority", 0)), f.id))
    norm = normalize(text)
    for flow in ordered:
        for trigger in flow.doc.get("triggers", []):
            if trigger["type"] == "keyword" and trigger.get("interrupts") is True \
                    and keyword_matches(trigger, text, norm):
                return flow
    return None


def asks_for_human(text: str, keywords: Sequence[str]) -> bool:
    """Whether the customer asks for a person (one of the handoff keywords)."""
    norm = normalize(text)
    for keyword in keywords:
        if normalize(keyword) == norm or contains_words(text, keyword):
            return True
    return False
