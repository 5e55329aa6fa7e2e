"""The flow linter: graph errors that block publishing and warnings that do not.

Each finding is ``{"level": "error"|"warning", "code", "block_id", "message"}`` with a
message a non-technical author understands (pt-BR by default, English on request).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

import networkx as nx
import regex

from blocks import REGISTRY
from engine.graph import build_graph
from engine.i18n import t
from engine.templates import _env as template_env
from engine.templates import referenced_names, syntax_error

WHATSAPP_MAX_BUTTONS = 3
WHATSAPP_MAX_LABEL = 20
WHATSAPP_MAX_TEXT = 4096
# Blocks where a run stops and waits for the outside world: a cycle through one is fine.
INTERRUPTING = {"question", "wait", "open_conversation"}
ANSWER_PORTS_EXCLUDED = {"invalid", "timeout"}
TEMPLATE_GLOBALS = set(template_env.globals) | {"contact", "vars", "loop", "true", "false", "none"}


def _finding(level: str, code: str, block_id: str | None, lang: str | None, **params) -> dict:
    return {"level": level, "code": code, "block_id": block_id,
            "message": t(f"lint.{code}", lang, **params)}


def has_errors(findings: Iterable[dict]) -> bool:
    return any(f["level"] == "error" for f in findings)


def _template_fields(block: dict) -> list[str]:
    """The template strings a block renders."""
    data = block.get("data", {})
    kind = block["type"]
    texts: list[str] = []
    if kind in ("message", "question", "open_conversation"):
        texts.append(data.get("text", ""))
        if data.get("invalid_text"):
            texts.append(data["invalid_text"])
    elif kind == "set_variable" and isinstance(data.get("value"), str):
        texts.append(data["value"])
    elif kind == "http_request":
        texts.append(data.get("url", ""))
        texts.extend(v for v in (data.get("headers") or {}).values() if isinstance(v, str))
        texts.extend(_strings(data.get("body")))
    return texts


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


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
    data = block.get("data", {})
    if block["type"] == "condition":
        for rule in data.get("rules", []):
            names |= _logic_vars(rule.get("when"))
    elif block["type"] == "set_variable" and isinstance(data.get("value"), dict):
        names |= _logic_vars(data["value"])
    return names - TEMPLATE_GLOBALS


def variables_saved_by(block: dict) -> set[str]:
    """The variable a block saves (``save_as``, or a ``set_variable``'s ``name``), if any."""
    data = block.get("data", {})
    name = data.get("name") if block["type"] == "set_variable" else data.get("save_as")
    return {name} if isinstance(name, str) and name else set()


def lint(doc: dict, flows: Mapping[str, set[str]] | None = None, lang: str | None = None) -> list[dict]:
    """Lint a structurally valid flow document.

    ``flows`` maps every known flow id to its block ids, for checking ``jump`` targets;
    the flow being linted counts as known with its own blocks.
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
        if edge["to"] not in blocks:
            findings.append(_finding("error", "dangling_edge", edge["from"], lang, port=edge["port"], to=edge["to"]))
            continue
        ports = REGISTRY[blocks[edge["from"]]["type"]].ports(blocks[edge["from"]]["data"])
        if edge["port"] not in ports:
            findings.append(_finding("error", "unknown_port", edge["from"], lang,
                                     port=edge["port"], ports=", ".join(ports) or "—"))

    for i, trigger in enumerate(doc.get("triggers", [])):
        if trigger.get("type") == "keyword" and trigger.get("match") == "regex":
            try:
                regex.compile(trigger["value"])
            except regex.error as exc:
                findings.append(_finding("error", "bad_trigger_regex", None, lang,
                                         index=i + 1, error=str(exc)))

    connected = {(e["from"], e["port"]) for e in doc["edges"] if e["to"] in blocks}
    for block in doc["blocks"]:
        _lint_block(block, connected, known, findings, lang)

    findings.extend(_spin_loops(graph, blocks, lang))

    if start in blocks:
        reachable = nx.descendants(graph, start) | {start}
        for block_id in blocks:
            if block_id not in reachable:
                findings.append(_finding("warning", "unreachable", block_id, lang))
        findings.extend(_vars_before_set(graph, blocks, start, lang))

    from engine.flowtests import lint_tests

    findings.extend(lint_tests(doc, lang))
    findings.sort(key=lambda f: (f["level"] != "error",))
    return findings


def _lint_block(block: dict, connected: set, known: Mapping[str, set[str]], findings: list, lang) -> None:
    block_id, kind, data = block["id"], block["type"], block["data"]
    for text in _template_fields(block):
        error = syntax_error(text, lang) if isinstance(text, str) and "{" in text else None
        if error:
            findings.append(_finding("error", "bad_template", block_id, lang, error=error))
    if kind in ("message", "question") and len(data.get("text", "")) > WHATSAPP_MAX_TEXT:
        findings.append(_finding("warning", "text_too_long", block_id, lang, length=len(data["text"])))
    if kind == "message":
        labels = data.get("buttons") or []
    else:
        labels = [o["label"] for o in data.get("options") or []]
    if kind in ("message", "question"):
        if len(labels) > WHATSAPP_MAX_BUTTONS:
            findings.append(_finding("warning", "too_many_buttons", block_id, lang, count=len(labels)))
        for label in labels:
            if len(label) > WHATSAPP_MAX_LABEL:
                findings.append(_finding("warning", "button_too_long", block_id, lang,
                                         label=label, length=len(label)))
    if kind == "question":
        for port in REGISTRY[kind].ports(data):
            if port not in ANSWER_PORTS_EXCLUDED and (block_id, port) not in connected:
                findings.append(_finding("warning", "port_unconnected", block_id, lang, port=port))
        if data.get("timeout_s") and (block_id, "timeout") not in connected:
            findings.append(_finding("warning", "timeout_unconnected", block_id, lang))
        if data.get("pattern"):
            try:
                regex.compile(data["pattern"])
            except regex.error as exc:
                findings.append(_finding("error", "bad_pattern", block_id, lang, error=str(exc)))
    elif kind == "condition":
        for rule in data.get("rules", []):
            unknown = _unknown_operators(rule.get("when"))
            if unknown:
                findings.append(_finding("error", "bad_jsonlogic", block_id, lang,
                                         error=", ".join(sorted(unknown))))
        for port in REGISTRY[kind].ports(data):
            if (block_id, port) not in connected:
                findings.append(_finding("warning", "port_unconnected", block_id, lang, port=port))
    elif kind == "jump":
        target_flow = data["flow_id"]
        if target_flow not in known:
            findings.append(_finding("error", "unknown_jump_flow", block_id, lang, flow_id=target_flow))
        elif data.get("block_id") and data["block_id"] not in known[target_flow]:
            findings.append(_finding("error", "unknown_jump_block", block_id, lang,
                                     flow_id=target_flow, target=data["block_id"]))


JSONLOGIC_OPERATORS = {
    "var", "missing", "missing_some", "if", "?:", "==", "===", "!=", "!==", "!", "!!", "or", "and",
    ">", ">=", "<", "<=", "max", "min", "+", "-", "*", "/", "%", "map", "filter", "reduce", "all",
    "none", "some", "merge", "in", "cat", "substr", "log",
}


def _unknown_operators(rule) -> set[str]:
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
    busy = graph.subgraph(b for b, block in blocks.items() if block["type"] not in INTERRUPTING)
    findings = []
    for component in nx.strongly_connected_components(busy):
        first = next(iter(component))
        if len(component) > 1 or busy.has_edge(first, first):
            ordered = sorted(component, key=list(blocks).index)
            findings.append(_finding("error", "spin_loop", ordered[0], lang, cycle=" → ".join(ordered)))
    return findings


def _vars_before_set(graph: nx.MultiDiGraph, blocks: dict, start: str, lang) -> list[dict]:
    """Variables a block reads that no block before it on any path can have saved.

    A forward data-flow pass: ``before[b]`` is the set (a bit mask) of variables some path
    into ``b`` may have set; it grows to a fixpoint, so loops are handled and big flows
    stay linear in blocks + edges.
    """
    users = {block_id: used for block_id, block in blocks.items() if (used := _used_vars(block))}
    if not users:
        return []
    bit: dict[str, int] = {}
    sets: dict[str, int] = {}
    for block_id, block in blocks.items():
        mask = 0
        for name in variables_saved_by(block):
            mask |= 1 << bit.setdefault(name, len(bit))
        sets[block_id] = mask
    successors = {node: list(graph.successors(node)) for node in graph}
    before = dict.fromkeys(blocks, 0)
    pending = deque(blocks)
    queued = set(blocks)
    while pending:
        node = pending.popleft()
        queued.discard(node)
        out = before[node] | sets[node]
        for nxt in successors.get(node, ()):
            if nxt in before and (merged := before[nxt] | out) != before[nxt]:
                before[nxt] = merged
                if nxt not in queued:
                    queued.add(nxt)
                    pending.append(nxt)
    findings = []
    for block_id, used in users.items():
        for name in sorted(used):
            # A question saves its answer after asking, so its own text cannot use it.
            if name not in bit or not (before[block_id] >> bit[name]) & 1:
                findings.append(_finding("warning", "var_before_set", block_id, lang, name=name))
    return findings
