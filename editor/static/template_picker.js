/* The WhatsApp template picker (editor/templates/_template_picker.html): when a template
 * is chosen, one text field per {{n}} parameter (values kept), and the body as the
 * customer will read it, its {{n}} filled from the fields as they are typed.
 * Event delegation: pickers arrive in htmx swaps (block forms, the inbox). */
(function () {
  "use strict";

  function fill(body, values) {
    return body.replace(/\{\{\s*(\d{1,2})\s*\}\}/g, function (whole, n) {
      var value = values[Number(n) - 1];
      return value ? value : whole;
    });
  }

  function update(picker) {
    var select = picker.querySelector("[data-template-choice]");
    var list = picker.querySelector("[data-template-params]");
    var preview = picker.querySelector("[data-template-preview]");
    var box = picker.querySelector("[data-template-preview-box]");
    if (!select || !list) return;
    var option = select.options[select.selectedIndex];
    var count = option ? Number(option.getAttribute("data-params") || 0) : 0;
    var body = option ? option.getAttribute("data-body") || "" : "";
    var inputs = list.querySelectorAll("[data-template-param]");
    var values = Array.prototype.map.call(inputs, function (input) { return input.value; });
    if (inputs.length !== count) {
      while (list.firstChild) list.removeChild(list.firstChild);
      for (var n = 1; n <= count; n++) {
        var item = document.createElement("li");
        var label = document.createElement("label");
        var input = document.createElement("input");
        input.type = "text";
        input.id = list.getAttribute("data-id") + n;
        input.name = list.getAttribute("data-name");
        input.maxLength = 1024;
        input.setAttribute("data-template-param", "");
        input.value = values[n - 1] || "";
        label.htmlFor = input.id;
        label.textContent = list.getAttribute("data-label-pattern").replace("{n}", "{{" + n + "}}");
        item.appendChild(label);
        item.appendChild(input);
        list.appendChild(item);
      }
      values = values.slice(0, count);
    }
    if (preview) preview.textContent = fill(body, values);
    if (box) box.hidden = !body;
  }

  document.addEventListener("change", function (event) {
    var picker = event.target.closest && event.target.closest("[data-template-picker]");
    if (picker && event.target.matches("[data-template-choice]")) update(picker);
  });
  document.addEventListener("input", function (event) {
    var picker = event.target.closest && event.target.closest("[data-template-picker]");
    if (picker && event.target.matches("[data-template-param]")) update(picker);
  });

  // The inbox: the composer follows the 24-hour window shown in the live part (polled).
  function followWindow() {
    var live = document.querySelector("[data-window-state]");
    var text = document.getElementById("reply-form");
    var template = document.getElementById("template-form");
    if (!live || !text || !template) return;
    var closed = live.getAttribute("data-window-state") === "closed";
    text.hidden = closed;
    template.hidden = !closed;
  }
  document.addEventListener("htmx:afterSettle", followWindow);
  document.addEventListener("DOMContentLoaded", followWindow);
})();
