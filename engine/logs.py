"""Logging for papo processes: plain text for people, or one JSON object per line.

``PAPO_LOG_FORMAT`` = ``text`` (default) or ``json``; ``PAPO_LOG_LEVEL`` = ``DEBUG`` …
``ERROR`` (default ``INFO``). :func:`configure` installs one handler on the root logger
(stderr, looked up at each write), replacing the one an earlier call installed.

Every line written while a message is being handled carries that message's ids: the
web layer opens a :func:`context` (channel, message id) around the work and the service
adds what it learns (:func:`bind`: conversation id, flow id and version). Lines never
carry the customer's text or secrets at INFO; ids and counts only.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from engine.settings import SettingsError

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The ids a line about a message carries, in the order a person reads them.
ID_FIELDS = ("channel", "message_id", "conversation_id", "flow_id", "flow_version", "timer_id",
             "outbox_id")

_context: ContextVar[dict | None] = ContextVar("papo_log_context", default=None)
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


# ---------------------------------------------------------------------- ids of the work in hand
@contextmanager
def context(**ids) -> Iterator[None]:
    """Every line logged inside the block carries ``ids`` (and what :func:`bind` adds)."""
    token = _context.set({**(_context.get() or {}), **_present(ids)})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**ids) -> None:
    """Add ids to the enclosing :func:`context`; nothing outside one (no leaking across work)."""
    current = _context.get()
    if current is not None:
        _context.set({**current, **_present(ids)})


def current() -> dict:
    """The ids bound now (a copy)."""
    return dict(_context.get() or {})


def info(logger: logging.Logger, msg: str, *args, **extra) -> None:
    """``logger.info(msg, *args, extra=extra)`` for a line written for every message: the
    same record, except that the caller's file, line and function are not looked up
    (``findCaller`` walks the stack, the dearest part of a record, and no papo format shows
    them; they read ``(unknown file)`` as with ``logging._srcfile = None``)."""
    if logger.isEnabledFor(logging.INFO):
        logger.handle(logger.makeRecord(logger.name, logging.INFO, "(unknown file)", 0, msg, args,
                                        None, "(unknown function)", extra or None))


def _present(ids: dict) -> dict:
    return {key: value for key, value in ids.items() if value is not None}


class _ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (``record.papo_ids``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _context.get() or _NO_IDS  # never changed in place: context() and bind() copy
        given = record.__dict__
        extra = {key: given[key] for key in ID_FIELDS if key in given}
        record.papo_ids = {**ids, **extra} if extra else ids
        return True


_NO_IDS: dict = {}


# ---------------------------------------------------------------------- formats
_NOT_EXTRA = _STANDARD | set(ID_FIELDS) | {"papo_ids"}


def _extras(record: logging.LogRecord) -> dict:
    given = record.__dict__
    if not given.keys() - _NOT_EXTRA:  # the usual case, in one set operation
        return {}
    return {key: value for key, value in given.items()
            if key not in _NOT_EXTRA and not key.startswith("_")}


_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def _utc_time(record: logging.LogRecord) -> str:
    """``2026-12-05T14:03:00.123Z``: the second's text is formatted once per second."""
    global _second
    whole = int(record.created)
    second, text = _second
    if second != whole:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, text)
    return f"{text}.{int(record.msecs):03d}Z"


# One encoder, made once: json.dumps() with any option builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", <ids>, <extra>, "exception"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = record.__dict__.get("papo_ids")
        if ids:
            entry.update(ids)
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return _ENCODER.encode(entry)


class TextFormatter(logging.Formatter):
    """``2026-12-05 14:03:00,123 INFO papo.inbound: message  [conversation_id=7 flow_id=x …]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = getattr(record, "papo_ids", None)
        if not ids:
            return line
        tail = " ".join(f"{key}={ids[key]}" for key in ID_FIELDS if key in ids)
        first, newline, rest = line.partition("\n")  # keep a traceback below the ids
        return f"{first}  [{tail}]{newline}{rest}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test capture, a redirected stream).

    One ``write`` of the whole line, then a flush: each line reaches the file (one system
    call) before the next message is handled, so a crash loses none. ``handle`` holds the
    handler's lock around ``emit``.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            stream = sys.stderr
            stream.write(line)
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


# ---------------------------------------------------------------------- set-up
def from_env(environ: dict | None = None) -> tuple[str, str]:
    """(format, level) from ``PAPO_LOG_FORMAT`` / ``PAPO_LOG_LEVEL``; raises ``SettingsError``."""
    env = os.environ if environ is None else environ
    fmt = (env.get("PAPO_LOG_FORMAT") or "text").strip().lower()
    if fmt not in FORMATS:
        raise SettingsError(f"PAPO_LOG_FORMAT={fmt!r} must be one of: {', '.join(FORMATS)}.")
    level = (env.get("PAPO_LOG_LEVEL") or "INFO").strip().upper()
    if level not in LEVELS:
        raise SettingsError(f"PAPO_LOG_LEVEL={level!r} must be one of: {', '.join(LEVELS)}.")
    return fmt, level


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(fmt: str = "text", level: str = "INFO") -> logging.Handler:
    """Send every log line to stderr in ``fmt``, from ``level`` up; returns the handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "papo_handler", False)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.papo_handler = True
    handler.setFormatter(formatter(fmt))
    handler.addFilter(_ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # Alembic says "Context impl SQLiteImpl." at INFO each time /readyz looks at the schema.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler


def configure_from_env(environ: dict | None = None) -> logging.Handler:
    return configure(*from_env(environ))
