"""Which compiled flow a conversation runs or a message starts."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine import triggers
from engine.graph import CompiledFlow, compile_flow, flow_cache
from engine.service.statements import _PUBLISHED
from engine.store import (
    flow_revisions,
    flow_versions,
    flows,
)


class FlowsMixin:
    """Flows of :class:`engine.service.Service` (a mixin)."""

    def _flow(self, conn: Connection, flow_id: str, version: int | None,
              draft_revision: int | None = None) -> CompiledFlow | None:
        """A published version (cached forever) or a draft revision of a flow."""
        if draft_revision is not None:
            row = conn.execute(select(flow_revisions.c.document).where(
                flow_revisions.c.flow_id == flow_id, flow_revisions.c.revision == draft_revision)).first()
            return compile_flow(row.document, None) if row else None
        if version is None:
            return None
        key = (flow_id, version)
        doc = self._docs.get(key)
        if doc is None:
            row = conn.execute(select(flow_versions.c.document).where(
                flow_versions.c.flow_id == flow_id, flow_versions.c.version == version)).first()
            if row is None:
                return None
            doc = self._docs[key] = row.document
        return flow_cache.get(doc, version)

    def _published_flows(self, conn: Connection, listed: list[tuple[str, int]] | None = None
                         ) -> list[CompiledFlow]:
        """Every published flow; ``listed``: their (id, version) pairs, when already read."""
        rows = conn.execute(_PUBLISHED).all() if listed is None else listed
        found = []
        for flow_id, version in rows:
            flow = self._flow(conn, flow_id, version)
            if flow is not None:
                found.append(flow)
        return found

    def _published_flow(self, conn: Connection, flow_id: str) -> CompiledFlow | None:
        row = conn.execute(select(flows.c.published_version).where(
            flows.c.id == flow_id, flows.c.deleted_at.is_(None))).first()
        if row is None or row.published_version is None:
            return None
        return self._flow(conn, flow_id, row.published_version)

    def _latest_draft(self, conn: Connection, flow_id: str) -> tuple[CompiledFlow, int] | None:
        row = conn.execute(select(flows.c.revision).where(
            flows.c.id == flow_id, flows.c.deleted_at.is_(None))).first()
        if row is None:
            return None
        flow = self._flow(conn, flow_id, None, row.revision)
        return (flow, row.revision) if flow else None

    def _run_flow(self, conn: Connection, run: dict | None) -> CompiledFlow | None:
        if not run:
            return None
        return self._flow(conn, run["flow_id"], run.get("flow_version"), run.get("draft_revision"))

    def match_trigger(self, conn: Connection, text: str, published: list[tuple[str, int]] | None = None
                      ) -> tuple[CompiledFlow, int | None] | None:
        """The flow an unsolicited message starts: keyword triggers by priority, then default."""
        if self.forced_flow_id:
            draft = self._latest_draft(conn, self.forced_flow_id)
            return (draft[0], draft[1]) if draft else None
        flow = triggers.match(self._published_flows(conn, published), text)
        return (flow, None) if flow is not None else None
