// The live round page: polls status.json every 2 s and updates the page in place (no
// reloads), until the round is done, failed or cancelled.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var root = document.getElementById("round-live");
  if (!root) return;
  var url = root.getAttribute("data-status-url");
  var fmt = function (v) { return window.RLHFCharts ? window.RLHFCharts.fmt(v) : String(v); };
  var chartSizes = { reward: -1, ppo: -1, dpo: -1 };
  var timer = null;

  function $(id) { return document.getElementById(id); }
  function text(id, value) { var el = $(id); if (el) el.textContent = value === null || value === undefined ? "—" : value; }
  function show(id, visible) { var el = $(id); if (el) el.hidden = !visible; }

  function seconds(s) {
    if (s === null || s === undefined) return "—";
    s = Math.round(s);
    var m = Math.floor(s / 60);
    return m ? m + " min " + (s % 60) + " s" : s + " s";
  }

  function apply(st) {
    var status = $("round-status");
    status.textContent = st.status_display;
    status.className = "status status-" + st.status;
    status.setAttribute("data-status", st.status);
    show("round-cancel-note", st.cancel_requested && !st.final);
    st.stages.forEach(function (s) {
      var li = document.querySelector('#round-stages [data-stage="' + s.name + '"]');
      if (li) li.className = "stage stage-" + s.state;
    });
    show("round-progress-block", !st.final);
    text("round-stage-label", st.status_display);
    text("round-step", st.step);
    text("round-total", st.total);
    var bar = $("round-progress");
    bar.max = st.total || 1;
    bar.value = st.step;
    bar.textContent = st.step + " / " + st.total;
    text("round-elapsed", seconds(st.elapsed_s));
    text("round-eta", st.final ? "—" : seconds(st.eta_s));
    text("round-votes", st.snapshot.votes);
    text("round-pairs", st.snapshot.pairs);
    text("round-new-policy", st.policy_checkpoint);
    text("round-parent-policy", st.parent_policy);

    var latest = $("round-latest");
    latest.replaceChildren();
    st.latest.forEach(function (m) {
      var div = document.createElement("div");
      var b = document.createElement("b");
      b.textContent = fmt(m.value);
      var note = document.createElement("small");
      note.textContent = m.note;
      div.append(b, m.label + " ", note);
      latest.appendChild(div);
    });

    var log = $("round-log");
    log.replaceChildren();
    st.log.forEach(function (line) {
      var li = document.createElement("li");
      li.textContent = line;
      log.appendChild(li);
    });

    show("round-error-block", !!st.error);
    text("round-error", st.error);
    show("round-cancel-form", !st.final);
    show("round-retry-form", ["failed", "cancelled", "discarded"].includes(st.status));

    ["reward", "ppo", "dpo"].forEach(function (part) {
      var charts = st.charts[part] || [];
      var target = $("round-charts-" + part);  // a DPO round's page has no reward or PPO charts, and the other way round
      var size = charts.length ? charts[0].y.length : 0;
      if (target && size !== chartSizes[part] && window.RLHFCharts) {
        chartSizes[part] = size;
        window.RLHFCharts.render(target, charts, "steps");
      }
    });
    root.setAttribute("data-final", st.final ? "true" : "false");
    if (st.final) {
      show("round-reload", true);
      stop();
    }
  }

  function stop() { if (timer !== null) { clearTimeout(timer); timer = null; } }

  function poll() {
    timer = null;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (st) { apply(st); if (!st.final) timer = setTimeout(poll, POLL_MS); })
      .catch(function () { timer = setTimeout(poll, POLL_MS * 2); });  // a blip: try again, a little later
  }

  if (root.getAttribute("data-final") !== "true") timer = setTimeout(poll, POLL_MS);
})();
