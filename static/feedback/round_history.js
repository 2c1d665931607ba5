// The project page's charts across rounds: human win-rate vs parent with its Wilson 95%
// band (and vs round 0 where measured), beside RM held-out accuracy and KL. Data comes
// from a json_script element (no inline script: CSP); the table below stays for readers.
(function () {
  "use strict";

  function chart(target, title, x, series) {
    var figure = document.createElement("figure");
    figure.className = "chart chart-live";
    var caption = document.createElement("figcaption");
    caption.textContent = title;
    var area = document.createElement("div");
    area.className = "plot";
    figure.append(caption, area);
    target.appendChild(figure);
    var width = Math.max(240, Math.min(target.clientWidth / 3 || 320, 460));
    var opts = {
      width: width, height: 160, legend: { live: true },
      cursor: { drag: { x: false, y: false } }, scales: { x: { time: false } },
      axes: [{ size: 28 }, { size: 52 }],
      series: [{ label: "round" }].concat(series.map(function (s) {
        return { label: s.label, stroke: s.stroke, width: s.width || 1.5, dash: s.dash, spanGaps: true,
                 points: { show: true } };
      })),
    };
    return new window.uPlot(opts, [x].concat(series.map(function (s) { return s.y; })), area);
  }

  function pct(ys) { return ys.map(function (v) { return v === null ? null : Math.round(v * 1000) / 10; }); }

  document.addEventListener("DOMContentLoaded", function () {
    var node = document.getElementById("round-history-data");
    var target = document.getElementById("round-history-chart");
    if (!node || !target || !window.uPlot) return;
    var d = JSON.parse(node.textContent);
    if (!d.x.length) return;
    var win = [
      { label: "win-rate vs parent %", y: pct(d.win_rate), stroke: "#2f5bea", width: 2 },
      { label: "95% low", y: pct(d.low), stroke: "#9fb3f5", dash: [4, 4] },
      { label: "95% high", y: pct(d.high), stroke: "#9fb3f5", dash: [4, 4] },
    ];
    if (d.round0.some(function (v) { return v !== null; })) {
      win.push({ label: "vs round 0 %", y: pct(d.round0), stroke: "#d9822b", width: 2 });
    }
    chart(target, "human win-rate (%)", d.x, win);
    chart(target, "RM held-out accuracy", d.x, [{ label: "accuracy", y: d.rm_accuracy, stroke: "#2b8a3e" }]);
    chart(target, "KL to reference, end of PPO", d.x, [{ label: "KL", y: d.kl, stroke: "#a61e4d" }]);
    target.removeAttribute("aria-hidden");
  });
})();
