"""HTTP continuation: an ``http_request`` block's call, made outside any transaction.

The unit of work that reached the block writes the run as waiting for the answer
(``run.pending == "http"``) and names the call (``Changes.pending_http``). The request
is made after that write committed; its answer is a new event (:class:`HttpDone`),
decided and written by a second unit of work, which ignores it if the run moved on
meanwhile (an agent took over, the customer wrote again).
"""
from __future__ import annotations

from engine.errors import NotFound
from engine.service import load, unit
from engine.service.changes import HttpDone


class ContinuationMixin:
    """HTTP blocks of :class:`engine.service.Service` (a mixin)."""

    def _call(self, call: dict):
        if self._http is not None:
            return self._http(call, self.settings.http_allow_hosts)
        from engine.http import perform

        return perform(call, self.settings.http_allow_hosts)

    def _perform_http(self, conversation_id: int, call: dict) -> dict:
        """Make the block's request, feed the answer back; again while the flow reaches
        more ``http_request`` blocks. Returns ``{"replies", "status"}``."""
        replies: list[dict] = []
        status = None
        while call is not None:
            outcome = self._call(call)
            event = HttpDone(call, outcome.ok, outcome.status, outcome.body,
                             getattr(outcome, "error", None), self.clock())
            changes = unit.run(self, event, lambda conn, lock: load.by_id(self, conn, conversation_id, lock))
            if changes is None:
                raise NotFound("Conversa não encontrada.")
            status = changes.status
            replies.extend(changes.replies)
            call = changes.pending_http if changes.write else None
        return {"replies": replies, "status": status}
