/* The plan page (/plans/<id>): grids coloured by workload, checks drawn on the map, the
   comparison with the current grids on a second synchronised map, and the editing tools
   (Leaflet-Geoman). Every edit goes to the server, which checks and snaps it and answers
   with the grid's new shape and version; a 409 says who changed the grid meanwhile. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("plan-config").textContent);
  var L_ = cfg.labels;
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var COLOURS = { under: "#2b83ba", within: "#1a9641", over: "#d7191c" };
  var statusEl = document.getElementById("plan-status");

  function say(text, bad) {
    statusEl.textContent = text;
    statusEl.className = "plan-status" + (bad ? " bad" : "");
  }

  function call(method, url, body, isForm) {
    var opts = { method: method, credentials: "same-origin", headers: { Accept: "application/json", "X-CSRFToken": csrf } };
    if (body !== undefined) {
      if (isForm) { opts.body = body; } else { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    }
    return fetch(url, opts).then(function (r) {
      return r.json().then(function (b) {
        if (!r.ok) { var e = new Error(b.error || r.statusText); e.status = r.status; e.body = b; throw e; }
        return b;
      });
    });
  }

  function base() { return cfg.api; }
  function query() {
    return "?min=" + cfg.target[0] + "&max=" + cfg.target[1] + "&lang=" + cfg.lang;
  }

  function makeMap(id) {
    var m = L.map(id, { zoomControl: true, attributionControl: false, preferCanvas: false });
    return m;
  }
  var planMap = makeMap("map-plan");
  var currentMap = null;
  var outline = L.layerGroup().addTo(planMap);
  var gridsLayer = L.featureGroup().addTo(planMap);
  var problemsLayer = L.featureGroup().addTo(planMap);
  var byCode = {};
  var state = { grids: [], current: null, tool: "", picked: [], busy: 0, changed: [] };

  function describe(p) {
    if (p.status === "within") return L_.within;
    return (p.status === "under" ? L_.under : L_.over).replace("{n}", Math.abs(p.off_by));
  }

  function styleFor(p) {
    var changed = state.changed.indexOf(p.code) >= 0;
    var picked = state.picked.indexOf(p.code) >= 0;
    return { color: picked ? "#ff7f00" : changed ? "#6a3d9a" : "#333", weight: picked || changed ? 4 : 1.5,
             fillColor: COLOURS[p.status] || "#999", fillOpacity: 0.35 };
  }

  function tooltip(p) {
    return "<b>" + p.code + "</b>" + (p.name ? " " + p.name : "") + "<br>" + L_.households + " " + p.households +
      " · " + describe(p);
  }

  function drawGrids(fc) {
    gridsLayer.clearLayers();
    byCode = {};
    state.grids = fc.features.map(function (f) { return f.properties; });
    L.geoJSON(fc, {
      style: function (f) { return styleFor(f.properties); },
      onEachFeature: function (f, layer) {
        layer.feature = f;
        byCode[f.properties.code] = layer;
        layer.bindTooltip(tooltip(f.properties), { sticky: true });
        layer.on("click", function () { pick(f.properties.code); });
        layer.on("pm:edit", function () { save(f.properties.code, layer.toGeoJSON().geometry); });
        gridsLayer.addLayer(layer);
      }
    });
    table();
    if (state.tool === "vertices") enableVertices(true);
  }

  function table() {
    var tbody = document.querySelector("#plan-grids tbody");
    tbody.innerHTML = "";
    state.grids.forEach(function (p) {
      var tr = document.createElement("tr");
      tr.dataset.code = p.code;
      tr.className = "st-" + p.status;
      [p.code, p.households, p.population, Math.round(p.segment_m), p.incidents_per_month, p.staff,
       p.households_per_staff === null ? "–" : p.households_per_staff, describe(p)].forEach(function (v) {
        var td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      });
      tr.addEventListener("click", function () { pick(p.code); });
      tbody.appendChild(tr);
    });
  }

  function load(fit) {
    return call("GET", base() + query()).then(function (b) {
      outline.clearLayers();
      L.geoJSON(b.communities, { style: { color: "#000", weight: 2.5, fill: false, dashArray: "6 4" }, interactive: false }).addTo(outline);
      drawGrids(b.grids);
      state.current = b.current;
      if (fit) {
        var bounds = L.geoJSON(b.communities).getBounds();
        if (bounds.isValid()) planMap.fitBounds(bounds, { padding: [10, 10] });
      }
      if (currentMap) drawCurrent();
      document.body.dataset.loaded = String((+document.body.dataset.loaded || 0) + 1);
      return b;
    });
  }

  // ------------------------------------------------------------------ checks and comparison

  function validate() {
    say(L_.checking);
    return call("GET", base() + "/validate" + query()).then(function (r) {
      problemsLayer.clearLayers();
      var box = document.getElementById("plan-problems");
      box.innerHTML = "";
      var list = document.createElement("ul");
      list.className = "plan-problem-list";
      r.errors.concat(r.warnings).forEach(function (p) {
        var li = document.createElement("li");
        li.className = p.severity;
        li.dataset.kind = p.kind;
        li.textContent = p.message;
        list.appendChild(li);
        if (p.where) {
          L.geoJSON(p.where, {
            style: { color: p.severity === "error" ? "#e31a1c" : "#ff7f00", weight: 3, fillOpacity: 0.5 },
            pointToLayer: function (f, ll) { return L.circleMarker(ll, { radius: 8, color: "#e31a1c" }); }
          }).bindTooltip(p.message).addTo(problemsLayer);
        }
      });
      box.appendChild(list);
      say(r.ok ? L_.ok + (r.warnings.length ? " " + r.warnings.length + " " + L_.warnings : "")
               : r.errors.length + " " + L_.errors + ", " + r.warnings.length + " " + L_.warnings, !r.ok);
      document.body.dataset.validated = r.ok ? "ok" : "errors";
      return r;
    }).catch(function (e) { say(e.message, true); });
  }

  function drawCurrent() {
    currentMap.eachLayer(function (l) { currentMap.removeLayer(l); });
    L.geoJSON(state.current, {
      style: function (f) { return { color: "#333", weight: 1.5, fillColor: COLOURS[f.properties.status] || "#999", fillOpacity: 0.35 }; },
      onEachFeature: function (f, layer) { layer.bindTooltip(tooltip(f.properties), { sticky: true }); }
    }).addTo(currentMap);
  }

  var syncing = false;
  function sync(from, to) {
    from.on("move", function () {
      if (syncing) return;
      syncing = true;
      to.setView(from.getCenter(), from.getZoom(), { animate: false });
      syncing = false;
    });
  }

  function compare() {
    var el = document.getElementById("map-current");
    if (!currentMap) {
      el.hidden = false;
      document.getElementById("plan-maps").classList.add("split");
      currentMap = makeMap("map-current");
      currentMap.setView(planMap.getCenter(), planMap.getZoom(), { animate: false });
      sync(planMap, currentMap);
      sync(currentMap, planMap);
      planMap.invalidateSize();
      drawCurrent();
    }
    return call("GET", base() + "/compare" + query()).then(function (d) {
      state.changed = d.changed;
      gridsLayer.eachLayer(function (l) { l.setStyle(styleFor(l.feature.properties)); });
      var rows = [["grids", "count"], ["households min", "households_min"], ["households median", "households_median"],
                  ["households max", "households_max"], ["within target", "within_target_share"],
                  ["compactness mean", "compactness_mean"], ["compactness min", "compactness_min"], ["cut length m", "cut_length_m"]];
      var t = "<table class='plans-table' id='compare-table'><thead><tr><th>" + L_.metric + "</th><th>" + L_.current +
              "</th><th>" + L_.plan + "</th></tr></thead><tbody>";
      rows.forEach(function (r) {
        function f(v) { return v === null || v === undefined ? "–" : (typeof v === "number" && v % 1 ? v.toFixed(3) : v); }
        t += "<tr data-metric='" + r[1] + "'><td>" + r[0] + "</td><td>" + f(d.current[r[1]]) + "</td><td>" + f(d.plan[r[1]]) + "</td></tr>";
      });
      t += "</tbody></table><p>" + L_.changed + ": <span id='changed-grids'>" + (d.changed.join(", ") || "–") + "</span></p>";
      document.getElementById("plan-compare").innerHTML = t;
      return d;
    });
  }

  // ------------------------------------------------------------------ edits

  function version(code) {
    var p = byCode[code] && byCode[code].feature.properties;
    return p ? p.version : null;
  }
  function versions(codes) {
    var v = {};
    codes.forEach(function (c) { v[c] = version(c); });
    return v;
  }
  function grid(code) { return base() + "/grids/" + encodeURIComponent(code); }
  function done(msg) {
    // after an edit: the grids, the table and (when open) the comparison's figures again
    return function (b) {
      say(msg || L_.saved);
      return load(false).then(function () { return currentMap ? compare() : null; }).then(function () { return b; });
    };
  }
  function failed(e) {
    say(e.message, true);
    document.body.dataset.refused = e.message;
    return load(false).then(function () { throw e; });
  }

  function save(code, geometry) {
    return call("PUT", grid(code), { geometry: geometry, version: version(code) }).then(done()).catch(failed);
  }
  function split(code, line, newCode) {
    return call("POST", grid(code) + "/split", { line: line, version: version(code), new_code: newCode }).then(done()).catch(failed);
  }
  function merge(code, other) {
    return call("POST", grid(code) + "/merge", { other: other, versions: versions([code, other]) }).then(done()).catch(failed);
  }
  function reassign(donor, receiver, block) {
    return call("POST", grid(donor) + "/reassign", { receiver: receiver, block: block, versions: versions([donor, receiver]) })
      .then(done()).catch(failed);
  }

  function enableVertices(on) {
    gridsLayer.eachLayer(function (l) {
      if (on) l.pm.enable({ snappable: true, snapDistance: 15, allowSelfIntersection: false });
      else if (l.pm.enabled()) l.pm.disable();
    });
  }

  function restyle() { gridsLayer.eachLayer(function (l) { l.setStyle(styleFor(l.feature.properties)); }); }

  function pick(code) {
    if (!state.tool || state.tool === "vertices") return;
    if (state.picked.indexOf(code) < 0) state.picked.push(code);
    restyle();
    var need = { split: 1, merge: 2, reassign: 2 }[state.tool];
    if (state.tool === "merge" && state.picked.length === 2) {
      var pair = state.picked.slice();
      state.picked = [];
      merge(pair[0], pair[1]).catch(function () {});
    } else if (state.picked.length >= need) {
      planMap.pm.enableDraw(state.tool === "split" ? "Line" : "Polygon", { snappable: true });
    }
  }

  planMap.on("pm:create", function (e) {
    var geometry = e.layer.toGeoJSON().geometry;
    planMap.removeLayer(e.layer);
    var picked = state.picked.slice();
    state.picked = [];
    restyle();
    if (state.tool === "split" && picked.length) {
      var input = document.getElementById("plan-new-code");
      split(picked[0], geometry, (input && input.value) || picked[0] + "-2").catch(function () {});
    } else if (state.tool === "reassign" && picked.length === 2) {
      reassign(picked[0], picked[1], geometry).catch(function () {});
    }
  });

  function setTool(tool) {
    state.tool = tool;
    state.picked = [];
    planMap.pm.disableDraw();
    enableVertices(tool === "vertices");
    restyle();
    var hint = document.getElementById("plan-hint");
    if (hint) {
      hint.textContent = tool ? L_["pick_" + tool] : "";
      if (tool === "split") {
        var input = document.createElement("input");
        input.id = "plan-new-code";
        input.placeholder = L_.new_code;
        input.maxLength = 20;
        hint.appendChild(document.createTextNode(" "));
        hint.appendChild(input);
      }
    }
    document.querySelectorAll("#plan-tools button").forEach(function (b) {
      b.classList.toggle("on", b.dataset.tool === tool && !!tool);
    });
  }

  var autoButton = document.getElementById("btn-auto");
  if (autoButton) {
    autoButton.addEventListener("click", function () {
      say("…");
      call("POST", autoButton.dataset.url, { communities: autoButton.dataset.communities, min: cfg.target[0], max: cfg.target[1] })
        .then(function (p) { location.href = location.pathname.replace(/\/\d+$/, "/" + p.id) + location.search; })
        .catch(function (e) { say(e.message, true); });
    });
  }
  document.getElementById("btn-validate").addEventListener("click", validate);
  document.getElementById("btn-compare").addEventListener("click", function () { compare(); });
  document.querySelectorAll("#plan-tools button").forEach(function (b) {
    b.addEventListener("click", function () { setTool(b.dataset.tool); });
  });

  var importForm = document.getElementById("plan-import");
  if (importForm) {
    importForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      call("POST", base() + "/import", new FormData(importForm), true).then(function (r) {
        var report = document.getElementById("plan-report");
        report.hidden = false;
        report.textContent = JSON.stringify(r, null, 1);
        return done()(r);
      }).catch(function (e) { say(e.message, true); });
    });
  }
  var publishForm = document.getElementById("plan-publish");
  if (publishForm) {
    publishForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      call("POST", base() + "/publish" + query(), { day: publishForm.day.value }).then(function (r) {
        var report = document.getElementById("plan-report");
        report.hidden = false;
        report.textContent = JSON.stringify(r, null, 1);
        say(L_.published);
        document.body.dataset.published = "yes";
      }).catch(function (e) { say(e.message, true); });
    });
  }

  window.mapsvcPlan = { load: load, validate: validate, compare: compare, save: save, split: split, merge: merge,
                        reassign: reassign, setTool: setTool, state: state, map: planMap, layers: function () { return byCode; } };
  load(true);
})();
