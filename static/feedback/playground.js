// The playground: posts the form, reads both answers as newline-delimited JSON while
// they are generated, and shows each piece as text (model output is untrusted: it only
// ever goes into textContent). "Send" posts the signed pair the stream ended with.
(function () {
  "use strict";
  var form = document.getElementById("playground-form");
  if (!form) return;
  var go = document.getElementById("playground-go");
  var stopButton = document.getElementById("playground-stop");
  var state = document.getElementById("playground-state");
  var send = document.getElementById("playground-send");
  var sent = document.getElementById("playground-sent");
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var pair = null;
  var controller = null;

  function $(id) { return document.getElementById(id); }

  function clearErrors() {
    Array.prototype.forEach.call(form.querySelectorAll("[data-errors-for]"), function (ul) { ul.replaceChildren(); });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (el) { el.removeAttribute("aria-invalid"); });
  }

  function showErrors(errors) {
    var first = null;
    Object.keys(errors).forEach(function (name) {
      var ul = form.querySelector('[data-errors-for="' + name + '"]') || form.querySelector('[data-errors-for="__all__"]');
      errors[name].forEach(function (message) {
        var li = document.createElement("li");
        li.textContent = message;
        ul.appendChild(li);
      });
      var input = form.elements[name];
      if (input && input.setAttribute) { input.setAttribute("aria-invalid", "true"); first = first || input; }
    });
    if (first) first.focus();
  }

  function selectedName(select) {
    var o = select.options[select.selectedIndex];
    return o ? o.text : "—";
  }

  // Typing a prompt and picking a held-out one are alternatives: doing one clears the other.
  form.elements.prompt.addEventListener("input", function () { if (this.value) form.elements.prompt_id.value = ""; });
  form.elements.prompt_id.addEventListener("change", function () { if (this.value) form.elements.prompt.value = ""; });

  function handle(event) {
    if (event.side) {
      var text = $("answer-" + event.side + "-text");
      var meta = $("answer-" + event.side + "-meta");
      if (event.text) text.textContent += event.text;
      if (event.done) meta.textContent = event.token_count + " tokens" + (event.finished ? ", ended with EOS" : ", cut at the limit");
      if (event.error) { meta.textContent = "Error: " + event.error; meta.classList.add("error"); }
    } else if (event.end) {
      pair = event.pair;
      send.disabled = !pair;
    }
  }

  function finish(message) {
    state.textContent = message;
    go.disabled = false;
    stopButton.hidden = true;
    controller = null;
    form.setAttribute("data-state", "idle");
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (controller) return;
    clearErrors();
    pair = null;
    send.disabled = true;
    sent.textContent = "";
    ["a", "b"].forEach(function (side) {
      $("answer-" + side + "-text").textContent = "";
      $("answer-" + side + "-meta").textContent = "";
      $("answer-" + side + "-meta").classList.remove("error");
      $("answer-" + side + "-name").textContent = selectedName(form.elements["checkpoint_" + side]);
    });
    go.disabled = true;
    stopButton.hidden = false;
    state.textContent = "Generating…";
    form.setAttribute("data-state", "streaming");
    controller = new AbortController();
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                         headers: { "X-CSRFToken": csrf }, signal: controller.signal })
      .then(function (response) {
        if (response.status === 400) {
          return response.json().then(function (body) { showErrors(body.errors || {}); finish("Fix the fields marked above."); });
        }
        if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) { finish(pair ? "Done." : "Stopped."); return; }
            buffer += decoder.decode(chunk.value, { stream: true });
            var lines = buffer.split("\n");
            buffer = lines.pop();
            lines.forEach(function (line) { if (line.trim()) handle(JSON.parse(line)); });
            return pump();
          });
        }
        return pump();
      })
      .catch(function (err) { finish(err.name === "AbortError" ? "Stopped." : "Failed: " + err.message); });
  });

  stopButton.addEventListener("click", function () { if (controller) controller.abort(); });

  send.addEventListener("click", function () {
    if (!pair) return;
    send.disabled = true;
    var body = new FormData();
    body.append("pair", pair);
    fetch(form.getAttribute("data-send-url"), { method: "POST", body: body, credentials: "same-origin",
                                                headers: { "X-CSRFToken": csrf } })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (r) {
        if (r.ok) { sent.textContent = r.body.message; pair = null; }
        else { sent.textContent = Object.values(r.body.errors || {}).join(" "); send.disabled = false; }
      })
      .catch(function (err) { sent.textContent = "Not sent: " + err.message; send.disabled = false; });
  });
})();
