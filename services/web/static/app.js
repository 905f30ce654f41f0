// Community Exchange web app: a little plain JavaScript, no library.
// - A pending posting's status refreshes itself until decided (data-refresh = seconds).
// - The need form shows only the fields of the kind chosen.
(function () {
  "use strict";
  function refreshStatus(el) {
    var seconds = parseFloat(el.getAttribute("data-refresh")) || 2;
    setTimeout(function () {
      fetch(window.location.href, { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var main = doc.getElementById("main");
          if (main) { document.getElementById("main").innerHTML = main.innerHTML; wire(); }
        })
        .catch(function () { refreshStatus(el); });
    }, seconds * 1000);
  }
  function kindSwitch(form) {
    var radios = form.querySelectorAll('input[name="kind"]');
    if (!radios.length) { return; }
    function show() {
      var chosen = form.querySelector('input[name="kind"]:checked');
      form.querySelectorAll("fieldset[class^='kind-']").forEach(function (fs) {
        var on = chosen && fs.className === "kind-" + chosen.value;
        fs.hidden = !on;
        fs.disabled = !on;
      });
    }
    radios.forEach(function (r) { r.addEventListener("change", show); });
    show();
  }
  function wire() {
    document.querySelectorAll("[data-refresh]").forEach(refreshStatus);
    document.querySelectorAll("form").forEach(kindSwitch);
  }
  document.addEventListener("DOMContentLoaded", wire);
})();
