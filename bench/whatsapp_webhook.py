"""WhatsApp webhook benchmark: how long papo takes to answer Meta's deliveries.

Run from the repository root::

    .venv/bin/python -m bench.whatsapp_webhook             # measure; rewrite the "WhatsApp webhook" section
    .venv/bin/python -m bench.whatsapp_webhook --no-write  # measure only

On a SQLite file and, with ``PAPO_BENCH_POSTGRES_URL`` or ``PAPO_TEST_POSTGRES_URL``, on
PostgreSQL (a database ``papo_bench_webhook`` made for the run): the app (the
``boas-vindas`` sample flow published, so the bot answers every message) gets signed
deliveries through Flask's test client (the WSGI app without a socket):

1. ``--single`` deliveries of one text message each, from as many customers: the
   median and p95 answer time;
2. one delivery of ``--batch`` messages (default 1,000: the most Meta puts in one) of every
   type from 40 customers, then the same delivery again (Meta's retry: every message is
   already stored and is skipped).

Meta retries a delivery it did not see answered in time; since every stored message is
skipped on the retry, a batch that took too long still converges (docs/WHATSAPP.md).
"""
from __future__ import annotations

if not __package__:
    raise SystemExit("run it as a module from the repository root: python -m bench.whatsapp_webhook")

import argparse
import hashlib
import hmac
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-app-secret"
PHONE_ID = "106540352242922"
WEBHOOK = "/channels/whatsapp/webhook"
T = 1_800_000_000
BENCH_DATABASE = "papo_bench_webhook"


def signed(raw: bytes) -> dict:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()}


def delivery(messages: list[dict], people: list[str]) -> bytes:
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE_ID},
             "contacts": [{"profile": {"name": f"Cliente {p[-4:]}"}, "wa_id": p} for p in people],
             "messages": messages}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}).encode()


SHAPES = [
    {"type": "text", "text": {"body": "mensagem {n}"}},
    {"type": "image", "image": {"id": "m{n}", "mime_type": "image/jpeg", "caption": "foto {n}"}},
    {"type": "audio", "audio": {"id": "m{n}", "mime_type": "audio/ogg", "voice": True}},
    {"type": "document", "document": {"id": "m{n}", "filename": "f{n}.pdf", "mime_type": "application/pdf"}},
    {"type": "location", "location": {"latitude": -23.5, "longitude": -46.6, "name": "L{n}"}},
    {"type": "contacts", "contacts": [{"name": {"formatted_name": "C{n}"}, "phones": [{"phone": "+5511"}]}]},
    {"type": "order", "order": {"catalog_id": "1", "product_items": [
        {"product_retailer_id": "p{n}", "quantity": 1, "item_price": 9.9, "currency": "BRL"}]}},
    {"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "b1", "title": "Ver produtos"}}},
    {"type": "button", "button": {"text": "Quero", "payload": "p"}},
    {"type": "unsupported", "unsupported": {"type": "poll_creation"}, "errors": [{"code": 131051}]},
    {"type": "reaction", "reaction": {"message_id": "wamid.B{prev}", "emoji": "👍"}},
    {"type": "edit", "edit": {"original_message_id": "wamid.B{prev}",
                              "message": {"type": "text", "text": {"body": "editada {n}"}}}},
]


def batch(size: int) -> bytes:
    people = [f"55119{n:08d}" for n in range(40)]
    messages = []
    for n in range(size):
        shape = SHAPES[n % len(SHAPES)] if n >= 40 or "{prev}" not in json.dumps(SHAPES[n % len(SHAPES)]) \
            else SHAPES[0]  # a reaction or an edit names the same customer's message 40 before
        shape = json.dumps(shape).replace("{n}", str(n)).replace("{prev}", str(n - 40))
        messages.append({**json.loads(shape), "from": people[n % 40], "id": f"wamid.B{n}",
                         "timestamp": str(T + n // 10)})
    return delivery(messages, people)


def make_app(url: str, instance: str):
    from editor import create_app
    from engine.db import create_schema
    from engine.flows import FlowRepository
    from engine.service import Service

    app = create_app({"PAPO_DATABASE_URL": url, "PAPO_INSTANCE_PATH": instance, "TESTING": True,
                      "SECRET_KEY": "bench", "PAPO_WHATSAPP_APP_SECRET": SECRET,
                      "PAPO_WHATSAPP_PHONE_NUMBER_ID": PHONE_ID})
    papo = app.extensions["papo"]
    create_schema(papo["engine"])
    papo["service"] = Service(papo["engine"], papo["settings"], clock=lambda: T + 600.0)
    repo = FlowRepository(papo["engine"])
    doc = json.loads((ROOT / "sample_flows" / "boas-vindas.json").read_text(encoding="utf-8"))
    repo.create(doc)
    repo.publish(doc["id"])
    return app


def measure(url: str, instance: str, singles: int, size: int) -> dict:
    app = make_app(url, instance)
    client = app.test_client()
    times = []
    for n in range(singles):
        person = f"55218{n:08d}"
        raw = delivery([{"from": person, "id": f"wamid.S{n}", "timestamp": str(T), "type": "text",
                         "text": {"body": "oi"}}], [person])
        started = time.perf_counter()
        answer = client.post(WEBHOOK, data=raw, content_type="application/json", headers=signed(raw))
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.data[:200]
    raw = batch(size)
    started = time.perf_counter()
    assert client.post(WEBHOOK, data=raw, content_type="application/json", headers=signed(raw)).status_code == 200
    first = time.perf_counter() - started
    started = time.perf_counter()
    assert client.post(WEBHOOK, data=raw, content_type="application/json", headers=signed(raw)).status_code == 200
    again = time.perf_counter() - started
    app.extensions["papo"]["engine"].dispose()
    times.sort()
    return {"median_ms": statistics.median(times) * 1000, "p95_ms": times[int(len(times) * 0.95) - 1] * 1000,
            "batch_s": first, "retry_s": again}


def postgres_database(base_url: str) -> str:
    admin = create_engine(make_url(base_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
    admin.dispose()
    return make_url(base_url).set(database=BENCH_DATABASE).render_as_string(hide_password=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--postgres-url", default=os.environ.get("PAPO_BENCH_POSTGRES_URL")
                        or os.environ.get("PAPO_TEST_POSTGRES_URL"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        kinds = [("SQLite", f"sqlite:///{folder}/papo.db")]
        if args.postgres_url:
            kinds.append(("PostgreSQL", postgres_database(args.postgres_url)))
        for name, url in kinds:
            result = measure(url, folder, args.single, args.batch)
            print(name, {k: round(v, 2) for k, v in result.items()}, flush=True)
            rows.append(f"| {name} | {result['median_ms']:.1f} ms | {result['p95_ms']:.1f} ms | "
                        f"{result['batch_s']:.1f} s ({args.batch / result['batch_s']:.0f} messages/s) | "
                        f"{result['retry_s']:.2f} s |")
    body = ("Signed deliveries through Flask's test client (no socket), the bot answering every "
            "message (`boas-vindas` published), one process.\n\n"
            f"| database | one text message: median | p95 | {args.batch:,} messages of every type "
            "from 40 customers, first delivery | the same delivery again (Meta's retry) |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            "A retried delivery finds the messages already stored in one query and skips them, so "
            "a batch that outlasts Meta's wait converges: each retry has less left to do. "
            "The figures move a lot with whatever else runs on the machine's two cores.")
    if not args.no_write:
        from bench._report import write_section

        write_section("WhatsApp webhook", body, "python -m bench.whatsapp_webhook")
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
