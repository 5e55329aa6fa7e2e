"""The flow repository: drafts, If-Match saves, publish, rollback, delete (both databases)."""
from __future__ import annotations

import copy
import json
import re
import threading

import pytest
from conftest import make_test_engine
from sqlalchemy import func, select

from engine.errors import Conflict, Invalid, NotFound, PapoError, PreconditionRequired
from engine.flows import FlowRepository
from engine.store import flow_revisions, flow_versions
from engine.store import flows as flows_table
from schemas import FlowDocumentError

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def make_flow(flow_id: str = "vendas", name: str = "Vendas", text: str = "Olá!") -> dict:
    """A small valid flow: greet, then say goodbye; no defaults (priority, description)."""
    return {
        "schema_version": 1,
        "id": flow_id,
        "name": name,
        "triggers": [{"type": "keyword", "match": "exact", "value": "oi"}],
        "start": "b1",
        "blocks": [
            {"id": "b1", "type": "message", "position": {"x": 0, "y": 0}, "data": {"text": text}},
            {"id": "b2", "type": "message", "position": {"x": 240, "y": 0},
             "data": {"text": "Até logo"}},
        ],
        "edges": [{"from": "b1", "port": "next", "to": "b2"}],
    }


def with_dangling_edge(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    doc["edges"].append({"from": "b2", "port": "next", "to": "nowhere"})
    return doc


def with_jump(doc: dict, flow_id: str, block_id: str | None = None) -> dict:
    doc = copy.deepcopy(doc)
    data = {"flow_id": flow_id} | ({"block_id": block_id} if block_id else {})
    doc["blocks"].append({"id": "j1", "type": "jump", "position": {"x": 480, "y": 0}, "data": data})
    doc["edges"].append({"from": "b2", "port": "next", "to": "j1"})
    return doc


def row_counts(engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar()
                     for t in (flows_table, flow_revisions, flow_versions))


# -- create / get / list -------------------------------------------------------------------

def test_created_flow_reads_back_exactly_as_sent(flows):
    doc = make_flow()

    saved = flows.create(doc, actor="ana")

    assert saved["id"] == "vendas" and saved["revision"] == 1
    assert saved["findings"] == [] or all(f["level"] == "warning" for f in saved["findings"])
    stored, revision = flows.get("vendas")
    assert stored == make_flow()  # no defaults (priority, description) filled in
    assert revision == 1


def test_create_accepts_json_text_and_ignores_server_owned_fields(flows):
    doc = make_flow() | {"revision": 9, "published_version": 4, "updated_at": "2020-01-01T00:00:00Z"}

    flows.create(json.dumps(doc).encode("utf-8"))

    assert flows.get("vendas") == (make_flow(), 1)


def test_create_with_a_taken_id_conflicts(flows):
    flows.create(make_flow())

    with pytest.raises(Conflict) as raised:
        flows.create(make_flow(name="Outro"))

    assert raised.value.status == 409 and raised.value.code == "flow_exists"
    assert flows.get("vendas")[0]["name"] == "Vendas"


def test_list_shows_flows_by_id_with_name_revision_and_triggers(flows):
    flows.create(make_flow("zeta", "Zeta"), actor="ana")
    flows.create(make_flow("alfa", "Alfa"), actor="bruno")
    flows.publish("zeta")

    listed = flows.list()

    assert [f["id"] for f in listed] == ["alfa", "zeta"]
    alfa, zeta = listed
    assert alfa["name"] == "Alfa" and alfa["revision"] == 1 and alfa["published_version"] is None
    assert alfa["updated_by"] == "bruno" and ISO_UTC.match(alfa["updated_at"])
    assert zeta["published_version"] == 1
    assert zeta["triggers"] == [{"type": "keyword", "match": "exact", "value": "oi"}]


def test_get_unknown_flow_is_not_found(flows):
    with pytest.raises(NotFound) as raised:
        flows.get("nada")
    assert raised.value.status == 404


# -- update and If-Match ---------------------------------------------------------------------

@pytest.mark.parametrize("if_match", [1, "1", '"1"', ' "1" ', 'W/"1"'])
def test_update_accepts_the_revision_quoted_or_bare(flows, if_match):
    flows.create(make_flow())

    saved = flows.update("vendas", make_flow(text="Oi de novo"), if_match, actor="bruno")

    assert saved["revision"] == 2
    doc, revision = flows.get("vendas")
    assert revision == 2 and doc["blocks"][0]["data"]["text"] == "Oi de novo"
    assert flows.list()[0]["updated_by"] == "bruno"


def test_update_from_a_stale_revision_conflicts_and_keeps_the_newer_draft(flows):
    flows.create(make_flow())
    flows.update("vendas", make_flow(text="Versão da Ana"), '"1"')

    with pytest.raises(Conflict) as raised:
        flows.update("vendas", make_flow(text="Versão do Bruno"), '"1"', lang="en")

    assert raised.value.status == 409 and raised.value.code == "stale_revision"
    assert "revision 2" in raised.value.message
    doc, revision = flows.get("vendas")
    assert revision == 2 and doc["blocks"][0]["data"]["text"] == "Versão da Ana"


@pytest.mark.parametrize("if_match", [None, "", "  "])
def test_update_without_a_revision_requires_one(flows, if_match):
    flows.create(make_flow())

    with pytest.raises(PreconditionRequired) as raised:
        flows.update("vendas", make_flow(text="x"), if_match)

    assert raised.value.status == 428 and raised.value.code == "revision_required"
    assert flows.get("vendas")[1] == 1


@pytest.mark.parametrize("if_match", ["abc", '"1', "1.5", "-1", True])
def test_update_with_an_unreadable_revision_is_a_bad_request(flows, if_match):
    flows.create(make_flow())

    with pytest.raises(PapoError) as raised:
        flows.update("vendas", make_flow(text="x"), if_match)

    assert raised.value.status == 400
    assert flows.get("vendas")[1] == 1


def test_update_with_a_document_of_another_id_is_invalid(flows):
    flows.create(make_flow())

    with pytest.raises(Invalid) as raised:
        flows.update("vendas", make_flow("outro"), 1)

    assert raised.value.status == 422
    assert flows.get("vendas")[1] == 1


def test_update_of_unknown_flow_is_not_found(flows):
    with pytest.raises(NotFound):
        flows.update("nada", make_flow("nada"), 1)


def test_two_saves_from_the_same_revision_exactly_one_wins(db_url, db):
    FlowRepository(db).create(make_flow())
    editors = [FlowRepository(make_test_engine(db_url)) for _ in range(4)]
    barrier = threading.Barrier(len(editors))
    outcomes: list[str] = []

    def save(repo: FlowRepository, n: int) -> None:
        barrier.wait()
        try:
            repo.update("vendas", make_flow(text=f"editor {n}"), 1)
            outcomes.append("saved")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(r, n)) for n, r in enumerate(editors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["conflict"] * 3 + ["saved"]
    assert FlowRepository(db).get("vendas")[1] == 2


def test_two_creates_of_the_same_id_exactly_one_wins(db_url, db):
    creators = [FlowRepository(make_test_engine(db_url)) for _ in range(4)]
    barrier = threading.Barrier(len(creators))
    outcomes: list[str] = []

    def create(repo: FlowRepository, n: int) -> None:
        barrier.wait()
        try:
            repo.create(make_flow(text=f"autor {n}"))
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create, args=(r, n)) for n, r in enumerate(creators)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["conflict"] * 3 + ["created"]
    assert FlowRepository(db).get("vendas")[1] == 1


