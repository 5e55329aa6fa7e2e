"""Compiled flows by id and version (published, cached forever) or draft revision."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.graph import CompiledFlow, compile_flow, flow_cache
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

    def _latest_draft(self, conn: Connection, flow_id: str) -> tuple[CompiledFlow, int] | None:
        row = conn.execute(select(flows.c.revision).where(
            flows.c.id == flow_id, flows.c.deleted_at.is_(None))).first()
        if row is None:
            return None
        flow = self._flow(conn, flow_id, None, row.revision)
        return (flow, row.revision) if flow else None
