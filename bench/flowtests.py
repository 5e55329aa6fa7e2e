"""Flow tests benchmark: how long publishing waits for a flow's tests (issue 14).

Run from the repository root::

    .venv/bin/python -m bench.flowtests            # measure and rewrite docs/PERFORMANCE.md "Flow tests"
    .venv/bin/python -m bench.flowtests --no-write # measure only

A 50-block flow (a menu question with 4 options, each branch a chain of messages,
variables, conditions and questions, plus a wait) carries 100 tests of 20 steps each
(``say``, ``expect``, ``expect_buttons``, ``expect_vars``, ``wait``, ``expect_status``).
``engine.flowtests.run_tests`` runs them all as ``POST /api/v1/flows/<id>/publish``
does: one in-memory database, each test a fresh conversation through the service.
Target: under 2 s in total on 2 cores, so that tests can run on every publish.
"""
from __future__ import annotations

if not __package__:
    raise SystemExit("run it as a module from the repository root: python -m bench.flowtests")

import argparse
import os
import statistics
import sys
import time

from engine.flowtests import run_tests
from engine.settings import Settings
from schemas import load_document

TARGET_S = 2.0
OPTIONS = ("Pedidos", "Entregas", "Trocas", "Pagamentos")


def bench_flow() -> dict:
    """50 blocks: a menu, 4 branches of 12 blocks (ending back at the menu), a wait."""
    blocks = [{"id": "menu", "type": "question",
               "data": {"text": "Olá, {{ contact.name }}! Escolha um assunto:", "input": "choice",
                        "save_as": "assunto",
                        "options": [{"id": f"o{i}", "label": label} for i, label in enumerate(OPTIONS)]}}]
    edges = []
    for i, label in enumerate(OPTIONS):
        prefix = f"r{i}"
        chain = [
            ("message", {"text": f"Você escolheu {label}."}),
            ("message", {"text": "Um momento…"}),
            ("set_variable", {"name": f"visitas_{i}", "value": {"+": [{"var": f"visitas_{i}"}, 1]}}),
            ("question", {"text": f"Qual o número do seu pedido ({label})?", "input": "number",
                          "save_as": f"numero_{i}"}),
            ("condition", {"rules": [{"port": "grande", "when": {">": [{"var": f"numero_{i}"}, 1000]}}]}),
            ("message", {"text": "Pedido {{ numero_" + str(i) + " }} encontrado."}),
            ("set_variable", {"name": "ultimo", "value": label}),
            ("question", {"text": "Posso ajudar em mais algo?", "input": "choice", "save_as": f"mais_{i}",
                          "options": [{"id": "sim", "label": "Sim"}, {"id": "nao", "label": "Não"}]}),
            ("message", {"text": "Certo, voltando ao menu."}),
            ("add_tag", {"tag": f"assunto-{i}"}),
            ("message", {"text": "Obrigado, {{ contact.name }}!"}),
            ("message", {"text": "Até logo."}),
        ]
        ids = [f"{prefix}b{j}" for j in range(len(chain))]
        for block_id, (kind, data) in zip(ids, chain, strict=True):
            blocks.append({"id": block_id, "type": kind, "data": data})
        edges.append({"from": "menu", "port": f"o{i}", "to": ids[0]})
        for j in range(len(ids) - 1):
            source_kind = chain[j][0]
            port = {"question": "answered", "condition": "else"}.get(source_kind, "next")
            if source_kind == "question" and chain[j][1].get("input") == "choice":
                port = "sim"
            edges.append({"from": ids[j], "port": port, "to": ids[j + 1]})
        edges.append({"from": ids[4], "port": "grande", "to": ids[5]})
        edges.append({"from": ids[7], "port": "nao", "to": ids[10]})
        edges.append({"from": ids[-1], "port": "next", "to": "espera"})
    blocks.append({"id": "espera", "type": "wait", "data": {"seconds": 60}})
    edges.append({"from": "espera", "port": "next", "to": "menu"})
    assert len(blocks) == 50, len(blocks)
    return {"schema_version": 1, "id": "bench-testes", "name": "Bench de testes",
            "triggers": [{"type": "default"}], "start": "menu", "blocks": blocks, "edges": edges}


def bench_test(n: int) -> dict:
    """20 steps through one branch and back to the menu after the wait."""
    i = n % len(OPTIONS)
    label = OPTIONS[i]
    number = 1000 + n
    steps = [
        {"say": "oi"},
        {"expect": "Olá, Visitante! Escolha um assunto:"},
        {"expect_buttons": list(OPTIONS)},
        {"say": label},
        {"expect": f"Você escolheu {label}."},
        {"expect": "Um momento…"},
        {"expect": f"Qual o número do seu pedido ({label})?"},
        {"say": str(number)},
        {"expect": f"Pedido {number} encontrado."},
        {"expect": "Posso ajudar em mais algo?"},
        {"expect_buttons": ["Sim", "Não"]},
        {"say": "Sim"},
        {"expect": "Certo, voltando ao menu."},
        {"expect_contains": "Obrigado"},
        {"expect": "Até logo."},
        {"expect_vars": {"assunto": label, f"numero_{i}": number, "ultimo": label}},
        {"expect_end": True},
        {"wait": 60},
        {"expect": "Olá, Visitante! Escolha um assunto:"},
        {"expect_status": "concluded"},
    ]
    return {"name": f"Teste {n + 1}", "steps": steps}


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/PERFORMANCE.md")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    doc = load_document({**bench_flow(), "tests": [bench_test(n) for n in range(100)]})
    settings = Settings.from_env({})
    load_before = load_average()
    results = run_tests(doc, settings=settings)  # warm-up, and a check that they all pass
    failed = [r for r in results if not r.passed]
    assert not failed, failed[:2]
    cpu, wall = [], []
    for _ in range(args.runs):
        started_cpu, started = time.process_time(), time.perf_counter()
        run_tests(doc, settings=settings)
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    median_wall = statistics.median(wall)
    steps = sum(len(t["steps"]) for t in doc["tests"])
    body = "\n".join([
        "| measurement | median (wall clock) | best | median (CPU time) | target | |",
        "|---|---|---|---|---|---|",
        f"| 100 tests × 20 steps ({steps:,} steps) on a 50-block flow, `engine.flowtests.run_tests` "
        f"(what publish runs), median of {args.runs} | {median_wall:.2f} s | {min(wall):.2f} s | "
        f"{statistics.median(cpu):.2f} s | < {TARGET_S:.0f} s (CPU time) | "
        f"{'ok' if statistics.median(cpu) < TARGET_S else '**above**'} |",
        "",
        f"Per test: {median_wall / len(doc['tests']) * 1000:.1f} ms; per step "
        f"{median_wall / steps * 1000:.2f} ms (each test is a fresh conversation in one in-memory "
        "SQLite database, through `engine.service.Service` as production).",
        "",
        f"Load average before / after: {load_before} / {load_average()} (other work shared these cores: "
        "the target is judged on CPU time, what the run itself needs; the wall clock is what it took "
        "while waiting for the cores).",
    ])
    print(body)
    if not args.no_write:
        from bench._report import write_section

        path = write_section("Flow tests", body, ".venv/bin/python -m bench.flowtests")
        print(f"\nwrote the Flow tests section of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
