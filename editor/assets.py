"""Copy the front-end libraries npm installed into ``editor/static/vendor/``.

    npm ci && python -m editor.assets        (what ``make assets`` runs)

Third-party files are not committed: ``package.json``/``package-lock.json`` pin them,
and this copies the few files the pages load (no CDN at run time).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
FILES = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "drawflow.min.js": "drawflow/dist/drawflow.min.js",
    "drawflow.min.css": "drawflow/dist/drawflow.min.css",
}


class AssetsError(RuntimeError):
    """A file the pages need is not in node_modules (npm install not run?)."""


def build_assets(node_modules: Path | str | None = None, target: Path | str | None = None) -> list[Path]:
    """Copy the vendor files; returns the paths written."""
    source = Path(node_modules) if node_modules else ROOT / "node_modules"
    target = Path(target) if target else VENDOR
    missing = [str(source / rel) for rel in FILES.values() if not (source / rel).is_file()]
    if missing:
        raise AssetsError(
            "Missing: " + ", ".join(missing) + f". Run `npm ci` (or `npm install`) in {ROOT} first.")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rel in FILES.items():
        dest = target / name
        shutil.copyfile(source / rel, dest)
        written.append(dest)
    return written


def main() -> int:
    try:
        written = build_assets()
    except AssetsError as exc:
        print(exc, file=sys.stderr)
        return 1
    for path in written:
        print(f"copied {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
