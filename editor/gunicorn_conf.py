"""gunicorn settings for papo's web processes.

    gunicorn -c python:editor.gunicorn_conf -w 4 -b 127.0.0.1:8000 'editor:create_app()'

- Metrics across worker processes: each gunicorn worker is its own process, so counters
  live in files under ``PROMETHEUS_MULTIPROC_DIR`` and ``GET /metrics`` adds them up.
  Without that variable this config makes a fresh folder per start (removed at exit);
  given one, it is emptied at start (one folder per gunicorn: do not share it). A dead
  worker's files are marked as such (``child_exit``).
- ``PAPO_LOG_FORMAT=json``: gunicorn's own lines (start, worker exits) are JSON too.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from engine import metrics

_made_here: list[str] = []


def on_starting(server) -> None:
    folder = os.environ.get(metrics.MULTIPROC_ENV)
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # values of a previous run's processes
            stale.unlink(missing_ok=True)
    else:
        folder = tempfile.mkdtemp(prefix="papo-metrics-")
        _made_here.append(folder)
        os.environ[metrics.MULTIPROC_ENV] = folder  # the workers inherit it when forked


def child_exit(server, worker) -> None:
    metrics.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    for folder in _made_here:
        shutil.rmtree(folder, ignore_errors=True)


if (os.environ.get("PAPO_LOG_FORMAT") or "").strip().lower() == "json":
    # gunicorn merges this into its logging defaults: its handlers use "generic".
    logconfig_dict = {"formatters": {"generic": {"()": "engine.logs.JsonFormatter"}}}
