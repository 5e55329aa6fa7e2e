/* papo web chat: local clock times, no duplicate messages, stay scrolled to the newest
 * one, and the message box: emptied as a message leaves (put back if it was refused),
 * with a new message id for the next one. htmx does the rest. */
(function () {
  "use strict";

  function chatLog() { return document.getElementById("chat-log"); }

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) {
        el.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      }
    });
  }

  // Answers that cross (a poll and a send, two quick sends) can bring the same message:
  // each carries everything after the same marker, in order, so keeping the first copy
  // keeps the order.
  function dedupe(log) {
    var seen = {};
    log.querySelectorAll("[data-id]").forEach(function (el) {
      if (seen[el.dataset.id]) { el.remove(); } else { seen[el.dataset.id] = true; }
    });
  }

  var shown = 0;
  function refresh() {
    var log = chatLog();
    if (!log) return;
    dedupe(log);
    localTimes(log);
    var count = log.children.length;
    if (count !== shown) { log.scrollTop = log.scrollHeight; shown = count; }
  }

  // A uuid v4 (crypto.randomUUID exists only on https and localhost).
  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  var inFlight = new WeakMap();  // request → the text it carries

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    var isForm = elt.id === "chat-form";
    if (!isForm && !(elt.classList && elt.classList.contains("webchat-choice-form"))) return;
    // The values are already collected: the next message gets its own id (a repeated
    // submit of the same request keeps the id and is stored once by the server).
    var id = document.getElementById("chat-message-id");
    if (id) id.value = newId();
    if (isForm) {
      inFlight.set(event.detail.xhr, elt.elements.text.value);
      elt.elements.text.value = "";
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (elt.id !== "chat-form") return;
    var xhr = event.detail.xhr;
    var text = inFlight.get(xhr);
    inFlight.delete(xhr);
    // Refused (too fast, network): give the customer the text back to send again.
    if (xhr && xhr.status !== 200 && text && !elt.elements.text.value) {
      elt.elements.text.value = text;
    }
  });

  document.addEventListener("DOMContentLoaded", refresh);
  document.addEventListener("htmx:afterSettle", refresh);
})();
