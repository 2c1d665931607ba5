// Line charts with the value under the cursor (uPlot), drawn over the server's SVG ones.
// The server renders each chart as an SVG with its figures in aria-label; this file
// swaps in a uPlot chart from the figure's data-chart attribute when scripts run.
(function () {
  "use strict";

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return String(+v.toFixed(4));
  }

  function plot(target, title, xs, ys) {
    var width = Math.max(200, Math.min(target.clientWidth || 280, 520));
    var opts = {
      width: width,
      height: 120,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false } },
      axes: [{ size: 28 }, { size: 64, values: function (u, vals) { return vals.map(fmt); } }],
      series: [
        { label: "step", value: function (u, v) { return v === null ? "—" : String(v); } },
        { label: title, stroke: "#2f5bea", width: 1.5, spanGaps: false, value: function (u, v) { return fmt(v); } },
      ],
    };
    target.replaceChildren();
    return new window.uPlot(opts, [xs, ys], target);
  }

  function lastNumber(ys) {
    for (var i = ys.length - 1; i >= 0; i--) if (ys[i] !== null && isFinite(ys[i])) return ys[i];
    return null;
  }

  // charts: [{title, x: [...], y: [...]}] → one figure each, in place of the container's content.
  function render(container, charts, unit) {
    var box = document.createElement("div");
    box.className = "charts";
    charts.forEach(function (c) {
      var figure = document.createElement("figure");
      figure.className = "chart chart-live";
      var caption = document.createElement("figcaption");
      caption.textContent = c.title + " ";
      var last = document.createElement("b");
      last.textContent = fmt(lastNumber(c.y));
      caption.appendChild(last);
      var area = document.createElement("div");
      area.className = "plot";
      figure.append(caption, area);
      box.appendChild(figure);
      figure.setAttribute("aria-label", c.title + ": " + c.y.length + " " + (unit || "values") + ", last " + fmt(lastNumber(c.y)));
    });
    container.replaceChildren(box);
    if (!window.uPlot) return;
    Array.prototype.forEach.call(box.querySelectorAll(".plot"), function (area, i) {
      plot(area, charts[i].title, charts[i].x, charts[i].y);
    });
  }

  // Server-rendered figures (data-chart) get a uPlot chart; the SVG stays for screen readers.
  function upgrade(root) {
    if (!window.uPlot) return;
    Array.prototype.forEach.call(root.querySelectorAll("figure.chart[data-chart]"), function (figure) {
      var data;
      try { data = JSON.parse(figure.getAttribute("data-chart")); } catch (e) { return; }
      var svg = figure.querySelector("svg");
      var area = document.createElement("div");
      area.className = "plot";
      if (svg) { svg.classList.add("visually-hidden"); svg.after(area); } else { figure.appendChild(area); }
      plot(area, data.title, data.y.map(function (_, i) { return i + 1; }), data.y);
      figure.removeAttribute("data-chart");
    });
  }

  window.RLHFCharts = { render: render, upgrade: upgrade, fmt: fmt };
  document.addEventListener("DOMContentLoaded", function () { upgrade(document); });
})();
