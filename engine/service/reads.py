"""Read models: one conversation, the list with cursors, counts, reports, funnel."""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select

from blocks.text import normalize
from engine import conversation as machine
from engine import timeline
from engine.db import read_only
from engine.errors import Invalid, NotFound
from engine.moments import iso
from engine.service.common import TEST_CHANNEL
from engine.store import (
    activity,
    answers,
    contacts,
    conversation_assignees,
    conversations,
    messages,
    run_blocks,
    timers,
)

if TYPE_CHECKING:
    from engine.service import Service


class ReadsMixin:
    """Reads of :class:`engine.service.Service` (a mixin)."""

    def get_conversation(self, conversation_id: int, *, include_test: bool = True) -> dict:
        with read_only(self.db) as conn:
            row = conn.execute(select(conversations, contacts.c.external_id, contacts.c.name)
                               .join(contacts, contacts.c.id == conversations.c.contact_id)
                               .where(conversations.c.id == conversation_id)).mappings().first()
            if row is None or (not include_test and row["channel"] == TEST_CHANNEL):
                raise NotFound("Conversa não encontrada.")
            summary = self._summary(conn, row)
            msgs = conn.execute(select(messages).where(messages.c.conversation_id == conversation_id)
                                .order_by(messages.c.at, messages.c.id)).mappings().all()
            acts = conn.execute(select(activity).where(activity.c.conversation_id == conversation_id)
                                .order_by(activity.c.id)).mappings()
            pending = conn.execute(select(timers).where(
                timers.c.conversation_id == conversation_id, timers.c.status == "pending")
                .order_by(timers.c.due_at)).mappings()
            summary.update(
                variables=row["state"].get("vars", {}),
                messages=timeline.message_views(msgs),
                activity=[{"actor": a["actor"], "action": a["action"], "from": a["from_status"],
                           "to": a["to_status"], "at": iso(a["at"]), "detail": a["detail"]} for a in acts],
                timers=[{"id": t["id"], "kind": t["kind"], "due_at": iso(t["due_at"])} for t in pending],
            )
            return summary

    def _assignees(self, conn, conversation_ids: list[int]) -> dict[int, list[str]]:
        """Assignees of several conversations in one query, in assignment order."""
        found: dict[int, list[str]] = {i: [] for i in conversation_ids}
        if conversation_ids:
            for row in conn.execute(select(conversation_assignees.c.conversation_id,
                                           conversation_assignees.c.login)
                                    .where(conversation_assignees.c.conversation_id.in_(conversation_ids))
                                    .order_by(conversation_assignees.c.assigned_at,
                                              conversation_assignees.c.login)):
                found[row.conversation_id].append(row.login)
        return found

    def _summary(self, conn, row, assignees: list[str] | None = None) -> dict:
        run = row["state"].get("run")
        if assignees is None:
            assignees = self._assignees(conn, [row["id"]])[row["id"]]
        return {
            "id": row["id"], "status": row["status"], "channel": row["channel"],
            "contact": {"external_id": row["external_id"], "name": row["name"]},
            "assignees": assignees,
            "run": {"state": run["state"], "flow_id": run["flow_id"], "flow_version": run.get("flow_version"),
                    "block_id": run.get("block_id")} if run else None,
            "tags": row["state"].get("tags", []),
            "updated_at": iso(row["updated_at"]),
        }

    def list_conversations(self, status: str | None = None, q: str | None = None,
                           assignee: str | None = None, cursor: str | None = None,
                           limit: int = 50, unassigned: bool = False) -> dict:
        """Newest activity first, with an opaque cursor for the next page."""
        limit = max(1, min(int(limit), 200))
        query = (select(conversations, contacts.c.external_id, contacts.c.name)
                 .join(contacts, contacts.c.id == conversations.c.contact_id)
                 .where(conversations.c.channel != TEST_CHANNEL))
        if status:
            if status not in machine.STATUSES:
                raise Invalid("Status deve ser \"open\" ou \"concluded\".", details=[
                    {"path": "status", "message": "Use open ou concluded."}])
            query = query.where(conversations.c.status == status)
        if q:
            query = query.where(conversations.c.name_norm.contains(normalize(q), autoescape=True))
        if assignee:
            query = query.where(conversations.c.id.in_(select(conversation_assignees.c.conversation_id)
                                                       .where(conversation_assignees.c.login == assignee)))
        if unassigned:
            query = query.where(~conversations.c.id.in_(select(conversation_assignees.c.conversation_id)))
        if cursor:
            at, last_id = _decode_cursor(cursor)
            query = query.where(or_(conversations.c.updated_at < at,
                                    and_(conversations.c.updated_at == at, conversations.c.id < last_id)))
        query = query.order_by(conversations.c.updated_at.desc(), conversations.c.id.desc()).limit(limit + 1)
        with read_only(self.db) as conn:
            rows = conn.execute(query).mappings().all()
            page = rows[:limit]
            assignees = self._assignees(conn, [r["id"] for r in page])
            items = [self._summary(conn, r, assignees[r["id"]]) for r in page]
        next_cursor = _encode_cursor(rows[limit - 1]["updated_at"], rows[limit - 1]["id"]) \
            if len(rows) > limit else None
        return {"items": items, "next_cursor": next_cursor}

    def count_by_status(self) -> dict:
        with read_only(self.db) as conn:
            rows = conn.execute(select(conversations.c.status, func.count()).where(
                conversations.c.channel != TEST_CHANNEL).group_by(conversations.c.status)).all()
        counts = {s: 0 for s in machine.STATUSES}
        counts.update({status: n for status, n in rows})
        return counts



