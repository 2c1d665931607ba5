// Live job progress: every element with data-job-status polls that JSON URL until the
// job is done, failed or cancelled, and updates its text in place (no page reloads).
(function () {
  "use strict";
  var INTERVAL_MS = 1500;

  function summary(result) {
    return Object.keys(result || {}).map(function (k) { return k + ": " + result[k]; }).join(" · ");
  }

  // The round-0 policy exists once the set-up job is done: sampling opens on this page
  // at once, rather than after a reload the admin would not know to do.
  function policyReady() {
    var pending = document.getElementById("setup-pending");
    if (pending) pending.hidden = true;
    var name = document.getElementById("active-policy-name");
    if (name && name.textContent.trim() === "not ready") name.textContent = "round 0";
    document.querySelectorAll("button[data-needs-policy]").forEach(function (b) { b.disabled = false; });
  }

  function watch(el) {
    var url = el.getAttribute("data-job-status");
    var state = el.querySelector(".job-state");
    var bar = el.querySelector(".job-progress");
    var steps = el.querySelector(".job-steps");
    var result = el.querySelector(".job-result");
    var download = el.querySelector(".job-download");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { if (!response.ok) throw new Error(response.status); return response.json(); })
        .then(function (job) {
          state.textContent = job.status_display;
          state.className = "status status-" + job.status + " job-state";
          bar.max = job.total || 1;
          bar.value = job.step;
          steps.textContent = job.total ? job.step + " / " + job.total : "";
          result.textContent = job.error ? job.error : (job.status === "done" ? summary(job.result) : "");
          if (job.download && download) { download.href = job.download; download.hidden = false; }
          if (job.kind === "setup" && job.status === "done") policyReady();
          if (!job.final) window.setTimeout(tick, INTERVAL_MS);
        })
        .catch(function () { window.setTimeout(tick, INTERVAL_MS * 4); });
    }
    tick();
  }

  document.querySelectorAll("[data-job-status]").forEach(function (el) {
    var state = el.querySelector(".job-state");
    var finished = /status-(done|failed|cancelled)/.test(state ? state.className : "");
    if (!finished) watch(el);
  });
})();
