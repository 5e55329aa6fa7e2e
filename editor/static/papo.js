/* papo — small glue shared by every page (htmx does the rest).
 *
 * window.papo.csrfToken()            the page's CSRF token
 * window.papo.toast(text, {error})   a dismissable notice, announced to screen readers
 * window.papo.fetchJSON(url, opts)   fetch with the CSRF header and JSON in/out; rejects
 *                                    with an Error carrying .status and .body (the API's
 *                                    {"error": {...}}) on a non-2xx answer
 */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function message(name, fallback) {
    var body = document.body;
    return (body && body.dataset && body.dataset[name]) || fallback;
  }

  function toast(text, options) {
    options = options || {};
    var box = document.getElementById("toasts");
    if (!box) { window.alert(text); return; }
    var item = document.createElement("div");
    item.className = "toast" + (options.error ? " toast-error" : "");
    item.setAttribute("role", options.error ? "alert" : "status");
    var span = document.createElement("span");
    span.textContent = text;  // never innerHTML: the text may come from customers
    var close = document.createElement("button");
    close.type = "button";
    close.setAttribute("aria-label", message("msgClose", "Fechar"));
    close.textContent = "×";
    close.addEventListener("click", function () { item.remove(); });
    item.appendChild(span);
    item.appendChild(close);
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, options.error ? 10000 : 5000);
  }

  // The readable text of an error answer: JSON {"error": {"message"}} or an HTML fragment.
  function errorText(xhr) {
    var type = xhr.getResponseHeader && xhr.getResponseHeader("Content-Type") || "";
    var body = xhr.responseText || "";
    if (type.indexOf("json") !== -1) {
      try { return JSON.parse(body).error.message; } catch (e) { /* fall through */ }
    }
    if (body && body.length < 4000) {
      var doc = new DOMParser().parseFromString(body, "text/html");
      var picked = doc.querySelector('[role="alert"], .error-page p, main p');
      var text = (picked || doc.body).textContent.trim();
      if (text) return text;
    }
    return message("msgError", "Algo deu errado. Tente de novo.");
  }

  function fetchJSON(url, opts) {
    opts = opts || {};
    var headers = Object.assign({ "Accept": "application/json", "X-CSRFToken": csrfToken() },
                                opts.headers || {});
    var init = Object.assign({}, opts, { headers: headers, credentials: "same-origin" });
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.json);
      delete init.json;
    }
    return fetch(url, init).then(function (response) {
      if (response.status === 204) return null;
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
        if (!response.ok) {
          var err = new Error((data && data.error && data.error.message) || response.statusText);
          err.status = response.status;
          err.body = data;
          err.response = response;
          throw err;
        }
        return data;
      });
    });
  }

  window.papo = { csrfToken: csrfToken, toast: toast, fetchJSON: fetchJSON };

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status === 401 && !xhr.getResponseHeader("HX-Redirect")) {
      window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      return;
    }
    toast(errorText(xhr), { error: true });
  });

  document.addEventListener("htmx:sendError", function () {
    toast(message("msgNetwork", "Sem conexão com o servidor."), { error: true });
  });
})();
