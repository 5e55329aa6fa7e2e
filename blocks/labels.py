"""How people read about a block: its title and its ports' labels, in pt-BR or English.

Wherever a person reads about a block (lint findings, the version diff, the reports
funnel, the inbox's "at block" line, the run log) it is named by :func:`block_title`, with
the id secondary (DESIGN §10.1, §10.6). Port labels are the words the editor shows on
the card ("Senão", "Resposta inválida"), never the port ids. Kinds and ports are named by
the kinds themselves (``BlockKind.label``, ``BlockKind.port_labels``) and translated from
the one catalog (``engine.i18n``). No Flask here: the engine, the CLI and the web app all
use these.
"""
from __future__ import annotations

TITLE_LENGTH = 40

def _lang(lang: str | None) -> str:
    return "en" if lang and lang.lower().replace("_", "-").startswith("en") else "pt"


def kind_title(kind: str, lang: str | None = None) -> str:
    """A block kind as people call it ("Condição", "Condition"); unknown kinds as given."""
    from blocks import REGISTRY  # the registry imports every kind, which may import us

    found = REGISTRY.get(kind)
    if found is None:
        return str(kind)
    from engine.i18n import gettext

    return gettext(found.label, lang) if found.label else found.type


def shorten(text: str, limit: int = TITLE_LENGTH) -> str:
    """``text`` on one line, at most ``limit`` characters, cut at a word with "…"."""
    flat = " ".join(str(text).split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    if flat[limit] != " " and " " in cut:
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ,;:.-–—") + "…"


def block_title(block: dict | None, lang: str | None = None) -> str:
    """A block's title: its text's first 40 characters cut at a word (with "…"), else
    its kind ("Condição"). ``None`` (a block that no longer exists) gives ""."""
    if not isinstance(block, dict):
        return ""
    data = block.get("data") if isinstance(block.get("data"), dict) else {}
    text = data.get("text")
    if isinstance(text, str) and text.strip():
        return shorten(text)
    return kind_title(block.get("type", ""), lang)


def block_name(block: dict | None, block_id: str | None = None, lang: str | None = None) -> str:
    """``"Qual sabor?" (b2)``: the title, quoted, with the id after it; a block that is
    not in the document is named by its id alone."""
    block_id = block_id or (block or {}).get("id") or ""
    if not isinstance(block, dict):
        return f"\"{block_id}\"" if block_id else ""
    return f"\"{block_title(block, lang)}\" ({block_id})"


def port_label(block: dict | None, port: str, lang: str | None = None) -> str:
    """The label the editor shows for ``port`` of ``block`` — its kind's own
    ``port_labels`` in the one catalog ("Senão", "Resposta inválida", an option's label);
    a port its kind does not name keeps its id (a condition rule's ``sim``)."""
    from blocks import REGISTRY
    from engine.i18n import gettext  # no Flask: reads the same catalog files

    kind = REGISTRY.get((block or {}).get("type"))
    data = (block or {}).get("data") if isinstance((block or {}).get("data"), dict) else {}
    if kind is None:
        return port
    try:
        labels = kind.port_labels(lambda text, **params: gettext(text, lang, **params), data)
    except (KeyError, TypeError, AttributeError):  # a document mid-edit
        return port
    return str(labels.get(port, port))
