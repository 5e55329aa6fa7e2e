"""The flow editor's "Testes" panel and the simulator's "Salvar como teste" (DESIGN §10.2).

Routes (admins only, like the editor)::

    GET  /flows/<id>/tests                 the panel: the draft's tests and their last result
    POST /flows/<id>/tests/run             "Rodar testes": run them all on the latest draft
    GET  /flows/<id>/tests/save            the "Salvar como teste" form (name + the steps)
    POST /flows/<id>/tests/save            field ``name``: the simulated conversation so far
                                           becomes a test
    POST /flows/<id>/tests/rename          fields ``name``, ``new_name``: rename a test
    POST /flows/<id>/tests/remove-step     fields ``name``, ``step`` (from 1): drop a step
    GET|POST /flows/<id>/tests/edit        steps and HTTP mocks as text, one JSON object per line
    POST /flows/<id>/tests/accept          fields ``name``, ``step``, ``text``: an ``expect``
                                           takes the bot's new text
    POST /flows/<id>/tests/delete          field ``name``: remove that test

The tests live in the flow document, which the editor page owns and saves (with its
revision check). So the routes that change tests do not store anything: they answer with
the draft's new ``tests`` list in a ``script.flowtests-result`` that
``static/flowtests.js`` hands to the editor (``papoEditor.setTests``), which saves it as
any other change (undo works). The last results are kept per browser session, small:
the session lives in a cookie.
"""
from __future__ import annotations

import hashlib
import json

from flask import Blueprint, make_response, render_template, request, session
from flask_babel import gettext as _

from editor.app import get_engine, get_settings
from editor.auth import admin_required
from editor.i18n import current_lang
from engine.flows import FlowRepository

bp = Blueprint("flowtests", __name__)

SESSION_KEY = "flowtests"
# The session is a cookie (about 4 KB for everything): the last run of one flow is kept,
# each test as a short hash of its name, and the first few failure messages, cut.
MAX_FLOWS_REMEMBERED = 1
MAX_MESSAGES_REMEMBERED = 5
MAX_MESSAGE = 160
MAX_NAME = 100
MAX_TESTS_KEPT = 100  # as many as a flow may have


def _repo() -> FlowRepository:
    return FlowRepository(get_engine())


def _draft(flow_id: str) -> tuple[dict, int]:
    return _repo().get(flow_id, current_lang())


def _key(name: str) -> str:
    return hashlib.blake2s(name.encode("utf-8"), digest_size=4).hexdigest()


def _remember(flow_id: str, revision: int, results: list) -> None:
    """Keep this run's results in the session, small (see MAX_*)."""
    kept, messages = [], 0
    for result in results[:MAX_TESTS_KEPT]:
        message = ""
        if not result.passed and messages < MAX_MESSAGES_REMEMBERED:
            message, messages = (result.message or "")[:MAX_MESSAGE], messages + 1
        kept.append([_key(result.name), int(result.passed), result.step, message])
    session[SESSION_KEY] = {flow_id: {"r": revision, "res": kept}}


def _last_results(flow_id: str) -> tuple[dict, int | None]:
    """``({name hash: {"passed", "step", "message"}}, revision)`` of the last run kept."""
    entry = (session.get(SESSION_KEY) or {}).get(flow_id)
    if not isinstance(entry, dict) or not isinstance(entry.get("res"), list):
        return {}, None
    found = {}
    for item in entry["res"]:
        if isinstance(item, list) and len(item) == 4:
            found[item[0]] = {"passed": bool(item[1]), "step": item[2], "message": item[3]}
    return found, entry.get("r")


