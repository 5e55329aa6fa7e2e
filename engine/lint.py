"""The flow linter: graph errors that block publishing and warnings that do not.

Each finding is ``{"level": "error"|"warning", "code", "block_id", "message"}`` with a
message a non-technical author understands (pt-BR by default, English on request): a
finding about a block starts with the block's title and id (``Bloco "Qual sabor?" (b2):``)
and names ports by the labels the editor shows ("Senão", "Resposta inválida").
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

import networkx as nx
import regex

from blocks import REGISTRY, pausing_kinds
from blocks.base import LintContext
from blocks.labels import block_name, port_label
from engine.graph import build_graph
from engine.i18n import t
from engine.templates import global_names, referenced_names, syntax_error

TEMPLATE_GLOBALS = set(global_names()) | {"contact", "vars", "loop", "true", "false", "none"}


def _finding(level: str, code: str, block_id: str | None, lang: str | None, **params) -> dict:
    return {"level": level, "code": code, "block_id": block_id,
            "message": t(f"lint.{code}", lang, **params)}


def _about(block: dict, level: str, code: str, lang: str | None, **params) -> dict:
    """A finding about ``block``: its message starts with the block's title and id."""
    sentence = t(f"lint.{code}", lang, **params)
    first_word = sentence.split(" ", 1)[0]
    if first_word[:1].isupper() and (len(first_word) == 1 or first_word[1:].islower()):
        sentence = sentence[0].lower() + sentence[1:]  # "Bloco …: a saída …", not "A saída"
    prefix = t("lint.block", lang, block=block_name(block, lang=lang))
    return {"level": level, "code": code, "block_id": block["id"], "message": f"{prefix} {sentence}"}


def jump_targets(documents: Iterable[dict]) -> set[str]:
    """Ids of the flows that a ``jump`` block of some *other* document leads into."""
    targets: set[str] = set()
    for doc in documents:
        for block in doc.get("blocks") or []:
            data = block.get("data") if isinstance(block, dict) else None
            kind = REGISTRY.get(block.get("type")) if isinstance(block, dict) else None
            target = kind.jumps_to(data) if kind is not None and isinstance(data, dict) else None
            if isinstance(target, str) and target != doc.get("id"):
                targets.add(target)
    return targets


def has_errors(findings: Iterable[dict]) -> bool:
    return any(f["level"] == "error" for f in findings)


def _template_fields(block: dict) -> list[str]:
    """The template strings a block renders (its kind says which)."""
    return REGISTRY[block["type"]].template_fields(block.get("data", {}))


def _logic_vars(rule) -> set[str]:
    """Variable names a JSONLogic rule reads (first path segment; ``vars.x`` → ``x``)."""
    found: set[str] = set()
    stack = [rule]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for op, arg in node.items():
                if op == "var":
                    name = arg[0] if isinstance(arg, list) and arg else arg
                    if isinstance(name, str) and name:
                        parts = name.split(".")
                        if parts[0] == "vars" and len(parts) > 1:
                            found.add(parts[1])
                        elif parts[0] not in ("contact", "vars"):
                            found.add(parts[0])
                else:
                    stack.append(arg)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _used_vars(block: dict) -> set[str]:
    names: set[str] = set()
    for text in _template_fields(block):
        names |= (referenced_names(text) or set())
    for rule in REGISTRY[block["type"]].logic_fields(block.get("data", {})):
        names |= _logic_vars(rule)
    return names - TEMPLATE_GLOBALS


def variables_saved_by(block: dict) -> set[str]:
    """The variable a block saves (``save_as``, or a ``set_variable``'s ``name``), if any."""
    name = REGISTRY[block["type"]].saves(block.get("data", {}))
    return {name} if isinstance(name, str) and name else set()


