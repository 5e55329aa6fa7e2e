"""``python -m bench.http_inbound --wa-statuses``: the WhatsApp webhook with delivery statuses mixed in.

Issue 16's target: papo's WhatsApp webhook keeps ≥ 80% of the bare ceiling when status
webhooks come with the messages, one status per two messages (``sent``/``delivered``/
``read`` about replies papo really sent), as Meta sends them.

Same servers as the main bench (``gunicorn -w 2 -k sync``, fresh SQLite files, 127.0.0.1):
**bare** (``bench/bare_app.py``, one read and one write per request: the ceiling), **papo-wa**
(the signed webhook, a ``papo worker`` sending the replies to a fake Graph API) with plain
message deliveries, and **papo-wa+statuses**: the same webhook where every third request is a
status delivery naming a wamid the fake Graph API already handed out (its reply is stored,
so the status really updates a message). ``--rounds`` interleaved rounds per concurrency;
the figure is requests per second (a status is a request) and the ratio to bare in the
same round.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.http_inbound import (
    ANSWER,
    WA_PHONE_ID,
    WRK_SCRIPT,
    WRK_WA_SCRIPT,
    FakeGraph,
    Point,
    Target,
    _measure,
    find_wrk,
    loadavg,
    papo_counts,
    smoke,
    start_bare,
    start_papo,
    start_whatsapp,
    stop,
    wa_body,
    wa_contact,
    wa_signature,
    whatsapp_env,
)

TITLE = "HTTP inbound: WhatsApp with delivery statuses"
TARGET_RATIO = 0.80
STATUS_CYCLE = ("sent", "delivered", "read")


def status_body(wamid: str, status: str, recipient: str, at: float) -> bytes:
    """Meta's delivery of one status about a message papo sent."""
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550001111", "phone_number_id": WA_PHONE_ID},
             "statuses": [{"id": wamid, "status": status, "timestamp": str(int(at)),
                           "recipient_id": recipient,
                           "conversation": {"id": "c-bench", "origin": {"type": "service"}},
                           "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"}}]}
    payload = {"object": "whatsapp_business_account",
               "entry": [{"id": "bench", "changes": [{"field": "messages", "value": value}]}]}
    return json.dumps(payload, separators=(",", ":")).encode()


