/* papo — the flow editor's tests area (templates/flowtests/*.html; htmx does the requests).
 *
 * - Every request of the area waits for the editor's pending saves first
 *   (window.papoEditor.save()), so the server reads the draft the author sees; a form
 *   with data-confirm asks first.
 * - An answer carrying script.flowtests-result holds the draft's new tests list: it goes
 *   to the editor (papoEditor.setTests), which saves it like any change (undo works).
 * - After the editor saves, the panel is reloaded only if the tests it lists changed
 *   (an undo, a redo), so nothing moves under the pointer while the author edits.
 * - The toolbar's "Testes" shows the panel (and the simulator column, if hidden; the side
 *   panel over it closes).
 * - "Cancelar" closes the "Salvar como teste" form or a test's "Editar passos" form.
 */
(function () {
  "use strict";
  if (window.papoFlowTests) return;

  function area() { return document.getElementById("flowtests-area"); }
  function inArea(elt) { return !!(elt && elt.closest && elt.closest("#flowtests-area, .flowtests-refused")); }
  function editor() { return window.papoEditor || null; }

  function saveEditor() {
    var ed = editor();
    if (!ed || typeof ed.save !== "function") return Promise.resolve();
    return Promise.resolve(ed.save()).catch(function () { /* the editor reports it */ });
  }

  document.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail.elt;
    if (!inArea(elt)) return;
    var form = elt.closest("form");
    var question = form && form.getAttribute("data-confirm");
    event.preventDefault();
    if (question && !window.confirm(question)) return;
    saveEditor().then(function () { event.detail.issueRequest(true); });
  });

  function applyResults(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll("script.flowtests-result:not([data-done])").forEach(function (script) {
      script.setAttribute("data-done", "1");
      var result;
      try { result = JSON.parse(script.textContent); } catch (e) { return; }
      var ed = editor();
      if (ed && typeof ed.setTests === "function") ed.setTests(result.tests);
      var saveBox = document.getElementById("flowtests-save");
      if (saveBox) saveBox.innerHTML = "";
    });
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    var root = area();
    if (root) applyResults(root);
    var target = event.detail && event.detail.target;
    if (target && target.id === "flowtests-save") {
      var input = document.getElementById("flowtests-name");
      if (input) { input.focus(); input.select(); }
    }
  });

  document.addEventListener("click", function (event) {
    var editCancel = event.target.closest && event.target.closest("[data-flowtests-cancel-edit]");
    if (editCancel) {
      var holder = editCancel.closest(".flowtests-edit");
      if (holder) holder.innerHTML = "";
      return;
    }
    var cancel = event.target.closest && event.target.closest("[data-flowtests-cancel]");
    if (!cancel) return;
    var box = document.getElementById("flowtests-save");
    if (box) box.innerHTML = "";
  });

  function testNames() {
    var ed = editor();
    var doc = ed && typeof ed.document === "function" ? ed.document() : null;
    return ((doc && doc.tests) || []).map(function (t) { return t.name; }).join("\n");
  }

  function refreshIfChanged() {
    var panel = document.getElementById("flowtests");
    var root = area();
    if (!panel || !root || !panel.hasAttribute("data-names")) return;
    if (panel.getAttribute("data-names") === testNames()) return;
    window.htmx.ajax("GET", root.getAttribute("data-panel-url"), { target: "#flowtests", swap: "outerHTML" });
  }
  document.addEventListener("papo:saved", refreshIfChanged);

  // The toolbar's "Testes": bring the simulator column back if hidden, then the panel.
  // The side panel (a block's form…) may cover that column: it closes, as it does when
  // "Versões" or "Validar" take its place.
  function showPanel() {
    var side = document.getElementById("panel");
    var close = document.getElementById("btn-close-panel");
    if (side && !side.hidden && close) close.click();
    var root = document.getElementById("flow-editor");
    if (root && root.classList.contains("simulator-hidden")) {
      var toggle = document.getElementById("btn-simulator");
      if (toggle) toggle.click();
    }
    var panel = document.getElementById("flowtests");
    if (!panel) return;
    panel.scrollIntoView({ block: "start" });
    var title = document.getElementById("flowtests-title");
    if (title) { title.setAttribute("tabindex", "-1"); title.focus(); }
  }
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("#btn-tests")) showPanel();
  });

  window.papoFlowTests = { refresh: refreshIfChanged, show: showPanel };
})();
