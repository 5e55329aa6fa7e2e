// The "Equipe" page answers its forms with the page itself (a new password or token is
// shown once, in that answer). Make the address bar say /team again, so that reloading
// shows the page instead of sending the form a second time (a second user or token).
(function () {
  "use strict";
  if (window.location.pathname !== "/team" && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", "/team" + window.location.search.replace(/^\?$/, ""));
  }
})();
