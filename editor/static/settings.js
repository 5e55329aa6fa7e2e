/* The "Configurações" page: "Repetir nos dias úteis" copies Monday's ranges to Tuesday
 * through Friday, and typing a time ticks "Usar horário de atendimento" (the form works
 * without this script; it only saves typing and a mistake). */
(function () {
  "use strict";
  // Typing a time means the schedule is wanted: tick "Usar horário de atendimento", so
  // nobody fills the whole week and saves it switched off by mistake.
  document.addEventListener("input", function (event) {
    if (!event.target.matches || !event.target.matches("input.hours-time")) return;
    var enabled = document.getElementById("f-enabled");
    if (enabled && event.target.value) enabled.checked = true;
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-weekdays]");
    if (!button) return;
    var from = document.querySelectorAll('tr[data-day="mon"] input.hours-time');
    ["tue", "wed", "thu", "fri"].forEach(function (day) {
      var to = document.querySelectorAll('tr[data-day="' + day + '"] input.hours-time');
      for (var i = 0; i < to.length; i++) to[i].value = from[i] ? from[i].value : "";
    });
    var enabled = document.getElementById("f-enabled");
    if (enabled) enabled.checked = true;
    var status = document.getElementById("copy-status");
    if (status) status.textContent = button.getAttribute("data-done");
  });
})();