def lint(doc: dict, flows: Mapping[str, set[str]] | None = None, lang: str | None = None,
         jumped_into: Iterable[str] | None = None,
         whatsapp_templates: Mapping[tuple[str, str], int] | None = None) -> list[dict]:
    """Lint a structurally valid flow document.

    ``flows`` maps every known flow id to its block ids, for checking ``jump`` targets;
    the flow being linted counts as known with its own blocks. ``jumped_into``: ids of
    flows some stored flow (draft or published) jumps into, so that a flow without
    triggers reached only by jumps is not reported as ``no_trigger``.
    ``whatsapp_templates``: the synced templates ``{(name, language): parameter count}``
    that blocks' ``template`` fields are checked against (None: not checked).
    """
    findings: list[dict] = []
    blocks = {b["id"]: b for b in doc["blocks"]}
    graph = build_graph(doc)
    known = dict(flows or {})
    known[doc["id"]] = set(blocks)

    start = doc["start"]
    if start not in blocks:
        findings.append(_finding("error", "unknown_start", None, lang, start=start))

    for edge in doc["edges"]:
        if edge["from"] not in blocks:
            finding = _finding("error", "dangling_edge", None, lang, port=edge["port"], to=edge["to"])
            finding["message"] = t("lint.dangling_source", lang, source=edge["from"])
            findings.append(finding)
            continue
        source = blocks[edge["from"]]
        if edge["to"] not in blocks:
            findings.append(_about(source, "error", "dangling_edge", lang,
                                   port=port_label(source, edge["port"], lang), to=edge["to"]))
            continue
        ports = REGISTRY[source["type"]].ports(source["data"])
        if edge["port"] not in ports:
            findings.append(_about(source, "error", "unknown_port", lang, port=edge["port"],
                                   ports=", ".join(port_label(source, p, lang) for p in ports) or "—"))

    triggers = doc.get("triggers") or []
    for i, trigger in enumerate(triggers):
        if trigger.get("type") == "keyword" and trigger.get("match") == "regex":
            try:
                regex.compile(trigger["value"])
            except regex.error as exc:
                findings.append(_finding("error", "bad_trigger_regex", None, lang,
                                         index=i + 1, error=str(exc)))
    startable = any(tr.get("type") in ("keyword", "default") for tr in triggers)
    if not startable and doc["id"] not in set(jumped_into or ()):
        findings.append(_finding("warning", "no_trigger", None, lang))

    connected = {(e["from"], e["port"]) for e in doc["edges"] if e["to"] in blocks}
    for block in doc["blocks"]:
        _lint_block(block, connected, known, findings, lang, whatsapp_templates)

    findings.extend(_spin_loops(graph, blocks, lang))

    if start in blocks:
        reachable = (nx.descendants(graph, start) | {start}) & blocks.keys()
        for block_id in blocks:
            if block_id not in reachable:
                findings.append(_about(blocks[block_id], "warning", "unreachable", lang))
        findings.extend(_vars_before_set(graph, blocks, start, reachable, lang))

    from engine.flowtests import lint_tests

    findings.extend(lint_tests(doc, lang))
    findings.sort(key=lambda f: (f["level"] != "error",))
    return findings


def _lint_block(block: dict, connected: set, known: Mapping[str, set[str]], findings: list, lang,
                whatsapp_templates: Mapping[tuple[str, str], int] | None = None) -> None:
    block_id, kind, data = block["id"], block["type"], block["data"]
    for text in _template_fields(block):
        error = syntax_error(text, lang) if isinstance(text, str) and "{" in text else None
        if error:
            findings.append(_about(block, "error", "bad_template", lang, error=error))
    ctx = LintContext(connected=lambda port: (block_id, port) in connected, flows=known,
                      unknown_operators=unknown_operators, whatsapp_templates=whatsapp_templates)
    for level, code, params in REGISTRY[kind].lint(data, ctx):  # the kind's own checks
        if "port" in params:
            params = {**params, "port": port_label(block, params["port"], lang)}
        findings.append(_about(block, level, code, lang, **params))


