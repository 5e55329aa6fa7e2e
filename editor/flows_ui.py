"""The flows pages: the list of flows and the visual flow editor (admins only).

Routes (blueprint ``flows``)::

    GET  /flows                          list; create, import, rename, duplicate, delete
    POST /flows                          create (``id``, ``name``) → the editor
    POST /flows/import                   create a flow from an uploaded ``.json`` (``file``)
    GET  /flows/<id>/export              download the latest draft exactly as stored
    GET|POST /flows/<id>/rename          rename form
    GET|POST /flows/<id>/duplicate       duplicate form (``new_id``, ``name``)
    GET|POST /flows/<id>/delete          confirmation step, then delete
    GET  /flows/<id>/edit                the editor (canvas, palette, panel, simulator)
    PUT  /flows/<id>/draft               JSON: save the document; ``If-Match: <revision>``
    GET|POST /flows/<id>/blocks/<bid>/form   a block's property form; POST validates it
    GET|POST /flows/<id>/settings        the flow's name, description, priority, triggers
    POST /flows/<id>/import-draft        read an uploaded file to replace the draft
    GET  /flows/<id>/findings            "Validar": the linter's findings
    POST /flows/<id>/publish             publish the draft, or ``version`` (rollback: the
                                         engine also puts it in the draft; "restored" result)
    GET  /flows/<id>/versions            version history with what changed
    POST /flows/<id>/versions/<n>/restore  "Restaurar no rascunho": version n → a new draft revision

The editor's JavaScript (``static/editor.js``) holds the document being edited and is
the only writer of drafts from the editor page: forms are validated here and their
result handed back to the page (a JSON script in the fragment), which then saves the
whole document with the revision it holds. One save path means undo/redo, conflicts
and retries are handled in one place.
"""
from __future__ import annotations

import copy
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from jinja2 import Undefined
from jinja2.utils import htmlsafe_json_dumps
from jsonschema import Draft202012Validator
from markupsafe import Markup

from blocks import REGISTRY
from blocks.base import FAMILIES, BlockKind
from blocks.labels import block_name, block_title, kind_title, port_label, shorten
from editor import condition_form
from editor.app import get_engine, get_settings, render_page
from editor.auth import admin_required, current_user
from editor.i18n import current_lang
from editor.security import query_int
from engine import whatsapp_templates
from engine.errors import Conflict, Invalid, NotFound, PapoError
from engine.flows import FlowRepository, parse_revision
from schemas import CURRENT_VERSION, FlowDocumentError, load_document, validate_document

bp = Blueprint("flows", __name__)

FLOW_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
START_POSITION = {"x": 80, "y": 160}
MAX_VERSIONS_SHOWN = 30
MAX_VERSION = 2**31 - 1  # flow_versions.version is a 32-bit INTEGER


# ---------------------------------------------------------------------- helpers

def repository() -> FlowRepository:
    return FlowRepository(get_engine())


def actor() -> str:
    return current_user()["login"]


def _moment(value: str | None) -> datetime | None:
    """An ISO-8601 string from the repository as an aware datetime (for the templates)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def family_label(family: str) -> str:
    return {"message": _("Mensagem"), "question": _("Pergunta"), "action": _("Ação")}.get(family, family)


def kind_label(kind: BlockKind) -> str:
    return _translator()(kind.label) if kind.label else kind.type


def triggers_summary(triggers: list[dict], limit: int = 5) -> str:
    """``“oi”, “menu”, contém “bom dia”, padrão`` — what starts a flow, in a line."""
    parts = []
    default = False
    for trigger in triggers:
        if trigger.get("type") == "default":
            default = True
        elif trigger.get("match") == "contains":
            parts.append(_("contém “%(value)s”", value=trigger.get("value", "")))
        elif trigger.get("match") == "regex":
            parts.append(_("expressão /%(value)s/", value=trigger.get("value", "")))
        else:
            parts.append(f"“{trigger.get('value', '')}”")
    shown = ", ".join(parts[:limit])
    if len(parts) > limit:
        shown += " " + _("e mais %(count)d", count=len(parts) - limit)
    if default:
        shown = ", ".join(p for p in (shown, _("padrão (qualquer mensagem)")) if p)
    return shown or _("nenhum gatilho")


def trigger_messages() -> dict[str, str]:
    """The words of the header's trigger sentence (editor.js builds the same sentence)."""
    return {"saysPrefix": _("Começa quando o cliente diz:"), "orDefault": _("ou por padrão"),
            "onlyDefault": _("Começa com qualquer mensagem (fluxo padrão)"),
            "none": _("Nenhum gatilho: este fluxo não começa sozinho"),
            "contains": _("contém “%(value)s”"), "regex": _("expressão /%(value)s/")}


def triggers_sentence(triggers: list[dict]) -> str:
    """``Começa quando o cliente diz: oi, olá · ou por padrão`` — the editor's header."""
    words = trigger_messages()
    said = []
    default = False
    for trigger in triggers or []:
        if trigger.get("type") == "default":
            default = True
        elif trigger.get("match") == "contains":
            said.append(words["contains"].replace("%(value)s", str(trigger.get("value", ""))))
        elif trigger.get("match") == "regex":
            said.append(words["regex"].replace("%(value)s", str(trigger.get("value", ""))))
        else:
            said.append(str(trigger.get("value", "")))
    if said:
        return f"{words['saysPrefix']} {', '.join(said)}" + (f" · {words['orDefault']}" if default else "")
    return words["onlyDefault"] if default else words["none"]


def _is_htmx() -> bool:
    return bool(getattr(request, "htmx", False))


def _redirect(url: str):
    """A redirect that htmx follows as a full page load."""
    if _is_htmx():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url)


def _with_status(response, status: int):
    response.status_code = status
    return response


def problems_of(error: FlowDocumentError) -> list[dict]:
    return [{"path": p.get("path", "$"), "message": p.get("message", ""),
             "block_id": p.get("block_id")} for p in error.problems]


# ---------------------------------------------------------------------- version diff

def _edge_key(edge: dict) -> tuple[str, str, str]:
    return (edge.get("from", ""), edge.get("port", ""), edge.get("to", ""))


