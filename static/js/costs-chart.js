// The cost explorer's daily stacked chart. Its config comes from a json_script element (the CSP allows no
// inline script); Chart.js and its annotation plugin are vendored in static/vendor/chartjs/.
(function () {
  "use strict";
  function draw() {
    const source = document.getElementById("cost-chart-data");
    const canvas = document.getElementById("cost-chart");
    if (!source || !canvas || typeof window.Chart === "undefined") return;
    const config = JSON.parse(source.textContent);
    const annotations = {};
    if (config.budget_line) {
      annotations.budget = {
        type: "line", yMin: config.budget_line.value, yMax: config.budget_line.value,
        borderColor: "#b42318", borderDash: [6, 4], borderWidth: 2,
        label: { display: true, content: config.budget_line.label, position: "end" },
      };
    }
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: config.labels, datasets: config.datasets },
      options: {
        animation: false,
        responsive: true,
        aspectRatio: 2.4,
        scales: {
          x: { stacked: true },
          y: { stacked: true, title: { display: true, text: config.currency } },
        },
        plugins: { legend: { position: "bottom" }, annotation: { annotations: annotations } },
      },
    });
    canvas.dataset.rendered = "true";
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