JSONLOGIC_OPERATORS = {
    "var", "missing", "missing_some", "if", "?:", "==", "===", "!=", "!==", "!", "!!", "or", "and",
    ">", ">=", "<", "<=", "max", "min", "+", "-", "*", "/", "%", "map", "filter", "reduce", "all",
    "none", "some", "merge", "in", "cat", "substr", "log",
}


def unknown_operators(rule) -> set[str]:
    """Operators JSONLogic does not know (a typo would silently make the rule false)."""
    unknown: set[str] = set()
    stack = [rule]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if len(node) == 1:
                op, arg = next(iter(node.items()))
                if op not in JSONLOGIC_OPERATORS:
                    unknown.add(op)
                stack.append(arg)
        elif isinstance(node, list):
            stack.extend(node)
    return unknown


def _spin_loops(graph: nx.MultiDiGraph, blocks: dict, lang) -> list[dict]:
    """Cycles made only of blocks that never wait: the run would spin until the budget."""
    pausing = pausing_kinds()
    busy = graph.subgraph(b for b, block in blocks.items() if block["type"] not in pausing)
    findings = []
    for component in nx.strongly_connected_components(busy):
        first = next(iter(component))
        if len(component) > 1 or busy.has_edge(first, first):
            ordered = sorted(component, key=list(blocks).index)
            cycle = " → ".join(block_name(blocks[b], lang=lang) for b in ordered)
            findings.append(_about(blocks[ordered[0]], "error", "spin_loop", lang, cycle=cycle))
    return findings


def _vars_before_set(graph: nx.MultiDiGraph, blocks: dict, start: str, reachable: set[str],
                     lang) -> list[dict]:
    """Variables a block may read before any block saved them: some path from the start
    reaches the read without passing a block that saves the variable.

    A forward "surely saved" data-flow pass over the blocks reachable from the start (an
    unconnected block is reported as ``unreachable`` instead): ``saved[b]`` (a bit mask)
    is what every path into ``b`` has saved; it shrinks to a fixpoint, so loops are
    handled and big flows stay linear in blocks + edges. A question saves its answer only
    on its answer ports, not on "Resposta inválida" or "Sem resposta".
    """
    users = {b: used for b in reachable if (used := _used_vars(blocks[b]))}
    if not users:
        return []
    bit: dict[str, int] = {}
    sets: dict[str, int] = {}
    for block_id in reachable:
        mask = 0
        for name in variables_saved_by(blocks[block_id]):
            mask |= 1 << bit.setdefault(name, len(bit))
        sets[block_id] = mask
    everything = (1 << len(bit)) - 1
    out_edges = {}
    for node in reachable:  # the ports the engine can really take (not a removed option's)
        real = set(REGISTRY[blocks[node]["type"]].ports(blocks[node]["data"]))
        out_edges[node] = [(v, port) for _, v, port in graph.out_edges(node, keys=True)
                           if v in reachable and port in real]
    saved = dict.fromkeys(reachable, everything)  # unknown yet: "all", lowered as paths arrive
    saved[start] = 0
    seen = {start}
    pending = deque([start])
    queued = {start}
    while pending:
        node = pending.popleft()
        queued.discard(node)
        block = blocks[node]
        for nxt, port in out_edges[node]:
            out = saved[node]
            if port not in REGISTRY[block["type"]].unsaved_ports:
                out |= sets[node]
            merged = out if nxt not in seen else saved[nxt] & out
            if nxt not in seen or merged != saved[nxt]:
                seen.add(nxt)
                saved[nxt] = merged if nxt != start else 0
                if nxt not in queued:
                    queued.add(nxt)
                    pending.append(nxt)
    findings = []
    order = {block_id: i for i, block_id in enumerate(blocks)}
    for block_id in sorted(users, key=order.__getitem__):
        for name in sorted(users[block_id]):
            if name not in bit or not (saved[block_id] >> bit[name]) & 1:
                findings.append(_about(blocks[block_id], "warning", "var_before_set", lang, name=name))
    return findings
