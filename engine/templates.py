"""Message templates: Jinja in an immutable sandbox, under limits (DESIGN §10.5).

A variable that is missing renders as empty text; the names are reported so the run
log can record them (the linter reports them before publishing).

Limits, so that no template can freeze a process or fill its memory:

- at most 4,096 characters of output (``MAX_RENDERED``);
- ``range()`` of at most 10,000 items (``MAX_RANGE``);
- what builds a string or a list in one step — ``center``, ``format`` (and
  ``str.format``, ``%``), ``indent``, ``join``, ``replace``, ``batch``, ``*`` — may not
  build more than ``MAX_RENDERED`` characters (or items); ``+`` and a value passed to a
  macro or stored in a ``namespace`` at most four times that;
- a render budget of 100 ms (``RENDER_BUDGET_S``) of CPU time: checked on every line the
  compiled template runs, so even empty nested loops stop. Only templates that can
  repeat work (a ``for`` loop, a macro, a call) are watched; the others are bounded by
  their own size and the caps above, and render at full speed.

Over a limit the render stops: the text rendered up to that point is kept (cut at
``MAX_RENDERED``), and the error is returned for the run log and logged here.

An unknown filter or test is found before anything is stored: :func:`syntax_error`
reports it (the linter's ``bad_template``) in the author's language.
"""
from __future__ import annotations

import logging
import re
import string
import sys
import threading
from functools import lru_cache

# The render budget is the CPU time of the rendering thread: a busy machine that leaves
# the thread waiting for a core does not cut an ordinary message short, and the
# conversation's clock (which comes from events; engine/core.py never reads it) is not
# involved. Bound once, so a test faking the clock does not fake this too.
from time import thread_time as _elapsed

from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from engine.i18n import N_, gettext, t

log = logging.getLogger("papo.templates")

MAX_RENDERED = 4096
MAX_RANGE = 10_000
MAX_VALUE = 4 * MAX_RENDERED  # a string passed around inside one render
RENDER_BUDGET_S = 0.100
_TEMPLATE_FILE = "<template>"  # the filename Jinja gives code compiled from a string


class TemplateLimit(SecurityError):
    """A render went over one of the limits above."""


# ---------------------------------------------------------------------- the budget

class _Budget:
    """The deadline of the render running on this thread, enforced by a trace function
    that sees only the template's own compiled code (``<template>`` frames)."""

    def __init__(self, seconds: float):
        self.deadline = _elapsed() + seconds

    def global_trace(self, frame, event, arg):
        if frame.f_code.co_filename == _TEMPLATE_FILE:
            self.check()
            return self.local_trace
        return None

    def local_trace(self, frame, event, arg):
        if event == "line":
            self.check()
        return self.local_trace

    def check(self) -> None:
        if _elapsed() > self.deadline:
            raise TemplateLimit(f"tempo de renderização esgotado ({int(RENDER_BUDGET_S * 1000)} ms)")


# ---------------------------------------------------------------------- size checks

def _too_big(what: str) -> TemplateLimit:
    return TemplateLimit(f"{what} passaria do limite de {MAX_RENDERED} caracteres")


def _check_width(value, what: str) -> None:
    if isinstance(value, int) and abs(value) > MAX_RENDERED:
        raise _too_big(what)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent_format(fmt: str, args) -> None:
    """``'%0100000000d' % 1`` would build 100 MB before any cut: refuse wide specs."""
    values = args if isinstance(args, tuple | list) else (args,)
    for width, precision in _PERCENT_SPEC.findall(fmt):
        for part in (width, precision):
            if part == "*":
                for value in values:
                    _check_width(value, "format")
            elif part and int(part) > MAX_RENDERED:
                raise _too_big("format")
    if len(fmt) * max(1, len(values)) > MAX_VALUE * 4:
        raise _too_big("format")