def flow_diff(old: dict | None, new: dict) -> dict:
    """What changed from flow document ``old`` to ``new`` (pure; ``old=None``: all new).

    ``{"blocks_added", "blocks_removed", "blocks_changed", "blocks_moved": [block ids],
    "edges_added", "edges_removed": [(from, port, to)], "settings_changed": [keys]}``.
    A block is *changed* when its type or data differ and *moved* when only its position
    does. Settings are the flow's own fields (name, triggers, start...).
    """
    old = old or {"blocks": [], "edges": []}
    old_blocks = {b["id"]: b for b in old.get("blocks", [])}
    new_blocks = {b["id"]: b for b in new.get("blocks", [])}
    changed, moved = [], []
    for block_id, block in new_blocks.items():
        before = old_blocks.get(block_id)
        if before is None:
            continue
        if before.get("type") != block.get("type") or before.get("data") != block.get("data"):
            changed.append(block_id)
        elif before.get("position") != block.get("position"):
            moved.append(block_id)
    old_edges = [_edge_key(e) for e in old.get("edges", [])]
    new_edges = [_edge_key(e) for e in new.get("edges", [])]
    settings = [key for key in ("name", "description", "priority", "triggers", "start", "tests")
                if old.get(key) != new.get(key) and (old.get("blocks") or key != "name")]
    return {
        "blocks_added": [b for b in new_blocks if b not in old_blocks],
        "blocks_removed": [b for b in old_blocks if b not in new_blocks],
        "blocks_changed": changed,
        "blocks_moved": moved,
        "edges_added": [e for e in new_edges if e not in old_edges],
        "edges_removed": [e for e in old_edges if e not in new_edges],
        "settings_changed": settings,
    }


def describe_diff(diff: dict, old: dict | None = None, new: dict | None = None) -> list[str]:
    """The diff as short sentences for people (in the interface language).

    With the documents, blocks are named by title (id after it), exits by their labels,
    and each changed block says what changed, old → new ("Texto: “Olá!” → “Oi!”");
    without them, by id.
    """
    lang = current_lang()
    old_blocks = {b.get("id"): b for b in (old or {}).get("blocks", []) if isinstance(b, dict)}
    new_blocks = {b.get("id"): b for b in (new or {}).get("blocks", []) if isinstance(b, dict)}

    def name(block_id: str) -> str:
        block = new_blocks.get(block_id) or old_blocks.get(block_id)
        return block_name(block, block_id, lang) if block is not None else str(block_id)

    def edge(item) -> str:
        source, port, target = item
        block = new_blocks.get(source) or old_blocks.get(source)
        label = port_label(block, port, lang) if block is not None else port
        return f"{name(source)} →{label}→ {name(target)}"

    lines = []
    counts = (
        ("blocks_added", lambda n: ngettext("%(num)d bloco adicionado", "%(num)d blocos adicionados", n)),
        ("blocks_removed", lambda n: ngettext("%(num)d bloco removido", "%(num)d blocos removidos", n)),
        ("blocks_changed", lambda n: ngettext("%(num)d bloco alterado", "%(num)d blocos alterados", n)),
        ("blocks_moved", lambda n: ngettext("%(num)d bloco movido", "%(num)d blocos movidos", n)),
        ("edges_added", lambda n: ngettext("%(num)d ligação adicionada", "%(num)d ligações adicionadas", n)),
        ("edges_removed", lambda n: ngettext("%(num)d ligação removida", "%(num)d ligações removidas", n)),
    )
    for key, sentence in counts:
        items = diff.get(key) or []
        if not items:
            continue
        names = ", ".join(edge(e) if isinstance(e, tuple | list) else name(e) for e in items[:8])
        more = "…" if len(items) > 8 else ""
        lines.append(f"{sentence(len(items))}: {names}{more}")
        if key == "blocks_changed" and old is not None and new is not None:
            for block_id in items[:8]:
                what = block_changes(old_blocks.get(block_id), new_blocks.get(block_id))
                if what:
                    lines.append(f"{name(block_id)}: {'; '.join(what)}")
    if diff.get("settings_changed"):
        names = {"name": _("nome"), "description": _("descrição"), "priority": _("prioridade"),
                 "triggers": _("gatilhos"), "start": _("bloco inicial"), "tests": _("testes do fluxo")}
        lines.append(_("Configurações alteradas: %(fields)s",
                       fields=", ".join(names.get(k, k) for k in diff["settings_changed"])))
    return lines


def _shown(value) -> str:
    """A field's value in a sentence: texts quoted and shortened, lists of options by label."""
    if isinstance(value, str):
        return f"“{shorten(value, 60)}”"
    if isinstance(value, list) and all(isinstance(v, dict) and "label" in v for v in value):
        return "“" + shorten(", ".join(str(v["label"]) for v in value), 60) + "”"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "“" + shorten(", ".join(value), 60) + "”"
    return shorten(json.dumps(value, ensure_ascii=False), 60)


def block_changes(before: dict | None, after: dict | None) -> list[str]:
    """What changed in one block, field by field: ``Texto: “Olá!” → “Oi!”`` (labels as the
    property form shows them); a field added or removed says so."""
    if not before or not after:
        return []
    if before.get("type") != after.get("type"):
        return [_("tipo: %(old)s → %(new)s", old=kind_title(before.get("type", ""), current_lang()),
                  new=kind_title(after.get("type", ""), current_lang()))]
    kind = REGISTRY.get(after.get("type"))
    props = kind.data_schema.get("properties", {}) if kind else {}
    old_data, new_data = before.get("data") or {}, after.get("data") or {}
    changes = []
    for field in [*props, *sorted((set(old_data) | set(new_data)) - set(props))]:
        if old_data.get(field) == new_data.get(field):
            continue
        label = _(props[field]["title"]) if props.get(field, {}).get("title") else field
        if field not in old_data:
            changes.append(_("%(field)s: %(new)s (novo)", field=label, new=_shown(new_data[field])))
        elif field not in new_data:
            changes.append(_("%(field)s removido (era %(old)s)", field=label, old=_shown(old_data[field])))
        elif _labels(old_data[field]) is not None and _labels(new_data[field]) is not None:
            changes.append(f"{label}: {_list_change(_labels(old_data[field]), _labels(new_data[field]))}")
        else:
            changes.append(f"{label}: {_shown(old_data[field])} → {_shown(new_data[field])}")
    return changes


