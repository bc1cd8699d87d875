// 我的 (my work): report an incident from where I stand, record a patrol track, log a visit.
// Everything posts to the JSON API with the page's CSRF token; a finished track that cannot
// be sent stays in localStorage and is sent when the network returns.
(function () {
  "use strict";
  var cfgNode = document.getElementById("mapsvc-me-config");
  if (!cfgNode) { return; }
  var cfg = JSON.parse(cfgNode.textContent);
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var PENDING = "mapsvc-me-pending-tracks";
  var CURRENT = "mapsvc-me-current-track";

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) { if (!r.ok) { throw new Error(j.error || j.message || r.status); } return j; });
    });
  }
  function say(sel, text) { var n = document.querySelector(sel); if (n) { n.textContent = text; } }
  function load(key) { try { return JSON.parse(localStorage.getItem(key) || "[]"); } catch (e) { return []; } }
  function save(key, v) { localStorage.setItem(key, JSON.stringify(v)); }

  // ---- report an incident
  var form = document.querySelector(".mapsvc-me-report");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var map = window[cfg.map];
      var body = {
        category: form.elements.category.value,
        severity: form.elements.severity.value || undefined,
        description: form.elements.description.value || undefined,
        source: "patrol"
      };
      var send = function (lon, lat, crs) {
        body.lon = lon; body.lat = lat; if (crs) { body.crs = crs; }
        post(cfg.api.incidents, body).then(function (j) {
          say(".mapsvc-me-report-out", cfg.text.reported + " #" + j.id);
          form.reset();
        }).catch(function (e) { say(".mapsvc-me-report-out", String(e.message || e)); });
      };
      if (form.elements.where.value === "gps" && navigator.geolocation) {
        navigator.geolocation.getCurrentPosition(function (p) { send(p.coords.longitude, p.coords.latitude, null); },
          function (e) { say(".mapsvc-me-report-out", e.message); });
      } else {
        var c = map.getCenter();  // the point under the cross-hair, in the map's own CRS
        send(c.lng, c.lat, cfg.crs === "wgs84" ? null : cfg.crs);
      }
    });
  }

  // ---- patrol: record, keep, send
  var watch = null;
  function flush() {
    var pending = load(PENDING);
    if (!pending.length || !navigator.onLine) { say(".mapsvc-me-patrol-out", pending.length ? cfg.text.kept : ""); return; }
    var track = pending[0];
    post(cfg.api.tracks, { staff: cfg.staff, points: track }).then(function (j) {
      save(PENDING, load(PENDING).slice(1));
      say(".mapsvc-me-patrol-out", cfg.text.sent + " (" + (j.points_kept || j.kept || track.length) + ")");
      flush();
    }).catch(function (e) {
      if (navigator.onLine) { save(PENDING, load(PENDING).slice(1)); }
      say(".mapsvc-me-patrol-out", String(e.message || e));
    });
  }
  var btn = document.querySelector(".mapsvc-me-patrol");
  if (btn && navigator.geolocation) {
    btn.addEventListener("click", function () {
      if (watch === null) {
        save(CURRENT, []);
        watch = navigator.geolocation.watchPosition(function (p) {
          var pts = load(CURRENT);
          pts.push([p.coords.longitude, p.coords.latitude, p.timestamp / 1000]);
          save(CURRENT, pts);
          say(".mapsvc-me-patrol-out", cfg.text.points + ": " + pts.length);
        }, null, { enableHighAccuracy: true });
        btn.textContent = cfg.text.stop;
      } else {
        navigator.geolocation.clearWatch(watch);
        watch = null;
        btn.textContent = cfg.text.start;
        var pts = load(CURRENT);
        if (pts.length) { var pending = load(PENDING); pending.push(pts); save(PENDING, pending); }
        save(CURRENT, []);
        flush();
      }
    });
  }
  window.addEventListener("online", flush);
  flush();

  // ---- weekly visit
  var visit = document.querySelector(".mapsvc-me-visit");
  if (visit) {
    visit.addEventListener("submit", function (ev) {
      ev.preventDefault();
      post(cfg.api.visits, { staff: cfg.staff, place: visit.elements.place.value, note: visit.elements.note.value || undefined })
        .then(function () { say(".mapsvc-me-visit-out", cfg.text.visited); visit.reset(); })
        .catch(function (e) { say(".mapsvc-me-visit-out", String(e.message || e)); });
    });
  }
}());