# -- structural vs graph problems ------------------------------------------------------------

def test_graph_problems_are_saved_as_a_draft_with_findings(flows):
    saved = flows.create(with_dangling_edge(make_flow()))

    assert saved["revision"] == 1
    codes = {(f["level"], f["code"]) for f in saved["findings"]}
    assert ("error", "dangling_edge") in codes
    assert flows.get("vendas")[0] == with_dangling_edge(make_flow())
    assert flows.draft("vendas")["findings"] == saved["findings"]


@pytest.mark.parametrize("raw", [
    b"{not json",
    json.dumps(make_flow() | {"blocks": make_flow()["blocks"] * 2}),  # duplicate block ids
    make_flow() | {"colour": "blue"},  # unknown top-level key
    make_flow() | {"schema_version": 99},  # newer format
])
def test_structural_problems_store_nothing(flows, db, raw):
    flows.create(make_flow("outro"))
    before = row_counts(db)

    with pytest.raises(FlowDocumentError):
        flows.create(raw)
    with pytest.raises(FlowDocumentError):
        flows.update("outro", raw, 1)

    assert row_counts(db) == before
    assert flows.get("outro")[1] == 1


# -- publish, versions, rollback -------------------------------------------------------------

def test_publish_freezes_numbered_versions(flows):
    flows.create(make_flow(text="primeira"))
    assert flows.publish("vendas", actor="ana") == {"version": 1, "revision": 1}
    flows.update("vendas", make_flow(text="segunda"), 1)

    assert flows.publish("vendas", actor="bruno") == {"version": 2, "revision": 2}

    history = flows.versions("vendas")
    assert [(v["version"], v["revision"], v["published_by"]) for v in history] == [
        (1, 1, "ana"), (2, 2, "bruno")]
    assert all(ISO_UTC.match(v["published_at"]) for v in history)
    doc, version = flows.published("vendas")
    assert version == 2 and doc["blocks"][0]["data"]["text"] == "segunda"
    assert flows.published("vendas", version=1)[0]["blocks"][0]["data"]["text"] == "primeira"
    assert flows.list()[0]["published_version"] == 2


