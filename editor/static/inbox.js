/* The inbox: local times, the timeline kept at its newest message, the reply box.
 * Everything else (polling, actions) is htmx attributes in editor/templates/inbox. */
(function () {
  "use strict";
  // Once per page: htmx runs this file again when Back/Forward put a saved inbox page
  // back (its body carries this script tag); its listeners on the document are already there.
  if (window.papoInboxReady) return;
  window.papoInboxReady = true;

  function localize(root) {
    var lang = document.documentElement.lang || undefined;
    // Times in the business's zone (PAPO_TIMEZONE), whatever the reader's computer says.
    var timeZone = document.body.getAttribute("data-timezone") || undefined;
    function day(moment) {
      try { return moment.toLocaleDateString("en-CA", { timeZone: timeZone }); }
      catch (e) { return moment.toDateString(); }
    }
    var today = day(new Date());
    (root.querySelectorAll ? root : document).querySelectorAll("time[data-local]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment.getTime())) return;
      var options = day(moment) === today
        ? { hour: "2-digit", minute: "2-digit", timeZone: timeZone }
        : { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit", timeZone: timeZone };
      try {
        el.textContent = moment.toLocaleString(lang, options);
        el.title = moment.toLocaleString(lang, { timeZone: timeZone });
      } catch (e) { /* unknown locale or zone: keep the server's text */ }
    });
  }

  function timeline() { return document.querySelector("#conv-live .timeline"); }

  function toBottom() {
    var list = timeline();
    if (list) list.scrollTop = list.scrollHeight;
  }

  var keepAt = null;  // scrollTop to restore after a poll while reading older messages

  // A live refresh never resets a control in use nor swaps a button under the pointer
  // (DESIGN §10.8): while an agent is choosing in a select, typing in a field of the live
  // part, or has the pointer on its actions, the poll's new content waits; the next poll
  // (2 s later, same change marker, so the same answer) brings it.
  function inUse(live) {
    var active = document.activeElement;
    if (active && live.contains(active) && /^(SELECT|INPUT|TEXTAREA)$/.test(active.tagName)) return true;
    if (live.querySelector(".conv-more-menu.is-open")) return true;  // "Mais ações" is open
    var actions = live.querySelector(".conv-actions");
    return !!(actions && actions.matches(":hover"));
  }

  // "Mais ações" (a phone's actions that do not fit the row): a disclosure button. Enter
  // or Space opens it (a real button), Tab walks into it, Escape closes it and gives the
  // focus back to the button, a click elsewhere closes it.
  function moreMenu(open, focusToggle) {
    var toggle = document.getElementById("conv-more-toggle");
    var menu = document.getElementById("conv-more");
    if (!toggle || !menu) return;
    menu.classList.toggle("is-open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open && focusToggle) toggle.focus();
  }

  document.addEventListener("click", function (event) {
    var target = event.target && event.target.closest ? event.target : null;
    if (!target) return;
    if (target.closest("#conv-more-toggle")) {
      var menu = document.getElementById("conv-more");
      moreMenu(!(menu && menu.classList.contains("is-open")), false);
    } else if (!target.closest("#conv-more")) {
      moreMenu(false, false);
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target || !event.target.closest) return;
    var menu = document.getElementById("conv-more");
    if (menu && menu.classList.contains("is-open") &&
        (event.target.closest("#conv-more") || event.target.closest("#conv-more-toggle"))) {
      event.preventDefault();
      moreMenu(false, true);
    }
  });

  // The list and the conversation switch without a page load (the links swap the
  // conversation pane and push its address). The list's own requests (its poll, tabs,
  // scopes, search) follow the address shown, so the chosen conversation stays marked.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    var target = event.detail.target;
    if (!target || !(target.id === "inbox-list" || target.id === "inbox-pane")) return;
    if (!/^\/inbox(\/\d+)?$/.test(window.location.pathname)) return;
    var url = new URL(event.detail.path, window.location.origin);
    if (url.pathname === window.location.pathname || !elt) return;
    event.detail.path = window.location.pathname + url.search;
  });

  document.addEventListener("click", function (event) {
    var link = event.target && event.target.closest ? event.target.closest("#inbox-list .conv-link") : null;
    if (!link) return;
    document.querySelectorAll("#inbox-list .conv-link[aria-current]").forEach(function (other) {
      other.removeAttribute("aria-current");
    });
    link.setAttribute("aria-current", "page");
  });

  // After a switch, the focus goes where the agent now is: the conversation's name, or
  // back on the conversation they came from in the list.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (!event.target || event.target.id !== "conv-pane") return;
    var title = document.getElementById("conv-title");
    var back = title ? null : document.querySelector("#inbox-list .conv-link[aria-current]") ||
      document.getElementById("inbox-title");
    var where = title || back;
    if (where) {
      if (where.tagName !== "A" && !where.hasAttribute("tabindex")) where.setAttribute("tabindex", "-1");
      where.focus({ preventScroll: where === title });
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var poll = event.detail.requestConfig && event.detail.requestConfig.verb === "get";
    if (poll && target && target.id === "conv-live" && event.detail.xhr.status === 200 && inUse(target)) {
      event.detail.shouldSwap = false;
      return;
    }
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

  // Drafts: a reply being typed is kept per conversation (localStorage) across navigation.
  function draftKey() {
    var conv = document.getElementById("conversation");
    return conv ? "papo.draft." + conv.getAttribute("data-conversation-id") : null;
  }

  function restoreDraft() {
    var key = draftKey();
    var box = document.getElementById("reply-text");
    if (!key || !box || box.value) return;
    try { box.value = localStorage.getItem(key) || ""; } catch (e) { /* storage off */ }
  }

  document.addEventListener("input", function (event) {
    if (!event.target || event.target.id !== "reply-text") return;
    var key = draftKey();
    if (!key) return;
    try {
      if (event.target.value) localStorage.setItem(key, event.target.value);
      else localStorage.removeItem(key);
    } catch (e) { /* storage off: the draft lives as long as the page */ }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!form || !event.detail.successful) return;
    if (form.id === "reply-form") {
      var key = draftKey();
      try { if (key) localStorage.removeItem(key); } catch (e) { /* storage off */ }
    }
    if (form.id === "reply-form" || form.id === "note-form" || form.id === "transfer-form") {
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
    if (select && (select.id === "inbox-assignee" || select.id === "inbox-sort") && select.form) {
      select.form.requestSubmit();
    }
  });

  // An attachment is checked against WhatsApp's limits before it is uploaded (the server
  // checks again); with a file chosen the text is optional (it becomes the caption).
  function checkAttachment(input) {
    var file = input.files && input.files[0];
    var problem = "";
    if (file) {
      var limits = {};
      try { limits = JSON.parse(input.getAttribute("data-limits") || "{}"); } catch (e) { /* none */ }
      var type = (file.type || "").toLowerCase();
      if (type === "image/jpg") type = "image/jpeg";
      if (!(type in limits)) problem = input.getAttribute("data-wrong-type");
      else if (file.size > limits[type]) problem = input.getAttribute("data-too-big");
    }
    input.setCustomValidity(problem || "");
    var out = document.getElementById("reply-file-problem");
    if (out) out.textContent = problem || "";
    var box = document.getElementById("reply-text");
    if (box) box.required = !file;
  }

  document.addEventListener("change", function (event) {
    if (event.target && event.target.id === "reply-file") checkAttachment(event.target);
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (form && form.id === "reply-form" && event.detail.successful) {
      var input = document.getElementById("reply-file");
      if (input) checkAttachment(input);  // reset() emptied it: the text is required again
    }
  });

  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (box && box.id === "reply-text" && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });

  document.addEventListener("htmx:afterSettle", restoreDraft);

  // "Avisos" (DESIGN §10.8): when this agent's unread count (the list's data-unread) grows,
  // a short sound and a browser notification. Off until the agent turns it on; the
  // choice is kept per agent in this browser.
  function alertsKey() {
    var toggle = document.getElementById("inbox-alerts");
    return toggle ? "papo.alerts." + toggle.getAttribute("data-me") : null;
  }

  function alertsOn() {
    var key = alertsKey();
    try { return !!key && localStorage.getItem(key) === "on"; } catch (e) { return false; }
  }

  function showAlertsState() {
    var toggle = document.getElementById("inbox-alerts");
    if (toggle) toggle.setAttribute("aria-pressed", alertsOn() ? "true" : "false");
  }

  document.addEventListener("click", function (event) {
    var toggle = event.target && event.target.closest ? event.target.closest("#inbox-alerts") : null;
    if (!toggle) return;
    var key = alertsKey();
    var on = !alertsOn();
    try { if (on) localStorage.setItem(key, "on"); else localStorage.removeItem(key); } catch (e) { /* off */ }
    if (on && window.Notification && Notification.permission === "default") Notification.requestPermission();
    showAlertsState();
  });

  function beep() {
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      var ctx = new Ctx();
      var tone = ctx.createOscillator();
      var gain = ctx.createGain();
      tone.frequency.value = 880;
      gain.gain.value = 0.08;
      tone.connect(gain);
      gain.connect(ctx.destination);
      tone.start();
      tone.stop(ctx.currentTime + 0.15);
    } catch (e) { /* no audio */ }
  }

  var lastUnread = null;
  function checkUnread() {
    var list = document.getElementById("inbox-list");
    if (!list) return;
    var count = parseInt(list.getAttribute("data-unread"), 10) || 0;
    if (lastUnread !== null && count > lastUnread && alertsOn()) {
      beep();
      if (window.Notification && Notification.permission === "granted") {
        try { new Notification(document.title, { tag: "papo-inbox" }); } catch (e) { /* unsupported */ }
      }
    }
    lastUnread = count;
  }

  document.addEventListener("htmx:afterSettle", function () { showAlertsState(); checkUnread(); });

  function ready() { localize(document); toBottom(); restoreDraft(); showAlertsState(); checkUnread(); }
  // Back and forward between the list and a conversation: htmx puts the saved page back.
  document.addEventListener("htmx:historyRestore", ready);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
