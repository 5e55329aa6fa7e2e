/* The inbox: local times, the timeline kept at its newest message, the reply box.
 * Everything else (polling, actions) is htmx attributes in editor/templates/inbox. */
(function () {
  "use strict";

  function localize(root) {
    var lang = document.documentElement.lang || undefined;
    var today = new Date().toDateString();
    (root.querySelectorAll ? root : document).querySelectorAll("time[data-local]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment.getTime())) return;
      var options = moment.toDateString() === today
        ? { hour: "2-digit", minute: "2-digit" }
        : { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" };
      try {
        el.textContent = moment.toLocaleString(lang, options);
        el.title = moment.toLocaleString(lang);
      } catch (e) { /* unknown locale: keep the server's text */ }
    });
  }

  function timeline() { return document.querySelector("#conv-live .timeline"); }

  function toBottom() {
    var list = timeline();
    if (list) list.scrollTop = list.scrollHeight;
  }

  var keepAt = null;  // scrollTop to restore after a poll while reading older messages

  document.addEventListener("htmx:beforeSwap", function (event) {
    var list = timeline();
    if (!list || !event.detail.target || event.detail.target.id !== "conv-live") return;
    var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    var own = event.detail.requestConfig && event.detail.requestConfig.verb !== "get";
    keepAt = nearBottom || own ? null : list.scrollTop;
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    localize(event.target);
    var list = timeline();
    if (!list || !list.closest("#conv-live")) return;
    if (event.target.id === "conv-live" || event.target.contains(list)) {
      if (keepAt === null) toBottom(); else list.scrollTop = keepAt;
      keepAt = null;
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (form && form.id === "reply-form" && event.detail.successful) {
      form.reset();
      var box = form.querySelector("textarea");
      if (box) box.focus();
    }
  });

  // Choosing an agent filters at once. The listener sits on the document, not on the
  // freshly swapped form: requestSubmit() goes through htmx once it has processed the
  // form, and is a plain GET of the same URL before that.
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select && select.id === "inbox-assignee" && select.form) select.form.requestSubmit();
  });

  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (box && box.id === "reply-text" && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });

  function ready() { localize(document); toBottom(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