def test_draft_edits_do_not_change_the_published_version(flows):
    flows.create(make_flow(text="publicada"))
    flows.publish("vendas")

    flows.update("vendas", make_flow(text="rascunho"), 1)

    assert flows.published("vendas")[0]["blocks"][0]["data"]["text"] == "publicada"


def test_publish_is_refused_while_lint_finds_errors(flows):
    flows.create(with_dangling_edge(make_flow()))

    with pytest.raises(Invalid) as raised:
        flows.publish("vendas")

    error = raised.value
    assert error.status == 422 and error.code == "flow_has_errors"
    body = error.to_json()["error"]
    assert body["code"] == "flow_has_errors" and body["message"]
    assert any(f["code"] == "dangling_edge" and f["level"] == "error" for f in body["findings"])
    assert flows.versions("vendas") == [] and flows.published("vendas") is None


def test_jump_targets_are_checked_against_the_other_flows(flows):
    flows.create(with_jump(make_flow(), "suporte", "b2"))
    with pytest.raises(Invalid):
        flows.publish("vendas")

    flows.create(make_flow("suporte", "Suporte"))

    assert flows.flow_index()["suporte"] == {"b1", "b2"}
    assert flows.publish("vendas")["version"] == 1


def test_rollback_publishes_a_copy_of_the_old_version(flows):
    flows.create(make_flow(text="v1"))
    flows.publish("vendas")
    flows.update("vendas", make_flow(text="v2"), 1)
    flows.publish("vendas")

    assert flows.publish("vendas", version=1, actor="ana") == {"version": 3, "revision": 3}

    doc, version = flows.published("vendas")
    assert version == 3 and doc["blocks"][0]["data"]["text"] == "v1"
    assert [(v["version"], v["revision"]) for v in flows.versions("vendas")] == [(1, 1), (2, 2), (3, 3)]
    # History is not rewritten; the rolled-back version is now the draft too, so the next
    # "Publicar" does not ship the change that was rolled back (issue 13, item 5).
    assert flows.published("vendas", version=2)[0]["blocks"][0]["data"]["text"] == "v2"
    draft = flows.draft("vendas")
    assert draft["revision"] == 3 and draft["document"] == doc and draft["updated_by"] == "ana"
    assert flows.draft_differs("vendas") is False
    assert flows.publish("vendas") == {"version": 4, "revision": 3}
    assert flows.published("vendas")[0]["blocks"][0]["data"]["text"] == "v1"


def test_restore_copies_a_version_into_the_draft_as_a_new_revision(flows):
    flows.create(make_flow(text="v1"))
    flows.publish("vendas")
    flows.update("vendas", make_flow(text="v2", name="Vendas 2"), 1)

    saved = flows.restore("vendas", 1, actor="bruno")

    assert saved["revision"] == 3 and saved["findings"] == []
    draft = flows.draft("vendas")
    assert draft["document"] == flows.published("vendas", version=1)[0]
    assert draft["name"] == "Vendas" and draft["updated_by"] == "bruno"
    assert flows.published("vendas")[1] == 1  # nothing was published
    assert [v["version"] for v in flows.versions("vendas")] == [1]
    # the draft it replaced is kept as revision 2 (undo brings it back by saving it again)
    assert flows.update("vendas", make_flow(text="v2", name="Vendas 2"), 3)["revision"] == 4


def test_restore_of_an_unknown_version_changes_nothing(flows):
    flows.create(make_flow())
    flows.publish("vendas")
    with pytest.raises(NotFound):
        flows.restore("vendas", 5)
    with pytest.raises(NotFound):
        flows.restore("nada", 1)
    assert flows.draft("vendas")["revision"] == 1


def test_draft_differs_from_published_until_published_again(flows):
    flows.create(make_flow(text="v1"))
    assert flows.draft_differs("vendas") is True  # never published
    flows.publish("vendas")
    assert flows.draft_differs("vendas") is False
    flows.update("vendas", make_flow(text="v2"), 1)
    assert flows.draft_differs("vendas") is True
    flows.update("vendas", make_flow(text="v1"), 2)
    assert flows.draft_differs("vendas") is False  # the same document again


