"""One text-cleaning step for everything that arrives from outside (DESIGN §10.5).

Two characters no database column takes: NUL (PostgreSQL refuses it in text) and a lone
UTF-16 surrogate such as ``"\\ud800"`` (JSON may escape one; it cannot be encoded to UTF-8,
so neither database can store it). Every entry point — API bodies, form posts, query
strings, path segments, webhook payloads, the web chat — runs its input through here:

- a lone surrogate becomes U+FFFD (the replacement character), everywhere;
- NUL is refused by the caller with a clear 4xx (``nul_paths`` says where), except in
  what a third party sends (the WhatsApp webhook cannot be asked to send again
  differently), where ``clean(value, drop_nul=True)`` removes it.

No Flask here: the web app, the CLI (``papo validate``) and the service share it.
"""
from __future__ import annotations

import re

NUL = "\x00"
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
# In JSON text a NUL or a lone surrogate can only come escaped (\u0000, \ud800…): UTF-8
# holds no surrogates and JSON no raw control characters.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")


def clean_text(text: str, *, drop_nul: bool = False) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (and NUL removed if ``drop_nul``)."""
    if drop_nul and NUL in text:
        text = text.replace(NUL, "")
    if text.isascii():
        return text
    return _SURROGATE.sub(REPLACEMENT, text)


def needs_cleaning(raw: bytes) -> bool:
    """Whether JSON text ``raw`` may hold a NUL or a lone surrogate once parsed (an escape
    that could be one); False: :func:`clean` would return an equal copy, skip it."""
    return b"\x00" in raw or _SUSPECT_ESCAPE.search(raw) is not None


def clean(value, *, drop_nul: bool = False):
    """A copy of a parsed JSON value (dicts, lists, strings, numbers) with every string,
    keys included, passed through :func:`clean_text`. Iterative: a deeply nested document
    cannot exhaust the stack."""
    def fix(item):
        return clean_text(item, drop_nul=drop_nul) if isinstance(item, str) else item

    if not isinstance(value, dict | list):
        return fix(value)
    top: dict | list = {} if isinstance(value, dict) else []
    stack = [(value, top)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, dict | list):
                child = {} if isinstance(item, dict) else []
                stack.append((item, child))
            else:
                child = fix(item)
            if isinstance(target, dict):
                target[fix(key)] = child
            else:
                target.append(child)
    return top


def _path(parts: tuple) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def nul_paths(value) -> list[str]:
    """JSON paths (``$.contact.name``) of every string, key or value, holding a NUL."""
    found: list[str] = []
    stack: list[tuple[tuple, object]] = [((), value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if NUL in node:
                found.append(_path(path))
        elif isinstance(node, dict):
            for key, item in node.items():
                if isinstance(key, str) and NUL in key:
                    found.append(_path(path))
                stack.append(((*path, key), item))
        elif isinstance(node, list):
            stack.extend(((*path, i), item) for i, item in enumerate(node))
    return sorted(set(found))


def has_nul(value) -> bool:
    """True if any string in ``value`` (keys included) holds a NUL."""
    if isinstance(value, str):
        return NUL in value
    return bool(nul_paths(value))


def parse_int(raw: str | None, *, minimum: int, maximum: int) -> int | None:
    """A whole number written in decimal digits (an optional leading ``-``) within
    ``[minimum, maximum]``; None when ``raw`` is anything else (``1.0``, ``1e3``, ``0x10``,
    digits beyond the range, spaces, other scripts' digits).

    The one parser for numbers in query strings and form fields: the caller turns None
    into a 400 (or 422 for a form) naming the parameter.
    """
    if raw is None or not isinstance(raw, str) or len(raw) > 40:
        return None
    if not re.fullmatch(r"-?[0-9]{1,30}", raw):
        return None
    number = int(raw)
    return number if minimum <= number <= maximum else None
