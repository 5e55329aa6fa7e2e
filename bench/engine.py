"""Engine benchmark: ``step`` throughput and import-time validation/lint of a big flow.

Run from the repository root (a module, so ``engine`` is the package, not this file)::

    .venv/bin/python -m bench.engine            # measure and rewrite docs/PERFORMANCE.md "Engine"
    .venv/bin/python -m bench.engine --no-write # measure only

1. blocks/s of ``engine.core.step`` on a 200-block flow (a chain of message, set_variable
   and condition blocks ending in a question), in-process: Start is repeated and the
   blocks visited (from the ``visit`` effect) are divided by the time taken. The flow is
   compiled once, as the service does through ``engine.graph.flow_cache``.
2. The time to ``schemas.load_document`` (parse + limits + migrate + JSON Schema +
   duplicate checks) and to ``engine.lint.lint`` a 2,000-block flow: median of several runs.
"""
from __future__ import annotations

if not __package__:  # run as a script, "engine" would be this file: refuse clearly
    raise SystemExit("run it as a module from the repository root: python -m bench.engine")

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time

from engine.core import Start, new_state, step
from engine.graph import compile_flow
from engine.lint import has_errors, lint
from schemas import load_document

TARGET_BLOCKS_PER_S = 50_000
TARGET_VALIDATE_MS = 100


# -- flows ------------------------------------------------------------------------------------


def _chain_block(i: int, kind: str) -> dict:
    if kind == "message":
        return {"id": f"b{i}", "type": "message",
                "data": {"text": "Olá, {{ contact.name }}! Passo {{ passo }} de 200."}}
    if kind == "set_variable":
        return {"id": f"b{i}", "type": "set_variable",
                "data": {"name": "passo", "value": {"+": [{"var": "passo"}, 1]}}}
    return {"id": f"b{i}", "type": "condition",
            "data": {"rules": [{"port": "alto", "when": {">": [{"var": "passo"}, 100000]}},
                              {"port": "ana", "when": {"==": [{"var": "contact.name"}, "Zé"]}}]}}


def chain_flow(size: int = 200, kinds: tuple[str, ...] = ("message", "set_variable", "condition")) -> dict:
    """``size - 1`` blocks cycling through ``kinds``, then a question: one Start visits ``size``."""
    blocks = [_chain_block(i, kinds[i % len(kinds)]) for i in range(size - 1)]
    blocks.append({"id": f"b{size - 1}", "type": "question",
                   "data": {"text": "Tudo certo, {{ contact.name }}?", "input": "choice", "save_as": "fim",
                            "options": [{"id": "sim", "label": "Sim"}, {"id": "nao", "label": "Não"}]}})
    edges = []
    for i, block in enumerate(blocks[:-1]):
        port = "else" if block["type"] == "condition" else "next"
        edges.append({"from": block["id"], "port": port, "to": f"b{i + 1}"})
    return {"schema_version": 1, "id": "bench-chain", "name": "Bench chain", "start": "b0",
            "blocks": blocks, "edges": edges}


