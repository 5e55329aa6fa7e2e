"""Run every benchmark: ``python -m bench`` (``make bench``).

Each module ``bench/<name>.py`` with a ``main()`` is one benchmark; it measures and
rewrites its own section of docs/PERFORMANCE.md. They run one after the other (never
together: they would share the cores and skew each other's figures), in name order.

    python -m bench                      # all of them
    python -m bench http_inbound timers  # only these
    python -m bench --list               # what would run

A benchmark that fails is reported and the others still run; the exit status is 1 if
any failed.
"""
from __future__ import annotations

if not __package__:
    raise SystemExit("run it as a module from the repository root: python -m bench")

import importlib
import inspect
import pkgutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[str]:
    """Names of the modules in bench/ that define ``main`` (helpers start with ``_``)."""
    names = []
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda m: m.name):
        if info.name.startswith("_") or info.ispkg:
            continue
        source = (HERE / f"{info.name}.py").read_text(encoding="utf-8")
        if "\ndef main(" in source:  # no import needed to decide
            names.append(info.name)
    return names


def run(name: str) -> bool:
    module = importlib.import_module(f"bench.{name}")
    main = getattr(module, "main", None)
    if main is None:
        return True
    # Some mains take argv (argparse), some read sys.argv themselves: give both nothing.
    saved = sys.argv
    sys.argv = [f"bench.{name}"]
    try:
        takes_argv = bool(inspect.signature(main).parameters)
        status = main([]) if takes_argv else main()
    finally:
        sys.argv = saved
    return status in (None, 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    available = benchmarks()
    if "--list" in argv:
        print("\n".join(available))
        return 0
    wanted = [a for a in argv if not a.startswith("-")] or available
    unknown = [w for w in wanted if w not in available]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}",
              file=sys.stderr)
        return 2
    failed = []
    for name in wanted:
        print(f"== bench.{name}", file=sys.stderr, flush=True)
        began = time.monotonic()
        try:
            ok = run(name)
        except SystemExit as exc:
            ok = exc.code in (None, 0)
        except Exception:
            traceback.print_exc()
            ok = False
        print(f"== bench.{name}: {'ok' if ok else 'FAILED'} in {time.monotonic() - began:.0f} s",
              file=sys.stderr, flush=True)
        if not ok:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
