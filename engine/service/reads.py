"""Read models of the service: thin delegates to :mod:`engine.queries` and
:mod:`engine.reports`, where every read the web app shows lives (kept so that callers
holding a :class:`Service` can ask it)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine import queries, reports
from engine.queries import iso_micro

if TYPE_CHECKING:
    from engine.service import Service

__all__ = ["ReadsMixin", "funnel", "iso_micro", "report_summary"]


class ReadsMixin:
    """Reads of :class:`engine.service.Service` (a mixin)."""

    def get_conversation(self, conversation_id: int, *, include_test: bool = True) -> dict:
        """See :func:`engine.queries.get_conversation`."""
        return queries.get_conversation(self.db, conversation_id, include_test=include_test)

    def list_conversations(self, status: str | None = None, q: str | None = None,
                           assignee: str | None = None, cursor: str | None = None,
                           limit: int = 50, unassigned: bool = False, sort: str | None = None,
                           text: str | None = None, anywhere: str | None = None) -> dict:
        """See :func:`engine.queries.list_conversations`."""
        return queries.list_conversations(self.db, status=status, q=q, assignee=assignee,
                                          cursor=cursor, limit=limit, unassigned=unassigned,
                                          sort=sort, text=text, anywhere=anywhere)

    def count_by_status(self) -> dict:
        """See :func:`engine.queries.count_by_status`."""
        return queries.count_by_status(self.db)


def report_summary(service: Service, date_from, date_to) -> dict:
    """See :func:`engine.reports.summary` (the service's CSAT variable)."""
    return reports.summary(service.db, service.settings.csat_variable, date_from, date_to,
                           service.settings.timezone)


def funnel(service: Service, flow_id: str) -> list[dict]:
    """See :func:`engine.reports.funnel`."""
    return reports.funnel(service.db, flow_id)
