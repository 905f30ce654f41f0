// Community Exchange web app: a little plain JavaScript, no library.
// - Live: the page listens to the person's event stream (/live, Server-Sent Events) and, on any
//   event, re-reads itself and swaps in its live regions ([data-live]); a region holding the
//   focus (someone typing) is left alone. The browser reconnects by itself with Last-Event-ID.
// - A pending posting's status refreshes itself until decided (data-refresh = seconds).
// - The need form shows only the fields of the kind chosen.
(function () {
  "use strict";
  var pending = null;

  function swapLiveRegions(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    doc.querySelectorAll("[data-live]").forEach(function (fresh) {
      var name = fresh.getAttribute("data-live");
      var old = document.querySelector('[data-live="' + name + '"]');
      if (!old) {
        if (name === "posting") {
          var main = document.getElementById("main");
          main.insertBefore(fresh, main.firstChild);
        }
        return;
      }
      if (old.contains(document.activeElement) && document.activeElement !== document.body) {
        return;
      }
      old.replaceWith(fresh);
    });
    wire(document);
  }

  function reread() {
    if (pending) { return; }
    pending = setTimeout(function () {
      pending = null;
      fetch(window.location.pathname + window.location.search, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (html) { if (html) { swapLiveRegions(html); } })
        .catch(function () { /* the next event tries again */ });
    }, 150);
  }

  function listen() {
    var types = (document.body.getAttribute("data-events") || "").split(" ").filter(Boolean);
    if (!types.length || !window.EventSource) { return; }
    var source = new EventSource("/live");
    types.forEach(function (type) { source.addEventListener(type, reread); });
  }

  function refreshStatus(el) {
    var seconds = parseFloat(el.getAttribute("data-refresh")) || 2;
    el.removeAttribute("data-refresh");
    setTimeout(reread, seconds * 1000);
  }

  function kindSwitch(form) {
    var radios = form.querySelectorAll('input[name="kind"]');
    if (!radios.length || form.getAttribute("data-wired")) { return; }
    form.setAttribute("data-wired", "1");
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

  function wire(root) {
    root.querySelectorAll("[data-refresh]").forEach(refreshStatus);
    root.querySelectorAll("form").forEach(kindSwitch);
  }

  // A sign-in QR code opens "/#token=…": the fragment never reaches a server; it is read here,
  // removed from the address bar and history at once, and the sign-in form is sent.
  function signInFromFragment() {
    var match = /^#token=([A-Za-z0-9_\-]+)$/.exec(window.location.hash);
    var field = document.getElementById("f-token");
    if (!match || !field) { return; }
    history.replaceState(null, "", window.location.pathname);
    field.value = match[1];
    field.form.submit();
  }

  document.addEventListener("DOMContentLoaded", function () {
    signInFromFragment();
    wire(document);
    listen();
  });
})();
