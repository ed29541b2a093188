// saga-mesh console: live regions (poll a server-rendered, escaped fragment) and copy-gid buttons.
(function () {
  "use strict";

  function copyText(text, button) {
    function done() {
      var old = button.textContent;
      button.textContent = "copied";
      setTimeout(function () { button.textContent = old; }, 1200);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else {
      fallback(text);
      done();
    }
  }

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (button) {
      event.preventDefault();
      copyText(button.getAttribute("data-copy"), button);
    }
  });

  function poll(region) {
    var url = region.getAttribute("data-live");
    var every = parseInt(region.getAttribute("data-every"), 10) || 3000;
    function tick() {
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (response) {
        if (response.status === 401) { window.location = "/login"; return null; }
        return response.text().then(function (html) {
          region.innerHTML = html;  // the fragment is rendered and escaped by the server
          region.setAttribute("data-updated", String(Date.now()));
        });
      }).catch(function () { /* the next tick tries again */ }).then(function () {
        setTimeout(tick, every);
      });
    }
    setTimeout(tick, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(poll);
  });
})();
