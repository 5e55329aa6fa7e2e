"""Text normalization shared by choice matching, triggers and handoff keywords."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=2048)  # keywords, option labels and flow texts come back on every message
def normalize(text: str) -> str:
    """Lower case, accents removed, inner whitespace collapsed, trimmed."""
    if not text.isascii():  # ASCII has nothing to decompose
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", text).strip().casefold()


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