def test_rollback_to_an_unknown_version_is_not_found(flows):
    flows.create(make_flow())
    flows.publish("vendas")

    with pytest.raises(NotFound):
        flows.publish("vendas", version=7)
    assert [v["version"] for v in flows.versions("vendas")] == [1]


def test_published_flows_lists_published_flows_that_are_not_deleted(flows):
    for flow_id in ("a", "b", "c"):
        flows.create(make_flow(flow_id))
    flows.publish("c")
    flows.publish("a")
    flows.publish("b")
    flows.delete("b")

    assert [(doc["id"], version) for doc, version in flows.published_flows()] == [
        ("a", 1), ("c", 1)]


# -- delete, rename, duplicate ---------------------------------------------------------------

def test_deleted_flow_disappears_but_its_versions_stay_readable(flows):
    flows.create(make_flow(text="fixada"))
    flows.publish("vendas")

    flows.delete("vendas", actor="ana")

    assert flows.list() == []
    assert "vendas" not in flows.flow_index()
    assert flows.published("vendas") is None
    with pytest.raises(NotFound):
        flows.get("vendas")
    with pytest.raises(NotFound):
        flows.delete("vendas")
    # A conversation pinned to version 1 finishes on it.
    doc, version = flows.published("vendas", version=1)
    assert version == 1 and doc["blocks"][0]["data"]["text"] == "fixada"


def test_recreating_a_deleted_flow_keeps_numbers_going_up(flows):
    flows.create(make_flow(text="antigo"))
    flows.publish("vendas")
    flows.delete("vendas")

    saved = flows.create(make_flow(text="novo"))

    assert saved["revision"] > 1
    assert flows.published("vendas") is None  # the new flow is not published yet
    assert flows.publish("vendas")["version"] == 2
    assert flows.published("vendas", version=1)[0]["blocks"][0]["data"]["text"] == "antigo"
    assert flows.published("vendas")[0]["blocks"][0]["data"]["text"] == "novo"


def test_rename_saves_a_new_revision_with_the_new_name(flows):
    flows.create(make_flow())

    saved = flows.rename("vendas", "Vendas 2026", actor="ana")

    assert saved["revision"] == 2
    doc, revision = flows.get("vendas")
    assert doc["name"] == "Vendas 2026" and revision == 2
    assert flows.list()[0]["name"] == "Vendas 2026"


def test_duplicate_starts_a_new_flow_from_the_latest_draft(flows):
    flows.create(make_flow())
    flows.update("vendas", with_jump(make_flow(text="editado"), "vendas", "b1"), 1)

    saved = flows.duplicate("vendas", "vendas-copia", actor="ana", name="Vendas (teste)")

    assert saved == {"id": "vendas-copia", "revision": 1, "findings": saved["findings"]}
    doc, revision = flows.get("vendas-copia")
    assert doc["name"] == "Vendas (teste)" and revision == 1
    assert doc["blocks"][0]["data"]["text"] == "editado"
    # A jump into the original now jumps into the copy, so the copy runs on its own.
    assert doc["blocks"][-1]["data"] == {"flow_id": "vendas-copia", "block_id": "b1"}
    assert flows.get("vendas")[1] == 2  # the original is untouched
    with pytest.raises(Conflict):
        flows.duplicate("vendas", "vendas-copia")



def test_a_flow_without_triggers_is_not_no_trigger_while_a_stored_flow_jumps_into_it(flows):
    target = make_flow("pos-venda", "Pós-venda")
    target["triggers"] = []
    flows.create(target)
    assert "no_trigger" in {f["code"] for f in flows.draft("pos-venda")["findings"]}
    menu = make_flow("menu", "Menu")
    menu["blocks"].append({"id": "j", "type": "jump", "position": {"x": 480, "y": 0},
                           "data": {"flow_id": "pos-venda"}})
    menu["edges"].append({"from": "b2", "port": "next", "to": "j"})
    flows.create(menu)
    assert "no_trigger" not in {f["code"] for f in flows.lint(target)}  # the draft jumps
    flows.publish("menu")
    without_jump = make_flow("menu", "Menu")
    flows.update("menu", without_jump, 1)
    assert "no_trigger" not in {f["code"] for f in flows.lint(target)}  # the published one still does
    flows.publish("menu")
    assert "no_trigger" in {f["code"] for f in flows.lint(target)}
