"""Message templates: Jinja in an immutable sandbox, capped at 4,096 characters.

A variable that is missing renders as empty text; the names are reported so the run
log can record them (the linter reports them before publishing).
"""
from __future__ import annotations

import threading
from functools import lru_cache

from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RENDERED = 4096


class _RecordingUndefined(ChainableUndefined):
    """Renders as "" and remembers its name (the environment collects them per render)."""

    def __str__(self) -> str:
        _local.__dict__.setdefault("missing", []).append(self._undefined_name or "?")
        return ""

    def __iter__(self):
        return iter(())

    def __bool__(self) -> bool:
        return False


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus a cap on ``*`` and ``**`` so a template cannot build a
    gigabyte string (``{{ 'a' * 10**9 }}``) before the 4,096-character cut applies."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("expoente grande demais")
            return left ** right
        sized = left if isinstance(left, str | list | tuple) else right
        times = right if sized is left else left
        if isinstance(sized, str | list | tuple) and isinstance(times, int) and \
                len(sized) * max(times, 0) > MAX_RENDERED * 4:
            raise SecurityError("texto grande demais")
        return left * right


_local = threading.local()  # names missing in the render running on this thread
_env = _BoundedSandbox(undefined=_RecordingUndefined, autoescape=False)
_check_env = _BoundedSandbox(undefined=StrictUndefined)


@lru_cache(maxsize=4096)
def _compile(source: str):
    return _env.from_string(source)


def render(source: str, variables: dict, contact: dict) -> tuple[str, list[str], str | None]:
    """Render ``source``; returns (text, missing variable names, error or None)."""
    if "{" not in source:
        return source[:MAX_RENDERED], [], None
    context = dict(variables)
    context["vars"] = variables
    context["contact"] = contact
    _local.missing = []
    try:
        text = _compile(source).render(context)
    except (TemplateSyntaxError, SecurityError) as exc:
        return "", [], str(exc)
    except Exception as exc:  # a template error must never crash a conversation
        return "", [], f"{type(exc).__name__}: {exc}"
    missing = list(dict.fromkeys(_local.missing))
    return text[:MAX_RENDERED], missing, None


@lru_cache(maxsize=8192)
def _parse_for_names(source: str) -> frozenset[str] | None:
    from jinja2 import nodes

    try:
        tree = _check_env.parse(source)
        # Analysing compiles the template: an unknown filter is a TemplateAssertionError
        # (a TemplateSyntaxError) here, reported by lint as bad_template, never a crash.
        names = set(meta.find_undeclared_variables(tree))
    except TemplateSyntaxError:
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
    # (what Jinja says, pt-BR, English): plain words for the mistakes authors make
    ("unexpected end of template, expected 'end of print statement'",
     "falta fechar as chaves: cada {{{{ precisa de um }}}}", "a brace is not closed: every {{{{ needs a }}}}"),
    ("unexpected '}'", "há um }} sobrando ou um {{{{ faltando", "there is a stray }} or a missing {{{{"),
    ("Unexpected end of template. Jinja was looking for the following tags",
     "um bloco {{% … %}} foi aberto e não foi fechado (falta {{% end… %}})",
     "a {{% … %}} block is opened and never closed (missing {{% end… %}})"),
    ("Expected an expression", "há chaves vazias ou incompletas", "there are empty or incomplete braces"),
    ("expected token 'end of print statement'",
     "dentro de {{{{ }}}} cabe um só nome de variável (ex.: {{{{ contact.name }}}})",
     "only one variable name fits inside {{{{ }}}} (e.g. {{{{ contact.name }}}})"),
)


def _unknown_names(tree) -> tuple[list[str], list[str]]:
    """Filters and tests a template uses that the sandbox does not have."""
    from jinja2 import nodes

    filters = sorted({n.name for n in tree.find_all(nodes.Filter) if n.name not in _check_env.filters})
    tests = sorted({n.name for n in tree.find_all(nodes.Test) if n.name not in _check_env.tests})
    return filters, tests


@lru_cache(maxsize=8192)
def syntax_error(source: str, lang: str | None = None) -> str | None:
    """What is wrong with a template, in plain words (pt-BR, or English for ``lang="en"``),
    or None. Unknown filters and tests count: they would fail every time the text is sent."""
    english = (lang or "").startswith("en")
    line = "line" if english else "linha"
    try:
        tree = _check_env.parse(source)
    except TemplateSyntaxError as exc:
        for jinja_says, pt, en in _SYNTAX_HINTS:
            if exc.message and exc.message.startswith(jinja_says):
                return f"{(en if english else pt).format()} ({line} {exc.lineno})"
        return f"{exc.message} ({line} {exc.lineno})"
    filters, tests = _unknown_names(tree)
    if filters:
        names = ", ".join(f"\"{n}\"" for n in filters)
        return f"unknown filter {names}" if english else f"o filtro {names} não existe"
    if tests:
        names = ", ".join(f"\"{n}\"" for n in tests)
        return f"unknown test {names}" if english else f"o teste {names} não existe"
    return None
