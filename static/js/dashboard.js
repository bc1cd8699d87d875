/* Leadership dashboard: charts with the vendored Chart.js and sortable tables. */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var labels = data.labels;
  var charts = data.charts;
  var BRAND = "#1f3a5f";
  var ACCENT = "#2e86de";

  function densityChart() {
    var canvas = document.getElementById("chart-density");
    if (!canvas) return null;
    var c = charts.staff_per_km2_by_community;
    var avg = c.district;
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: c.labels,
        datasets: [{
          label: labels.staff_per_km2,
          data: c.values,
          backgroundColor: c.values.map(function (v) {
            return avg !== null && v < avg ? "#9bb7d4" : ACCENT;
          }),
          borderRadius: 3,
        }],
      },
      options: {
        indexAxis: "y",
        animation: false,
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (ctx) { return labels.staff_per_km2 + ": " + ctx.parsed.x.toFixed(1); },
            },
          },
          subtitle: {
            display: avg !== null,
            text: labels.district_value + " " + (avg === null ? "" : avg.toFixed(1)),
          },
        },
        scales: { x: { beginAtZero: true, grid: { color: "#eef1f5" } }, y: { ticks: { autoSkip: false } } },
      },
    });
  }

  function incidentsChart() {
    var canvas = document.getElementById("chart-incidents");
    if (!canvas) return null;
    var c = charts.incidents_by_month;
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: c.labels,
        datasets: [{ label: labels.incidents, data: c.values, backgroundColor: BRAND, borderRadius: 3 }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, grid: { color: "#eef1f5" } }, x: { grid: { display: false } } },
      },
    });
  }

  function groupsChart() {
    var canvas = document.getElementById("chart-groups");
    if (!canvas) return null;
    var c = charts.staff_by_group;
    return new Chart(canvas, {
      type: "doughnut",
      data: {
        labels: c.labels.map(function (g) { return labels.groups[g] || g; }),
        datasets: [{
          data: c.values,
          backgroundColor: ["#1f3a5f", "#2e86de", "#f39c12", "#27ae60"],
          borderColor: "#fff",
          borderWidth: 2,
        }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        cutout: "55%",
        plugins: {
          legend: { position: "right" },
          tooltip: {
            callbacks: {
              label: function (ctx) { return ctx.label + ": " + ctx.parsed.toLocaleString(); },
            },
          },
        },
      },
    });
  }

  function sortable(table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, col) {
      th.tabIndex = 0;
      function sort() {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var num = th.dataset.type === "num";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col];
          if (num) {
            var vx = x.dataset.v === "" ? -Infinity : parseFloat(x.dataset.v);
            var vy = y.dataset.v === "" ? -Infinity : parseFloat(y.dataset.v);
            return asc ? vx - vy : vy - vx;
          }
          var r = x.textContent.localeCompare(y.textContent, "zh-Hans-CN");
          return asc ? r : -r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(); });
    });
  }

  /* the slow patrol figure arrives after the page (see /api/dashboard/patrol) */
  function deferredPatrol() {
    var el = document.querySelector('[data-kpi="patrol_compliance_pct"][data-src]');
    if (!el) { window.patrolReady = true; return; }
    fetch(el.dataset.src)
      .then(function (r) { return r.json(); })
      .then(function (p) {
        var v = p.patrol_compliance_pct;
        el.textContent = v === null || v === undefined ? "—" : v.toFixed(1);
        if (v !== null && v !== undefined) {
          var small = document.createElement("small");
          small.textContent = "%";
          el.appendChild(small);
        }
        document.querySelector('[data-kpi="patrol_day"]').textContent = p.patrol_day || "";
      })
      .catch(function () { el.textContent = "—"; })
      .then(function () { window.patrolReady = true; });
  }

  if (window.Chart) {
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 13;
  }
  window.dashboardCharts = [densityChart(), incidentsChart(), groupsChart()].filter(Boolean);
  document.querySelectorAll("table.sortable").forEach(sortable);
  deferredPatrol();
  window.dashboardReady = true;
})();
