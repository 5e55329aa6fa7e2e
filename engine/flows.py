"""Flow repository: drafts (revisions), published versions, rollback and soft delete.

Every save is a new draft revision in ``flow_revisions``; publishing freezes the latest
draft as a new row in ``flow_versions``. History is never rewritten: a rollback publishes
a copy of an older version under a new version number, and a deleted flow keeps its
versions so that conversations pinned to one can finish.

Used by the REST API, the editor and the CLI (DESIGN §4, §6).
"""
from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.errors import Conflict, Invalid, NotFound, PapoError, PreconditionRequired
from engine.i18n import t
from engine.moments import iso
from engine.store import flow_revisions, flow_versions, flows

# How often a save that only changes one field (rename) retries when another save won
# the race; each retry re-reads the newest draft, so losing more than this means a
# storm of concurrent edits and a clear conflict is the better answer.
_RETRIES = 3
_BLOCK_NUMBER = re.compile(r"^b(\d{1,9})$")


_REVISION = re.compile(r'^\s*(?:W/)?(?:"(\d{1,9})"|(\d{1,9}))\s*$')


def _msg(key: str, lang: str | None, **params) -> str:
    """The repository's message ``key`` (``flows.<key>`` in ``engine.i18n.MESSAGES``)."""
    return t(f"flows.{key}", lang, **params)


def _now() -> datetime:
    return datetime.now(UTC)


def parse_revision(if_match: int | str | None, lang: str | None = None) -> int:
    """The revision in an If-Match value: ``3``, ``"3"`` (quoted, as in an ETag) or ``'3'``."""
    if isinstance(if_match, bool):  # bool is an int subclass; True is not revision 1
        raise PapoError(_msg("bad_revision", lang, value=if_match), code="bad_revision")
    if isinstance(if_match, int):
        return if_match
    if if_match is None or not str(if_match).strip():
        raise PreconditionRequired(_msg("revision_required", lang), code="revision_required")
    found = _REVISION.match(str(if_match))
    if not found:
        raise PapoError(_msg("bad_revision", lang, value=str(if_match)[:40]), code="bad_revision")
    return int(found.group(1) or found.group(2))


def _block_ids(doc: dict) -> set[str]:
    return {b["id"] for b in doc.get("blocks", []) if isinstance(b, dict) and "id" in b}


