/* papo — the simulator pane's glue (templates/simulator/*.html; htmx does the requests).
 *
 * - Every simulator action waits for the editor's pending saves (window.papoEditor.save(),
 *   when the pane sits in the flow editor), so the run uses the latest draft; actions run
 *   one after the other, in the order they were clicked. What is typed meanwhile in the
 *   message box survives the pane's refresh (hx-preserve).
 * - After each answer: highlight the block the run stands at (papoEditor.highlight), keep
 *   the chat scrolled to the newest message, put the cursor back in the message box.
 * - Enter sends the message (Shift+Enter: new line).
 * - After the editor saves (event "papo:saved"), the draft's errors are refreshed.
 * - Buttons with data-focus-block show that block on the canvas (papoEditor.focusBlock).
 */
(function () {
  "use strict";
  if (window.papoSimulator) return;  // the pane may be swapped in more than once

  var queue = Promise.resolve();
  var pending = 0;
  var refocus = false;

  function editor() { return window.papoEditor || null; }
  function stateElement() { return document.getElementById("sim-state"); }
  function pane() { return document.querySelector("section.sim"); }
  function inSimulator(elt) { return !!(elt && elt.closest && elt.closest("section.sim")); }

  function callEditor(method, arg) {
    var ed = editor();
    if (!ed || typeof ed[method] !== "function") return undefined;
    try { return ed[method](arg); } catch (err) { console.warn("papoEditor." + method, err); }
    return undefined;
  }

  function saveEditor() {
    // A failed save is the editor's to report; the run then uses the last saved draft.
    return Promise.resolve(callEditor("save")).catch(function () {});
  }

  function busy(delta) {
    pending += delta;
    var section = pane();
    if (section) section.classList.toggle("sim-busy", pending > 0);
  }

  function showState() {
    var state = stateElement();
    if (!state) return;
    var block = state.getAttribute("data-current-block");
    if (block) callEditor("highlight", block);
    else callEditor("clearHighlight");
    var chat = state.querySelector(".sim-chat");
    if (chat) chat.scrollTop = chat.scrollHeight;
    if (refocus) {
      refocus = false;
      var box = document.getElementById("sim-text");
      if (box) box.focus();
    }
  }

  // Serialize the pane's POSTs behind the editor's save. htmx would send each at once
  // (and into a pane an earlier answer may have replaced), so the request is cancelled
  // here and sent again, in turn, with the values the form had when it was clicked.
  document.addEventListener("htmx:confirm", function (event) {
    var detail = event.detail;
    var elt = detail.elt;
    if (!inSimulator(elt) || String(detail.verb).toLowerCase() !== "post") return;
    event.preventDefault();
    var values = window.htmx.values(elt);
    var path = detail.path;
    var fromMessageBox = !!elt.closest(".sim-composer, .sim-options");
    var box = elt.querySelector && elt.querySelector("#sim-text");
    if (box) box.value = "";  // sent: the box is free for the next message at once
    busy(1);
    queue = queue.then(saveEditor).then(function () {
      if (!stateElement()) return undefined;
      refocus = fromMessageBox;
      return window.htmx.ajax("POST", path, { target: "#sim-state", swap: "outerHTML", values: values });
    }).catch(function (err) {
      console.warn("simulator", err);
    }).then(function () { busy(-1); });
  });

  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && (elt.id === "sim-state" || (elt.querySelector && elt.querySelector("#sim-state")))) showState();
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (!target || target.id !== "sim-text" || event.key !== "Enter") return;
    if (event.shiftKey || event.isComposing) return;
    event.preventDefault();
    var form = target.form;
    if (!form || !target.value.trim()) return;
    if (form.requestSubmit) form.requestSubmit(); else window.htmx.trigger(form, "submit");
  });

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-focus-block]");
    if (!link || !inSimulator(link)) return;
    callEditor("focusBlock", link.getAttribute("data-focus-block"));
  });

  function refreshFindings() {
    var section = pane();
    if (!section || !document.getElementById("sim-findings")) return;
    window.htmx.ajax("GET", section.getAttribute("data-findings-url"),
                     { target: "#sim-findings", swap: "outerHTML" });
  }
  // editor.js dispatches "papo:saved" on document (not bubbling); accept it on window too.
  document.addEventListener("papo:saved", refreshFindings);
  window.addEventListener("papo:saved", function (event) {
    if (event.target === window) refreshFindings();
  });

  window.papoSimulator = { refresh: showState };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", showState);
  else showState();
})();