def big_flow(size: int = 2000, salt: str = "") -> dict:
    """A realistic 2,000-block flow: menus (choice questions) leading to messages, variables,
    conditions, tags, HTTP calls, waits and hand-offs; every port that matters connected.
    ``salt`` changes every text, so caches keyed on template text start cold."""
    blocks, edges = [], []

    def add(kind: str, data: dict) -> str:
        block_id = f"n{len(blocks)}"
        blocks.append({"id": block_id, "type": kind, "position": {"x": len(blocks) * 40 % 4000,
                                                                  "y": len(blocks) // 100 * 120},
                       "data": data})
        return block_id

    def link(source: str, port: str, target: str) -> None:
        edges.append({"from": source, "port": port, "to": target})

    start = add("message", {"text": "Olá, {{ contact.name }}! Bem-vindo." + salt})
    previous = start
    while len(blocks) < size - 10:
        section = len(blocks)
        menu = add("question", {"text": "Menu {{ contact.name }} #" + str(section), "input": "choice",
                                "save_as": f"menu{section}", "timeout_s": 600,
                                "options": [{"id": "o1", "label": "Planos"}, {"id": "o2", "label": "Suporte"},
                                            {"id": "o3", "label": "Atendente"}]})
        link(previous, "next", menu)
        info = add("message", {"text": "Escolheu {{ menu" + str(section) + " }}." + salt, "buttons": ["Ok"]})
        setv = add("set_variable", {"name": f"v{section}", "value": {"cat": ["s", {"var": f"menu{section}"}]}})
        cond = add("condition", {"rules": [{"port": "vip", "when": {"in": ["vip", {"var": f"v{section}"}]}}]})
        tag = add("add_tag", {"tag": "interessado"})
        http = add("http_request", {"method": "POST", "url": "https://api.example.com/leads/{{ menu"
                                    + str(section) + " }}", "body": {"nome": "{{ contact.name }}"},
                                    "save_as": f"api{section}"})
        wait = add("wait", {"seconds": 3600})
        handoff = add("open_conversation", {"note": "Pediu atendente"})
        email = add("question", {"text": "Seu e-mail?", "input": "email", "save_as": f"email{section}",
                                 "invalid_text": "E-mail inválido."})
        done = add("message", {"text": "Obrigado, {{ email" + str(section) + " }}." + salt})
        link(menu, "o1", info)
        link(menu, "o2", email)
        link(menu, "o3", handoff)
        link(menu, "timeout", done)
        link(info, "next", setv)
        link(setv, "next", cond)
        link(cond, "vip", tag)
        link(cond, "else", http)
        link(tag, "next", http)
        link(http, "ok", wait)
        link(http, "error", handoff)
        link(wait, "next", email)
        link(handoff, "next", email)
        link(email, "answered", done)
        previous = done
    while len(blocks) < size:
        block_id = add("message", {"text": "Até logo, {{ contact.name }}."})
        link(previous, "next", block_id)
        previous = block_id
    return {"schema_version": 1, "id": "bench-grande", "name": "Bench 2000", "start": start,
            "blocks": blocks, "edges": edges}


# -- measurements -----------------------------------------------------------------------------


def blocks_per_second(doc: dict, seconds: float = 2.0, rounds: int = 9,
                      compiled: bool = True) -> tuple[float, float, float]:
    """(median CPU-time, best CPU-time, median wall-clock) blocks/s over ``rounds`` rounds,
    repeating Start for ``seconds`` in all.

    CPU time (``time.process_time``) is the fair figure on a shared machine: it leaves out
    the time other processes held the cores. Wall clock is shown beside it.
    """
    flow = compile_flow(doc, 1) if compiled else doc
    state = new_state({"name": "Ana", "external_id": "5511999990000"})
    state["vars"]["passo"] = 0
    _, _, effects = step(flow, state, Start(at=0, run_id="warm-up"))
    per_start = sum(len(e["block_ids"]) for e in effects if e["type"] == "visit")
    assert per_start == len(doc["blocks"]), f"a Start visited {per_start} blocks"
    cpu_figures, wall_figures = [], []
    for _ in range(rounds):
        visited, count = 0, 0
        wall, cpu = time.perf_counter(), time.process_time()
        while True:
            _, _, effects = step(flow, state, Start(at=count, run_id=f"r-{count}"))
            visited += sum(len(e["block_ids"]) for e in effects if e["type"] == "visit")
            count += 1
            if count % 10 == 0 and time.perf_counter() - wall >= seconds / rounds:
                break
        cpu_figures.append(visited / (time.process_time() - cpu))
        wall_figures.append(visited / (time.perf_counter() - wall))
    return statistics.median(cpu_figures), max(cpu_figures), statistics.median(wall_figures)


def median_ms(action, runs: int = 9) -> tuple[float, float, float]:
    """(median CPU-time, best CPU-time, median wall-clock) milliseconds of ``action()`` over
    ``runs`` runs, after a warm-up."""
    action()
    cpu_times, wall_times = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        cpu_times.append((time.process_time() - cpu) * 1000)
        wall_times.append((time.perf_counter() - wall) * 1000)
    return statistics.median(cpu_times), min(cpu_times), statistics.median(wall_times)


def profile_top(action, limit: int = 12) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    action()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


def hotspots(action, limit: int = 4) -> str:
    """The functions ``action()`` spends most of its own time in (self time under cProfile,
    which overstates pure-Python loops next to C extensions)."""
    profiler = cProfile.Profile()
    profiler.enable()
    action()
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = sum(tottime for (_, _, tottime, _, _) in stats.values()) or 1.0
    rows = []
    for (filename, line, name), (_, _, tottime, _, _) in stats.items():
        parts = filename.replace("\\", "/").split("/")
        where = "/".join(parts[-2:]) + f":{line} " if filename != "~" else ""
        rows.append((tottime, f"`{where}{name}`"))
    rows.sort(reverse=True)
    return ", ".join(f"{label} {100 * tottime / total:.0f}%" for tottime, label in rows[:limit])


def validation_breakdown(raw: str) -> dict[str, tuple[float, float]]:
    """Median ms of each stage of load_document, and of the alternatives for the schema check."""
    from jsonschema import Draft202012Validator

    import schemas as s
    from blocks import REGISTRY

    doc = json.loads(raw)
    per_kind = {kind: Draft202012Validator(b.data_schema) for kind, b in REGISTRY.items()}
    stages = {
        "json.loads": lambda: json.loads(raw),
        "depth check": lambda: s._depth(doc),
        "pure-Python jsonschema on the whole document (what reports errors)":
            lambda: list(s._validator().iter_errors(doc)),
        "jsonschema, only each block's data with cached per-kind validators":
            lambda: [e for b in doc["blocks"] for e in per_kind[b["type"]].iter_errors(b["data"])],
    }
    try:
        import jsonschema_rs
    except ImportError:
        pass
    else:
        fast = jsonschema_rs.validator_for(s.flow_schema())
        stages["jsonschema_rs on the whole document (the valid-document fast path)"] = lambda: fast.is_valid(doc)
    return {name: median_ms(action, runs=3) for name, action in stages.items()}


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/PERFORMANCE.md")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per step measurement")
    parser.add_argument("--profile", action="store_true", help="print a profile of validation")
    args = parser.parse_args(argv)

    rows = []
    load_before = load_average()
    chain = chain_flow()
    cpu, best, wall = blocks_per_second(chain, args.seconds)
    rows.append(("`step`, 200-block chain (message / set_variable / condition → question), compiled flow",
                 f"{cpu:,.0f} blocks/s", f"{best:,.0f}", f"{wall:,.0f}", f"≥ {TARGET_BLOCKS_PER_S:,} blocks/s",
                 "ok" if cpu >= TARGET_BLOCKS_PER_S else "**below**"))
    for kinds, label in ((("message",), "messages (template render)"),
                         (("set_variable",), "set_variable (JSONLogic)"),
                         (("condition",), "conditions (2 JSONLogic rules each)")):
        cpu, best, wall = blocks_per_second(chain_flow(kinds=kinds), args.seconds / 2)
        rows.append((f"`step`, 200 blocks of {label}", f"{cpu:,.0f} blocks/s", f"{best:,.0f}", f"{wall:,.0f}",
                     "", ""))
    cpu, best, wall = blocks_per_second(chain, args.seconds / 2, compiled=False)
    rows.append(("`step` given the raw document (graph built on every call, as for drafts)",
                 f"{cpu:,.0f} blocks/s", f"{best:,.0f}", f"{wall:,.0f}", "", ""))

    doc = big_flow()
    raw = json.dumps(doc, ensure_ascii=False)
    loaded = load_document(raw)
    findings = lint(loaded)
    assert len(loaded["blocks"]) == 2000 and not has_errors(findings), findings[:3]
    validate = median_ms(lambda: load_document(raw))
    # Each import lints a document never seen before: give every run fresh template texts.
    fresh = iter([load_document(big_flow(salt=f" #{i}")) for i in range(10)])
    linted = median_ms(lambda: lint(next(fresh)))
    rows.append((f"`schemas.load_document`, 2,000 blocks / {len(doc['edges']):,} edges "
                 f"({len(raw) / 1024:,.0f} KiB JSON), median of 9",
                 f"{validate[0]:,.1f} ms", f"{validate[1]:,.1f}", f"{validate[2]:,.1f}",
                 f"< {TARGET_VALIDATE_MS} ms", "ok" if validate[0] < TARGET_VALIDATE_MS else "**above**"))
    rows.append(("`engine.lint.lint`, same flow (fresh texts each run), median of 9",
                 f"{linted[0]:,.1f} ms", f"{linted[1]:,.1f}", f"{linted[2]:,.1f}", "", ""))
    breakdown = validation_breakdown(raw)

    table = ["| measurement | median (CPU time) | best (CPU time) | median (wall clock) | target | |",
             "|---|---|---|---|---|---|"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    body = "\n".join(table)
    body += "\n\nWhere validation spends its time (median of 3):\n\n" + "\n".join(
        f"- {name}: {cpu:,.1f} ms CPU ({wall:,.1f} ms wall)" for name, (cpu, _, wall) in breakdown.items())
    profiled = load_document(big_flow(salt=" profiled"))
    body += ("\n\nWhere the time goes (self time under cProfile): `load_document`: "
             + hotspots(lambda: load_document(raw)) + "; `lint`: "
             + hotspots(lambda: lint(profiled)) + ".")
    body += (f"\n\nLoad average before / after: {load_before} / {load_average()} (other work shared "
             "these cores; CPU time leaves out the time it held them).")
    print(body)
    if args.profile:
        print(profile_top(lambda: load_document(raw)))
    if not args.no_write:
        from bench._report import write_section

        path = write_section("Engine", body, ".venv/bin/python -m bench.engine")
        print(f"\nwrote the Engine section of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
