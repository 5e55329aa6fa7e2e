"""Text normalization shared by choice matching, triggers and handoff keywords."""
from __future__ import annotations

import re
import unicodedata


def normalize(text: str) -> str:
    """Lower case, accents removed, inner whitespace collapsed, trimmed."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", stripped).strip().casefold()


def words(text: str) -> list[str]:
    """Normalized words; punctuation separates words."""
    return re.findall(r"\w+", normalize(text))


def contains_words(text: str, phrase: str) -> bool:
    """True when ``phrase`` appears in ``text`` as whole words (both normalized)."""
    needle = words(phrase)
    hay = words(text)
    if not needle:
        return False
    n = len(needle)
    return any(hay[i:i + n] == needle for i in range(len(hay) - n + 1))