def _check_brace_format(fmt: str, args, kwargs) -> None:
    """``'{:>999999999}'.format(1)``: the same for ``str.format``."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format will say what is wrong
    for _literal, _name, spec, _conversion in fields:
        if not spec:
            continue
        if "{" in spec:  # a width taken from an argument
            for value in (*args, *kwargs.values()):
                _check_width(value, "format")
        for number in re.findall(r"\d+", spec):
            if int(number) > MAX_RENDERED:
                raise _too_big("format")


class _Limited(Namespace):
    """``namespace()`` whose attributes cannot grow past ``MAX_VALUE`` (a loop doubling
    ``ns.text`` would otherwise build gigabytes)."""

    def __setitem__(self, name, value):
        if isinstance(value, str | list | tuple) and len(value) > MAX_VALUE:
            raise _too_big("namespace")
        super().__setitem__(name, value)


def _range(*args):
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimit(f"range() com mais de {MAX_RANGE} itens")
    return numbers


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus the limits in the module docstring."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options):
        super().__init__(**options)
        self.globals["range"] = _range
        self.globals["namespace"] = _Limited
        for name, check in _FILTER_CHECKS.items():
            self.filters[name] = _checked(self.filters[name], check)

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise TemplateLimit("expoente grande demais")
            return left ** right
        if operator == "*":
            sized = left if isinstance(left, str | list | tuple) else right
            times = right if sized is left else left
            if isinstance(sized, str | list | tuple) and isinstance(times, int) and \
                    len(sized) * max(times, 0) > MAX_RENDERED:
                raise _too_big("*")
            return left * right
        if operator == "%":
            if isinstance(left, str):
                _check_percent_format(left, right)
            return left % right
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple) and \
                len(left) + len(right) > MAX_VALUE:
            raise _too_big("+")
        return left + right

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's signature
        for value in (*args, *kwargs.values()):
            if isinstance(value, str) and len(value) > MAX_VALUE:
                raise _too_big("argumento")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value):
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked(*args, **kwargs):
            _check_brace_format(fmt, args, kwargs if value.__name__ == "format" else
                                (args[0] if args and isinstance(args[0], dict) else {}))
            return wrapped(*args, **kwargs)

        return checked


def _check_center(value, width=80, *args, **kwargs):
    _check_width(width, "center")


def _check_indent(value, width=4, *args, **kwargs):
    lines = str(value).count("\n") + 1
    size = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    if size > MAX_RENDERED or lines * max(size, 0) + len(str(value)) > MAX_VALUE:
        raise _too_big("indent")


def _check_format(value, *args, **kwargs):
    if isinstance(value, str):
        _check_percent_format(value, args or tuple(kwargs.values()))


def _check_join(value, d="", attribute=None):
    items = list(value) if not isinstance(value, str) else value
    total = sum(len(str(item)) for item in items[:MAX_RANGE + 1]) + len(str(d)) * len(items)
    if len(items) > MAX_RANGE or total > MAX_RENDERED:
        raise _too_big("join")
    return items


def _check_replace(value, old, new, count=None):
    text = str(value)
    found = text.count(str(old)) if old else len(text) + 1
    if count is not None and isinstance(count, int) and count >= 0:
        found = min(found, count)
    if len(text) + found * max(len(str(new)) - len(str(old)), 0) > MAX_VALUE:
        raise _too_big("replace")


def _check_batch(value, linecount, fill_with=None):
    _check_width(linecount, "batch")


# Filter name → a check run on the filter's arguments before it builds anything. A check
# may return a replacement for the first argument (``join`` reads an iterator once).
_FILTER_CHECKS = {
    "center": _check_center,
    "indent": _check_indent,
    "format": _check_format,
    "join": _check_join,
    "replace": _check_replace,
    "batch": _check_batch,
}


def _checked(original, check):
    """``original`` (a Jinja filter, maybe taking the context first) behind ``check``."""
    passes = getattr(original, "jinja_pass_arg", None)

    index = 1 if passes is not None else 0

    def wrapper(*args, **kwargs):
        replaced = check(*args[index:], **kwargs)
        if replaced is not None:
            args = (*args[:index], replaced, *args[index + 1:])
        return original(*args, **kwargs)

    if passes is not None:
        wrapper.jinja_pass_arg = passes
    return wrapper


class _RecordingUndefined(ChainableUndefined):
    """Renders as "" and remembers its name (the environment collects them per render)."""

    def __str__(self) -> str:
        _local.__dict__.setdefault("missing", []).append(self._undefined_name or "?")
        return ""

    def __iter__(self):
        return iter(())

    def __bool__(self) -> bool:
        return False


_local = threading.local()  # names missing in the render running on this thread
_env = _BoundedSandbox(undefined=_RecordingUndefined, autoescape=False)
_check_env = _BoundedSandbox(undefined=StrictUndefined)


def global_names() -> frozenset[str]:
    """Names every template can use without a variable (``range``, ``dict``…): the
    linter must not report them as variables used before being set."""
    return frozenset(_env.globals)


@lru_cache(maxsize=4096)
def _compile(source: str):
    """``(template, needs_budget)``: whether it has loops, macros or calls to watch."""
    template = _env.from_string(source)
    tree = _env.parse(source)
    return template, tree.find((nodes.For, nodes.Macro, nodes.CallBlock, nodes.Call)) is not None


def render(source: str, variables: dict, contact: dict, *,
           budget_s: float = RENDER_BUDGET_S) -> tuple[str, list[str], str | None]:
    """Render ``source``; returns (text, missing variable names, error or None).

    Over a limit, ``text`` is what was rendered up to it and ``error`` says which limit.
    """
    if "{" not in source:
        return source[:MAX_RENDERED], [], None
    context = dict(variables)
    context["vars"] = variables
    context["contact"] = contact
    _local.missing = []
    try:
        template, needs_budget = _compile(source)
    except TemplateSyntaxError as exc:
        return "", [], str(exc)
    except Exception as exc:  # a template error must never crash a conversation
        return "", [], f"{type(exc).__name__}: {exc}"
    chunks: list[str] = []
    size = 0
    error = None
    previous = sys.gettrace()
    if needs_budget:
        sys.settrace(_Budget(budget_s).global_trace)
    try:
        for chunk in template.generate(context):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_RENDERED:
                break
    except TemplateLimit as exc:
        error = str(exc)
        log.error("template stopped at a limit: %s (template: %.80r)", error, source)
    except SecurityError as exc:
        error = str(exc)
    except Exception as exc:  # a template error must never crash a conversation
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if needs_budget:
            sys.settrace(previous)
    missing = list(dict.fromkeys(_local.missing))
    text = "".join(chunks)[:MAX_RENDERED]
    return text, missing, error


@lru_cache(maxsize=8192)
def _parse_for_names(source: str) -> frozenset[str] | None:
    try:
        tree = _check_env.parse(source)
        names = set(meta.find_undeclared_variables(tree))
    except TemplateSyntaxError:  # also an unknown filter or test (TemplateAssertionError)
        return None
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "vars":
            names.add(node.attr)
    names.discard("vars")
    return frozenset(names)


def referenced_names(source: str) -> set[str] | None:
    """Top-level names a template reads (``vars.x`` counts as ``x``); None if it cannot parse."""
    if not isinstance(source, str) or "{" not in source:
        return set()
    names = _parse_for_names(source)
    return None if names is None else set(names)


_SYNTAX_HINTS = (
    # (what Jinja says, plain words for the mistake authors make: a catalog id)
    ("unexpected end of template, expected 'end of print statement'",
     N_("falta fechar as chaves: cada {{ precisa de um }}")),
    ("unexpected '}'", N_("há um } sobrando ou um {{ faltando")),
    ("Unexpected end of template. Jinja was looking for the following tags",
     N_("um bloco {% … %} foi aberto e não foi fechado (falta {% end… %})")),
    ("Expected an expression", N_("há chaves vazias ou incompletas")),
    ("expected token 'end of print statement'",
     N_("dentro de {{ }} cabe um só nome de variável (ex.: {{ contact.name }})")),
)


def _plain(exc: TemplateSyntaxError, lang: str | None) -> str:
    """Jinja's complaint in words an author understands (its own text when unknown)."""
    for jinja_says, plain in _SYNTAX_HINTS:
        if exc.message and exc.message.startswith(jinja_says):
            return gettext(plain, lang)
    return exc.message or ""


