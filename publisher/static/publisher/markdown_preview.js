// The article body's live preview: the server renders the Markdown with the pipeline's own
// renderer and sanitizer (POST, CSRF token from the form), shown beside the text as typed.
(function () {
  "use strict";
  function setUp() {
    var body = document.getElementById("id_body");
    if (!body || !body.dataset.previewUrl) { return; }
    var form = body.form;
    var token = form.querySelector("input[name=csrfmiddlewaretoken]");
    var box = document.createElement("div");
    box.className = "markdown-preview";
    box.id = "markdown-preview";
    box.setAttribute("aria-live", "polite");
    var label = document.createElement("div");
    label.className = "markdown-preview-label";
    label.textContent = "Preview";
    var out = document.createElement("div");
    out.className = "markdown-preview-body";
    box.appendChild(label);
    box.appendChild(out);
    var pair = document.createElement("div");
    pair.className = "markdown-pair";
    body.parentNode.insertBefore(pair, body);
    pair.appendChild(body);
    pair.appendChild(box);
    var timer = null, sent = 0;
    function render() {
      var mine = ++sent;
      var data = new FormData();
      data.append("body", body.value);
      fetch(body.dataset.previewUrl, {method: "POST", body: data, credentials: "same-origin",
                                      headers: {"X-CSRFToken": token ? token.value : ""}})
        .then(function (response) { return response.json(); })
        .then(function (answer) {
          if (mine !== sent) { return; }  // a newer request is on its way
          if (answer.error) { out.textContent = answer.error; } else { out.innerHTML = answer.html; }
          box.dataset.rendered = String(mine);
        })
        .catch(function () { out.textContent = "The preview could not be loaded."; });
    }
    body.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(render, 300);
    });
    render();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", setUp); } else { setUp(); }
})();
