/* The "Configurações" page: "Repetir nos dias úteis" copies Monday's ranges to Tuesday
 * through Friday (the form works without it; this only saves typing). */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-weekdays]");
    if (!button) return;
    var from = document.querySelectorAll('tr[data-day="mon"] input.hours-time');
    ["tue", "wed", "thu", "fri"].forEach(function (day) {
      var to = document.querySelectorAll('tr[data-day="' + day + '"] input.hours-time');
      for (var i = 0; i < to.length; i++) to[i].value = from[i] ? from[i].value : "";
    });
    var status = document.getElementById("copy-status");
    if (status) status.textContent = button.getAttribute("data-done");
  });
})();
