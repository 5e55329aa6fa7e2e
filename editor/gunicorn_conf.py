"""gunicorn settings for papo's web processes.

    gunicorn -c python:editor.gunicorn_conf -w 4 -b 127.0.0.1:8000 'editor:create_app()'

- Metrics across worker processes: each gunicorn worker is its own process, so counters
  live in files under ``PROMETHEUS_MULTIPROC_DIR`` and ``GET /metrics`` adds them up.
  Without that variable this config makes a fresh folder per start (removed at exit);
  given one, it is emptied at start (one folder per gunicorn: do not share it). A dead
  worker's files are marked as such (``child_exit``).
- ``PAPO_LOG_FORMAT=json``: gunicorn's own lines (start, worker exits) are JSON too.

``papo serve`` (which builds its gunicorn in code) uses the same pieces:
``prepare_metrics_folder()`` before it loads the app, ``child_exit`` and ``on_exit`` as hooks.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

from gunicorn.glogging import Logger as _GunicornLogger

from engine import metrics

_made_here: list[str] = []  # temporary folders this master made (removed at exit)
_prepared_in: list[int] = []  # the master process that prepared the folder


def prepare_metrics_folder() -> str:
    """Set up ``PROMETHEUS_MULTIPROC_DIR`` for this server (once): the given folder emptied,
    else a fresh temporary one. Call it in the master before the app is loaded."""
    if os.getpid() in _prepared_in:
        return os.environ[metrics.MULTIPROC_ENV]
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
        atexit.register(_remove_if_master, folder, os.getpid())  # also when start-up fails
    _prepared_in.append(os.getpid())
    return folder


def _remove_if_master(folder: str, master: int) -> None:
    if os.getpid() == master:  # a forked worker exiting must not take the folder with it
        shutil.rmtree(folder, ignore_errors=True)


def on_starting(server) -> None:
    prepare_metrics_folder()


# Now, not only in on_starting: with --preload the app (and its metrics) is loaded in the
# master before on_starting runs, and must already see the folder.
prepare_metrics_folder()


def child_exit(server, worker) -> None:
    metrics.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    for folder in _made_here:
        shutil.rmtree(folder, ignore_errors=True)


class Logger(_GunicornLogger):
    """gunicorn's logger, its access line put together only when ``gunicorn.access`` would
    write it. Stock gunicorn builds the line's fields (every request header and environ key,
    the time) for each request as soon as any ``logconfig_dict`` is given, even with the
    access log off, as below: 20–25 µs per request for nothing."""

    def access(self, resp, req, environ, request_time) -> None:
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


logger_class = Logger
control_socket_disable = True  # no runtime-management socket in $HOME (as papo serve)

# gunicorn merges this into its logging defaults (key by key): its own lines in JSON, each
# once (its default root handler would print every line a second time, and the app's root
# handler a third). Empty (gunicorn's default) for text logs.
logconfig_dict: dict = {}
if (os.environ.get("PAPO_LOG_FORMAT") or "").strip().lower() == "json":
    logconfig_dict = {
        "formatters": {"generic": {"()": "engine.logs.JsonFormatter"}},
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False,
                               "qualname": "gunicorn.error"},
            # Off as without this config (a path can carry a customer's name): the reverse
            # proxy's access log is the place for requests.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False,
                                "qualname": "gunicorn.access"},
        },
    }
