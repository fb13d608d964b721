// The job page's training curves: loss, reward and the held-out sample's score (the job's own graders,
// every few steps) on the left axis, learning rate on the right. Asks for
// the metric history every 2 s while the job is active and stops when it has ended.
(function () {
  const box = document.getElementById("chart");
  if (!box || typeof uPlot === "undefined") return;
  const empty = document.getElementById("chart-empty");
  const SERIES = [
    ["loss", "Loss", "#2563eb", "y"],
    ["reward", "Reward", "#16a34a", "y"],
    ["rewards/accuracies", "Preference accuracy", "#9333ea", "y"],
    ["heldout", "Held-out score (sample)", "#dc2626", "y"],
    ["learning_rate", "Learning rate", "#d97706", "lr"],
  ];
  let plot = null;
  let shown = "";

  function draw(points) {
    const present = SERIES.filter(([key]) => points.some((p) => typeof p[key] === "number"));
    const signature = present.map(([key]) => key).join(",");
    const data = [points.map((p) => p.step)].concat(
      present.map(([key]) => points.map((p) => (typeof p[key] === "number" ? p[key] : null)))
    );
    if (plot && signature === shown) { plot.setData(data); return; }
    if (plot) plot.destroy();
    shown = signature;
    plot = new uPlot({
      width: Math.max(300, box.clientWidth),
      height: 260,
      scales: { x: { time: false } },
      axes: [
        { label: "step" },
        { scale: "y" },
        { scale: "lr", side: 1, grid: { show: false }, values: (u, v) => v.map((x) => x.toExponential(0)) },
      ],
      series: [{ label: "step" }].concat(
        present.map(([key, label, stroke, scale]) => ({
          label, stroke, scale, width: 2, spanGaps: true,
          // the held-out sample is scored every few steps: show each score as a dot on its line
          points: key === "heldout" ? { show: true, size: 6 } : undefined,
        }))
      ),
    }, data, box);
  }

  async function refresh() {
    let body;
    try {
      const response = await fetch(box.dataset.url, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.status);
      body = await response.json();
    } catch (err) {
      setTimeout(refresh, 5000);
      return;
    }
    if (body.points.length) { empty.hidden = true; draw(body.points); }
    if (!body.ended) setTimeout(refresh, 2000);
  }
  refresh();
})();
