// The Tally console's one script (ADR 0024): live figures over server-sent events, and a
// confirmation before a destructive form is sent. The pages work without it.
"use strict";
(function () {
  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  function live() {
    var status = document.querySelector("[data-live-status]");
    if (!status || !window.EventSource) return;
    var source = new EventSource("/console/live");
    var lost = null;
    source.onopen = function () {
      if (lost) { window.clearTimeout(lost); lost = null; }
      status.classList.add("on");
      status.textContent = "live";
    };
    // A feed ends every 25 s and the browser reconnects at once: say so only if it lasts.
    source.onerror = function () {
      if (lost) return;
      lost = window.setTimeout(function () {
        status.classList.remove("on");
        status.textContent = "reconnecting";
      }, 2000);
    };
    source.addEventListener("ended", function () {
      source.close();
      status.classList.remove("on");
      status.textContent = "session ended";
    });
    source.onmessage = function (message) {
      var values = JSON.parse(message.data);
      Object.keys(values).forEach(function (key) {
        var text = values[key];
        document.querySelectorAll('[data-live="' + CSS.escape(key) + '"]').forEach(function (el) {
          if (el.textContent !== text) el.textContent = text;
        });
        document.querySelectorAll('[data-live-bar="' + CSS.escape(key) + '"]').forEach(function (el) {
          el.setAttribute("width", text);
        });
      });
      document.body.setAttribute("data-live-updated", String(Date.now()));
    };
  }

  document.addEventListener("DOMContentLoaded", function () { confirmForms(); live(); });
})();
