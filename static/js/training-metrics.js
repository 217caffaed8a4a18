// Metric charts of training jobs: the job page's live chart (every metric of the run, polled while the job runs)
// and the compare page's chart (one metric across runs). The data comes from a json_script element or from the
// URL in data-url (the CSP allows no inline script); Chart.js is vendored in static/vendor/chartjs/.
(function () {
  "use strict";
  const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#4b5563"];

  function datasets(series) {
    return Object.keys(series).map(function (name, i) {
      return {
        label: name,
        data: series[name].map(function (p) { return { x: p.step, y: p.value }; }),
        borderColor: COLOURS[i % COLOURS.length],
        backgroundColor: COLOURS[i % COLOURS.length],
        pointRadius: 2,
        spanGaps: true,
      };
    });
  }

  function chart(canvas, series) {
    return new window.Chart(canvas, {
      type: "line",
      data: { datasets: datasets(series) },
      options: {
        animation: false,
        responsive: true,
        aspectRatio: 2.6,
        parsing: false,
        scales: { x: { type: "linear", title: { display: true, text: "step" } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  function live(canvas) {
    let drawn = null;
    function poll() {
      fetch(canvas.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (answer) { return answer.json(); })
        .then(function (data) {
          if (drawn === null) drawn = chart(canvas, data.series);
          else { drawn.data.datasets = datasets(data.series); drawn.update(); }
          canvas.dataset.points = String(data.points);
          canvas.dataset.rendered = "true";
          if (data.running) window.setTimeout(poll, 2000);
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    poll();
  }

  function draw() {
    if (typeof window.Chart === "undefined") return;
    document.querySelectorAll("canvas[data-metric-chart]").forEach(function (canvas) {
      if (canvas.dataset.url) { live(canvas); return; }
      const source = document.getElementById(canvas.dataset.source);
      if (!source) return;
      chart(canvas, JSON.parse(source.textContent));
      canvas.dataset.rendered = "true";
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
