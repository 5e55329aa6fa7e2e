"""The ``papo`` command line (click, through Flask's CLI machinery).

Each area adds its commands in ``editor/commands/<area>.py``; this module only
assembles them so that no command module has to know about the others.
"""
from __future__ import annotations

import importlib
import pkgutil

import click

from editor import commands as _commands


@click.group(help="papo: rules-and-flow engine for customer chat.")
def main() -> None:
    pass


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"editor.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(main)


_register_all()
