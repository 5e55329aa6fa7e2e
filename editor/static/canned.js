/* The reply box's "/" picker (DESIGN §10.3, docs/SUPPORT_DESK.md "Canned responses").
 *
 * Typing "/" at the start of the reply box or after a space opens a listbox of the canned
 * responses, already rendered by the server for this conversation (contact name and
 * variables filled in: GET /inbox/<id>/canned, editor/desk.py). Typing on filters them by
 * shortcut; ↑/↓ move, Enter (or a click) puts the text in place of "/shortcut" for editing
 * before sending, Esc closes. The box is an ARIA combobox; the choice is announced. */
(function () {
  "use strict";

  var TOKEN = /(^|\s)\/([a-z0-9_-]{0,32})$/i;
  var open = null;  // {start, query, options: [li], active: index} while the list shows
  var dismissed = null;  // where the "/" closed with Esc starts: not reopened for it
  var loading = 0;  // the newest request: an older answer arriving late is dropped

  function box() { return document.getElementById("reply-text"); }
  function list() { return document.getElementById("canned-list"); }

  function token(el) {
    var before = el.value.slice(0, el.selectionStart);
    var found = TOKEN.exec(before);
    if (!found || el.selectionStart !== el.selectionEnd) return null;
    return { start: before.length - found[2].length - 1, query: found[2].toLowerCase() };
  }

  function say(text) {
    var status = document.getElementById("canned-status");
    if (status) status.textContent = text;
  }

  function close() {
    var el = box();
    var ul = list();
    open = null;
    if (ul) { ul.hidden = true; ul.innerHTML = ""; }
    if (el) {
      el.setAttribute("aria-expanded", "false");
      el.removeAttribute("aria-activedescendant");
    }
  }

  function highlight(index) {
    var el = box();
    if (!open || !el) return;
    open.options.forEach(function (li, i) {
      li.setAttribute("aria-selected", i === index ? "true" : "false");
      li.classList.toggle("is-active", i === index);
    });
    open.active = index;
    var li = open.options[index];
    if (li) {
      el.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    } else {
      el.removeAttribute("aria-activedescendant");
    }
  }

  function filter(query) {
    var ul = list();
    var el = box();
    if (!open || !ul || !el) return;
    open.query = query;
    var shown = [];
    Array.prototype.forEach.call(ul.querySelectorAll("[role=option]"), function (li) {
      var hit = li.getAttribute("data-shortcut").indexOf(query) !== -1;
      li.hidden = !hit;
      if (hit) shown.push(li);
    });
    // shortcuts that start with what was typed first
    shown.sort(function (a, b) {
      var sa = a.getAttribute("data-shortcut").indexOf(query) === 0 ? 0 : 1;
      var sb = b.getAttribute("data-shortcut").indexOf(query) === 0 ? 0 : 1;
      return sa - sb;
    });
    shown.forEach(function (li) { ul.appendChild(li); });
    open.options = shown;
    ul.hidden = shown.length === 0;
    el.setAttribute("aria-expanded", shown.length ? "true" : "false");
    highlight(shown.length ? 0 : -1);
    var status = document.getElementById("canned-status");
    if (status) {
      say(shown.length ? status.getAttribute("data-msg-count").replace("{count}", shown.length)
                       : status.getAttribute("data-msg-none"));
    }
  }

  function start(el, found) {
    var url = el.getAttribute("data-canned-url");
    if (!url) return;
    var mine = ++loading;
    open = { start: found.start, query: found.query, options: [], active: -1 };
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        if (mine !== loading || !open || box() !== el) return;
        var ul = list();
        ul.innerHTML = html;
        var now = token(el);
        if (!now || now.start !== open.start) { close(); return; }
        filter(now.query);
      })
      .catch(function () { close(); });
  }

  function insert(li) {
    var el = box();
    if (!open || !el || !li) return;
    var text = li.getAttribute("data-text");
    var end = el.selectionStart;
    el.value = el.value.slice(0, open.start) + text + el.value.slice(end);
    var caret = open.start + text.length;
    close();
    el.focus();
    el.setSelectionRange(caret, caret);
    say(text);
    el.dispatchEvent(new Event("input", { bubbles: true }));  // the draft keeps it
  }

  document.addEventListener("input", function (event) {
    var el = event.target;
    if (!el || el.id !== "reply-text") return;
    var found = token(el);
    if (!found) { dismissed = null; if (open) close(); return; }
    if (dismissed === found.start) return;
    if (!open || open.start !== found.start) start(el, found);
    else filter(found.query);
  });

  document.addEventListener("keydown", function (event) {
    var el = event.target;
    if (!el || el.id !== "reply-text" || !open) return;
    var count = open.options.length;
    if (event.key === "ArrowDown" && count) {
      event.preventDefault();
      highlight((open.active + 1) % count);
    } else if (event.key === "ArrowUp" && count) {
      event.preventDefault();
      highlight((open.active - 1 + count) % count);
    } else if (event.key === "Enter" && !event.ctrlKey && !event.metaKey && !event.shiftKey && count) {
      event.preventDefault();
      insert(open.options[open.active]);
    } else if (event.key === "Escape") {
      event.preventDefault();
      dismissed = open.start;
      close();
      say("");
    } else if (event.key === "Tab") {
      close();
    }
  });

  // A pointer works too (the list is also reachable without one).
  document.addEventListener("mousedown", function (event) {
    var li = event.target && event.target.closest ? event.target.closest("#canned-list [role=option]") : null;
    if (!li) return;
    event.preventDefault();  // the box keeps the focus
    insert(li);
  });

  document.addEventListener("focusout", function (event) {
    if (event.target && event.target.id === "reply-text" && open) close();
  });

  // Another conversation swapped in: start afresh.
  document.addEventListener("htmx:afterSwap", function () {
    if (open && !document.body.contains(list())) { open = null; }
    dismissed = null;
  });
})();
