// The leadership big screen: fills the figures, the trend, the rankings and the live pins
// from the JSON APIs, and polls them again every refresh_s seconds.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("screen-config").textContent);
  const map = L.map("screen-map", { zoomControl: false, attributionControl: false })
    .setView([24.91, 118.59], 13);
  const pins = L.layerGroup().addTo(map);
  let fitted = false;
  const fmt = (v, suffix) => (v === null || v === undefined ? "—"
    : (typeof v === "number" ? v.toLocaleString("en-US") : String(v)) + (suffix || ""));

  function text(tag, content, extra) {
    const el = document.createElement(tag);
    el.textContent = content;
    if (extra) el.appendChild(extra);
    return el;
  }

  function rank(id, units) {
    const ol = document.getElementById(id);
    ol.replaceChildren(...units.slice(0, 10).map(
      (u) => text("li", u.name || u.code || String(u.id), text("span", fmt(u.count)))));
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(url + ": " + r.status);
    return r.json();
  }

  async function refresh() {
    const [byCommunity, byGrid, open] = await Promise.all([
      getJSON(cfg.stats + "?by=community"),
      getJSON(cfg.stats + "?by=grid"),
      getJSON(cfg.incidents + "?state=open&limit=1000"),
    ]);
    const d = byCommunity.district;
    for (const key of ["total", "open", "overdue", "median_hours_to_close"]) {
      document.querySelector(`[data-kpi="${key}"]`).textContent = fmt(d[key]);
    }
    document.querySelector('[data-kpi="on_time_pct"]').textContent = fmt(d.on_time_pct, "%");
    rank("rank-community", byCommunity.units);
    rank("rank-grid", byGrid.units);
    const months = d.by_month.slice(-12);
    const top = Math.max(1, ...months.map((m) => m.count));
    document.getElementById("trend").replaceChildren(...months.map((m) => {
      const bar = document.createElement("div");
      bar.className = "bar";
      const i = document.createElement("i");
      i.style.width = Math.round(220 * m.count / top) + "px";
      bar.append(text("span", m.month), i, text("span", fmt(m.count)));
      return bar;
    }));
    pins.clearLayers();
    const points = open.items.filter((it) => it.lat !== null && it.lon !== null);
    for (const it of points) {
      L.circleMarker([it.lat, it.lon], { radius: 5, color: "#ff6b5f", weight: 1, fillOpacity: 0.8 })
        .addTo(pins);
    }
    if (!fitted && points.length) {
      map.fitBounds(L.latLngBounds(points.map((it) => [it.lat, it.lon])).pad(0.2));
      fitted = true;
    }
    window.screenPins = points.length;
    window.screenUpdates = (window.screenUpdates || 0) + 1;
  }

  // the district's time (the service's clock), whatever zone the screen's computer is in
  const clock = new Intl.DateTimeFormat(cfg.locale.startsWith("en") ? "en-GB" : "zh-CN", {
    timeZone: cfg.timezone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  function tick() {
    document.getElementById("screen-clock").textContent = clock.format(new Date());
  }
  tick();
  setInterval(tick, 1000);
  refresh().catch((e) => console.error(e));
  setInterval(() => refresh().catch((e) => console.error(e)), cfg.refresh_s * 1000);
})();
