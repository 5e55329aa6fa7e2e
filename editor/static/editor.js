/* papo — the flows list helpers and the visual flow editor (Drawflow glue).
 *
 * The editor page holds the flow document being edited (state.doc) and is its only
 * writer: every change (add, move, connect, disconnect, delete, a block form, the
 * settings, an imported file, undo/redo) edits state.doc, and the save queue PUTs the
 * whole document to /flows/<id>/draft with If-Match = the revision the page holds.
 * The canvas (Drawflow) is a drawing of state.doc; cards are rendered by the server
 * (blocks/<kind>/node.html) and arrive as escaped HTML.
 *
 * For the simulator pane (and tests), window.papoEditor = {flowId, revision(),
 * save(), highlight(id), clearHighlight(), focusBlock(id), ...}; document receives
 * "papo:saved" ({detail: {revision}}) after every successful save.
 */
(function () {
  "use strict";

  // ------------------------------------------------------------------ form helpers
  // (the block/settings forms in the editor panel and the list page's dialogs)

  function renumberRows(list) {
    if (!list) return;
    Array.prototype.forEach.call(list.children, function (row, index) {
      row.querySelectorAll("[data-label-pattern]").forEach(function (el) {
        var text = el.getAttribute("data-label-pattern").replace("{n}", String(index + 1));
        if (el.tagName === "SPAN" || el.tagName === "LABEL") el.textContent = text;
        else el.setAttribute("aria-label", text);
      });
    });
  }

  function addRow(button) {
    var name = button.getAttribute("data-add-row");
    var box = button.closest("[data-rows-of]") || button.parentElement;
    var template = box.querySelector('template[data-row-template="' + name + '"]');
    var list = box.querySelector('[data-rows="' + name + '"]');
    if (!template || !list) return;
    var row = template.content.firstElementChild.cloneNode(true);
    list.appendChild(row);
    renumberRows(list);
    var first = row.querySelector('input[type="text"], textarea, select');
    if (first) first.focus();
  }

  function insertAtCursor(field, text) {
    var start = field.selectionStart == null ? field.value.length : field.selectionStart;
    var end = field.selectionEnd == null ? field.value.length : field.selectionEnd;
    field.setRangeText(text, start, end, "end");
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.focus();
  }

  function applyShowIf(root) {
    (root || document).querySelectorAll("[data-show-if]").forEach(function (box) {
      var parts = box.getAttribute("data-show-if").split("=");
      var form = box.closest("form");
      var control = form && form.querySelector('[name="' + parts[0] + '"]');
      if (control) box.hidden = control.value !== parts[1];
    });
  }

  function slugify(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63);
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var add = target.closest("[data-add-row]");
    if (add) { event.preventDefault(); addRow(add); return; }
    var remove = target.closest("[data-remove-row]");
    if (remove) {
      event.preventDefault();
      var row = remove.closest(".row");
      var list = row && row.parentElement;
      if (row) row.remove();
      renumberRows(list);
      return;
    }
    var chip = target.closest("[data-insert-var]");
    if (chip) {
      event.preventDefault();
      var field = document.getElementById(chip.getAttribute("data-insert-into"));
      var name = chip.getAttribute("data-insert-var");
      if (field) insertAtCursor(field, chip.hasAttribute("data-insert-logic")
        ? JSON.stringify({ "var": name }) : "{{ " + name + " }}");
      return;
    }
    var close = target.closest("[data-close-dialog]");
    var dialog = document.getElementById("flow-dialog");
    if (close && dialog && dialog.contains(close)) {
      event.preventDefault();
      dialog.innerHTML = "";
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.form) applyShowIf(event.target.form);
  });

  // The list page: suggest an id from the name until the person types an id.
  document.addEventListener("input", function (event) {
    var target = event.target;
    if (target.id === "new-flow-id") target.dataset.touched = "1";
    if (target.id === "new-flow-name") {
      var idField = document.getElementById("new-flow-id");
      if (idField && !idField.dataset.touched) idField.value = slugify(target.value);
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    applyShowIf(event.detail.target);
  });

  // ------------------------------------------------------------------ the editor
  var root = document.getElementById("flow-editor");
  if (!root || typeof window.Drawflow !== "function") {
    applyShowIf(document);
    return;
  }

  var boot = JSON.parse(document.getElementById("flow-data").textContent);
  var M = boot.messages;
  var urls = boot.urls;
  var canvas = document.getElementById("canvas");
  var panel = document.getElementById("panel");
  var panelBody = document.getElementById("panel-body");
  var statusEl = document.getElementById("save-status");

  var state = {
    doc: boot.doc,
    revision: boot.revision,
    cards: boot.cards,        // block id → {html, ports, family}, as the server rendered it
    findings: boot.findings || [],
    undo: [],
    redo: [],
    dirty: false,
    conflict: false,
    offline: false,
    syncing: false,           // true while the code (not the person) changes the canvas
    current: null,            // the block the simulator marks as executing
    retryDelay: 2000
  };
  var UNDO_LIMIT = 100;

  var editor = new window.Drawflow(canvas);
  editor.reroute = false;
  editor.zoom_min = 0.2;
  editor.zoom_max = 2;
  editor.start();

  function notify(text, error) {
    if (window.papo && window.papo.toast) window.papo.toast(text, { error: !!error });
  }

  function findBlock(id) {
    for (var i = 0; i < state.doc.blocks.length; i++) {
      if (state.doc.blocks[i].id === id) return state.doc.blocks[i];
    }
    return null;
  }

  function syncing(fn) {
    var before = state.syncing;
    state.syncing = true;
    try { return fn(); } finally { state.syncing = before; }
  }

  // The one place where papo ports meet Drawflow outputs: output_<n> is the n-th port
  // of BlockKind.ports(data), in the order the server listed them for the card.
  // Every block has exactly one Drawflow input, input_1.
  function portMapping(blockId) {
    var card = state.cards[blockId];
    var ports = (card && card.ports) || [];
    return {
      ports: ports,
      toOutput: function (port) {
        var index = ports.indexOf(port);
        return index < 0 ? null : "output_" + (index + 1);
      },
      toPort: function (output) {
        var number = parseInt(String(output).replace("output_", ""), 10);
        return ports[number - 1] || null;
      }
    };
  }

  function positionOf(block, index) {
    if (block.position) return { x: block.position.x, y: block.position.y };
    // Documents written by hand may leave positions out: lay those blocks on a grid.
    return { x: 40 + (index % 5) * 300, y: 40 + Math.floor(index / 5) * 220 };
  }

  function nodeClass(block) {
    var card = state.cards[block.id] || {};
    return "block family-" + (card.family || "action") + " type-" + block.type;
  }

  function toDrawflow() {
    var data = {};
    state.doc.blocks.forEach(function (block, index) {
      var card = state.cards[block.id];
      if (!card) return;
      var pos = positionOf(block, index);
      var outputs = {};
      card.ports.forEach(function (port, i) { outputs["output_" + (i + 1)] = { connections: [] }; });
      data[block.id] = {
        id: block.id, name: block.type, data: {}, "class": nodeClass(block), html: card.html,
        typenode: false, inputs: { input_1: { connections: [] } }, outputs: outputs,
        pos_x: pos.x, pos_y: pos.y
      };
    });
    state.doc.edges.forEach(function (edge) {
      var from = data[edge.from], to = data[edge.to];
      if (!from || !to) return;  // a dangling edge: the linter reports it; nothing to draw
      var output = portMapping(edge.from).toOutput(edge.port);
      if (!output) return;
      from.outputs[output].connections.push({ node: edge.to, output: "input_1" });
      to.inputs.input_1.connections.push({ node: edge.from, input: output });
    });
    return { drawflow: { Home: { data: data } } };
  }

  function nodeEl(id) { return document.getElementById("node-" + id); }

  function mark(id, className, on) {
    var node = nodeEl(id);
    if (!node) return;
    node.classList.toggle(className, on);
    var card = node.querySelector(".block-card");
    if (card) card.classList.toggle(className, on);
  }

  // Marks on the cards: the start block, blocks with lint errors or warnings. Only cards
  // whose marks change are touched (a 300-block flow is decorated after every save).
  var decorated = {};
  function decorate() {
    var errors = {}, warnings = {};
    state.findings.forEach(function (finding) {
      if (!finding.block_id) return;
      (finding.level === "error" ? errors : warnings)[finding.block_id] = true;
    });
    state.doc.blocks.forEach(function (block) {
      var id = block.id;
      var start = id === state.doc.start, error = !!errors[id], warning = !error && !!warnings[id];
      var key = (start ? "s" : "") + (error ? "e" : "") + (warning ? "w" : "");
      if (decorated[id] === key) return;
      decorated[id] = key;
      mark(id, "is-start", start);
      mark(id, "has-error", error);
      mark(id, "has-warning", warning);
    });
    if (state.current) mark(state.current, "is-current", true);
    updatePlusButtons();
  }

  // A "+" beside every output port that leads nowhere: it adds the next block already
  // connected (see addNext). Only blocks whose free ports changed are touched.
  var plusKeys = {};
  function updatePlusButtons() {
    var used = {};
    state.doc.edges.forEach(function (e) { (used[e.from] = used[e.from] || {})[e.port] = true; });
    state.doc.blocks.forEach(function (block) {
      var card = state.cards[block.id];
      var ports = (card && card.ports) || [];
      // "Sem resposta" only happens with a time limit set: no "+" inviting a dead branch.
      var free = ports.map(function (p) {
        if (p === "timeout" && !(block.data && block.data.timeout_s)) return false;
        return !(used[block.id] && used[block.id][p]);
      });
      var key = ports.join("\u0000") + "|" + free.join(",");
      if (plusKeys[block.id] === key) return;
      var node = nodeEl(block.id);
      if (!node) return;
      plusKeys[block.id] = key;
      var labels = node.querySelectorAll(".card-ports li");
      ports.forEach(function (port, i) {
        var output = node.querySelector(".outputs .output_" + (i + 1));
        if (!output) return;
        var button = output.querySelector(".port-add");
        if (free[i] && !button) {
          button = document.createElement("button");
          button.type = "button";
          button.className = "port-add";
          button.textContent = "+";
          output.appendChild(button);
        } else if (!free[i] && button) {
          button.remove();
          return;
        }
        if (button) {
          var label = labels[i] ? labels[i].textContent : port;
          button.setAttribute("data-from", block.id);
          button.setAttribute("data-port", port);
          button.setAttribute("aria-label", M.addNext + ": " + label);
          button.title = M.addNext + ": " + label;
        }
      });
    });
  }

  // Drawflow's connection classes, by position: connection, node_in_node-<to>,
  // node_out_node-<from>, output_<n>, input_1.
  function linkOf(svg) {
    return { path: svg.querySelector("path"), to: svg.classList[1].slice("node_in_node-".length),
             from: svg.classList[2].slice("node_out_node-".length), out: svg.classList[3] };
  }

  // Drawflow redraws a node's connections (on connect, and on every mouse move while a
  // node is dragged) reading and writing in turns, one forced layout per connection.
  // This does the same work with one layout: read every port's position, then write.
  // (Reroute points are off in this editor, so Drawflow's reroute branch is not needed.)
  editor.updateConnectionNodes = function (domId) {
    var key = cssId(String(domId));
    var svgs = editor.precanvas.querySelectorAll(".node_out_" + key + ", .node_in_" + key);
    drawPaths(Array.prototype.map.call(svgs, linkOf));
  };

  // Draw the whole document with one Drawflow import(); the paths of all connections
  // are then drawn in one batch (Drawflow's own load() redraws node by node).
  function renderAll() {
    var updateConnectionNodes = editor.updateConnectionNodes;
    editor.updateConnectionNodes = function () {};
    try {
      syncing(function () { editor.import(toDrawflow()); });
    } finally {
      editor.updateConnectionNodes = updateConnectionNodes;
    }
    decorated = {};
    plusKeys = {};
    drawPaths(Array.prototype.map.call(editor.precanvas.querySelectorAll("svg.connection"), linkOf));
    decorate();
  }

  // Drawflow's own formula (updateConnectionNodes), batched: all reads, then all writes.
  function drawPaths(links) {
    if (!links.length) return;
    var base = editor.precanvas.getBoundingClientRect();
    var scale = 1 / editor.zoom;
    function centre(el) {
      var rect = el.getBoundingClientRect();
      return { x: el.offsetWidth / 2 + (rect.x - base.x) * scale,
               y: el.offsetHeight / 2 + (rect.y - base.y) * scale };
    }
    var points = links.map(function (link) {
      var out = document.querySelector("#node-" + cssId(link.from) + " .outputs ." + link.out);
      var input = document.querySelector("#node-" + cssId(link.to) + " .inputs .input_1");
      return out && input ? [centre(out), centre(input)] : null;
    });
    links.forEach(function (link, i) {
      if (!points[i]) return;
      var a = points[i][0], b = points[i][1];
      link.path.setAttributeNS(null, "d", editor.createCurvature(a.x, a.y, b.x, b.y, editor.curvature, "openclose"));
    });
  }

  function cssId(id) { return window.CSS && CSS.escape ? CSS.escape(id) : id; }

  var rawRemoveNode = editor.removeNodeId.bind(editor);

  function drawNode(block) {
    var card = state.cards[block.id];
    var pos = positionOf(block, state.doc.blocks.indexOf(block));
    delete decorated[block.id];
    delete plusKeys[block.id];
    syncing(function () {
      editor.nodeId = block.id;  // Drawflow names the new node after nodeId: use the block id
      editor.addNode(block.type, 1, card.ports.length, pos.x, pos.y, nodeClass(block), {}, card.html);
    });
  }

  function drawEdge(edge) {
    if (!nodeEl(edge.from) || !nodeEl(edge.to)) return;
    var output = portMapping(edge.from).toOutput(edge.port);
    if (output) syncing(function () { editor.addConnection(edge.from, edge.to, output, "input_1"); });
  }

  function redrawBlock(id) {
    var block = findBlock(id);
    syncing(function () {
      if (nodeEl(id)) rawRemoveNode("node-" + id);
      delete decorated[id];
      if (!block) return;
      drawNode(block);
      state.doc.edges.forEach(function (edge) {
        if (edge.from === id || edge.to === id) drawEdge(edge);
      });
    });
    decorate();
  }

  // ------------------------------------------------------------------ undo / redo

  function current() {
    return { doc: JSON.stringify(state.doc), cards: Object.assign({}, state.cards) };
  }

  function updateHistoryButtons() {
    document.getElementById("btn-undo").disabled = state.undo.length === 0;
    document.getElementById("btn-redo").disabled = state.redo.length === 0;
  }

  // Call before every change the person makes: undo goes back to this document.
  function snapshot() {
    state.undo.push(current());
    if (state.undo.length > UNDO_LIMIT) state.undo.shift();
    state.redo = [];
    updateHistoryButtons();
  }

  // "Começa quando o cliente diz: oi, olá · ou por padrão" (flows_ui.triggers_sentence).
  function showTriggers() {
    var T = M.triggers, said = [], fallback = false;
    (state.doc.triggers || []).forEach(function (trigger) {
      if (trigger.type === "default") fallback = true;
      else if (trigger.match === "contains") said.push(T.contains.replace("%(value)s", trigger.value || ""));
      else if (trigger.match === "regex") said.push(T.regex.replace("%(value)s", trigger.value || ""));
      else said.push(trigger.value || "");
    });
    var text = said.length ? T.saysPrefix + " " + said.join(", ") + (fallback ? " · " + T.orDefault : "")
      : (fallback ? T.onlyDefault : T.none);
    var el = document.getElementById("triggers-text");
    if (el) el.textContent = text;
    var button = document.getElementById("btn-triggers");
    if (button) {
      button.classList.toggle("has-no-trigger", !said.length && !fallback);
      button.title = M.editTriggers + ": " + text;
    }
  }

  function restore(entry) {
    state.doc = JSON.parse(entry.doc);
    state.cards = entry.cards;
    document.getElementById("flow-name").textContent = state.doc.name;
    showTriggers();
    closePanel();
    renderAll();
  }

  function undo() {
    if (!state.undo.length) { notify(M.nothingToUndo); return; }
    state.redo.push(current());
    restore(state.undo.pop());
    updateHistoryButtons();
    commit();
  }

  function redo() {
    if (!state.redo.length) { notify(M.nothingToRedo); return; }
    state.undo.push(current());
    restore(state.redo.pop());
    updateHistoryButtons();
    commit();
  }

  // ------------------------------------------------------------------ saving

  var saving = null;
  var retryTimer = null;

  function setStatus(name) {
    statusEl.dataset.state = name;
    statusEl.textContent = { saving: M.saving, saved: M.saved, unsaved: M.unsaved }[name] || "";
  }

  function showOffline(text) {
    state.offline = true;
    document.getElementById("offline-text").textContent = text;
    document.getElementById("offline").hidden = false;
    setStatus("unsaved");
  }

  function hideOffline() {
    state.offline = false;
    document.getElementById("offline").hidden = true;
  }

  function showConflict(text) {
    state.conflict = true;
    document.getElementById("conflict-text").textContent = text || M.conflict;
    document.getElementById("conflict").hidden = false;
    setStatus("unsaved");
    root.classList.add("is-conflict");
  }

  function retryLater() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(function () { if (state.dirty) scheduleSave(); }, state.retryDelay);
    state.retryDelay = Math.min(state.retryDelay * 2, 60000);
  }

  async function saveLoop() {
    while (state.dirty && !state.conflict) {
      state.dirty = false;
      var body = JSON.stringify(state.doc);
      setStatus("saving");
      var response;
      try {
        response = await fetch(urls.draft, {
          method: "PUT", credentials: "same-origin", body: body,
          headers: {
            "Content-Type": "application/json", "Accept": "application/json",
            "If-Match": '"' + state.revision + '"',
            "X-CSRFToken": window.papo ? window.papo.csrfToken() : ""
          }
        });
      } catch (networkError) {
        state.dirty = true;
        showOffline(M.offline);
        retryLater();
        throw networkError;
      }
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("json") === -1) {  // the login page: the session is gone
        state.dirty = true;
        showOffline(M.sessionExpired);
        throw new Error(M.sessionExpired);
      }
      var answer = await response.json().catch(function () { return {}; });
      if (response.status === 409) {
        showConflict(answer.error && answer.error.message);
        throw new Error("conflict");
      }
      if (response.status === 413 || response.status === 422 || response.status === 400
          || response.status === 403 || response.status === 404) {
        var message = (answer.error && answer.error.message) || M.saveFailed;
        (answer.error && answer.error.details || []).slice(0, 3).forEach(function (d) {
          message += " " + (d.path || "") + ": " + d.message;
        });
        showOffline(M.saveFailed + " " + message);
        throw new Error(message);
      }
      if (!response.ok) {
        state.dirty = true;
        showOffline(M.saveFailed);
        retryLater();
        throw new Error(M.saveFailed);
      }
      state.revision = answer.revision;
      state.findings = answer.findings || [];
      var changes = document.getElementById("draft-changes");
      if (changes && typeof answer.unpublished === "boolean") changes.hidden = !answer.unpublished;
      state.retryDelay = 2000;
      hideOffline();
      decorate();
      document.dispatchEvent(new CustomEvent("papo:saved", { detail: { revision: state.revision } }));
    }
    if (!state.conflict && !state.dirty) setStatus("saved");
    return state.revision;
  }

  function scheduleSave() {
    state.dirty = true;
    if (state.conflict) return Promise.reject(new Error("conflict"));
    if (!saving) {
      clearTimeout(retryTimer);
      setStatus("unsaved");
      saving = saveLoop().finally(function () { saving = null; });
      saving.catch(function () { /* shown in the page; callers of save() see it too */ });
    }
    return saving;
  }

  // Resolves with the revision once every change so far is saved.
  function save() {
    if (saving) return saving;
    if (state.conflict) return Promise.reject(new Error("conflict"));
    if (state.dirty) return scheduleSave();
    return Promise.resolve(state.revision);
  }

  // After every change the person makes (state.doc already changed).
  function commit() {
    decorate();
    scheduleSave();
  }

  window.addEventListener("beforeunload", function (event) {
    if (state.dirty && state.offline && !state.conflict) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  // ------------------------------------------------------------------ changes on the canvas

  editor.removeNodeId = function (domId) {
    var id = String(domId).replace(/^node-/, "");
    if (state.syncing) return rawRemoveNode(domId);
    if (id === state.doc.start) { notify(M.startDelete, true); return; }
    if (!findBlock(id)) return rawRemoveNode(domId);
    snapshot();
    syncing(function () { rawRemoveNode(domId); });
    state.doc.blocks = state.doc.blocks.filter(function (b) { return b.id !== id; });
    state.doc.edges = state.doc.edges.filter(function (e) { return e.from !== id && e.to !== id; });
    var cards = Object.assign({}, state.cards);
    delete cards[id];
    state.cards = cards;
    if (state.current === id) state.current = null;
    if (panel.dataset.block === id) closePanel();
    commit();
  };

  function deleteBlock(id) {
    if (id === state.doc.start) { notify(M.startDelete, true); return false; }
    editor.removeNodeId("node-" + id);
    return !findBlock(id);
  }

  editor.on("connectionCreated", function (c) {
    if (state.syncing) return;
    var from = String(c.output_id), to = String(c.input_id);
    var port = portMapping(from).toPort(c.output_class);
    if (!port || c.input_class !== "input_1") {
      syncing(function () { editor.removeSingleConnection(from, to, c.output_class, c.input_class); });
      return;
    }
    snapshot();
    var taken = state.doc.edges.filter(function (e) { return e.from === from && e.port === port; });
    if (taken.length) {
      // One edge per port: the new connection replaces the old one.
      taken.forEach(function (e) {
        if (e.to !== to && nodeEl(e.to)) {
          syncing(function () { editor.removeSingleConnection(from, e.to, c.output_class, "input_1"); });
        }
      });
      state.doc.edges = state.doc.edges.filter(function (e) { return !(e.from === from && e.port === port); });
      notify(M.replaced);
    }
    state.doc.edges.push({ from: from, port: port, to: to });
    commit();
  });

  editor.on("connectionRemoved", function (c) {
    if (state.syncing) return;
    var from = String(c.output_id), to = String(c.input_id);
    var port = portMapping(from).toPort(c.output_class);
    var kept = state.doc.edges.filter(function (e) {
      return !(e.from === from && e.port === port && e.to === to);
    });
    if (kept.length === state.doc.edges.length) return;
    snapshot();
    state.doc.edges = kept;
    commit();
  });

  editor.on("nodeMoved", function (id) {
    if (state.syncing) return;
    var block = findBlock(String(id));
    var node = editor.drawflow.drawflow.Home.data[id];
    if (!block || !node) return;
    var position = { x: Math.round(node.pos_x), y: Math.round(node.pos_y) };
    if (block.position && block.position.x === position.x && block.position.y === position.y) return;
    snapshot();
    block.position = position;
    commit();
  });

  // New blocks are numbered above every b<n> this flow ever had (the server reads all
  // revisions: boot.blockNumberMark) and every one this page handed out, so a deleted
  // block's id is never given to a new block (an undone add counts as handed out).
  var blockNumberMark = boot.blockNumberMark || 0;
  function newBlockId() {
    var taken = {};
    state.doc.blocks.forEach(function (b) {
      taken[b.id] = true;
      var found = /^b(\d+)$/.exec(b.id);
      if (found) blockNumberMark = Math.max(blockNumberMark, parseInt(found[1], 10));
    });
    var id = "b" + (++blockNumberMark);
    while (taken[id]) id = "b" + (++blockNumberMark);
    return id;
  }

  function cardFromTemplate(html, id) {
    var holder = document.createElement("template");
    holder.innerHTML = html;
    var card = holder.content.querySelector("[data-block-id]");
    if (card) {
      card.setAttribute("data-block-id", id);
      card.setAttribute("aria-label", (card.getAttribute("data-kind-label") || "") + " " + id);
      var label = card.querySelector(".card-id");
      if (label) label.textContent = id;
    }
    return holder.innerHTML;
  }

  // Add a block of `kind` at canvas point (x, y); with `link` ({from, port}) the port is
  // connected to it in the same step (one undo).
  function addBlock(kind, x, y, link) {
    var preset = boot.palette[kind];
    if (!preset) return null;
    var id = newBlockId();
    snapshot();
    var block = {
      id: id, type: preset.type || kind, position: { x: Math.round(x), y: Math.round(y) },
      data: JSON.parse(JSON.stringify(preset.data))
    };
    state.doc.blocks.push(block);
    var cards = Object.assign({}, state.cards);
    cards[id] = { html: cardFromTemplate(preset.html, id), ports: preset.ports.slice(), family: preset.family };
    state.cards = cards;
    drawNode(block);
    if (link) {
      var edge = { from: link.from, port: link.port, to: id };
      state.doc.edges = state.doc.edges.filter(function (e) { return !(e.from === link.from && e.port === link.port); });
      state.doc.edges.push(edge);
      drawEdge(edge);
    }
    commit();
    openBlockForm(id);
    ensureVisible(id);
    return id;
  }

  // The next block after port `port` of `from`: to its right, below any card already there.
  function addNext(from, port, kind) {
    var source = editor.drawflow.drawflow.Home.data[from];
    if (!source) return null;
    var index = Math.max(0, portMapping(from).ports.indexOf(port));
    var x = source.pos_x + 300, y = source.pos_y + index * 70;
    var data = editor.drawflow.drawflow.Home.data;
    for (var tries = 0; tries < 30; tries++) {
      var hit = null;
      Object.keys(data).forEach(function (nid) {
        var n = data[nid], el = nodeEl(nid);
        var h = el ? el.offsetHeight : 120, w = el ? el.offsetWidth : 220;
        if (x < n.pos_x + w + 20 && x + 240 > n.pos_x && y < n.pos_y + h + 20 && y + 120 > n.pos_y) hit = n.pos_y + h + 30;
      });
      if (hit === null) break;
      y = hit;
    }
    return addBlock(kind, x, y, { from: from, port: port });
  }

  // The part of the canvas not covered by the side panel, in client coordinates.
  function visibleRect() {
    var r = canvas.getBoundingClientRect();
    var right = r.right;
    if (!panel.hidden) right = Math.min(right, panel.getBoundingClientRect().left);
    return { left: r.left, top: r.top, right: Math.max(right, r.left + 80), bottom: r.bottom };
  }

  // Pan so block `id` is in view (never under the panel).
  function ensureVisible(id) {
    var el = nodeEl(id);
    if (!el) return;
    var v = visibleRect(), b = el.getBoundingClientRect(), pad = 24, dx = 0, dy = 0;
    var right = 56;  // room for the "+" beside the block's outputs
    if (b.right > v.right - right) dx = v.right - right - b.right;
    if (b.left + dx < v.left + pad) dx = v.left + pad - b.left;
    if (b.bottom > v.bottom - pad) dy = v.bottom - pad - b.bottom;
    if (b.top + dy < v.top + pad) dy = v.top + pad - b.top;
    if (!dx && !dy) return;
    editor.canvas_x += dx;
    editor.canvas_y += dy;
    editor.precanvas.style.transform = "translate(" + editor.canvas_x + "px, " +
      editor.canvas_y + "px) scale(" + editor.zoom + ")";
  }

  function clientToCanvas(clientX, clientY) {
    var rect = editor.precanvas.getBoundingClientRect();
    return { x: (clientX - rect.left) / editor.zoom, y: (clientY - rect.top) / editor.zoom };
  }

  function viewCenter() {
    var rect = visibleRect();
    rect.width = rect.right - rect.left;
    rect.height = rect.bottom - rect.top;
    var count = state.doc.blocks.length % 6;
    var point = clientToCanvas(rect.left + rect.width / 2, rect.top + rect.height / 3);
    return { x: point.x - 110 + count * 24, y: point.y - 40 + count * 24 };
  }

  // ------------------------------------------------------------------ view

  function setView(zoom, centerX, centerY) {
    // The canvas layer scales around its own centre (CSS transform-origin 50% 50%).
    var width = editor.precanvas.clientWidth, height = editor.precanvas.clientHeight;
    editor.zoom = zoom;
    editor.zoom_last_value = zoom;
    editor.canvas_x = -(centerX - width / 2) * zoom;
    editor.canvas_y = -(centerY - height / 2) * zoom;
    editor.precanvas.style.transform = "translate(" + editor.canvas_x + "px, " +
      editor.canvas_y + "px) scale(" + zoom + ")";
  }

  function bounds(ids) {
    var box = null;
    ids.forEach(function (id) {
      var node = editor.drawflow.drawflow.Home.data[id];
      var el = nodeEl(id);
      if (!node || !el) return;
      var right = node.pos_x + el.offsetWidth, bottom = node.pos_y + el.offsetHeight;
      if (!box) box = { left: node.pos_x, top: node.pos_y, right: right, bottom: bottom };
      else {
        box.left = Math.min(box.left, node.pos_x); box.top = Math.min(box.top, node.pos_y);
        box.right = Math.max(box.right, right); box.bottom = Math.max(box.bottom, bottom);
      }
    });
    return box;
  }

  function fit() {
    var box = bounds(Object.keys(editor.drawflow.drawflow.Home.data));
    if (!box) return;
    var pad = 40;
    var width = canvas.clientWidth - 2 * pad, height = canvas.clientHeight - 2 * pad;
    var zoom = Math.min(width / Math.max(box.right - box.left, 1), height / Math.max(box.bottom - box.top, 1), 1);
    zoom = Math.max(editor.zoom_min, zoom);
    setView(zoom, (box.left + box.right) / 2, (box.top + box.bottom) / 2);
  }

  function isVisible(id) {
    var el = nodeEl(id);
    if (!el) return false;
    var view = canvas.getBoundingClientRect(), rect = el.getBoundingClientRect();
    return rect.right > view.left && rect.left < view.right && rect.bottom > view.top && rect.top < view.bottom;
  }

  function centerOn(id) {
    var box = bounds([id]);
    if (!box) return;
    setView(Math.max(editor.zoom, 0.6), (box.left + box.right) / 2, (box.top + box.bottom) / 2);
  }

  function focusBlock(id) {
    if (!nodeEl(id)) return false;
    document.querySelectorAll("#canvas .is-focused").forEach(function (el) { el.classList.remove("is-focused"); });
    mark(id, "is-focused", true);
    centerOn(id);
    canvas.scrollIntoView({ block: "nearest", inline: "nearest" });
    var card = nodeEl(id).querySelector(".block-card");
    if (card) card.focus({ preventScroll: true });
    return true;
  }

  function clearHighlight() {
    document.querySelectorAll("#canvas .is-current").forEach(function (el) { el.classList.remove("is-current"); });
    state.current = null;
  }

  function highlight(id) {
    clearHighlight();
    if (!id || !nodeEl(id)) return false;
    state.current = id;
    mark(id, "is-current", true);
    if (!isVisible(id)) centerOn(id);
    return true;
  }

  // ------------------------------------------------------------------ the panel

  function showPanel(kind, blockId) {
    panel.hidden = false;
    panel.dataset.kind = kind;
    panel.dataset.block = blockId || "";
    root.classList.add("has-panel");
  }

  function closePanel() {
    panel.hidden = true;
    panel.dataset.block = "";
    panelBody.innerHTML = "";
    root.classList.remove("has-panel");
  }

  function loadPanel(kind, url, options) {
    showPanel(kind, options && options.block);
    panelBody.setAttribute("aria-busy", "true");
    var method = (options && options.method) || "GET";
    var values = options && options.values;
    return save().catch(function () { /* show what the server has; the banner explains */ })
      .then(function () {
        return window.htmx.ajax(method, url, { target: "#panel-body", swap: "innerHTML", values: values });
      })
      .finally(function () { panelBody.removeAttribute("aria-busy"); });
  }

  function openBlockForm(id) {
    document.querySelectorAll("#canvas .is-selected").forEach(function (el) { el.classList.remove("is-selected"); });
    mark(id, "is-selected", true);
    return loadPanel("block", urls.form.replace("__BLOCK__", encodeURIComponent(id)), { block: id });
  }

  function setStart(id) {
    if (!findBlock(id) || state.doc.start === id) return;
    snapshot();
    state.doc.start = id;
    commit();
    notify(M.startSet);
    if (panel.dataset.block === id) openBlockForm(id);
  }

  function removeBrokenEdges() {
    var kept = state.doc.edges.filter(function (e) {
      return findBlock(e.from) && findBlock(e.to) && portMapping(e.from).toOutput(e.port);
    });
    if (kept.length === state.doc.edges.length) return;
    snapshot();
    state.doc.edges = kept;
    commit();
    notify(M.brokenRemoved);
    loadPanel("findings", urls.findings);
  }

  function applyBlockResult(result) {
    var block = findBlock(result.block_id);
    if (!block) return;
    if (JSON.stringify(block.data) === JSON.stringify(result.data) && block.type === result.type) return;
    snapshot();
    var oldPorts = (state.cards[block.id] && state.cards[block.id].ports) || [];
    block.type = result.type;
    block.data = result.data;
    var cards = Object.assign({}, state.cards);
    cards[block.id] = { html: result.html, ports: result.ports, family: result.family, title: result.title };
    state.cards = cards;
    var dropped = false;
    var used = {};
    state.doc.edges.forEach(function (edge) { if (edge.from === block.id) used[edge.port] = true; });
    state.doc.edges = state.doc.edges.filter(function (edge) {
      if (edge.from !== block.id || result.ports.indexOf(edge.port) !== -1) return true;
      // A port renamed in place (a condition's rule) keeps its connection; a port that
      // is gone (a removed option) loses it.
      var index = oldPorts.indexOf(edge.port);
      var renamed = oldPorts.length === result.ports.length && index !== -1 ? result.ports[index] : null;
      if (renamed && oldPorts.indexOf(renamed) === -1 && !used[renamed]) {
        used[renamed] = true;
        edge.port = renamed;
        return true;
      }
      dropped = true;
      return false;
    });
    if (dropped) notify(M.edgesDropped);
    redrawBlock(block.id);
    mark(block.id, "is-selected", true);
    commit();
    // Once saved, show the form again as the server now has it (with its connections).
    var id = block.id;
    save().then(function () {
      if (panel.dataset.block !== id || panel.hidden) return;
      window.htmx.ajax("GET", urls.form.replace("__BLOCK__", encodeURIComponent(id)) + "?saved=1",
                       { target: "#panel-body", swap: "innerHTML" });
    }).catch(function () {});
  }

  // The block form's "Ligações": choose where a port leads without dragging (keyboard).
  function setEdge(from, port, to) {
    var output = portMapping(from).toOutput(port);
    var current = state.doc.edges.filter(function (e) { return e.from === from && e.port === port; });
    if (current.length === 1 && current[0].to === to) return;
    if (!current.length && !to) return;
    snapshot();
    current.forEach(function (e) {
      if (output && nodeEl(e.to)) {
        syncing(function () { editor.removeSingleConnection(from, e.to, output, "input_1"); });
      }
    });
    state.doc.edges = state.doc.edges.filter(function (e) { return !(e.from === from && e.port === port); });
    if (to) {
      var edge = { from: from, port: port, to: to };
      state.doc.edges.push(edge);
      drawEdge(edge);
    }
    commit();
  }

  function applySettings(settings) {
    snapshot();
    ["name", "description", "priority", "triggers"].forEach(function (key) {
      state.doc[key] = settings[key];
    });
    document.getElementById("flow-name").textContent = state.doc.name;
    showTriggers();
    commit();
  }

  function applyReplacement(result) {
    snapshot();
    state.doc = result.doc;
    state.cards = result.cards;
    document.getElementById("flow-name").textContent = state.doc.name;
    showTriggers();
    renderAll();
    fit();
    commit();
  }

  // The server replaced the draft (restore a version, publish an older one): show it and
  // take its revision; the previous document stays on the undo stack.
  function applyRestored(result) {
    snapshot();
    state.doc = result.doc;
    state.cards = result.cards;
    state.revision = result.revision;
    state.findings = result.findings || [];
    document.getElementById("flow-name").textContent = state.doc.name;
    var changes = document.getElementById("draft-changes");
    if (changes) changes.hidden = !result.unpublished;  // restored: yes; just published: no
    showTriggers();
    renderAll();
    decorate();
  }

  // The flow's tests (the Tests panel, static/flowtests.js): one undoable change.
  function setTests(tests) {
    snapshot();
    if (tests && tests.length) state.doc.tests = tests; else delete state.doc.tests;
    commit();
    return save();
  }

  function processResults(container) {
    container.querySelectorAll("script.papo-result:not([data-done])").forEach(function (script) {
      script.setAttribute("data-done", "1");
      var result;
      try { result = JSON.parse(script.textContent); } catch (e) { return; }
      if (result.action === "block") applyBlockResult(result);
      else if (result.action === "settings") applySettings(result.settings);
      else if (result.action === "replace") applyReplacement(result);
      else if (result.action === "restored") applyRestored(result);
      else if (result.action === "findings") { state.findings = result.findings; decorate(); }
    });
  }

  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (panelBody.contains(event.detail.target) || event.detail.target === panelBody) {
      processResults(panelBody);
    }
  });

  // ------------------------------------------------------------------ wiring

  function on(id, type, handler) {
    var el = document.getElementById(id);
    if (el) el.addEventListener(type, handler);
  }

  on("btn-undo", "click", undo);
  on("btn-redo", "click", redo);
  on("btn-fit", "click", fit);
  on("btn-zoom-in", "click", function () { editor.zoom_in(); });
  on("btn-zoom-out", "click", function () { editor.zoom_out(); });
  on("btn-close-panel", "click", function () { closePanel(); });
  on("btn-reload", "click", function () { window.location.reload(); });
  on("btn-retry", "click", function () { state.retryDelay = 2000; scheduleSave(); });
  on("btn-validate", "click", function () { loadPanel("findings", urls.findings); });
  on("btn-settings", "click", function () { loadPanel("settings", urls.settings); });
  on("btn-versions", "click", function () { loadPanel("versions", urls.versions); });
  on("btn-triggers", "click", function () {
    loadPanel("settings", urls.settings).then(function () {
      var first = panelBody.querySelector('[name="triggers.value"]') || panelBody.querySelector("[data-add-row=triggers]");
      if (first) first.focus();
    });
  });
  on("btn-publish", "click", function () {
    loadPanel("versions", urls.publish, { method: "POST" });
  });
  on("btn-export", "click", function () {
    save().catch(function () {}).then(function () {
      var link = document.createElement("a");
      link.href = urls["export"];
      link.download = boot.flowId + ".json";
      document.body.appendChild(link);
      link.click();
      link.remove();
    });
  });
  var importForm = document.getElementById("import-draft-form");
  var importFile = document.getElementById("import-draft-file");
  on("btn-import", "click", function () { importFile.click(); });
  importFile.addEventListener("change", function () {
    if (!importFile.files.length) return;
    showPanel("import");
    importForm.requestSubmit ? importForm.requestSubmit() : window.htmx.trigger(importForm, "submit");
  });
  importForm.addEventListener("htmx:afterRequest", function () { importForm.reset(); });

  panel.addEventListener("change", function (event) {
    var select = event.target.closest("[data-edge-port]");
    if (select) setEdge(select.getAttribute("data-edge-from"), select.getAttribute("data-edge-port"), select.value);
  });

  panel.addEventListener("click", function (event) {
    var action = event.target.closest("[data-action]");
    if (action) {
      var id = action.getAttribute("data-target-block");
      var name = action.getAttribute("data-action");
      if (name === "set-start") setStart(id);
      else if (name === "delete-block") deleteBlock(id);
      else if (name === "remove-broken-edges") removeBrokenEdges();
      return;
    }
    var focus = event.target.closest("[data-focus-block]");
    if (focus) focusBlock(focus.getAttribute("data-focus-block"));
  });

  // Palette: drag a kind onto the canvas, or activate it (click, Enter) to add it.
  var dragKind = null;
  document.querySelectorAll(".palette-item").forEach(function (item) {
    item.addEventListener("dragstart", function (event) {
      dragKind = item.getAttribute("data-kind");
      event.dataTransfer.setData("application/x-papo-kind", dragKind);
      event.dataTransfer.setData("text/plain", dragKind);
      event.dataTransfer.effectAllowed = "copy";
    });
    item.addEventListener("dragend", function () { dragKind = null; });
    item.addEventListener("click", function () {
      var at = viewCenter();
      addBlock(item.getAttribute("data-kind"), at.x, at.y);
    });
    item.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        var at = viewCenter();
        addBlock(item.getAttribute("data-kind"), at.x, at.y);
      }
    });
  });
  canvas.addEventListener("dragover", function (event) {
    if (dragKind || Array.prototype.indexOf.call(event.dataTransfer.types, "application/x-papo-kind") !== -1) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    }
  });
  canvas.addEventListener("drop", function (event) {
    var kind = event.dataTransfer.getData("application/x-papo-kind") || dragKind;
    if (!kind) return;
    event.preventDefault();
    dragKind = null;
    // The block's form opens in the side panel: a block dropped where the panel will be
    // is moved left of it, so it never lands underneath.
    var wrap = canvas.getBoundingClientRect();
    var body = root.querySelector(".editor-body").getBoundingClientRect();
    var panelLeft = panel.hidden ? body.right - Math.min(360, body.width * 0.92) : panel.getBoundingClientRect().left;
    var limit = Math.min(wrap.right, panelLeft) - 24 - 220 * editor.zoom;
    var point = clientToCanvas(Math.max(wrap.left + 8, Math.min(event.clientX - 20 * editor.zoom, limit)), event.clientY - 20 * editor.zoom);
    addBlock(kind, point.x, point.y);
  });

  // A click on a card (not a drag, not a port) opens its form.
  var pressedAt = null;
  canvas.addEventListener("mousedown", function (event) {
    pressedAt = { x: event.clientX, y: event.clientY };
  }, true);
  canvas.addEventListener("click", function (event) {
    var card = event.target.closest(".block-card[data-block-id]");
    if (!card || event.target.closest(".input, .output")) return;
    if (pressedAt && Math.abs(event.clientX - pressedAt.x) + Math.abs(event.clientY - pressedAt.y) > 4) return;
    openBlockForm(card.getAttribute("data-block-id"));
  });
  // Keyboard on a focused card: Enter opens it, Delete removes it (before Drawflow's handler).
  editor.precanvas.addEventListener("keydown", function (event) {
    var card = event.target.closest && event.target.closest(".block-card[data-block-id]");
    if (!card) return;
    var id = card.getAttribute("data-block-id");
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openBlockForm(id);
    } else if ((event.key === "c" || event.key === "C") && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      openConnectMenu(id, card);
    }
  });

  // "Ligar" from the keyboard (issue 21): "C" on a focused block opens a small chooser —
  // which output, and the block it leads to, named by their titles; "nada" disconnects.
  // The change goes through setEdge, like the form's "Ligações" (one undo, saved), and
  // is said in a toast, which screen readers announce (#toasts is aria-live).
  var connectMenu = document.getElementById("connect-menu");
  var connectPort = document.getElementById("connect-port");
  var connectTarget = document.getElementById("connect-target");
  var connectFor = null;

  function blockTitle(id) {
    var card = state.cards[id] || {};
    var node = nodeEl(id);
    var kind = node && node.querySelector(".block-card");
    return card.title || (kind && kind.getAttribute("data-kind-label")) || id;
  }

  function portLabel(id, port) {
    var index = portMapping(id).ports.indexOf(port);
    var node = nodeEl(id);
    var item = node && index >= 0 ? node.querySelectorAll(".card-ports li")[index] : null;
    return item ? item.textContent.trim() : port;
  }

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (all, key) { return key in values ? values[key] : all; });
  }

  function option(select, value, text) {
    var item = document.createElement("option");
    item.value = value;
    item.textContent = text;
    select.appendChild(item);
  }

  function showTargetOf(from) {
    var port = connectPort.value;
    var edge = state.doc.edges.filter(function (e) { return e.from === from && e.port === port; })[0];
    connectTarget.value = edge && findBlock(edge.to) ? edge.to : "";
  }

  function openConnectMenu(id, card) {
    if (!connectMenu) return;
    var ports = portMapping(id).ports;
    if (!ports.length) { notify(M.noOutputs, true); return; }
    closePortMenu(false);
    connectFor = { from: id, card: card };
    document.getElementById("connect-title").textContent = fill(M.connectTitle, { from: blockTitle(id) });
    connectPort.textContent = "";
    ports.forEach(function (port) { option(connectPort, port, portLabel(id, port)); });
    connectTarget.textContent = "";
    option(connectTarget, "", M.connectNothing);
    state.doc.blocks.forEach(function (block) {
      if (block.id !== id) option(connectTarget, block.id, blockTitle(block.id));
    });
    showTargetOf(id);
    connectMenu.hidden = false;
    var wrap = connectMenu.parentElement.getBoundingClientRect(), at = card.getBoundingClientRect();
    var left = Math.min(at.right + 8 - wrap.left, wrap.width - connectMenu.offsetWidth - 8);
    var top = Math.min(at.top - wrap.top, wrap.height - connectMenu.offsetHeight - 8);
    connectMenu.style.left = Math.max(8, left) + "px";
    connectMenu.style.top = Math.max(8, top) + "px";
    (ports.length > 1 ? connectPort : connectTarget).focus();
  }

  function closeConnectMenu(refocus) {
    if (!connectMenu || connectMenu.hidden) return;
    connectMenu.hidden = true;
    var card = connectFor && connectFor.card;
    connectFor = null;
    if (refocus && card && card.isConnected) card.focus();
  }

  function applyConnect() {
    if (!connectFor) return;
    var from = connectFor.from, port = connectPort.value, to = connectTarget.value;
    var before = state.doc.edges.filter(function (e) { return e.from === from && e.port === port; })[0];
    setEdge(from, port, to || null);
    var words = { from: blockTitle(from), port: portLabel(from, port), to: to ? blockTitle(to) : "" };
    if (to) notify(fill(M.connected, words));
    else if (before) notify(fill(M.disconnected, words));
    closeConnectMenu(true);
  }

  if (connectMenu) {
    connectPort.addEventListener("change", function () { if (connectFor) showTargetOf(connectFor.from); });
    document.getElementById("connect-apply").addEventListener("click", applyConnect);
    document.getElementById("connect-cancel").addEventListener("click", function () { closeConnectMenu(true); });
    connectMenu.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); closeConnectMenu(true); }
      else if (event.key === "Enter" && event.target.tagName === "SELECT") { event.preventDefault(); applyConnect(); }
    });
    document.addEventListener("mousedown", function (event) {
      if (!connectMenu.hidden && !connectMenu.contains(event.target)) closeConnectMenu(false);
    });
  }

  // Delete / Backspace: remove the selected connection, or the selected block (undo
  // brings it back). Drawflow's own handler listens on the canvas element, which never
  // has the keyboard focus, so it is replaced here (capture: it runs first, and alone).
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Delete" && event.key !== "Backspace") return;
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(target.tagName))) return;
    if (target && target !== document.body && !canvas.contains(target)) return;
    if (editor.connection_selected) {
      event.preventDefault();
      event.stopPropagation();
      editor.removeConnection();
      editor.connection_selected = null;
      return;
    }
    var card = target && target.closest && target.closest(".block-card[data-block-id]");
    var id = card ? card.getAttribute("data-block-id") : (editor.node_selected ? editor.node_selected.id.replace(/^node-/, "") : null);
    if (id && findBlock(id)) {
      event.preventDefault();
      event.stopPropagation();
      if (deleteBlock(id)) notify(M.blockDeleted);
    }
  }, true);

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (event.key === "Escape" && !panel.hidden && !typing) { closePanel(); return; }
    if (!(event.ctrlKey || event.metaKey) || typing) return;
    var key = event.key.toLowerCase();
    if (key === "z" && event.shiftKey || key === "y") { event.preventDefault(); redo(); }
    else if (key === "z") { event.preventDefault(); undo(); }
  });

  // The "+" menu: which kind of block comes next.
  var portMenu = document.getElementById("port-menu");
  var menuFor = null;
  function closePortMenu(refocus) {
    if (!portMenu || portMenu.hidden) return;
    portMenu.hidden = true;
    if (refocus && menuFor && menuFor.button.isConnected) menuFor.button.focus();
    menuFor = null;
  }
  function openPortMenu(button) {
    var wrap = portMenu.parentElement.getBoundingClientRect(), at = button.getBoundingClientRect();
    menuFor = { from: button.getAttribute("data-from"), port: button.getAttribute("data-port"), button: button };
    portMenu.hidden = false;
    var left = Math.min(at.right + 6 - wrap.left, wrap.width - portMenu.offsetWidth - 8);
    var top = Math.min(at.top - wrap.top, wrap.height - portMenu.offsetHeight - 8);
    portMenu.style.left = Math.max(8, left) + "px";
    portMenu.style.top = Math.max(8, top) + "px";
    var first = portMenu.querySelector("[data-kind]");
    if (first) first.focus();
  }
  canvas.addEventListener("mousedown", function (event) {
    if (event.target.closest(".port-add")) { event.stopPropagation(); return; }  // not a drag for Drawflow
    // A click on the canvas (a connection, the background) takes the keyboard focus from
    // whatever had it (a button of the panel), so Delete then acts on the canvas.
    var focusable = event.target.closest("input, textarea, select, button, [tabindex]");
    if (!focusable || focusable === canvas) canvas.focus({ preventScroll: true });
  }, true);
  canvas.addEventListener("click", function (event) {
    var button = event.target.closest(".port-add");
    if (!button) return;
    event.stopPropagation();
    event.preventDefault();
    if (menuFor && menuFor.button === button) closePortMenu(false);
    else openPortMenu(button);
  }, true);
  if (portMenu) {
    portMenu.addEventListener("click", function (event) {
      var item = event.target.closest("[data-kind]");
      if (!item || !menuFor) return;
      var link = menuFor;
      closePortMenu(false);
      addNext(link.from, link.port, item.getAttribute("data-kind"));
    });
    portMenu.addEventListener("keydown", function (event) {
      var items = Array.prototype.slice.call(portMenu.querySelectorAll("[data-kind]"));
      var index = items.indexOf(document.activeElement);
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); closePortMenu(true); }
      else if (event.key === "ArrowDown") { event.preventDefault(); items[(index + 1) % items.length].focus(); }
      else if (event.key === "ArrowUp") { event.preventDefault(); items[(index - 1 + items.length) % items.length].focus(); }
    });
    document.addEventListener("mousedown", function (event) {
      if (!portMenu.hidden && !portMenu.contains(event.target) && !event.target.closest(".port-add")) closePortMenu(false);
    });
  }

  // Collapsible palette and simulator (remembered in this browser), for small screens.
  function toggleColumn(name, buttonId, collapse) {
    var button = document.getElementById(buttonId);
    root.classList.toggle(name, collapse);
    if (button) button.setAttribute("aria-expanded", collapse ? "false" : "true");
    try { window.localStorage.setItem("papo:" + name, collapse ? "1" : "0"); } catch (e) { /* private mode */ }
  }
  function remembered(name) {
    try { return window.localStorage.getItem("papo:" + name); } catch (e) { return null; }
  }
  on("btn-palette", "click", function () {
    toggleColumn("palette-collapsed", "btn-palette", !root.classList.contains("palette-collapsed"));
  });
  on("btn-simulator", "click", function () {
    toggleColumn("simulator-hidden", "btn-simulator", !root.classList.contains("simulator-hidden"));
  });
  if (remembered("palette-collapsed") === "1") toggleColumn("palette-collapsed", "btn-palette", true);
  if (remembered("simulator-hidden") === "1") toggleColumn("simulator-hidden", "btn-simulator", true);

  // ------------------------------------------------------------------ start

  var now = function () { return window.performance ? window.performance.now() : Date.now(); };
  var timings = {};
  var started = now();
  renderAll();
  timings["import"] = now() - started;
  started = now();
  fit();
  timings.fit = now() - started;
  updateHistoryButtons();
  setStatus("saved");

  window.papoEditor = {
    flowId: boot.flowId,
    ready: true,
    readyAt: now(),
    timings: timings,
    drawflow: editor,
    revision: function () { return state.revision; },
    save: save,
    highlight: highlight,
    clearHighlight: clearHighlight,
    focusBlock: focusBlock,
    fit: fit,
    undo: undo,
    redo: redo,
    document: function () { return JSON.parse(JSON.stringify(state.doc)); },
    addBlock: addBlock,
    deleteBlock: deleteBlock,
    openBlock: openBlockForm,
    addNext: addNext,
    setStart: setStart,
    setTests: setTests
  };
  document.dispatchEvent(new CustomEvent("papo:editor-ready", { detail: { flowId: boot.flowId } }));
})();