def _encode_cursor(at: datetime, conversation_id: int) -> str:
    raw = f"{iso_micro(at)}|{conversation_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def iso_micro(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, conversation_id = raw.split("|")
        return datetime.fromisoformat(at), int(conversation_id)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("Cursor inválido.", details=[{"path": "cursor", "message": "Cursor inválido."}]) from None


# ---------------------------------------------------------------------- reports
def _stats(values: list[float]) -> dict:
    if not values:
        return {"avg": None, "median": None, "p90": None}
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    p90 = ordered[min(n - 1, max(0, -(-9 * n // 10) - 1))]  # nearest-rank
    return {"avg": round(sum(ordered) / n, 3), "median": round(median, 3), "p90": round(p90, 3)}


CONCLUDING_ACTIONS = ("concluded", "unassigned_and_concluded", "auto_concluded", "concluded_by_flow")


def report_summary(service: Service, date_from, date_to) -> dict:
    """DESIGN §6 reports: open now, conclusions in [from, to] (UTC dates, inclusive)."""
    from datetime import timedelta

    start = datetime.combine(date_from, datetime.min.time(), UTC)
    end = datetime.combine(date_to, datetime.min.time(), UTC) + timedelta(days=1)
    if end <= start:
        raise Invalid("A data final precisa ser igual ou posterior à inicial.", details=[
            {"path": "to", "message": "Data final antes da inicial."}])
    test_conversations = select(conversations.c.id).where(conversations.c.channel == TEST_CHANNEL)
    with read_only(service.db) as conn:
        open_now = conn.execute(select(func.count()).select_from(conversations).where(
            conversations.c.status == machine.OPEN, conversations.c.channel != TEST_CHANNEL)).scalar()
        # The two numbers each conclusion needs, extracted in SQL: decoding every JSON
        # detail in Python cost ~400 ms for 36,000 conclusions (bench/inbox.py).
        rows = conn.execute(select(activity.c.actor, activity.c.detail["resolution_s"].as_float(),
                                   activity.c.detail["first_response_s"].as_float()).where(
            activity.c.to_status == machine.CONCLUDED, activity.c.from_status == machine.OPEN,
            activity.c.at >= start, activity.c.at < end,
            activity.c.conversation_id.not_in(test_conversations))).all()
        csat_values = conn.execute(select(answers.c.value).where(
            answers.c.name == service.settings.csat_variable, answers.c.at >= start, answers.c.at < end,
            answers.c.conversation_id.not_in(test_conversations))).scalars().all()
    resolution, first_response, by_agent = [], [], {}
    for actor, resolution_s, first_response_s in rows:
        if resolution_s is not None:
            resolution.append(resolution_s)
        if first_response_s is not None:
            first_response.append(first_response_s)
        if actor not in ("bot", "system", "customer"):
            agent = by_agent.setdefault(actor, {"user": actor, "concluded": 0, "_res": []})
            agent["concluded"] += 1
            if resolution_s is not None:
                agent["_res"].append(resolution_s)
    scores = []
    for value in csat_values:
        try:
            score = json.loads(value) if not value.strip().isdigit() else int(value)
        except ValueError:
            continue
        if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5:
            scores.append(score)
    agents = [{"user": a["user"], "concluded": a["concluded"],
               "resolution_s_avg": round(sum(a["_res"]) / len(a["_res"]), 3) if a["_res"] else None}
              for a in sorted(by_agent.values(), key=lambda a: (-a["concluded"], a["user"]))]
    return {
        "open": open_now,
        "concluded": len(rows),
        "resolution_s": _stats(resolution),
        "first_response_s": _stats(first_response),
        "csat": {"avg": round(sum(scores) / len(scores), 3) if scores else None, "count": len(scores)},
        "by_agent": agents,
    }


def funnel(service: Service, flow_id: str) -> list[dict]:
    """How many runs reached each block of a flow."""
    with read_only(service.db) as conn:
        rows = conn.execute(select(run_blocks.c.block_id, func.count()).where(
            run_blocks.c.flow_id == flow_id).group_by(run_blocks.c.block_id)).all()
    return [{"block_id": b, "runs": n} for b, n in rows]
