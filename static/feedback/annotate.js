// Keyboard voting and time-on-task for the annotate page. Works without it: the buttons
// are plain form submits.
(function () {
  "use strict";
  var form = document.getElementById("vote-form");
  if (!form) return;
  var shownAt = Date.now();
  var sent = false;
  var keys = { "1": "left", "2": "right", "3": "tie", "4": "both_bad" };

  function submit(side) {
    if (sent) return;
    var button = form.querySelector('button[name="side"][value="' + side + '"]');
    if (button) button.click();
  }

  form.addEventListener("submit", function (event) {
    if (sent) { event.preventDefault(); return; }  // a double click stores one vote
    sent = true;
    document.getElementById("time_spent_ms").value = String(Date.now() - shownAt);
  });

  document.addEventListener("keydown", function (event) {
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "TEXTAREA" || tag === "INPUT" || tag === "SELECT") return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (keys[event.key]) { event.preventDefault(); submit(keys[event.key]); }
  });
})();