def _panel(flow_id: str, *, tests: list[dict] | None = None, note: str | None = None,
           ran: list | None = None, status: int = 200, result_tests: list[dict] | None = None,
           note_error: bool = False):
    """The panel fragment. ``ran``: the results of a run just made (shown in full)."""
    doc, revision = _draft(flow_id)
    shown = doc.get("tests") or [] if tests is None else tests
    if ran is not None:
        results = {_key(r.name): {"passed": r.passed, "step": r.step, "message": r.message or "",
                                  "got": r.got} for r in ran}
        results_revision = revision
    else:
        results, results_revision = _last_results(flow_id)
    rows = [{"name": test["name"], "steps": test["steps"], "result": results.get(_key(test["name"]))}
            for test in shown]
    failed = sum(1 for row in rows if row["result"] and not row["result"]["passed"])
    passed = sum(1 for row in rows if row["result"] and row["result"]["passed"])
    response = make_response(render_template(
        "flowtests/_panel.html", flow_id=flow_id, rows=rows, note=note, note_error=note_error,
        ran=ran is not None, passed=passed, failed=failed,
        stale=results_revision is not None and results_revision != revision,
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
                        others=repo.flows_for_tests(doc, get_settings()))
    _remember(flow_id, revision, results)
    return _panel(flow_id, ran=results)


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
    from engine.flowtests import recorded_test

    conversation = _simulated_conversation(flow_id)
    steps = recorded_test(conversation, name or "-")["steps"] if conversation else []
    doc, _revision = _draft(flow_id)
    calls_http = any(b.get("type") == "http_request" for b in doc.get("blocks", []))
    response = make_response(render_template(
        "flowtests/_save_form.html", flow_id=flow_id, name=name, steps=steps, error=error,
        calls_http=calls_http))
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
    from engine.flowtests import recorded_test

    doc, _revision = _draft(flow_id)
    tests = list(doc.get("tests") or [])
    name = " ".join((request.form.get("name") or "").split())
    error = _name_error(name, tests)
    conversation = _simulated_conversation(flow_id)
    test = recorded_test(conversation, name) if conversation and not error else None
    if error is None and (test is None or not test["steps"]):
        error = _("Converse com o bot no simulador antes de salvar um teste.")
    if error is not None:
        return _save_form(flow_id, name, error=error, status=422)
    tests.append(test)
    return _panel(flow_id, tests=tests, result_tests=tests,
                  note=_("Teste “%(name)s” salvo com %(count)d passos.", name=name,
                         count=len(test["steps"])))


def _name_error(name: str, tests: list[dict]) -> str | None:
    if not name:
        return _("Dê um nome ao teste.")
    if len(name) > MAX_NAME:
        return _("O nome pode ter até %(limit)d caracteres.", limit=MAX_NAME)
    if any(t["name"] == name for t in tests):
        return _("Já existe um teste chamado “%(name)s”. Escolha outro nome.", name=name)
    return None


@bp.post("/flows/<flow_id>/tests/rename")
@admin_required
def rename(flow_id: str):
    doc, _revision = _draft(flow_id)
    tests = list(doc.get("tests") or [])
    old = request.form.get("name") or ""
    new = " ".join((request.form.get("new_name") or "").split())
    if new == old:
        return _panel(flow_id)
    error = _name_error(new, tests)
    if error is not None:
        return _panel(flow_id, note=error, note_error=True, status=422)
    renamed = [{**t, "name": new} if t["name"] == old else t for t in tests]
    entry = (session.get(SESSION_KEY) or {}).get(flow_id)
    if isinstance(entry, dict) and isinstance(entry.get("res"), list):
        for item in entry["res"]:
            if isinstance(item, list) and item and item[0] == _key(old):
                item[0] = _key(new)
        session[SESSION_KEY] = {flow_id: entry}
    return _panel(flow_id, tests=renamed, result_tests=renamed,
                  note=_("Teste “%(old)s” renomeado para “%(new)s”.", old=old, new=new))


@bp.post("/flows/<flow_id>/tests/remove-step")
@admin_required
def remove_step(flow_id: str):
    """Drop one step of a test (a check that is too strict, a message no longer wanted)."""
    doc, _revision = _draft(flow_id)
    tests = list(doc.get("tests") or [])
    name = request.form.get("name") or ""
    try:
        number = int(request.form.get("step") or "")
    except ValueError:
        number = 0
    found = next((t for t in tests if t["name"] == name), None)
    if found is None or not 1 <= number <= len(found["steps"]):
        return _panel(flow_id, note=_("Esse passo não existe mais; a lista foi atualizada."),
                      note_error=True, status=422)
    if len(found["steps"]) == 1:
        return _panel(flow_id, note=_("Um teste precisa de pelo menos um passo: exclua o teste."),
                      note_error=True, status=422)
    steps = found["steps"][:number - 1] + found["steps"][number:]
    changed = [{**t, "steps": steps} if t is found else t for t in tests]
    return _panel(flow_id, tests=changed, result_tests=changed,
                  note=_("Passo %(step)d removido do teste “%(name)s”.", step=number, name=name))


def _lines(items: list[dict]) -> str:
    return "\n".join(json.dumps(item, ensure_ascii=False) for item in items)


def _edit_form(flow_id: str, name: str, steps: str, mocks: str, errors: list[str] | None = None,
               status: int = 200):
    response = make_response(render_template(
        "flowtests/_edit_form.html", flow_id=flow_id, name=name, steps=steps, mocks=mocks,
        errors=errors or []))
    response.status_code = status
    return response


@bp.get("/flows/<flow_id>/tests/edit")
@admin_required
def edit_form(flow_id: str):
    doc, _revision = _draft(flow_id)
    name = request.args.get("name") or ""
    found = next((t for t in doc.get("tests") or [] if t["name"] == name), None)
    if found is None:
        return _panel(flow_id, note=_("Esse teste não existe mais; a lista foi atualizada."),
                      note_error=True, status=422)
    return _edit_form(flow_id, name, _lines(found["steps"]), _lines(found.get("http_mocks") or []))


def _parse_lines(text: str, example: str, errors: list[str]) -> tuple[list[dict], list[int]]:
    """JSON objects, one per non-empty line; ``(objects, their line numbers)``."""
    items, numbers = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        if not isinstance(item, dict):
            errors.append(_("Linha %(line)d: escreva como %(example)s.", line=number, example=example))
            continue
        items.append(item)
        numbers.append(number)
    return items, numbers


@bp.post("/flows/<flow_id>/tests/edit")
@admin_required
def edit(flow_id: str):
    """Steps and HTTP mocks edited as text, one JSON object per line, checked as the
    document would be."""
    from schemas import FlowDocumentError, validate_document

    doc, _revision = _draft(flow_id)
    tests = list(doc.get("tests") or [])
    name = request.form.get("name") or ""
    steps_text = request.form.get("steps") or ""
    mocks_text = request.form.get("mocks") or ""
    if not any(t["name"] == name for t in tests):
        return _panel(flow_id, note=_("Esse teste não existe mais; a lista foi atualizada."),
                      note_error=True, status=422)
    errors: list[str] = []
    steps, step_lines = _parse_lines(steps_text, '{"say": "oi"}', errors)
    mock_errors: list[str] = []
    mocks, mock_lines = _parse_lines(
        mocks_text, '{"method": "GET", "url": "https://…", "status": 200, "json": {}}', mock_errors)
    errors += [_("Respostas simuladas: %(problem)s", problem=e) for e in mock_errors]
    if not errors and not steps:
        errors.append(_("Um teste precisa de pelo menos um passo: exclua o teste."))

    def edited(test: dict) -> dict:
        test = {**test, "steps": steps}
        test.pop("http_mocks", None)
        return {**test, "http_mocks": mocks} if mocks else test

    changed = [edited(t) if t["name"] == name else t for t in tests]
    if not errors:
        try:
            validate_document({**doc, "tests": changed}, current_lang())
        except FlowDocumentError as exc:
            index = next(i for i, t in enumerate(changed) if t["name"] == name)
            for problem in exc.problems:
                errors.append(_where(problem, index, step_lines, mock_lines))
    if errors:
        return _edit_form(flow_id, name, steps_text, mocks_text, errors=errors, status=422)
    return _panel(flow_id, tests=changed, result_tests=changed,
                  note=_("Passos do teste “%(name)s” salvos.", name=name))


def _where(problem: dict, index: int, step_lines: list[int], mock_lines: list[int]) -> str:
    """A document problem in the edited test as "Linha N: …" of the text it came from."""
    path = problem["path"]
    for prefix, lines, label in ((f"$.tests[{index}].steps[", step_lines, None),
                                 (f"$.tests[{index}].http_mocks[", mock_lines, "mocks")):
        if path.startswith(prefix):
            line = lines[int(path[len(prefix):].split("]", 1)[0])]
            message = _("Linha %(line)d: %(message)s", line=line, message=problem["message"])
            return _("Respostas simuladas: %(problem)s", problem=message) if label else message
    return problem["message"]


@bp.post("/flows/<flow_id>/tests/accept")
@admin_required
def accept(flow_id: str):
    """"Usar a resposta nova": the ``expect`` of step ``step`` takes the text the bot sent."""
    doc, _revision = _draft(flow_id)
    tests = list(doc.get("tests") or [])
    name = request.form.get("name") or ""
    text = request.form.get("text") or ""
    try:
        number = int(request.form.get("step") or "")
    except ValueError:
        number = 0
    found = next((t for t in tests if t["name"] == name), None)
    if found is None or not 1 <= number <= len(found["steps"]) or \
            "expect" not in found["steps"][number - 1] or not text:
        return _panel(flow_id, note=_("Esse passo não existe mais; a lista foi atualizada."),
                      note_error=True, status=422)
    steps = [*found["steps"][:number - 1], {"expect": text}, *found["steps"][number:]]
    changed = [{**t, "steps": steps} if t is found else t for t in tests]
    return _panel(flow_id, tests=changed, result_tests=changed,
                  note=_("O passo %(step)d do teste “%(name)s” agora espera a resposta nova. "
                         "Rode os testes de novo.", step=number, name=name))


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
