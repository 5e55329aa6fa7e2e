"""Instructions per inbound message, counted by valgrind's callgrind in one process.

CPU time on a shared machine moves with whatever else runs; the instructions a request
executes do not. Each entry point (``POST /api/v1/inbound``, the signed WhatsApp webhook)
is driven through the Flask test client on a fresh SQLite file with the bench flow
(``bench/http_inbound.py``'s): a warm-up, then ``--requests`` requests between two
callgrind dumps. The server's once-a-second upkeep (text search index, WAL checkpoint) is
left out: it costs a few milliseconds a second, not per message.

    .venv/bin/python -m bench.instructions                      # this checkout
    .venv/bin/python -m bench.instructions --tree /tmp/before   # another checkout too

``--tree``: a checkout with its own ``.venv`` (``make install``), e.g. ``git worktree add
/tmp/before <commit>``; compared side by side with this one. Needs ``valgrind``
(``apt-get install valgrind``). Slow: about a minute per entry point and checkout.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import os, sys, tempfile, time
from pathlib import Path
mode, n, warm, bench_root = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, bench_root)
from bench.http_inbound import (ANSWER, FLOW, FLOW_ID, WA_PATH, inbound_body, wa_body, wa_contact,
                                wa_signature, whatsapp_env)
sys.path.pop(0)
for name in [m for m in sys.modules if m.split(".")[0] in ("engine", "editor", "blocks", "schemas")]:
    del sys.modules[name]  # the checkout under test's own code, not the bench's
import engine.db
engine.db.CHECKPOINT_EVERY_S = 3600  # the per-second upkeep is not per message
from editor import create_app
from editor.app import ensure_schema, get_engine
from engine import accounts
from engine.flows import FlowRepository
tmp = Path(tempfile.mkdtemp())
app = create_app({"PAPO_DATABASE_URL": f"sqlite:///{tmp / 'papo.db'}", "PAPO_INSTANCE_PATH": str(tmp),
                  "SECRET_KEY": "bench", "PAPO_LOG_LEVEL": "WARNING", **whatsapp_env("http://127.0.0.1:9")})
db = get_engine(app)
ensure_schema(db)
flows = FlowRepository(db)
flows.create(FLOW, actor="bench")
flows.publish(FLOW_ID, actor="bench")
accounts.create_user(db, "bench", "admin", password="bench-senha-123")
headers = {"Authorization": "Bearer " + accounts.create_token(db, "bench")}
client = app.test_client()
def one(i):
    text = "oi" if (i // 8) % 2 == 0 else ANSWER
    if mode == "api":
        answer = client.post("/api/v1/inbound", json=inbound_body(f"c{i % 8}", i // 8, text), headers=headers)
    else:
        raw = wa_body(wa_contact("c", i % 8), i // 8 + 1, text, time.time())
        answer = client.post(WA_PATH, data=raw, headers={"Content-Type": "application/json",
                                                         "X-Hub-Signature-256": wa_signature(raw)})
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
def mark():
    sys.stdout.write("MARK\n"); sys.stdout.flush(); sys.stdin.readline()
for i in range(warm):
    one(i)
mark()
for i in range(warm, warm + n):
    one(i)
mark()
"""


def per_request(tree: Path, mode: str, requests: int, warmup: int) -> float:
    """Instructions per request of ``mode`` (api | whatsapp) in the checkout ``tree``."""
    python = tree / ".venv" / "bin" / "python"
    python = python if python.exists() else Path(sys.executable)
    tmp = Path(tempfile.mkdtemp(prefix="papo-instructions-"))
    out = tmp / "callgrind.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPO_")}
    child = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", str(python), "-c", CHILD,
         mode, str(requests), str(warmup), str(ROOT)],
        cwd=tree, env={**env, "PYTHONPATH": str(tree)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    try:
        for _ in range(2):
            line = child.stdout.readline()
            if line.strip() != "MARK":
                raise RuntimeError(f"{tree} {mode}: the measured process stopped ({line!r})")
            subprocess.run(["callgrind_control", "--dump", str(child.pid)], capture_output=True, check=False)
            child.stdin.write("\n")
            child.stdin.flush()
        child.wait(timeout=600)
        dumps = sorted(glob.glob(f"{out}.{child.pid}.*"), key=os.path.getmtime)
        return _total(dumps[1]) / requests  # the second dump: between the two marks
    finally:
        if child.poll() is None:
            child.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _total(path: str) -> int:
    with open(path) as dump:
        for line in dump:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--tree", action="append", default=[],
                        help="another checkout to compare (LABEL=DIR to name it)")
    parser.add_argument("--modes", default="api,whatsapp")
    parser.add_argument("--no-write", dest="write", action="store_false",
                        help="print the section instead of rewriting docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    trees = [tuple(t.split("=", 1)) if "=" in t else (t, t) for t in args.tree] + [("this checkout", str(ROOT))]
    modes = args.modes.split(",")
    counts = {}
    for label, tree in trees:
        for mode in modes:
            counts[(label, mode)] = per_request(Path(tree).resolve(), mode, args.requests, args.warmup)
            print(f"{label} {mode}: {counts[(label, mode)] / 1e6:.2f} M instructions per request",
                  file=sys.stderr, flush=True)
    names = {"api": "`POST /api/v1/inbound`", "whatsapp": "WhatsApp webhook"}
    lines = ["Instructions one inbound message executes in one process (valgrind's callgrind: the "
             "same count on a busy machine as on an idle one), through the Flask test client on a "
             f"fresh SQLite file with the bench flow: {args.warmup} requests of warm-up, then "
             f"{args.requests} counted. The server's once-a-second upkeep (text search index, WAL "
             "checkpoint) is left out: milliseconds a second, not per message.", "",
             "| checkout | " + " | ".join(names.get(m, m) for m in modes) + " |",
             "|---|" + "---:|" * len(modes)]
    for label, _tree in trees:
        lines.append(f"| {label} | " + " | ".join(f"{counts[(label, m)] / 1e6:.2f} M" for m in modes) + " |")
    if len(trees) > 1:
        first, last = trees[0][0], trees[-1][0]
        lines.append("")
        lines.append(f"From {first} to {last}: " + ", ".join(
            f"{names.get(m, m)} {100 * (counts[(last, m)] / counts[(first, m)] - 1):+.0f} %" for m in modes) + ".")
    body = "\n".join(lines)
    command = ".venv/bin/python -m bench.instructions" + (" " + " ".join(argv or sys.argv[1:]) if (argv or sys.argv[1:]) else "")
    if args.write:
        from bench._report import write_section

        write_section("Instructions per inbound message", body, command)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
