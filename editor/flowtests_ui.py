"""The flow editor's "Testes" panel and the simulator's "Salvar como teste" (DESIGN §10.2).

Routes (admins only, like the editor)::

    GET  /flows/<id>/tests                 the panel: the draft's tests and their last result
    POST /flows/<id>/tests/run             "Rodar testes": run them all on the latest draft
    GET  /flows/<id>/tests/save            the "Salvar como teste" form (name + the steps)
    POST /flows/<id>/tests/save            field ``name``: the simulated conversation so far
                                           becomes a test
    POST /flows/<id>/tests/delete          field ``name``: remove that test

The tests live in the flow document, which the editor page owns and saves (with its
revision check). So the routes that change tests do not store anything: they answer with
the draft's new ``tests`` list in a ``script.flowtests-result`` that
``static/flowtests.js`` hands to the editor (``papoEditor.setTests``), which saves it as
any other change (undo works). The last results are kept per browser session, small:
the session lives in a cookie.
"""
from __future__ import annotations

import time

from flask import Blueprint, make_response, render_template, request, session
from flask_babel import gettext as _

from editor.app import get_engine, get_settings
from editor.auth import admin_required
from editor.i18n import current_lang
from engine.flows import FlowRepository

bp = Blueprint("flowtests", __name__)

SESSION_KEY = "flowtests"
MAX_FLOWS_REMEMBERED = 3
MAX_RESULTS_REMEMBERED = 60
MAX_MESSAGE = 300
MAX_NAME = 100


def _repo() -> FlowRepository:
    return FlowRepository(get_engine())


def _draft(flow_id: str) -> tuple[dict, int]:
    return _repo().get(flow_id, current_lang())


def _remember(flow_id: str, revision: int, results: list) -> None:
    """Keep this run's results in the session (a cookie: messages cut, few flows)."""
    kept = dict(session.get(SESSION_KEY) or {})
    kept[flow_id] = {"r": revision, "t": int(time.time()),
                     "res": {r.name: [r.passed, r.step, (r.message or "")[:MAX_MESSAGE]]
                             for r in results[:MAX_RESULTS_REMEMBERED]}}
    recent = sorted(kept.items(), key=lambda item: (item[1] or {}).get("t", 0), reverse=True)
    session[SESSION_KEY] = dict(recent[:MAX_FLOWS_REMEMBERED])


def _last_results(flow_id: str) -> tuple[dict, int | None]:
    entry = (session.get(SESSION_KEY) or {}).get(flow_id)
    if not isinstance(entry, dict) or not isinstance(entry.get("res"), dict):
        return {}, None
    return entry["res"], entry.get("r")


def _panel(flow_id: str, *, tests: list[dict] | None = None, note: str | None = None,
           ran: bool = False, status: int = 200, result_tests: list[dict] | None = None):
    doc, revision = _draft(flow_id)
    shown = doc.get("tests") or [] if tests is None else tests
    results, results_revision = _last_results(flow_id)
    rows = []
    for test in shown:
        last = results.get(test["name"])
        rows.append({"name": test["name"], "steps": test["steps"],
                     "result": None if last is None else
                     {"passed": bool(last[0]), "step": last[1], "message": last[2]}})
    failed = sum(1 for row in rows if row["result"] and not row["result"]["passed"])
    passed = sum(1 for row in rows if row["result"] and row["result"]["passed"])
    response = make_response(render_template(
        "flowtests/_panel.html", flow_id=flow_id, rows=rows, note=note, ran=ran,
        passed=passed, failed=failed, stale=results_revision is not None and results_revision != revision,
        result_tests=result_tests))
    response.status_code = status
    return response


@bp.get("/flows/<flow_id>/tests")
@admin_required
def panel(flow_id: str):
    return _panel(flow_id)


@bp.post("/flows/<flow_id>/tests/run")
@admin_required
def run(flow_id: str):
    from engine.flowtests import run_tests

    repo = _repo()
    doc, revision = repo.get(flow_id, current_lang())
    results = run_tests(doc, settings=get_settings(), lang=current_lang(),
                        others=repo.jump_targets(doc))
    _remember(flow_id, revision, results)
    return _panel(flow_id, ran=True)


# ---------------------------------------------------------------------- save as test

def _simulated_conversation(flow_id: str) -> dict | None:
    """This session's simulated conversation with the flow, as the API shows it."""
    from editor.simulator import load_simulation
    from engine.flowtests import transcript

    conversation_id = load_simulation(flow_id).conversation_id()
    if conversation_id is None:
        return None
    return transcript(get_engine(), conversation_id)


def _default_name(tests: list[dict]) -> str:
    taken = {t["name"] for t in tests}
    number = len(tests) + 1
    while _("Teste %(number)d", number=number) in taken:
        number += 1
    return _("Teste %(number)d", number=number)


def _save_form(flow_id: str, name: str, error: str | None = None, status: int = 200):
    from engine.flowtests import test_from_conversation

    conversation = _simulated_conversation(flow_id)
    steps = test_from_conversation(conversation, name or "-")["steps"] if conversation else []
    response = make_response(render_template(
        "flowtests/_save_form.html", flow_id=flow_id, name=name, steps=steps, error=error))
    response.status_code = status
    return response


@bp.get("/flows/<flow_id>/tests/save")
@admin_required
def save_form(flow_id: str):
    doc, _revision = _draft(flow_id)
    return _save_form(flow_id, _default_name(doc.get("tests") or []))


@bp.post("/flows/<flow_id>/tests/save")
@admin_required
def save(flow_id: str):
    from engine.flowtests import test_from_conversation

    doc, _revision = _draft(flow_id)
    tests = list(doc.get("tests") or [])
    name = " ".join((request.form.get("name") or "").split())
    error = None
    if not name:
        error = _("Dê um nome ao teste.")
    elif len(name) > MAX_NAME:
        error = _("O nome pode ter até %(limit)d caracteres.", limit=MAX_NAME)
    elif any(t["name"] == name for t in tests):
        error = _("Já existe um teste chamado “%(name)s”. Escolha outro nome.", name=name)
    conversation = _simulated_conversation(flow_id)
    test = test_from_conversation(conversation, name) if conversation and not error else None
    if error is None and (test is None or not test["steps"]):
        error = _("Converse com o bot no simulador antes de salvar um teste.")
    if error is not None:
        return _save_form(flow_id, name, error=error, status=422)
    tests.append(test)
    return _panel(flow_id, tests=tests, result_tests=tests,
                  note=_("Teste “%(name)s” salvo com %(count)d passos.", name=name,
                         count=len(test["steps"])))


@bp.post("/flows/<flow_id>/tests/delete")
@admin_required
def delete(flow_id: str):
    doc, _revision = _draft(flow_id)
    name = request.form.get("name") or ""
    tests = [t for t in doc.get("tests") or [] if t["name"] != name]
    return _panel(flow_id, tests=tests, result_tests=tests,
                  note=_("Teste “%(name)s” excluído.", name=name))


# ---------------------------------------------------------------------- publish refused

def publish_refused(flow_id: str, error):
    """The editor's "Publicar" when the draft's tests fail: say which, offer to publish anyway."""
    response = make_response(render_template(
        "flowtests/_publish_refused.html", flow_id=flow_id, message=error.message,
        failures=[{"name": d["path"].removeprefix("tests/"), "message": d["message"]}
                  for d in error.details or []]))
    response.status_code = 422
    return response