def mixed_files(folder: Path, clients: int, seconds: int, prefix: str, sent: int) -> Path:
    """Per client: message, message, status, … (signed). A status names one of the ``sent``
    wamids the fake Graph API handed out so far, in turn ``sent``, ``delivered``, ``read``."""
    lines = int(3000 * seconds / clients) + 200
    now = time.time() + seconds / 2
    base = folder / f"mix-{prefix}"
    for index in range(clients):
        contact = wa_contact(prefix, index)
        n = 0
        with open(f"{base}-{index}", "w") as out:
            for line in range(1, lines + 1):
                if line % 3 == 0:
                    k = (line // 3 * clients + index) % max(1, sent)  # no two clients name one
                    raw = status_body(f"wamid.FAKE{k + 1:09d}", STATUS_CYCLE[(line // 3) % 3], contact, now)
                else:
                    n += 1
                    raw = wa_body(contact, n, "oi" if n % 2 else ANSWER, now)
                out.write(f"{wa_signature(raw)}\t{raw.decode()}\n")
    return base


def load_mixed(wrk: str, tmp: Path, target: Target, clients: int, seconds: int, prefix: str,
               sent: int) -> Point:
    base = mixed_files(tmp, clients, seconds, prefix, sent)
    env = {**os.environ, "BENCH_PATH": target.path, "BENCH_FILE": str(base)}
    argv = [wrk, f"-t{clients}", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(tmp / "whatsapp.lua"), target.url]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result ({done.returncode}): {done.stdout}\n{done.stderr}")
    data = json.loads(line[len("BENCH_JSON "):])
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Point("papo-wa+statuses", target.database, clients, requests=data["requests"], errors=errors,
                 seconds=data["duration_us"] / 1e6, p50_ms=data["p50_us"] / 1000,
                 p99_ms=data["p99_us"] / 1000)


def delivered_statuses(db_url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, select

    from engine.store import messages

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            found: dict[str, int] = {}
            for details in conn.execute(select(messages.c.details).where(
                    messages.c.direction == "out", messages.c.details.is_not(None))).scalars():
                status = ((details or {}).get("delivery") or {}).get("status")
                if status:
                    found[status] = found.get(status, 0) + 1
            return found
    finally:
        engine.dispose()


def measure_statuses(args, argv) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="papo-bench-wa-statuses-"))
    load_before = loadavg()
    wrk = find_wrk(install=args.client == "auto")
    if wrk is None:
        raise SystemExit("this mode needs wrk (apt-get install wrk)")
    (tmp / "inbound.lua").write_text(WRK_SCRIPT)
    (tmp / "whatsapp.lua").write_text(WRK_WA_SCRIPT)
    version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
    graph = FakeGraph()
    targets: list[Target] = []
    results: dict[tuple[str, int], list[Point]] = {}
    checks: list[str] = []
    try:
        print(f"starting servers in {tmp} …", file=sys.stderr)
        bare = start_bare("sqlite", f"sqlite:///{tmp / 'bare.db'}", tmp, args.workers)
        targets.append(bare)
        papo = start_papo("sqlite", f"sqlite:///{tmp / 'papo.db'}", tmp, args.workers,
                          extra_env=whatsapp_env(graph.api_base))
        targets.append(papo)
        wa = start_whatsapp(papo, tmp, graph.api_base)
        targets.append(wa)
        smoke(bare)
        smoke(wa)
        run_id = uuid.uuid4().hex[:6]
        # Replies to name in statuses: a first load, and the worker's time to send it.
        _measure(wrk, tmp, wa, 4, max(3, args.warmup), f"seed-{run_id}")
        time.sleep(7)
        for clients in args.clients:
            for round_no in range(args.rounds):
                order = ("bare", "papo-wa", "papo-wa+statuses")
                if round_no % 2:
                    order = order[::-1]
                for name in order:
                    prefix = f"{name}-{clients}-{round_no}-{run_id}"
                    if name == "bare":
                        point = _measure(wrk, tmp, bare, clients, args.duration, prefix)
                    elif name == "papo-wa":
                        point = _measure(wrk, tmp, wa, clients, args.duration, prefix)
                    else:
                        point = load_mixed(wrk, tmp, wa, clients, args.duration, prefix, graph.sent)
                    point.target = name
                    results.setdefault((name, clients), []).append(point)
                    print(f"{name:17} {clients:>2} clients round {round_no + 1}: {point.rps:,.0f} req/s, "
                          f"p50 {point.p50_ms:.1f} ms, {point.errors} errors", file=sys.stderr)
        time.sleep(7)  # the worker sends what is left
        counts = papo_counts(papo.db_url)
        statuses = delivered_statuses(papo.db_url)
        checks.append(f"papo: {counts['in']:,} inbound messages stored, {counts['out']:,} bot replies "
                      f"({'2 per message' if counts['out'] == 2 * counts['in'] else 'NOT 2 per message'}), "
                      f"{counts['duplicates']} duplicates; the fake Graph API answered {graph.sent:,} sends.")
        checks.append("Replies whose `delivery` a status set, by status: "
                      + (", ".join(f"{k} {v:,}" for k, v in sorted(statuses.items())) or "none")
                      + " (a status never moves a message backwards, so a late `sent` changes nothing).")
        errors = sum(p.errors for points in results.values() for p in points)
        checks.append(f"{sum(p.requests for points in results.values() for p in points):,} requests "
                      f"measured, {errors} errors (non-2xx, connect, read, timeout).")
    finally:
        for target in targets:
            stop(target)
        graph.close()
    load_after = loadavg()

    def total(name: str, clients: int) -> Point:
        points = results[(name, clients)]
        return Point(name, "sqlite", clients, requests=sum(p.requests for p in points),
                     seconds=sum(p.seconds for p in points),
                     p50_ms=sorted(p.p50_ms for p in points)[len(points) // 2],
                     p99_ms=max(p.p99_ms for p in points))

    rows = ["| clients | bare req/s | papo-wa req/s | papo-wa + statuses req/s | plain / bare | "
            "with statuses / bare | target ≥ 80% | p50 with statuses | p99 with statuses |",
            "|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for clients in args.clients:
        bare_p, plain, mixed = (total(n, clients) for n in ("bare", "papo-wa", "papo-wa+statuses"))
        ratio = mixed.rps / bare_p.rps if bare_p.rps else 0.0
        rows.append(f"| {clients} | {bare_p.rps:,.0f} | {plain.rps:,.0f} | {mixed.rps:,.0f} | "
                    f"{plain.rps / bare_p.rps:.0%} | {ratio:.0%} | "
                    f"{'ok' if ratio >= TARGET_RATIO else 'BELOW'} | {mixed.p50_ms:.1f} ms | "
                    f"{mixed.p99_ms:.1f} ms |")
    per_round = "; ".join(
        f"{c} clients: " + ", ".join(f"{a.rps:,.0f}/{b.rps:,.0f}/{m.rps:,.0f}" for a, b, m in zip(
            results[("bare", c)], results[("papo-wa", c)], results[("papo-wa+statuses", c)], strict=True))
        for c in args.clients)
    body = "\n".join([
        "Issue 16's target: the WhatsApp webhook (`POST /channels/whatsapp/webhook`, signed like "
        "Meta's) keeps at least 80% of the bare ceiling with delivery statuses mixed in, one status "
        "per two messages. Three servers side by side on fresh SQLite files (gunicorn, "
        f"{args.workers} sync workers): **bare** (`bench/bare_app.py`: one read and one write per "
        "request), **papo-wa** (message deliveries only; a `papo worker` sends the replies to a fake "
        "Graph API in the bench's process) and **papo-wa + statuses** (the same webhook; every third "
        "request is a status delivery — `sent`, `delivered`, `read` in turn — naming a reply the "
        "fake Graph API really accepted, so each updates a stored message or is recognised as "
        f"behind). {args.rounds} interleaved rounds of {args.duration} s per concurrency; "
        f"client `{version or 'wrk'}`, one thread and one connection per client; 127.0.0.1 only. "
        "A status is a request like a message.",
        "",
        *rows,
        "",
        f"Per round (bare/papo-wa/with statuses req/s): {per_round}.",
        "",
        *[f"- {line}" for line in checks],
        "",
        f"Machine: {os.cpu_count()} cores, shared with other engineers' work while this ran "
        f"(load average {load_before} before, {load_after} after): **busy**, so read the ratios "
        "measured in the same rounds, not the absolute figures.",
        "",
        f"Command: `.venv/bin/python -m bench.http_inbound {' '.join(argv or ['--wa-statuses'])}`; "
        f"date {time.strftime('%Y-%m-%d', time.gmtime())}.",
    ])
    print(body)
    if args.write:
        path = Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md"
        text = path.read_text(encoding="utf-8").rstrip("\n")
        path.write_text(f"{text}\n\n## {TITLE}\n\n{body}\n", encoding="utf-8")
        print(f"appended “{TITLE}” to {path}", file=sys.stderr)
    return 0