def unknown_names(source: str) -> list[tuple[str, str, int]]:
    """``[("filter"|"test", name, line)]`` for every filter or test the sandbox does not
    have (``{{ nome|upperr }}``); empty when the template does not parse."""
    try:
        tree = _check_env.parse(source)
    except TemplateSyntaxError:
        return []
    found = []
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        kind = "filter" if isinstance(node, nodes.Filter) else "test"
        known = _check_env.filters if kind == "filter" else _check_env.tests
        if node.name not in known:
            found.append((kind, node.name, node.lineno))
    return found


@lru_cache(maxsize=8192)
def syntax_error(source: str, lang: str | None = None) -> str | None:
    """Why ``source`` cannot be rendered (syntax, unknown filter or test), in plain words in
    the author's language; None when it can."""
    try:
        _check_env.parse(source)
    except TemplateSyntaxError as exc:
        return t("templates.at_line", lang, problem=_plain(exc, lang), line=exc.lineno)
    unknown = unknown_names(source)
    if unknown:
        kind, name, line = unknown[0]
        return t("templates.at_line", lang, problem=t(f"templates.unknown_{kind}", lang, name=name),
                 line=line)
    try:
        _check_env.from_string(source)
    except TemplateSyntaxError as exc:  # anything else the compiler refuses
        return t("templates.at_line", lang, problem=_plain(exc, lang), line=exc.lineno)
    return None
