// The leaderboard page shows the last computed board at once; while a recompute job
// runs, poll its status and reload the page when it is done (no inline script: CSP).
(function () {
  "use strict";
  var el = document.getElementById("leaderboard-recompute");
  if (!el) return;
  var url = el.getAttribute("data-job-status");
  var state = el.querySelector(".job-state");
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (job) {
        state.textContent = job.status_display;
        if (job.status === "done") { window.location.reload(); return; }
        if (!job.final) window.setTimeout(tick, 2000);
        else state.textContent = job.status_display + (job.error ? ": " + job.error : "");
      })
      .catch(function () { window.setTimeout(tick, 5000); });
  }
  window.setTimeout(tick, 1500);
})();
