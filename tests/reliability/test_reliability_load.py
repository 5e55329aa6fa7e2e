"""Load: many senders, many conversations, through the service (threads), then an audit.

32 senders share 500 conversations on PostgreSQL (3,000 messages; 30,000 in the long mode,
``PAPO_RELIABILITY_LONG=1``); a smaller run on SQLite. Each conversation belongs to one
sender, which sends its script in order ("oi", an answer, "oi"...), so every bot reply is
known in advance; meanwhile duplicate senders re-send already answered message ids, as a
channel retrying a webhook would. Afterwards: every inbound message stored once (none
lost, none doubled), every expected bot reply present exactly once and in order, a
repeated message id answered with the original result, no run left ``running``.
"""
from __future__ import annotations

import os
import queue
import threading
import time

import pytest
from conftest import make_test_engine
from reliability_support import (
    CHAT_FLOW,
    LONG,
    assert_clean,
    audit,
    expected_replies,
    report,
    script_message,
)

from engine.db import create_schema
from engine.flows import FlowRepository
from engine.service import Service

POSTGRES = os.environ.get("PAPO_TEST_POSTGRES_URL")


def run_load(service: Service, *, senders: int, conversations: int, rounds: int, duplicaters: int,
             prefix: str) -> dict:
    """Send the script; returns what was sent and what went wrong."""
    sent_ids: set[str] = set()
    first_answers: dict[str, dict] = {}
    problems: list[str] = []
    redo: queue.Queue = queue.Queue()
    lock = threading.Lock()
    stats = {"sent": 0, "duplicates": 0}

    def sender(index: int) -> None:
        mine = range(index, conversations, senders)
        try:
            for r in range(rounds):
                for k in mine:
                    contact, message, want = script_message(k, r, prefix)
                    result = service.handle_inbound("api", contact, message)
                    got = [x["text"] for x in result["replies"]]
                    with lock:
                        sent_ids.add(message["id"])
                        first_answers[message["id"]] = result
                        stats["sent"] += 1
                    if got != want:
                        problems.append(f"{message['id']}: {got} != {want}")
                    if (k + r) % 5 == 0:
                        redo.put((contact, message))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            problems.append(f"sender {index}: {exc!r}")

    def duplicater() -> None:
        while True:
            item = redo.get()
            if item is None:
                return
            contact, message = item
            try:
                again = service.handle_inbound("api", contact, message)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"duplicate {message['id']}: {exc!r}")
                continue
            with lock:
                stats["duplicates"] += 1
                first = first_answers[message["id"]]
            if again != first:
                problems.append(f"duplicate {message['id']} answered {again} != {first}")

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    helpers = [threading.Thread(target=duplicater) for _ in range(duplicaters)]
    began = time.monotonic()
    for thread in threads + helpers:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    for _ in helpers:
        redo.put(None)
    for thread in helpers:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads + helpers), "a sender hung"
    return {"sent_ids": sent_ids, "problems": problems, "seconds": time.monotonic() - began, **stats}


def load_and_audit(url: str, *, senders: int, conversations: int, rounds: int) -> dict:
    db = make_test_engine(url)
    create_schema(db)
    repo = FlowRepository(db)
    repo.create(CHAT_FLOW, actor="test")
    repo.publish(CHAT_FLOW["id"], actor="test")
    service = Service(db)
    prefix = "load"
    outcome = run_load(service, senders=senders, conversations=conversations, rounds=rounds,
                       duplicaters=4, prefix=prefix)
    assert not outcome["problems"], outcome["problems"][:5]
    assert outcome["sent"] == conversations * rounds
    expected = {f"{prefix}-{k}": expected_replies(k, rounds, prefix) for k in range(conversations)}
    found = audit(db, expected, outcome["sent_ids"])
    assert_clean(found, outcome["sent_ids"], expected)
    report(f"load on {db.dialect.name}: {outcome['sent']} messages + {outcome['duplicates']} "
          f"duplicates from {senders} senders over {conversations} conversations in "
          f"{outcome['seconds']:.1f} s; stored {found.inbound} inbound (lost {found.lost}, "
          f"duplicated {found.duplicated_inbound}), {found.replies} replies, "
          f"{found.conversations_ok}/{len(expected)} conversations exactly as expected, "
          f"{found.running} runs running")
    return outcome


@pytest.mark.skipif(not POSTGRES, reason="PAPO_TEST_POSTGRES_URL not set: the 32-sender load "
                    "runs on PostgreSQL (row locks, parallel conversations)")
def test_32_senders_on_500_conversations_lose_and_double_nothing_on_postgresql(postgres_url):
    conversations = 5000 if LONG else 500
    load_and_audit(postgres_url, senders=32, conversations=conversations, rounds=6)


def test_8_senders_on_100_conversations_lose_and_double_nothing_on_sqlite(sqlite_file_url):
    load_and_audit(sqlite_file_url, senders=8, conversations=1000 if LONG else 100, rounds=6)
