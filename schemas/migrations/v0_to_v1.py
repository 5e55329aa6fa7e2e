"""v0 (the pre-release editor format) → v1.

v0 called blocks ``nodes`` with the block data in ``props`` and the canvas position as
``x``/``y`` on the node; edges were ``links`` with ``source``/``output``/``target``.
"""
from __future__ import annotations


def migrate(doc: dict) -> dict:
    out = {k: v for k, v in doc.items() if k not in ("nodes", "links")}
    out["schema_version"] = 1
    out["blocks"] = [
        {
            "id": node["id"],
            "type": node["type"],
            **({"position": {"x": node["x"], "y": node["y"]}} if "x" in node and "y" in node else {}),
            "data": node.get("props", {}),
        }
        for node in doc.get("nodes", [])
    ]
    out["edges"] = [
        {"from": link["source"], "port": link.get("output", "next"), "to": link["target"]}
        for link in doc.get("links", [])
    ]
    return out
