// The profile page follows its profile: when the read model shows a newer version, the
// page reloads, unless a form on it is being filled in.
(function () {
  "use strict";
  var page = document.getElementById("profile");
  if (!page) return;
  var shown = page.dataset.version;
  var editing = false;
  document.addEventListener("input", function () { editing = true; });
  document.addEventListener("toggle", function () { editing = true; }, true);
  function look() {
    if (document.hidden || editing) return;
    fetch("/console/profiles/" + page.dataset.profile + "/version", {
      credentials: "same-origin", headers: { accept: "application/json" }
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (body) {
      if (body && body.version !== null && String(body.version) !== shown) {
        window.location.reload();
      }
    }).catch(function () {});
  }
  setInterval(look, 3000);
})();
