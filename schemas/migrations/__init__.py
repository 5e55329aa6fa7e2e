"""Flow document migrations: a chain of pure functions, one per format version.

``MIGRATIONS[n]`` turns a version-``n`` document into version ``n + 1``.
"""
from __future__ import annotations

import copy

from schemas.migrations import v0_to_v1

MIGRATIONS = {0: v0_to_v1.migrate}


def migrate(doc: dict) -> dict:
    """Bring ``doc`` up to the current format; the input is never modified."""
    from schemas.build import CURRENT_VERSION

    version = doc.get("schema_version", CURRENT_VERSION)
    if version >= CURRENT_VERSION:
        return doc
    doc = copy.deepcopy(doc)
    while version < CURRENT_VERSION:
        doc = MIGRATIONS[version](doc)
        version = doc["schema_version"]
    return doc
