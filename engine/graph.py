"""A flow as a graph: a networkx ``MultiDiGraph`` (edge key = port), built once per
published version and cached, plus the plain lookups the engine walks on."""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import networkx as nx


@dataclass
class CompiledFlow:
    """A flow document ready to run: blocks by id, the graph, and (block, port) → block."""

    doc: dict
    version: int | None
    graph: nx.MultiDiGraph
    blocks: dict[str, dict]
    targets: dict[tuple[str, str], str] = field(default_factory=dict)
    # Some question of this flow carries ``csat: true`` (then PAPO_CSAT_VARIABLE no longer
    # counts for its answers: DESIGN §10.6 "Rating").
    has_csat_question: bool = False

    @property
    def id(self) -> str:
        return self.doc["id"]

    @property
    def start(self) -> str:
        return self.doc["start"]

    def next(self, block_id: str, port: str) -> str | None:
        """The block that ``port`` of ``block_id`` leads to, or None (the run ends there)."""
        target = self.targets.get((block_id, port))
        return target if target in self.blocks else None


def build_graph(doc: dict) -> nx.MultiDiGraph:
    """Blocks are nodes (with their block dict); each edge's key is its port."""
    graph = nx.MultiDiGraph(flow_id=doc.get("id"))
    for block in doc.get("blocks", []):
        graph.add_node(block["id"], block=block)
    for edge in doc.get("edges", []):
        graph.add_edge(edge["from"], edge["to"], key=edge["port"])
    return graph


def compile_flow(doc: dict, version: int | None = None) -> CompiledFlow:
    graph = build_graph(doc)
    blocks = {b["id"]: b for b in doc.get("blocks", [])}
    # The engine follows ports through this dict, derived from the graph once:
    # a dict lookup is ~15x cheaper than asking networkx on every step (DESIGN §9).
    targets = {(u, key): v for u, v, key in graph.edges(keys=True)}
    has_csat = any(b.get("type") == "question" and (b.get("data") or {}).get("csat") is True
                   for b in blocks.values())
    return CompiledFlow(doc=doc, version=version, graph=graph, blocks=blocks, targets=targets,
                        has_csat_question=has_csat)


class FlowCache:
    """Compiled flows by (flow id, version); published versions never change, so entries
    never go stale. Drafts (version None) are compiled fresh each time."""

    def __init__(self, size: int = 512):
        self._items: OrderedDict[tuple[str, int], CompiledFlow] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, doc: dict, version: int | None) -> CompiledFlow:
        if version is None:
            return compile_flow(doc, None)
        key = (doc["id"], version)
        with self._lock:
            found = self._items.get(key)
            # The same document object, not just the same id and version: two databases
            # (tests, or two apps in one process) may both have "boas-vindas" version 1.
            if found is not None and found.doc is doc:
                self._items.move_to_end(key)
                return found
        compiled = compile_flow(doc, version)
        with self._lock:
            self._items[key] = compiled
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return compiled


flow_cache = FlowCache()
