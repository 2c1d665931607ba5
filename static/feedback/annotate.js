// Keyboard-first voting and time-on-task for the annotate page. Without JS the page still
// works: every control is a plain form field or submit button.
(function () {
  "use strict";
  var form = document.getElementById("vote-form");
  if (!form) return;
  var root = document.getElementById("annotate");
  var shownAt = Date.now();
  var sent = false;
  var sides = { "1": "left", "2": "right", "3": "tie", "4": "both_bad" };
  var strengths = { q: "1", w: "2", e: "3" };

  // Focus stays on the page after each vote, so the next key press lands here.
  root.focus({ preventScroll: true });

  function vote(side) {
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
    var target = event.target || {};
    var typing = target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.tagName === "SELECT";
    if (typing) {
      if (event.key === "Escape") { target.blur(); root.focus({ preventScroll: true }); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var key = event.key.toLowerCase();
    if (sides[key]) { event.preventDefault(); vote(sides[key]); return; }
    if (strengths[key]) {
      var radio = form.querySelector('input[name="strength"][value="' + strengths[key] + '"]');
      if (radio) { radio.checked = true; event.preventDefault(); }
      return;
    }
    if (key === "r") { event.preventDefault(); document.getElementById("rationale").focus(); return; }
    if (key === "s") { event.preventDefault(); document.getElementById("skip-button").click(); return; }
    if (key === "g") {
      event.preventDefault();
      var panel = document.getElementById("guidelines");
      panel.open = !panel.open;
    }
  });
})();
