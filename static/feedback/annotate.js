// Keyboard-first voting and time-on-task for the annotate page. Without JS the page still
// works: every control is a plain form field, link or submit button.
(function () {
  "use strict";
  var form = document.getElementById("vote-form");
  var root = document.getElementById("annotate") || document.querySelector("main");
  var shownAt = Date.now();
  var sent = false;
  // By physical key (event.code) first, so the keys sit in the same place on AZERTY,
  // QWERTZ or Cyrillic layouts; by character second, for keyboards that report no code.
  var byCode = {
    Digit1: "vote:left", Digit2: "vote:right", Digit3: "vote:tie", Digit4: "vote:both_bad",
    Numpad1: "vote:left", Numpad2: "vote:right", Numpad3: "vote:tie", Numpad4: "vote:both_bad",
    KeyQ: "strength:1", KeyW: "strength:2", KeyE: "strength:3",
    KeyR: "rationale", KeyS: "skip", KeyG: "guidelines", KeyU: "undo", KeyF: "flag"
  };
  var byKey = {
    "1": "vote:left", "2": "vote:right", "3": "vote:tie", "4": "vote:both_bad",
    q: "strength:1", w: "strength:2", e: "strength:3",
    r: "rationale", s: "skip", g: "guidelines", u: "undo", f: "flag", "?": "help"
  };

  function focusPage() { if (root) root.focus({ preventScroll: true }); }
  // Focus stays on the page after each vote, so the next key press lands here.
  focusPage();

  // "Saved" / "Skipped": written into the live region after load so screen readers announce
  // it, without moving focus; it fades after a few seconds.
  var announce = document.getElementById("announce");
  if (announce && announce.dataset.message) {
    window.setTimeout(function () {
      announce.textContent = announce.dataset.message;
      announce.classList.add("shown");
    }, 50);
    window.setTimeout(function () { announce.classList.remove("shown"); }, 4000);
  }

  // Browser Back right after a vote offers that vote for undo instead of reloading the
  // current item: the entry we came from is re-pointed at the undo page.
  var undoLink = document.getElementById("undo-link");
  var lastVote = document.getElementById("last-vote");
  if (undoLink && lastVote && lastVote.dataset.justVoted && window.history.replaceState) {
    var here = window.location.href;
    window.history.replaceState({ undo: true }, "", undoLink.href);
    window.history.pushState({ undo: false }, "", here);
    window.addEventListener("popstate", function (event) {
      if (event.state && event.state.undo) window.location.replace(undoLink.href);
    });
  }

  var help = document.getElementById("help");
  var helpOpen = document.getElementById("help-open");
  function toggleHelp() {
    if (!help) return;
    if (help.open) help.close(); else help.showModal();
  }
  if (helpOpen) helpOpen.addEventListener("click", toggleHelp);
  if (help) help.addEventListener("close", focusPage);

  var guidelines = document.getElementById("guidelines");
  var guidelinesClose = document.getElementById("guidelines-close");
  if (guidelinesClose) guidelinesClose.addEventListener("click", function () { guidelines.open = false; focusPage(); });

  function vote(side) {
    if (sent || !form) return;
    var button = form.querySelector('button[name="side"][value="' + side + '"]');
    if (button) button.click();
  }

  if (form) {
    form.addEventListener("submit", function (event) {
      if (sent) { event.preventDefault(); return; }  // a double click stores one vote
      sent = true;
      var spent = document.getElementById("time_spent_ms");
      if (spent) spent.value = String(Date.now() - shownAt);
    });
  }

  function run(action) {
    var parts = action.split(":");
    if (parts[0] === "vote") { vote(parts[1]); return true; }
    if (parts[0] === "strength") {
      var radio = form && form.querySelector('input[name="strength"][value="' + parts[1] + '"]');
      if (radio) radio.checked = true;
      return Boolean(radio);
    }
    if (action === "rationale") { var box = document.getElementById("rationale"); if (box) box.focus(); return Boolean(box); }
    if (action === "skip") { var skip = document.getElementById("skip-button"); if (skip) skip.click(); return Boolean(skip); }
    if (action === "guidelines") { if (guidelines) guidelines.open = !guidelines.open; return Boolean(guidelines); }
    if (action === "undo") { if (undoLink) window.location.href = undoLink.href; return Boolean(undoLink); }
    if (action === "flag") {
      var flag = document.getElementById("flag");
      if (!flag) return false;
      flag.open = true;
      var first = flag.querySelector('input[name="reason"]');
      if (first) first.focus();
      return true;
    }
    if (action === "help") { toggleHelp(); return Boolean(help); }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target || {};
    var typing = target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.tagName === "SELECT";
    if (event.key === "Escape") {
      if (typing) { target.blur(); focusPage(); return; }
      if (guidelines && guidelines.open) { guidelines.open = false; focusPage(); }
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (help && help.open && event.key !== "?") return;  // the dialog has the keyboard
    var action = event.key === "?" ? "help" : (byCode[event.code] || byKey[(event.key || "").toLowerCase()]);
    if (action && run(action)) event.preventDefault();
  });
})();