def _labels(value) -> list[str] | None:
    """A list of options (by label) or of texts (buttons) as its labels; else None."""
    if isinstance(value, list) and all(isinstance(v, dict) and "label" in v for v in value):
        return [str(v["label"]) for v in value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _list_change(before: list[str], after: list[str]) -> str:
    """``+ “Pizza”`` / ``− “Atum”`` when items were only added or removed, else old → new."""
    added = [x for x in after if x not in before]
    removed = [x for x in before if x not in after]
    kept_order = [x for x in before if x in after] == [x for x in after if x in before]
    if (added or removed) and kept_order:
        parts = [f"+ “{shorten(x, 40)}”" for x in added] + [f"− “{shorten(x, 40)}”" for x in removed]
        return ", ".join(parts)
    return f"{_shown(before)} → {_shown(after)}"


# ---------------------------------------------------------------------- cards and forms

def _block_template(kind: BlockKind, name: str):
    """``form.html``/``node.html`` of a kind, compiled once per app."""
    cache = current_app.extensions.setdefault("papo_block_templates", {})
    key = (kind.type, name)
    if key not in cache:
        cache[key] = current_app.jinja_env.from_string(kind.template(name))
    return cache[key]


@bp.app_template_filter("compact_json")
def compact_json(value) -> str:
    """JSON on one line for cards (unicode kept; autoescaping happens in the template)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


@bp.app_template_filter("ordered_json")
def ordered_json(value) -> Markup:
    """Like ``tojson`` (safe inside ``<script>``) but keeping key order, so documents the
    editor saves keep the order they were written in."""
    return htmlsafe_json_dumps(value, dumps=json.dumps)


@bp.app_template_global("rule_views")
def _rule_views(rules):
    return condition_form.rule_views(rules)


@bp.app_template_global("new_rule_view")
def _new_rule_view(port: str = ""):
    return condition_form.new_rule_view(port)


@bp.app_template_global("condition_variables")
def _condition_variables(variables):
    return condition_form.variable_choices(list(variables))


@bp.app_template_global("operator_labels")
def _operator_labels():
    return condition_form.operator_labels()


@bp.app_template_global("rule_text")
def _rule_text(when):
    # Labels looked up once per request: a big flow's page renders hundreds of conditions.
    if "_operator_labels" not in g:
        g._operator_labels = condition_form.operator_labels()
        g._join_words = (_("e"), _("ou"))
    return condition_form.describe_rule(when, g._operator_labels, g._join_words)


@bp.app_template_filter("pretty_json")
def pretty_json(value) -> str:
    if value is None or isinstance(value, Undefined):
        return ""
    return json.dumps(value, ensure_ascii=False, indent=2)


@bp.app_template_filter("duration_text")
def duration_text(seconds) -> str:
    """``90061`` → ``1 d 1 h 1 min 1 s``."""
    try:
        remaining = int(seconds)
    except (TypeError, ValueError):
        return str(seconds)
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if remaining >= size:
            parts.append(f"{remaining // size} {unit}")
            remaining %= size
    return " ".join(parts) or "0 s"


def _translator():
    """``gettext`` memoized for this request: a 300-block page renders each card label
    hundreds of times, and Flask-Babel's lookup dominated the page's render time."""
    if "_flows_translator" not in g:
        cache: dict[str, str] = {}

        def translate(text: str, **variables) -> str:
            if text not in cache:
                cache[text] = _(text)
            return cache[text] % variables if variables else cache[text]

        g._flows_translator = translate
    return g._flows_translator


def port_labels(block: dict) -> dict[str, str]:
    """A readable name for each out port of ``block``, as its kind names them (option
    labels for choices); ports it does not name show their id."""
    kind = REGISTRY.get(block.get("type"))
    if kind is None:
        return {}
    try:
        return kind.port_labels(_translator(), block.get("data") or {})
    except (KeyError, TypeError, AttributeError):  # a draft mid-edit
        return {}


def block_ports(block: dict) -> list[str]:
    kind = REGISTRY.get(block.get("type"))
    if kind is None:
        return []
    try:
        return list(kind.ports(block.get("data") or {}))
    except (KeyError, TypeError, AttributeError):  # a draft mid-edit; lint reports the rest
        return []


def render_card(block: dict) -> str:
    """A block's card on the canvas, from ``blocks/<type>/node.html`` (escaped text)."""
    kind = REGISTRY[block["type"]]
    ports = block_ports(block)
    labels = port_labels(block)
    translate = _translator()
    body = _block_template(kind, "node.html").render(
        block=block, data=block.get("data") or {}, kind=kind, kind_label=kind_label(kind),
        family=kind.family, ports=[{"id": p, "label": labels.get(p, p)} for p in ports],
        _=translate, gettext=translate)
    return body.strip()


def card_payload(block: dict) -> dict:
    """What the editor's JavaScript needs to draw a block: card HTML, ports in order, and
    the block's title (how the keyboard's "Ligar" chooser and its announcements name it)."""
    return {"html": render_card(block), "ports": block_ports(block),
            "family": REGISTRY[block["type"]].family, "title": block_title(block, current_lang())}


def saved_variables(doc: dict, exclude: str | None = None) -> list[str]:
    """Variables blocks of ``doc`` save (for the variable picker), plus ``contact.name``."""
    from engine.lint import variables_saved_by  # the one place that knows which field saves what

    names: set[str] = set()
    for block in doc.get("blocks", []):
        if block.get("id") != exclude:
            names |= variables_saved_by(block)
    return ["contact.name", *sorted(names)]


def new_block_data(kind: BlockKind, flow_id: str) -> dict:
    """Data for a block dropped from the palette (its kind's preset): valid, so the draft
    saves at once."""
    if kind.preset is not None:
        return copy.deepcopy(kind.preset(_translator(), flow_id))
    return _defaults_from_schema(kind.data_schema)


def _defaults_from_schema(schema: dict) -> dict:
    """Fallback for a kind without a preset: fill required fields from the schema."""
    data: dict[str, Any] = {}
    for name in schema.get("required", []):
        prop = schema.get("properties", {}).get(name, {})
        if "default" in prop:
            data[name] = prop["default"]
        elif "enum" in prop:
            data[name] = prop["enum"][0]
        elif prop.get("type") in ("integer", "number"):
            data[name] = prop.get("minimum", 1)
        elif prop.get("type") == "array":
            data[name] = []
        elif prop.get("type") == "object":
            data[name] = {}
        else:
            data[name] = prop.get("title") or name
    return data


def extra_presets() -> list[dict]:
    """Palette items beyond one per kind: a kind preconfigured for a common job (its
    kind's ``variants``)."""
    translate = _translator()
    return [{**variant, "type": kind.type} for kind in REGISTRY.values()
            for variant in kind.variants(translate)]


def palette(flow_id: str) -> list[dict]:
    """The palette: families in order, each with its kinds and a template card.

    An item's ``key`` names it in the page (``data-kind``); ``type`` is the block kind it
    adds (the key is the kind's type, or a preset's own key such as ``csat``).
    """
    groups = []
    presets = extra_presets()
    for family in FAMILIES:
        items = []
        for kind in REGISTRY.values():
            if kind.family != family:
                continue
            entries = [{"key": kind.type, "label": kind_label(kind), "data": new_block_data(kind, flow_id)}]
            entries += [p for p in presets if p["type"] == kind.type]
            for entry in entries:
                block = {"id": "novo", "type": kind.type, "data": entry["data"]}
                items.append({"key": entry["key"], "type": kind.type, "label": entry["label"],
                              "data": entry["data"], "card": render_card(block),
                              "ports": block_ports(block), "family": kind.family})
        if items:
            groups.append({"family": family, "label": family_label(family), "kinds": items})
    return groups


# -- reading a block form -----------------------------------------------------------------

def _json_or_text(text: str):
    """An untyped template field: a JSON object/array when it parses as one, else text."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    return text


def _rows(form, name: str, subfields: list[str]) -> list[dict]:
    columns = {sub: form.getlist(f"{name}.{sub}") for sub in subfields}
    count = max((len(values) for values in columns.values()), default=0)
    return [{sub: (columns[sub][i] if i < len(columns[sub]) else "") for sub in subfields}
            for i in range(count)]


def _next_id(prefix: str, taken: set[str]) -> str:
    number = 1
    while f"{prefix}{number}" in taken:
        number += 1
    return f"{prefix}{number}"


def parse_block_form(kind: BlockKind, form) -> tuple[dict, dict[str, str], dict[str, str]]:
    """Turn a submitted block form into ``data`` for ``kind``, driven by its schema.

    Returns ``(data, values, errors)``: ``values`` keeps what the person typed for
    fields that could not be read (to show it again), ``errors`` maps a field path
    (``text``, ``options.1.label``) to a message. Only fields the form lists in
    ``_fields`` are read.
    """
    schema = kind.data_schema
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    listed = [f for f in form.getlist("_fields") if f in props]
    data: dict[str, Any] = {}
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    builders = set(form.getlist("_builder"))
    for name in listed:
        prop = props[name]
        kind_of = prop.get("type")
        if name in builders:  # a condition's rules, from the builder's rows (or raw JSON)
            data[name], values[name], rule_errors = condition_form.read_rules(form)
            errors.update(rule_errors)
        elif prop.get("x-whatsapp-template"):  # the picker: "name|language" and its parameters
            choice = (form.get(name) or "").strip()
            if choice:
                template_name, _bar, language = choice.rpartition("|")
                data[name] = {"name": template_name, "language": language,
                              "params": form.getlist(f"{name}.params")}
        elif kind_of == "array" and prop.get("items", {}).get("type") == "object":
            item_props = prop["items"].get("properties", {})
            rows = _rows(form, name, list(item_props))
            taken = {r.get("id", "") for r in rows}
            items = []
            for index, row in enumerate(rows):
                if all(not str(v).strip() for k, v in row.items() if k != "id"):
                    continue  # an empty row someone added and left
                item: dict[str, Any] = {}
                for sub, sub_prop in item_props.items():
                    raw = row.get(sub, "")
                    if sub == "id" and not raw.strip():
                        raw = _next_id("o", taken)
                        taken.add(raw)
                    if "type" not in sub_prop and "enum" not in sub_prop:
                        try:
                            item[sub] = json.loads(raw) if raw.strip() else None
                        except ValueError as exc:
                            errors[f"{name}.{index}.{sub}"] = _(
                                "Não é JSON válido (linha %(line)d, coluna %(col)d).",
                                line=exc.lineno, col=exc.colno)
                            item[sub] = raw
                        if item[sub] is None and not raw.strip():
                            errors.setdefault(f"{name}.{index}.{sub}", _("Preencha este campo."))
                    else:
                        item[sub] = raw.strip()
                items.append(item)
            data[name] = items
        elif kind_of == "array":
            data[name] = [v.strip() for v in form.getlist(name) if v.strip()]
            if not data[name] and name not in required:
                del data[name]
        elif kind_of == "object":
            pairs = _rows(form, name, ["key", "value"])
            mapping = {p["key"].strip(): p["value"] for p in pairs if p["key"].strip()}
            if mapping or name in required:
                data[name] = mapping
        elif kind_of == "boolean":
            if form.get(name):  # a checkbox: present when checked
                data[name] = True
        elif kind_of in ("integer", "number"):
            raw = (form.get(name) or "").strip()
            if not raw:
                if name in required:
                    errors[name] = _("Preencha este campo.")
                continue
            try:
                number = float(raw.replace(",", "."))
                data[name] = int(number) if kind_of == "integer" and number.is_integer() else number
                if kind_of == "integer" and not number.is_integer():
                    raise ValueError
            except ValueError:
                errors[name] = _("Digite um número inteiro.") if kind_of == "integer" else _("Digite um número.")
                values[name] = raw
                data.pop(name, None)
        elif kind_of == "string" or "enum" in prop:
            raw = form.get(name) or ""
            if not raw.strip() and name not in required:
                continue
            data[name] = raw if prop.get("x-template") else raw.strip()
        else:  # untyped: template text or JSON (JSONLogic, a JSON body)
            raw = form.get(name) or ""
            if not raw.strip() and name not in required:
                continue
            data[name] = _json_or_text(raw) if prop.get("x-template") else raw
    return data, values, errors


def _schema_errors(schema: dict, data: dict) -> tuple[dict, dict[str, str]]:
    """Validate ``data`` against a kind's schema; field path → message.

    Fields the schema forbids in the current configuration (a question's options when
    the answer is not a choice) are dropped rather than reported.
    """
    from schemas import field_message  # the flow document's wording, in pt or en

    validator = Draft202012Validator(schema)
    lang = current_lang()
    for _attempt in range(3):
        errors = list(validator.iter_errors(data))
        # `else: {"not": {"required": [...]}}` reports at the root with validator "not".
        forbidden = {name for e in errors if e.validator == "not" and not list(e.absolute_path)
                     for name in (e.validator_value or {}).get("required", [])}
        if not forbidden:
            break
        data = {k: v for k, v in data.items() if k not in forbidden}
    messages: dict[str, str] = {}
    for error in errors:
        leaves = list(error.context) if error.context else [error]
        for leaf in leaves:
            path = [str(p) for p in leaf.absolute_path]
            if leaf.validator == "required":
                missing = leaf.message.split("'")[1] if "'" in leaf.message else ""
                key = ".".join([*path, missing]) if missing else ".".join(path)
                messages.setdefault(key or "_", _("Preencha este campo."))
                continue
            key = ".".join(path) or "_"
            messages.setdefault(key, field_message(leaf, lang))
    return data, messages


def validate_block_form(kind: BlockKind, form) -> tuple[dict, dict, dict]:
    data, values, errors = parse_block_form(kind, form)
    data, schema_errors = _schema_errors(kind.data_schema, data)
    for key, message in schema_errors.items():
        errors.setdefault(key, message)
    return data, values, errors


def block_summary(block: dict) -> str:
    """``b3 — Pergunta: Como posso ajudar?`` for lists of blocks (connection targets)."""
    kind = REGISTRY.get(block.get("type"))
    data = block.get("data") or {}
    text = next((str(data[k]) for k in ("text", "note", "tag", "name", "url", "flow_id", "reason")
                 if isinstance(data.get(k), str) and data[k]), "")
    text = " ".join(text.split())
    label = kind_label(kind) if kind else block.get("type", "")
    return f"{block['id']} — {label}" + (f": {text[:50]}{'…' if len(text) > 50 else ''}" if text else "")


def block_connections(block: dict, doc: dict) -> list[dict]:
    """Each out port of ``block`` with its label and the block it leads to (or None)."""
    labels = port_labels(block)
    targets = {e.get("port"): e.get("to") for e in doc.get("edges", []) if e.get("from") == block["id"]}
    return [{"port": port, "label": labels.get(port, port), "to": targets.get(port)}
            for port in block_ports(block)]


def render_block_form(flow_id: str, block: dict, doc: dict, errors: dict | None = None,
                      values: dict | None = None, result: dict | None = None,
                      saved: bool = False, notice: str | None = None) -> str:
    kind = REGISTRY[block["type"]]
    data = block.get("data") or {}
    variables = saved_variables(doc, exclude=block["id"])
    fields = Markup(_block_template(kind, "form.html").render(
        block=block, data=data, values=values or {}, errors=errors or {}, kind=kind,
        schema=kind.data_schema, variables=variables, flow_id=flow_id, notice=notice,
        flow_ids=sorted(repository().flow_index()),
        whatsapp_templates=whatsapp_templates.list_templates(get_engine())))
    # After a valid POST the page saves, then asks for the form again: only then do the
    # connections below match the saved document.
    connections = None if result else block_connections(block, doc)
    targets = [(b["id"], block_summary(b)) for b in doc.get("blocks", [])
               if b.get("id") != block["id"]]
    return render_template("flows/_block_form.html", flow_id=flow_id, block=block, kind=kind,
                           kind_label=kind_label(kind), fields=fields, errors=errors or {},
                           is_start=doc.get("start") == block["id"], result=result,
                           connections=connections, targets=targets, saved=saved)


# ---------------------------------------------------------------------- list page

def _list_context(**extra) -> dict:
    rows = []
    for flow in repository().list():
        rows.append({**flow, "updated": _moment(flow.get("updated_at")),
                     "triggers_text": triggers_summary(flow.get("triggers") or [])})
    return {"flows": rows, "create_values": {}, "create_errors": {}, **extra}


@bp.get("/flows")
@admin_required
def index():
    return render_page("flows/index.html", **_list_context())


def _starter_document(flow_id: str, name: str) -> dict:
    return {
        "schema_version": CURRENT_VERSION, "id": flow_id, "name": name, "description": "",
        "priority": 0, "start": "b1",
        # Customers can start it at once by writing its name; the header shows it.
        "triggers": [{"type": "keyword", "match": "exact", "value": name.lower()[:200]}],
        "blocks": [{"id": "b1", "type": "message", "position": dict(START_POSITION),
                    "data": {"text": _("Olá, {{ contact.name }}! 👋")}}],
        "edges": [],
    }


@bp.post("/flows")
@admin_required
def create():
    flow_id = (request.form.get("id") or "").strip().lower()
    name = (request.form.get("name") or "").strip()
    errors = {}
    if not FLOW_ID.match(flow_id):
        errors["id"] = _("Use de 1 a 63 letras minúsculas, números e hífens, começando por letra "
                         "ou número (ex.: boas-vindas).")
    if not name:
        errors["name"] = _("Dê um nome ao fluxo.")
    elif len(name) > 200:
        errors["name"] = _("O nome pode ter até 200 caracteres.")
    if not errors:
        try:
            repository().create(_starter_document(flow_id, name), actor=actor(), lang=current_lang())
        except Conflict:
            errors["id"] = _("Já existe um fluxo com o id “%(id)s”.", id=flow_id)
        except FlowDocumentError as exc:
            errors["id"] = problems_of(exc)[0]["message"]
    if errors:
        values = {"id": flow_id, "name": name}
        if _is_htmx():
            return _with_status(make_response(render_template(
                "flows/_create_form.html", create_values=values, create_errors=errors)), 422)
        return _with_status(render_page("flows/index.html", **_list_context(
            create_values=values, create_errors=errors)), 422)
    return _redirect(url_for("flows.edit", flow_id=flow_id))


def _uploaded_bytes() -> bytes | None:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return None
    return upload.read()


@bp.post("/flows/import")
@admin_required
def import_flow():
    raw = _uploaded_bytes()
    context: dict[str, Any] = {}
    status = 200
    if raw is None:
        context["import_error"] = _("Escolha um arquivo .json para importar.")
        status = 422
    else:
        repo = repository()
        try:
            result = repo.create(raw, actor=actor(), lang=current_lang())
            context["imported"] = {"id": result["id"], "findings": result["findings"],
                                   "name": repo.draft(result["id"])["name"]}
        except FlowDocumentError as exc:
            context["import_error"] = _("O arquivo não foi importado: corrija os problemas abaixo.")
            context["import_problems"] = problems_of(exc)
            status = exc.status
        except Conflict:
            doc_id = _document_id(raw)
            context["import_error"] = _(
                "Já existe um fluxo com o id “%(id)s”. Para substituir o rascunho dele, abra-o "
                "no editor e use “Importar”; ou mude o id no arquivo.", id=doc_id)
            context["import_existing"] = doc_id
            status = 409
    if _is_htmx():
        response = make_response(render_template(
            "flows/_import_result.html", **_list_context(**context), oob_table=True))
        # Show problems in place (the page swaps 2xx and 422 only).
        return _with_status(response, 200 if status == 200 else 422)
    return _with_status(render_page("flows/index.html", **_list_context(**context)), status)


def _document_id(raw: bytes) -> str:
    try:
        return str(json.loads(raw.decode("utf-8-sig")).get("id", ""))
    except (ValueError, AttributeError):
        return ""


@bp.get("/flows/<flow_id>/export")
@admin_required
def export(flow_id: str):
    doc, revision = repository().get(flow_id, current_lang())
    response = make_response(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    response.mimetype = "application/json"
    response.headers["Content-Disposition"] = f"attachment; filename={flow_id}.json"
    response.headers["ETag"] = f'"{revision}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/flows/<flow_id>/rename", methods=["GET", "POST"])
@admin_required
def rename(flow_id: str):
    draft = repository().draft(flow_id, current_lang())
    name = draft["name"]
    error = None
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        if not name or len(name) > 200:
            error = _("O nome precisa ter de 1 a 200 caracteres.")
        else:
            repository().rename(flow_id, name, actor=actor(), lang=current_lang())
            return _redirect(url_for("flows.index"))
    response = render_page("flows/rename.html", flow=draft, name=name, error=error)
    return _with_status(response, 422) if error else response


@bp.route("/flows/<flow_id>/duplicate", methods=["GET", "POST"])
@admin_required
def duplicate(flow_id: str):
    draft = repository().draft(flow_id, current_lang())
    new_id = f"{flow_id}-copia"[:63]
    name = _("%(name)s (cópia)", name=draft["name"][:180])
    errors: dict[str, str] = {}
    if request.method == "POST":
        new_id = (request.form.get("new_id") or "").strip().lower()
        name = (request.form.get("name") or "").strip()
        if not FLOW_ID.match(new_id):
            errors["new_id"] = _("Use de 1 a 63 letras minúsculas, números e hífens, começando "
                                 "por letra ou número (ex.: boas-vindas).")
        if not name or len(name) > 200:
            errors["name"] = _("O nome precisa ter de 1 a 200 caracteres.")
        if not errors:
            try:
                repository().duplicate(flow_id, new_id, actor=actor(), name=name, lang=current_lang())
                return _redirect(url_for("flows.index"))
            except Conflict:
                errors["new_id"] = _("Já existe um fluxo com o id “%(id)s”.", id=new_id)
    response = render_page("flows/duplicate.html", flow=draft, new_id=new_id, name=name,
                           errors=errors)
    return _with_status(response, 422) if errors else response


@bp.route("/flows/<flow_id>/delete", methods=["GET", "POST"])
@admin_required
def delete(flow_id: str):
    draft = repository().draft(flow_id, current_lang())
    if request.method == "POST":
        repository().delete(flow_id, actor=actor(), lang=current_lang())
        if not _is_htmx():
            from flask import flash

            flash(_("Fluxo “%(name)s” excluído.", name=draft["name"]), "success")
        return _redirect(url_for("flows.index"))
    return render_page("flows/delete.html", flow=draft)


# ---------------------------------------------------------------------- editor page

def editor_messages() -> dict[str, str]:
    """Every text editor.js shows, in the interface language."""
    return {
        "saving": _("Salvando…"),
        "saved": _("Salvo"),
        "unsaved": _("Alterações não salvas"),
        "offline": _("Não foi possível salvar: sem conexão com o servidor. Suas mudanças "
                     "continuam nesta página; tentaremos de novo."),
        "saveFailed": _("Não foi possível salvar o rascunho."),
        "conflict": _("Este fluxo foi alterado em outra aba ou por outra pessoa depois que "
                      "você abriu esta página. Para não sobrescrever o trabalho de ninguém, "
                      "nada mais será salvo daqui. Recarregue para ver a versão mais recente "
                      "(as mudanças feitas aqui depois disso serão descartadas)."),
        "sessionExpired": _("Sua sessão expirou. Entre de novo em outra aba e tente outra vez."),
        "startDelete": _("Este é o bloco inicial e não pode ser excluído. Defina outro bloco "
                         "como início primeiro."),
        "replaced": _("Cada saída liga a um só bloco: a ligação anterior desta saída foi "
                      "substituída."),
        "edgesDropped": _("Ligações de saídas que não existem mais foram removidas."),
        "startSet": _("Bloco inicial definido."),
        "nothingToUndo": _("Nada para desfazer."),
        "nothingToRedo": _("Nada para refazer."),
        "brokenRemoved": _("Ligações quebradas removidas."),
        "start": _("Início"),
        "blockDeleted": _("Bloco excluído. “Desfazer” (Ctrl+Z) o traz de volta."),
        "addNext": _("Adicionar o próximo bloco por esta saída"),
        # Ligar (keyboard connections, "C" on a focused block); {from}, {port}, {to} are
        # filled in by editor.js with the blocks' titles and the port's label.
        "connectTitle": _("Ligar “{from}”"),
        "connectNothing": _("— nada (desligar esta saída) —"),
        "connected": _("“{from}”, saída “{port}”, agora leva a “{to}”."),
        "disconnected": _("A saída “{port}” de “{from}” não leva mais a nenhum bloco."),
        "noOutputs": _("Este bloco não tem saídas: a conversa termina nele."),
        "editTriggers": _("Editar gatilhos"),
        "triggers": trigger_messages(),
    }


@bp.get("/flows/<flow_id>/edit")
@admin_required
def edit(flow_id: str):
    draft = repository().draft(flow_id, current_lang())
    doc = draft["document"]
    cards = {b["id"]: card_payload(b) for b in doc.get("blocks", []) if b.get("type") in REGISTRY}
    groups = palette(flow_id)
    boot = {
        "flowId": flow_id,
        "doc": doc,
        "revision": draft["revision"],
        "blockNumberMark": block_number_mark(flow_id),
        "cards": cards,
        "findings": draft.get("findings") or [],
        "palette": {k["key"]: {"type": k["type"], "data": k["data"], "html": k["card"],
                               "ports": k["ports"], "family": k["family"]}
                    for g in groups for k in g["kinds"]},
        "messages": editor_messages(),
        "urls": {
            "draft": url_for("flows.save_draft", flow_id=flow_id),
            "form": url_for("flows.block_form", flow_id=flow_id, block_id="__BLOCK__"),
            "export": url_for("flows.export", flow_id=flow_id),
            "settings": url_for("flows.settings", flow_id=flow_id),
            "findings": url_for("flows.findings", flow_id=flow_id),
            "versions": url_for("flows.versions", flow_id=flow_id),
            "publish": url_for("flows.publish", flow_id=flow_id),
        },
    }
    return render_template("flows/edit.html", flow=draft, flow_id=flow_id, doc=doc, boot=boot,
                           palette=groups, differs=draft_differs(flow_id, doc),
                           triggers_text=triggers_sentence(doc.get("triggers") or []))


def block_number_mark(flow_id: str) -> int:
    """The highest ``b<n>`` block number this flow ever used (new blocks go above it).

    Kept per process and flow; each call reads only the revisions saved since."""
    marks = current_app.extensions.setdefault("papo_block_marks", {})
    highest, revision = marks.get(flow_id, (0, 0))
    found, last = repository().block_number_mark(flow_id, after_revision=revision)
    if last < revision:  # the flow was deleted and created again: start over
        found, last = repository().block_number_mark(flow_id)
        highest = 0
    marks[flow_id] = (max(highest, found), last)
    return marks[flow_id][0]


def _json_error(status: int, code: str, message: str, **extra):
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    return response


@bp.put("/flows/<flow_id>/draft")
@admin_required
def save_draft(flow_id: str):
    """Save the editor's document as a new draft revision (JSON in, JSON out)."""
    lang = current_lang()
    started = time.perf_counter()
    try:
        seen = parse_revision(request.headers.get("If-Match"), lang)
        result = repository().update(flow_id, request.get_data(), seen, actor=actor(), lang=lang)
    except Conflict as exc:
        return _json_error(409, exc.code, editor_messages()["conflict"],
                           revision=exc.extra.get("revision"), detail=exc.message)
    except FlowDocumentError as exc:
        problems = problems_of(exc)
        return _json_error(exc.status, exc.code, problems[0]["message"] if len(problems) == 1
                           else _("O documento do fluxo tem %(count)d problemas.", count=len(problems)),
                           details=problems)
    except PapoError as exc:
        return _json_error(exc.status, exc.code, exc.message, details=exc.details or [])
    response = jsonify({"revision": result["revision"], "findings": result["findings"],
                        "unpublished": _saved_differs(flow_id)})
    response.headers["ETag"] = f'"{result["revision"]}"'
    # validate + lint + store, for the browser's devtools and bench/editor.py
    response.headers["Server-Timing"] = f"save;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _draft_block(flow_id: str, block_id: str) -> tuple[dict, dict]:
    doc = repository().get(flow_id, current_lang())[0]
    for block in doc.get("blocks", []):
        if block.get("id") == block_id:
            if block.get("type") not in REGISTRY:
                abort(404)
            return doc, block
    raise NotFound(_("O bloco “%(id)s” não existe neste fluxo.", id=block_id))


@bp.route("/flows/<flow_id>/blocks/<block_id>/form", methods=["GET", "POST"])
@admin_required
def block_form(flow_id: str, block_id: str):
    """GET: the property form of a block of the draft. POST: validate it.

    A valid POST answers the form again with a JSON script the page applies (the new
    data, card and ports); an invalid one answers 422 with the errors beside the fields.
    """
    if request.method == "GET":
        doc, block = _draft_block(flow_id, block_id)
        return render_block_form(flow_id, block, doc, saved=request.args.get("saved") == "1")
    kind = REGISTRY.get(request.form.get("_type", ""))
    if kind is None:
        abort(400)
    doc = repository().get(flow_id, current_lang())[0]
    if condition_form.is_preview(request.form):
        # "Adicionar condição", "Adicionar regra", builder ⇄ advanced: the form again, as
        # the person left it plus the change; nothing is validated or saved yet.
        data, values, _errors = parse_block_form(kind, request.form)
        views, notice = condition_form.apply_preview(request.form, values.get("rules") or [])
        block = {"id": block_id, "type": kind.type, "data": data}
        return render_block_form(flow_id, block, doc, values={**values, "rules": views},
                                 notice=notice)
    data, values, errors = validate_block_form(kind, request.form)
    block = {"id": block_id, "type": kind.type, "data": data}
    if errors:
        return _with_status(make_response(render_block_form(
            flow_id, block, doc, errors=errors, values=values)), 422)
    result = {"action": "block", "block_id": block_id, "type": kind.type, "data": data,
              **card_payload(block)}
    return render_block_form(flow_id, block, doc, result=result)


def _parse_settings(form) -> tuple[dict, dict[str, str]]:
    """The flow settings form → ``{"name","description","priority","triggers"}``."""
    errors: dict[str, str] = {}
    settings: dict[str, Any] = {"name": (form.get("name") or "").strip(),
                                "description": (form.get("description") or "").strip()}
    raw_priority = (form.get("priority") or "0").strip() or "0"
    try:
        settings["priority"] = int(raw_priority)
    except ValueError:
        settings["priority"] = raw_priority
        errors["priority"] = _("Digite um número inteiro.")
    triggers = []
    for index, row in enumerate(_rows(form, "triggers", ["type", "match", "value", "interrupts"])):
        if row["type"] == "default":
            triggers.append({"type": "default"})
        elif row["value"].strip():
            trigger = {"type": "keyword", "match": row["match"] or "exact", "value": row["value"].strip()}
            if row["interrupts"]:  # DESIGN §10.3: also matches at a question
                trigger["interrupts"] = True
            triggers.append(trigger)
        if row["type"] == "keyword" and row["match"] == "regex" and row["value"].strip():
            try:
                re.compile(row["value"].strip())
            except re.error as exc:
                errors[f"triggers.{index}.value"] = _("Expressão regular inválida: %(error)s",
                                                      error=str(exc))
    settings["triggers"] = triggers
    if not settings["name"]:
        errors["name"] = _("Dê um nome ao fluxo.")
    probe = {"schema_version": CURRENT_VERSION, "id": "x", "start": "b", "blocks": [],
             "edges": [], **settings}
    if "priority" in errors:
        probe["priority"] = 0
    try:
        validate_document(probe, current_lang())
    except FlowDocumentError as exc:
        for problem in exc.problems:
            key = problem["path"].removeprefix("$.").replace("[", ".").replace("]", "")
            errors.setdefault(key or "name", problem["message"])
    return settings, errors


@bp.route("/flows/<flow_id>/settings", methods=["GET", "POST"])
@admin_required
def settings(flow_id: str):
    """The flow's own fields; a valid POST hands them to the page, which saves."""
    doc = repository().get(flow_id, current_lang())[0]
    if request.method == "GET":
        values = {k: doc.get(k) for k in ("name", "description", "priority", "triggers")}
        return render_template("flows/_settings_form.html", flow_id=flow_id, values=values,
                               errors={}, result=None)
    values, errors = _parse_settings(request.form)
    if errors:
        return _with_status(make_response(render_template(
            "flows/_settings_form.html", flow_id=flow_id, values=values, errors=errors,
            result=None)), 422)
    result = {"action": "settings", "settings": values}
    return render_template("flows/_settings_form.html", flow_id=flow_id, values=values,
                           errors={}, result=result)


@bp.post("/flows/<flow_id>/import-draft")
@admin_required
def import_draft(flow_id: str):
    """Read an uploaded file meant to replace this flow's draft (the page saves it)."""
    lang = current_lang()
    repository().draft(flow_id, lang)  # 404 for an unknown flow
    raw = _uploaded_bytes()
    if raw is None:
        return _with_status(make_response(render_template(
            "flows/_import_draft.html", error=_("Escolha um arquivo .json para importar."),
            problems=[])), 422)
    try:
        doc = load_document(raw, lang)
    except FlowDocumentError as exc:
        return _with_status(make_response(render_template(
            "flows/_import_draft.html", problems=problems_of(exc),
            error=_("O arquivo não foi importado: corrija os problemas abaixo. O rascunho "
                    "não mudou."))), 422)
    renamed_from = None
    if doc["id"] != flow_id:
        renamed_from, doc["id"] = doc["id"], flow_id
    findings = repository().lint(doc, lang)
    cards = {b["id"]: card_payload(b) for b in doc["blocks"]}
    result = {"action": "replace", "doc": doc, "cards": cards}
    return render_template("flows/_import_draft.html", problems=[], findings=findings,
                           renamed_from=renamed_from, result=result, flow_id=flow_id)


@bp.get("/flows/<flow_id>/findings")
@admin_required
def findings(flow_id: str):
    """"Validar": lint the latest draft now (jump targets may have changed since saving)."""
    lang = current_lang()
    repo = repository()
    found = repo.lint(repo.get(flow_id, lang)[0], lang)
    return render_template("flows/_findings.html", findings=found, flow_id=flow_id,
                           checked=True)


@bp.post("/flows/<flow_id>/publish")
@admin_required
def publish(flow_id: str):
    """Publish the draft, or ``version`` (which also becomes the draft again).

    With warnings and without ``confirm``, nothing is published: the warnings are shown
    with "Publicar mesmo assim" (a second POST with ``confirm=1``).
    """
    lang = current_lang()
    version = query_int("version", minimum=1, maximum=MAX_VERSION, source=request.form)
    repo = repository()
    if not request.form.get("confirm"):
        doc = repo.published(flow_id, version)[0] if version else repo.get(flow_id, lang)[0]
        found = repo.lint(doc, lang)  # jumps into this flow count as its start (no_trigger)
        if found and not any(f.get("level") == "error" for f in found):
            return render_template("flows/_findings.html", findings=found, flow_id=flow_id,
                                   checked=True, confirm_publish=True, version=version)
    try:
        result = repo.publish(flow_id, actor=actor(), version=version, lang=lang,
                              force=request.form.get("force") == "1", settings=get_settings())
    except Invalid as exc:
        if exc.code == "flow_tests_failed":
            from editor.flowtests_ui import publish_refused

            return publish_refused(flow_id, exc)
        if exc.code != "flow_has_errors":
            raise
        return _with_status(make_response(render_template(
            "flows/_findings.html", findings=exc.extra.get("findings", []), flow_id=flow_id,
            checked=True, publish_refused=exc.message)), 422)
    # The engine put the version in the draft too (a new revision): the page adopts that
    # document and revision instead of saving one of its own.
    restored = _restored_result(flow_id, version) if version else None
    return render_template("flows/_versions.html", **_versions_context(
        flow_id, published_now=result["version"], rolled_back_from=version), oob_badge=True,
        restored=restored)


def _restored_result(flow_id: str, version: int) -> dict:
    """``{"action": "restored", "doc", "revision", "cards", "findings", "version"}``: the
    draft the server just replaced (rollback), for the page to show and build on."""
    draft = repository().draft(flow_id, current_lang())
    doc = draft["document"]
    return {"action": "restored", "doc": doc, "revision": draft["revision"], "version": version,
            "findings": draft.get("findings") or [], "unpublished": draft_differs(flow_id, doc),
            "cards": {b["id"]: card_payload(b) for b in doc.get("blocks", []) if b.get("type") in REGISTRY}}


@bp.post("/flows/<flow_id>/versions/<int:version>/restore")
@admin_required
def restore_version(flow_id: str, version: int):
    """"Restaurar no rascunho": the engine copies published ``version`` into the draft (a
    new revision, nothing published); the versions panel again, with the draft for the page
    to adopt ("restored", as after "Publicar esta versão"): undo brings the previous one back."""
    repository().restore(flow_id, version, actor=actor(), lang=current_lang())
    return render_template("flows/_versions.html", **_versions_context(flow_id),
                           restored=_restored_result(flow_id, version))


def _saved_differs(flow_id: str) -> bool:
    """After a save: does the draft just saved (this request's body) differ from what is
    published? The body is what was stored: the editor sends current documents."""
    published = repository().published(flow_id)
    return published is not None and published[0] != json.loads(request.get_data())


def draft_differs(flow_id: str, doc: dict) -> bool:
    """True when ``doc`` (the draft) is not what is published (False if nothing is)."""
    published = repository().published(flow_id)
    return published is not None and published[0] != doc


def _versions_context(flow_id: str, **extra) -> dict:
    repo = repository()
    lang = current_lang()
    draft = repo.draft(flow_id, lang)
    versions = repo.versions(flow_id, lang)[-MAX_VERSIONS_SHOWN:]
    documents = {v["version"]: (repo.published(flow_id, v["version"]) or ({}, 0))[0]
                 for v in versions}
    rows = []
    previous = None
    first = versions[0]["version"] if versions else None
    if first and first > 1:
        previous = (repo.published(flow_id, first - 1) or (None, 0))[0]
    for version in versions:
        doc = documents[version["version"]]
        rows.append({**version, "published": _moment(version["published_at"]),
                     "changes": describe_diff(flow_diff(previous, doc), previous, doc),
                     "first": previous is None})
        previous = doc
    rows.reverse()
    published_doc = documents.get(draft["published_version"]) if draft["published_version"] else None
    unpublished = (describe_diff(flow_diff(published_doc, draft["document"]), published_doc,
                                 draft["document"]) if published_doc else None)
    return {"flow_id": flow_id, "flow": draft, "versions": rows, "unpublished": unpublished,
            "differs": published_doc is not None and published_doc != draft["document"],
            **extra}


@bp.get("/flows/<flow_id>/versions")
@admin_required
def versions(flow_id: str):
    return render_template("flows/_versions.html", **_versions_context(flow_id))
