"""Writes one named section of docs/PERFORMANCE.md, keeping every other section.

Each benchmark owns a ``## <title>`` section: its figures, the command that produced them,
the machine (cores, memory, Python) and the date. Usage::

    from bench._report import write_section
    write_section("Engine", "| what | figure |\\n|---|---|\\n| step | 80,000 blocks/s |",
                  "python -m bench.engine")
"""
from __future__ import annotations

import datetime as dt
import fcntl
import os
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md"
HEADER = ("# papo performance\n\n"
          "Measured figures, one section per benchmark. Each section is rewritten by its benchmark "
          "(`bench/`); rerun the command shown to refresh it.\n")
_SECTION = re.compile(r"^## (.+?)\s*$", re.MULTILINE)


def _memory() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024 ** 3:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        return "unknown"


def machine() -> str:
    """``2 cores, 23.5 GiB memory, CPython 3.11.7 on Linux x86_64``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cores} cores, {_memory()} memory, {platform.python_implementation()} "
            f"{platform.python_version()} on {platform.system()} {platform.machine()}")


def render_section(title: str, markdown_body: str, command: str, when: dt.datetime | None = None) -> str:
    when = when or dt.datetime.now(dt.UTC)
    return (f"## {title}\n\n{markdown_body.strip()}\n\n"
            f"- Command: `{command}`\n"
            f"- Machine: {machine()}\n"
            f"- Date: {when.strftime('%Y-%m-%d %H:%M')} UTC\n")


def replace_section(document: str, title: str, section: str) -> str:
    """``document`` with its ``## title`` section replaced by ``section`` (appended if absent)."""
    if not document.strip():
        document = HEADER
    starts = [(m.start(), m.group(1)) for m in _SECTION.finditer(document)]
    head = document[:starts[0][0]] if starts else document
    sections = [(name, document[start:(starts[i + 1][0] if i + 1 < len(starts) else len(document))])
                for i, (start, name) in enumerate(starts)]
    out, replaced = [], False
    for name, text in sections:
        if name == title:
            out.append(section)
            replaced = True
        else:
            out.append(text)
    if not replaced:
        out.append(section)
    return head.rstrip("\n") + "\n\n" + "\n".join(s.strip("\n") + "\n" for s in out)


def write_section(title: str, markdown_body: str, command: str) -> Path:
    """Rewrite the ``## title`` section of docs/PERFORMANCE.md (created if missing)."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    section = render_section(title, markdown_body, command)
    with open(DOC, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # two benchmarks finishing together must not lose a section
        handle.seek(0)
        updated = replace_section(handle.read(), title, section)
        handle.seek(0)
        handle.truncate()
        handle.write(updated)
    return DOC