class FlowRepository:
    """Flows in the database: drafts, versions, publish, rollback, soft delete."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # -- reading -----------------------------------------------------------------------

    def _draft_query(self):
        return (
            select(flows, flow_revisions.c.document, flow_revisions.c.findings)
            .join(flow_revisions, and_(flow_revisions.c.flow_id == flows.c.id,
                                       flow_revisions.c.revision == flows.c.revision))
        )

    def draft(self, flow_id: str, lang: str | None = None) -> dict:
        """The latest draft: ``{"id","name","document","revision","findings","published_version","updated_at","updated_by"}``."""
        with self.engine.connect() as conn:
            row = conn.execute(self._draft_query().where(
                flows.c.id == flow_id, flows.c.deleted_at.is_(None))).first()
        if row is None:
            raise NotFound(_msg("flow_not_found", lang, flow_id=flow_id), code="flow_not_found")
        return {"id": row.id, "name": row.name, "document": row.document,
                "revision": row.revision, "findings": row.findings,
                "published_version": row.published_version,
                "updated_at": iso(row.updated_at), "updated_by": row.updated_by}

    def get(self, flow_id: str, lang: str | None = None) -> tuple[dict, int]:
        """``(document, revision)`` of the latest draft, exactly as stored."""
        draft = self.draft(flow_id, lang)
        return draft["document"], draft["revision"]

    def list(self) -> list[dict]:
        """Every flow not deleted, by id, with the triggers of its latest draft."""
        with self.engine.connect() as conn:
            rows = conn.execute(self._draft_query().where(flows.c.deleted_at.is_(None))
                                .order_by(flows.c.id)).all()
        return [{"id": r.id, "name": r.name, "published_version": r.published_version,
                 "revision": r.revision, "updated_at": iso(r.updated_at),
                 "updated_by": r.updated_by, "triggers": r.document.get("triggers", [])}
                for r in rows]

    def _drafts(self, conn) -> list:
        """``(id, document)`` of every flow's latest draft (flows not deleted)."""
        return conn.execute(
            select(flows.c.id, flow_revisions.c.document)
            .join(flow_revisions, and_(flow_revisions.c.flow_id == flows.c.id,
                                       flow_revisions.c.revision == flows.c.revision))
            .where(flows.c.deleted_at.is_(None))).all()

    def _published_jumping(self, conn) -> list[dict]:
        """Published documents that differ from their flow's draft and may hold a jump
        (the others were read with the drafts)."""
        return conn.execute(
            select(flow_versions.c.document)
            .join(flows, and_(flows.c.id == flow_versions.c.flow_id,
                              flows.c.published_version == flow_versions.c.version))
            .where(flows.c.deleted_at.is_(None), flow_versions.c.revision != flows.c.revision)
        ).scalars().all()

    def flow_index(self) -> dict[str, set[str]]:
        """``{flow_id: block ids of its latest draft}`` for lint's ``jump`` checks."""
        with self.engine.connect() as conn:
            rows = self._drafts(conn)
        return {r.id: _block_ids(r.document) for r in rows}

    def jumped_into(self) -> set[str]:
        """Ids of the flows that some stored flow, draft or published, jumps into (so a
        flow without triggers reached that way is not ``no_trigger``)."""
        return self._lint_context()[1]

    def _lint_context(self) -> tuple[dict[str, set[str]], set[str]]:
        """``(flow_index(), jumped_into())`` in one read of the drafts."""
        from engine.lint import jump_targets

        with self.engine.connect() as conn:
            drafts = self._drafts(conn)
            published = self._published_jumping(conn)
        index = {r.id: _block_ids(r.document) for r in drafts}
        return index, jump_targets([*(r.document for r in drafts), *published])

    def lint(self, doc: dict, lang: str | None = None) -> list[dict]:
        """Lint ``doc`` against the stored flows (``jump`` targets, jumps into it)."""
        from engine import whatsapp_templates
        from engine.lint import lint  # lazy: the linter imports blocks, templates, JSONLogic

        # lint() counts the document itself as known with its current blocks.
        index, jumped_into = self._lint_context()
        return lint(doc, flows=index, lang=lang, jumped_into=jumped_into,
                    whatsapp_templates=whatsapp_templates.index(self.engine))

    def versions(self, flow_id: str, lang: str | None = None) -> list[dict]:
        """Published versions, oldest first: ``[{"version","published_at","published_by","revision"}]``."""
        with self.engine.connect() as conn:
            if not self._exists(conn, flow_id):
                raise NotFound(_msg("flow_not_found", lang, flow_id=flow_id), code="flow_not_found")
            rows = conn.execute(
                select(flow_versions.c.version, flow_versions.c.published_at,
                       flow_versions.c.published_by, flow_versions.c.revision)
                .where(flow_versions.c.flow_id == flow_id)
                .order_by(flow_versions.c.version)).all()
        return [{"version": r.version, "published_at": iso(r.published_at),
                 "published_by": r.published_by, "revision": r.revision} for r in rows]

    def published(self, flow_id: str, version: int | None = None) -> tuple[dict, int] | None:
        """``(document, version)`` now published, or of ``version`` (even of a deleted flow)."""
        query = select(flow_versions.c.document, flow_versions.c.version)
        if version is None:
            query = query.join(flows, and_(flows.c.id == flow_versions.c.flow_id,
                                           flows.c.published_version == flow_versions.c.version)
                               ).where(flows.c.id == flow_id, flows.c.deleted_at.is_(None))
        else:
            query = query.where(flow_versions.c.flow_id == flow_id,
                                flow_versions.c.version == version)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return (row.document, row.version) if row else None

    def published_flows(self) -> list[tuple[dict, int]]:
        """``[(document, version)]`` of every published, not deleted flow, by flow id."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(flow_versions.c.document, flow_versions.c.version)
                .join(flows, and_(flows.c.id == flow_versions.c.flow_id,
                                  flows.c.published_version == flow_versions.c.version))
                .where(flows.c.deleted_at.is_(None)).order_by(flows.c.id)).all()
        return [(r.document, r.version) for r in rows]

    def published_versions(self) -> dict[str, int]:
        """``{flow_id: published version}``: a cheap query to tell whether a cache of
        :meth:`published_flows` is still current."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(flows.c.id, flows.c.published_version).where(
                flows.c.deleted_at.is_(None), flows.c.published_version.is_not(None))).all()
        return {r.id: r.published_version for r in rows}

    def block_number_mark(self, flow_id: str, after_revision: int = 0) -> tuple[int, int]:
        """``(highest n of a block id "b<n>", last revision read)`` over the flow's draft
        revisions after ``after_revision`` (all of them by default).

        Every block a person ever added is in some revision, so numbering new blocks above
        this mark never gives a deleted block's id to a new one. The caller keeps the
        answer and asks again with ``after_revision`` to read only the newer revisions.
        """
        highest, last = 0, after_revision
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(flow_revisions.c.revision, flow_revisions.c.document)
                .where(flow_revisions.c.flow_id == flow_id,
                       flow_revisions.c.revision > after_revision)
                .order_by(flow_revisions.c.revision))
            for row in rows:
                last = row.revision
                for block in (row.document or {}).get("blocks", []):
                    found = _BLOCK_NUMBER.match(str(block.get("id", ""))) if isinstance(block, dict) else None
                    if found:
                        highest = max(highest, int(found.group(1)))
        return highest, last

    @staticmethod
    def _exists(conn, flow_id: str) -> bool:
        return conn.execute(select(flows.c.id).where(
            flows.c.id == flow_id, flows.c.deleted_at.is_(None))).first() is not None

    # -- saving drafts -----------------------------------------------------------------

    def create(self, raw: bytes | str | dict, actor: str | None = None,
               lang: str | None = None) -> dict:
        """Store a new flow's first draft; ``{"id","revision","findings"}``.

        Structural problems raise ``FlowDocumentError`` and store nothing; graph problems
        are returned as findings with the draft stored.
        """
        from schemas import load_document

        doc = load_document(raw, lang)
        findings = self.lint(doc, lang)
        flow_id, now = doc["id"], _now()
        try:
            with self.engine.begin() as conn:
                row = conn.execute(select(flows.c.revision, flows.c.deleted_at)
                                   .where(flows.c.id == flow_id).with_for_update()).first()
                if row is None:
                    revision = 1
                    conn.execute(insert(flows).values(
                        id=flow_id, name=doc["name"], revision=revision, published_version=None,
                        created_at=now, updated_at=now, updated_by=actor, deleted_at=None))
                elif row.deleted_at is None:
                    raise Conflict(_msg("flow_exists", lang, flow_id=flow_id), code="flow_exists")
                else:
                    # Re-creating a deleted flow: revision and version numbers go on from
                    # where they were, so a conversation pinned to an old version still
                    # finds exactly the document it started with.
                    last = conn.execute(select(func.max(flow_revisions.c.revision)).where(
                        flow_revisions.c.flow_id == flow_id)).scalar() or 0
                    revision = max(last, row.revision) + 1
                    revived = conn.execute(
                        update(flows).where(flows.c.id == flow_id, flows.c.deleted_at.is_not(None))
                        .values(name=doc["name"], revision=revision, published_version=None,
                                created_at=now, updated_at=now, updated_by=actor, deleted_at=None))
                    if revived.rowcount != 1:
                        raise Conflict(_msg("flow_exists", lang, flow_id=flow_id), code="flow_exists")
                conn.execute(insert(flow_revisions).values(
                    flow_id=flow_id, revision=revision, document=doc, findings=findings,
                    created_at=now, created_by=actor))
        except IntegrityError:
            # Another request created the same id between our read and our insert.
            raise Conflict(_msg("flow_exists", lang, flow_id=flow_id), code="flow_exists") from None
        return {"id": flow_id, "revision": revision, "findings": findings}

    def update(self, flow_id: str, raw: bytes | str | dict, if_match: int | str | None,
               actor: str | None = None, lang: str | None = None) -> dict:
        """Save a new draft revision if ``if_match`` is still the latest; ``{"id","revision","findings"}``."""
        from schemas import load_document

        seen = parse_revision(if_match, lang)
        doc = load_document(raw, lang)
        if doc["id"] != flow_id:
            raise Invalid(_msg("id_mismatch", lang, doc_id=doc["id"], flow_id=flow_id),
                          code="id_mismatch",
                          details=[{"path": "$.id", "message": _msg(
                              "id_mismatch", lang, doc_id=doc["id"], flow_id=flow_id)}])
        findings = self.lint(doc, lang)
        revision = self._save_revision(flow_id, doc, findings, seen, actor, lang)
        return {"id": flow_id, "revision": revision, "findings": findings}

    def _save_revision(self, flow_id: str, doc: dict, findings: list[dict], seen: int,
                       actor: str | None, lang: str | None) -> int:
        """Insert revision ``seen + 1`` if ``seen`` is still the latest (one transaction)."""
        now = _now()
        with self.engine.begin() as conn:
            # The conditional UPDATE is the lock and the check in one statement: of two
            # saves from the same revision exactly one matches a row.
            moved = conn.execute(
                update(flows).where(flows.c.id == flow_id, flows.c.revision == seen,
                                    flows.c.deleted_at.is_(None))
                .values(revision=flows.c.revision + 1, name=doc["name"],
                        updated_at=now, updated_by=actor))
            if moved.rowcount != 1:
                current = conn.execute(select(flows.c.revision).where(
                    flows.c.id == flow_id, flows.c.deleted_at.is_(None))).scalar()
                if current is None:
                    raise NotFound(_msg("flow_not_found", lang, flow_id=flow_id),
                                   code="flow_not_found")
                raise Conflict(_msg("stale_revision", lang, current=current, seen=seen),
                               code="stale_revision", extra={"revision": current})
            conn.execute(insert(flow_revisions).values(
                flow_id=flow_id, revision=seen + 1, document=doc, findings=findings,
                created_at=now, created_by=actor))
        return seen + 1

    def _revise(self, flow_id: str, change: Callable[[dict], dict], actor: str | None,
                lang: str | None) -> dict:
        """Apply ``change`` to the latest draft and save it, retrying if another save wins."""
        from schemas import load_document

        for attempt in range(_RETRIES):
            draft = self.draft(flow_id, lang)
            doc = load_document(change(copy.deepcopy(draft["document"])), lang)
            findings = self.lint(doc, lang)
            try:
                revision = self._save_revision(flow_id, doc, findings, draft["revision"],
                                               actor, lang)
            except Conflict:
                if attempt == _RETRIES - 1:
                    raise
                continue
            return {"id": flow_id, "revision": revision, "findings": findings}
        raise AssertionError("unreachable")

    def rename(self, flow_id: str, name: str, actor: str | None = None,
               lang: str | None = None) -> dict:
        """Give the flow a new name (a new draft revision); ``{"id","revision","findings"}``."""

        def renamed(doc: dict) -> dict:
            doc["name"] = name
            return doc

        return self._revise(flow_id, renamed, actor, lang)

    def duplicate(self, flow_id: str, new_id: str, actor: str | None = None,
                  name: str | None = None, lang: str | None = None) -> dict:
        """A new flow ``new_id`` whose first draft is a copy of ``flow_id``'s latest draft.

        Jumps that pointed into the flow itself point into the copy, so the copy runs on
        its own; jumps to other flows are kept. Default name: the original's + "(cópia)".
        """
        doc = copy.deepcopy(self.get(flow_id, lang)[0])
        doc["id"] = new_id
        # Leave room for the suffix within the schema's 200-character name limit.
        doc["name"] = name or _msg("copy_name", lang, name=doc["name"][:180])
        for block in doc.get("blocks", []):
            data = block.get("data") or {}
            if block.get("type") == "jump" and data.get("flow_id") == flow_id:
                data["flow_id"] = new_id
        return self.create(doc, actor=actor, lang=lang)

    def delete(self, flow_id: str, actor: str | None = None, lang: str | None = None) -> None:
        """Soft delete: the flow leaves lists and trigger matching; its versions stay readable."""
        now = _now()
        with self.engine.begin() as conn:
            gone = conn.execute(update(flows).where(flows.c.id == flow_id,
                                                    flows.c.deleted_at.is_(None))
                                .values(deleted_at=now, updated_at=now, updated_by=actor))
            if gone.rowcount != 1:
                raise NotFound(_msg("flow_not_found", lang, flow_id=flow_id), code="flow_not_found")

    # -- publishing --------------------------------------------------------------------

    def publish(self, flow_id: str, actor: str | None = None, version: int | None = None,
                lang: str | None = None, force: bool = False, settings=None) -> dict:
        """Publish the latest draft as a new version; ``{"version", "revision"}``.

        With ``version`` (rollback, the editor's "Publicar esta versão"): publish a copy of
        that older version as a new version *and* put it in the draft (a new revision, in
        the same transaction), so the next "Publicar" does not ship the rolled-back change
        again. History is never rewritten: the draft that was there stays as an older
        revision.

        Refused with ``Invalid`` code ``flow_has_errors`` (findings in ``extra``) when lint
        finds errors; then, publishing the draft, with code ``flow_tests_failed`` (one
        ``{"path": "tests/<name>", "message"}`` per failing test in ``details``) when one of
        the flow's tests fails, unless ``force``. A rollback (``version``) runs no tests.
        ``settings``: the :class:`~engine.settings.Settings` the tests run with.
        """
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise Invalid(_msg("bad_version", lang, value=str(version)[:40]), code="bad_version")
        for _attempt in range(_RETRIES):
            if version is None:
                doc, revision = self.get(flow_id, lang)
            else:
                doc = self._version(flow_id, version, lang)[0]
                revision = self.draft(flow_id, lang)["revision"]
            findings = self.lint(doc, lang)
            errors = [f for f in findings if f.get("level") == "error"]
            if errors:
                raise Invalid(_msg("flow_has_errors", lang, count=len(errors)),
                              code="flow_has_errors", extra={"findings": findings})
            if version is None and not force and doc.get("tests"):
                self._check_tests(doc, lang, settings)
            now = _now()
            with self.engine.begin() as conn:
                # Lock the flow row (PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the
                # write lock) so version numbers are handed out one at a time.
                current = conn.execute(select(flows.c.revision).where(
                    flows.c.id == flow_id, flows.c.deleted_at.is_(None)).with_for_update()).scalar()
                if current is None:
                    raise NotFound(_msg("flow_not_found", lang, flow_id=flow_id),
                                   code="flow_not_found")
                if current != revision:
                    continue  # a save landed after our lint: lint the newer draft instead
                number = (conn.execute(select(func.max(flow_versions.c.version)).where(
                    flow_versions.c.flow_id == flow_id)).scalar() or 0) + 1
                values = {"published_version": number}
                if version is not None:
                    revision = current + 1
                    conn.execute(insert(flow_revisions).values(
                        flow_id=flow_id, revision=revision, document=doc, findings=findings,
                        created_at=now, created_by=actor))
                    values.update(revision=revision, name=doc["name"], updated_at=now,
                                  updated_by=actor)
                conn.execute(insert(flow_versions).values(
                    flow_id=flow_id, version=number, revision=revision, document=doc,
                    published_at=now, published_by=actor))
                conn.execute(update(flows).where(flows.c.id == flow_id).values(**values))
            return {"version": number, "revision": revision}
        raise Conflict(_msg("busy", lang, flow_id=flow_id), code="busy")

    def restore(self, flow_id: str, version: int, actor: str | None = None,
                lang: str | None = None) -> dict:
        """"Restaurar no rascunho" done by the server: copy published ``version`` into the
        draft as a new revision (nothing is published); ``{"id","revision","findings"}``.
        The draft that was there stays as the previous revision (the editor's
        ``POST /flows/<id>/versions/<n>/restore``; the page adopts the new draft)."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise Invalid(_msg("bad_version", lang, value=str(version)[:40]), code="bad_version")
        doc = self._version(flow_id, version, lang)[0]
        return self._revise(flow_id, lambda _draft: copy.deepcopy(doc), actor, lang)

    def draft_differs(self, flow_id: str, lang: str | None = None) -> bool:
        """Whether the draft differs from the published version ("Rascunho com alterações
        não publicadas"); True for a flow never published. Block positions count: they
        are part of what publishing would store."""
        draft = self.draft(flow_id, lang)
        if draft["published_version"] is None:
            return True
        published = self.published(flow_id)
        return published is None or published[0] != draft["document"]

    def run_position(self, flow_id: str | None, version: int | None, block_id: str | None,
                     lang: str | None = None) -> dict:
        """Where a run is, as people read it: ``{"flow": the flow's name, "block": the
        block's title and id}`` from the version the run is pinned to (the latest draft for
        the simulator's runs); ids stand in for what cannot be found."""
        from blocks.labels import block_name

        if not flow_id:
            return {"flow": None, "block": None}
        found = self.published(flow_id, version) if version is not None else None
        if found is None:
            try:
                doc = self.get(flow_id, lang)[0]
            except NotFound:
                doc = None
        else:
            doc = found[0]
        blocks = {b.get("id"): b for b in (doc or {}).get("blocks", []) if isinstance(b, dict)}
        block = blocks.get(block_id) if block_id else None
        return {"flow": (doc or {}).get("name") or flow_id,
                "block": block_name(block, block_id, lang) if block_id else None}

    def flows_for_tests(self, doc: dict, settings=None) -> list[dict]:
        """The published documents a draft's tests may reach besides the draft itself: the
        flows it jumps into, and ``PAPO_ON_CONCLUDE_FLOW``'s (as in production)."""
        from engine.lint import jump_targets

        wanted = set(jump_targets([doc]))
        on_conclude = getattr(settings, "on_conclude_flow", None)
        if on_conclude and on_conclude != doc.get("id"):
            wanted.add(on_conclude)
        found = []
        for flow_id in sorted(wanted):
            published = self.published(flow_id)
            if published is not None:
                found.append(published[0])
        return found

    def run_tests(self, flow_id: str, lang: str | None = None, settings=None) -> list:
        """Run the tests of ``flow_id``'s latest draft; a list of ``engine.flowtests.FlowTestResult``."""
        from engine.flowtests import run_tests

        doc, _revision = self.get(flow_id, lang)
        return run_tests(doc, settings=settings, lang=lang, others=self.flows_for_tests(doc, settings))

    def _check_tests(self, doc: dict, lang: str | None, settings) -> None:
        from engine.flowtests import failure_details, run_tests
        from engine.i18n import t

        results = run_tests(doc, settings=settings, lang=lang, others=self.flows_for_tests(doc, settings))
        details = failure_details(results)
        if details:
            raise Invalid(t("flowtest.failed_summary", lang, count=len(details)),
                          code="flow_tests_failed", details=details)

    def _version(self, flow_id: str, version: int, lang: str | None) -> tuple[dict, int]:
        """``(document, revision)`` of published ``version`` of a flow that is not deleted."""
        with self.engine.connect() as conn:
            if not self._exists(conn, flow_id):
                raise NotFound(_msg("flow_not_found", lang, flow_id=flow_id), code="flow_not_found")
            row = conn.execute(select(flow_versions.c.document, flow_versions.c.revision).where(
                flow_versions.c.flow_id == flow_id, flow_versions.c.version == version)).first()
        if row is None:
            raise NotFound(_msg("version_not_found", lang, flow_id=flow_id, version=version),
                           code="version_not_found")
        return row.document, row.revision
