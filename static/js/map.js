/* Coverage map (/): fetch grids and alley segments for the visible area and draw them.
 *
 * The page embeds only the district and the communities. This script asks
 * /api/grids and /api/segments for the visible bounding box (padded, so small pans need
 * no request) on load and after each move, with the zoom so the server simplifies to
 * half a pixel. A request still running when the map moves again is aborted.
 *
 * Everything is SVG: a canvas for the segments draws faster but, lying above the grids,
 * it would swallow their hover and tooltips.
 *
 * Every text that comes from data (names, codes) goes into the DOM through textContent,
 * never innerHTML; the styles and labels come from the server (layers.boundaries).
 */
(function () {
  "use strict";

  /** HTML-escape a string (for the few places Leaflet only takes HTML). */
  function escapeHtml(value) {
    return String(value == null ? "" : value)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#x27;");
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text);
    return node;
  }

  function fmt(value, digits, locale) {
    if (value == null || value === "") return "–";
    return Number(value).toLocaleString(locale, {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
  }

  /** A tooltip element: bold title, small code, then "label: value" lines. */
  function tip(title, code, lines, warning) {
    var box = el("div", "mapsvc-tipbox");
    box.appendChild(el("b", null, title));
    if (code) {
      box.appendChild(document.createTextNode(" "));
      box.appendChild(el("small", null, code));
    }
    lines.forEach(function (line) {
      var row = el("div");
      row.appendChild(el("span", "mapsvc-tiplabel", line[0] + ": "));
      row.appendChild(el("span", null, line[1]));
      box.appendChild(row);
    });
    if (warning) box.appendChild(el("div", "mapsvc-warn", warning));
    return box;
  }

  function init(map, opts) {
    var cfg = opts.config;
    var T = cfg.labels;
    var S = cfg.styles;
    var loc = cfg.locale;
    var container = map.getContainer();

    if (cfg.attribution && map.attributionControl) {
      map.attributionControl.addAttribution(cfg.attribution); // escaped by the server
    }

    var status = el("div", "mapsvc-status");
    status.setAttribute("role", "status");
    container.appendChild(status);
    function say(text, isError) {
      status.textContent = text || "";
      status.classList.toggle("mapsvc-error", !!isError);
      status.style.display = text ? "block" : "none";
    }
    say(cfg.empty);

    /* community labels (Chinese names) where the community is wide enough to hold one */
    var labelled = [];
    if (opts.communities) {
      var labels = L.layerGroup();
      opts.communities.eachLayer(function (layer) {
        var p = layer.feature && layer.feature.properties;
        if (!p || p.label_lat == null) return;
        var span = el("span", null, p.name);
        var marker = L.marker([p.label_lat, p.label_lon], {
          icon: L.divIcon({ className: "mapsvc-label", html: span, iconSize: null }),
          interactive: false,
          keyboard: false,
        }).addTo(labels);
        labelled.push({ marker: marker, layer: layer, chars: String(p.name || "").length });
      });
      labels.addTo(map);
      map.on("overlayadd overlayremove", function (e) {
        if (e.layer === opts.communities) {
          if (e.type === "overlayadd") labels.addTo(map);
          else labels.remove();
        }
      });
    }
    function fitLabels() {
      labelled.forEach(function (x) {
        var node = x.marker.getElement();
        if (!node) return;
        var b = x.layer.getBounds();
        var sw = map.latLngToLayerPoint(b.getSouthWest());
        var ne = map.latLngToLayerPoint(b.getNorthEast());
        var fits = ne.x - sw.x > x.chars * 12 + 8 && sw.y - ne.y > 34;
        node.style.display = fits ? "" : "none";
      });
    }
    map.on("zoomend", fitLabels);

    /* grids and segments */
    function gridTip(p) {
      return tip(p.name || p.code, p.code, [
        [T["Community"], p.community_name || "–"],
        [T["Households"], fmt(p.households, 0, loc)],
        [T["Population"], fmt(p.population, 0, loc)],
        [T["Area (km²)"], fmt(p.area_km2, 3, loc)],
        [T["Grid head"], p.head_name || T["No grid head"]],
      ]);
    }
    function segmentTip(p) {
      var lines = [[T["Length (m)"], fmt(p.length_m, 0, loc)]];
      if (p.chief_name) lines.push([T["Chief"], p.chief_name]);
      lines.push([T["Deputy chief"], p.deputy_name || "–"]);
      return tip(p.name || p.code, p.code, lines, p.chief_name ? null : T["No chief assigned"]);
    }

    function segmentStyle(f) {
      var far = map.getZoom() < cfg.farZoom ? "_far" : "";
      return f.properties.chief_name ? S["segment" + far] : S["segment_no_chief" + far];
    }
    map.on("zoomend", function () {
      opts.segments.eachLayer(function (layer) {
        if (layer.setStyle) layer.setStyle(segmentStyle);
      });
    });

    var sources = {
      grids: {
        group: opts.grids,
        url: cfg.api.grids,
        minZoom: 0,
        make: function (data) {
          var layer = L.geoJSON(data, {
            pane: cfg.panes.grids,
            style: function (f) {
              return L.extend({}, S.grid, { fillColor: f.properties.colour });
            },
            onEachFeature: function (f, l) {
              l.bindTooltip(function () { return gridTip(f.properties); }, { sticky: true, className: "mapsvc-tip" });
              l.on("mouseover", function () { l.setStyle(S.grid_hover); l.bringToFront(); });
              l.on("mouseout", function () { layer.resetStyle(l); });
            },
          });
          return layer;
        },
      },
      segments: {
        group: opts.segments,
        url: cfg.api.segments,
        minZoom: cfg.segmentMinZoom,
        make: function (data) {
          var layer = L.geoJSON(data, {
            pane: cfg.panes.segments,
            style: segmentStyle,
            onEachFeature: function (f, l) {
              l.bindTooltip(function () { return segmentTip(f.properties); }, { sticky: true, className: "mapsvc-tip" });
              l.on("mouseover", function () { l.setStyle(S.segment_hover); });
              l.on("mouseout", function () { layer.resetStyle(l); });
            },
          });
          return layer;
        },
      },
    };

    function load(name, force) {
      var src = sources[name];
      if (!map.hasLayer(src.group)) return Promise.resolve();
      var zoom = Math.round(map.getZoom());
      var view = map.getBounds();
      if (zoom < src.minZoom) {
        src.group.clearLayers();
        src.loaded = null;
        src.count = 0;
        say(T["Zoom in to see alley segments"]);
        return Promise.resolve();
      }
      if (!force && src.loaded && src.loaded.bounds.contains(view) && zoom <= src.loaded.zoom) {
        return Promise.resolve();
      }
      var want = view.pad(0.3);
      var clamp = function (v, lim) { return Math.max(-lim, Math.min(lim, v)).toFixed(6); };
      var bbox = [
        clamp(want.getWest(), 180), clamp(want.getSouth(), 90),
        clamp(want.getEast(), 180), clamp(want.getNorth(), 90),
      ].join(",");
      var url = src.url + "?bbox=" + bbox + "&zoom=" + zoom + (cfg.crs !== "wgs84" ? "&crs=" + cfg.crs : "");
      if (src.abort) src.abort.abort();
      var ctrl = new AbortController();
      src.abort = ctrl;
      return fetch(url, { signal: ctrl.signal, headers: { Accept: "application/geo+json" } })
        .then(function (r) {
          if (!r.ok) {
            return r.json().then(function (j) { throw new Error(j.error || r.statusText); });
          }
          return r.json();
        })
        .then(function (data) {
          src.group.clearLayers();
          src.make(data).addTo(src.group);
          src.loaded = { bounds: want, zoom: zoom };
          src.count = data.features.length;
          src.abort = null;
        })
        .catch(function (err) {
          if (err.name === "AbortError") return;
          say(T["Could not load map data"] + ": " + err.message, true);
          throw err;
        });
    }

    var pending = 0;
    var timer = null;
    /* after the next paint, record that `what` is on screen (attribute + performance mark);
       tests, the benchmark and the screenshot script wait for these */
    function drawn(what) {
      requestAnimationFrame(function () {
        requestAnimationFrame(function () {
          // grids drawn, or (for "map") segments drawn
          var n = (what === "grids" ? sources.grids.count : sources.segments.count) || 0;
          document.documentElement.setAttribute("data-" + what + "-drawn", String(n));
          if (performance.mark && !performance.getEntriesByName("mapsvc-" + what + "-drawn").length) {
            performance.mark("mapsvc-" + what + "-drawn");
          }
        });
      });
    }

    function refresh(force) {
      pending += 1;
      if (!cfg.empty) say(T["Loading map data…"]);
      // grids first: the server answers them sooner when it is not also encoding segments
      var grids = load("grids", force);
      var segments = grids.then(function () { return load("segments", force); });
      grids.then(function () { drawn("grids"); });
      Promise.all([grids, segments])
        .then(function () {
          pending -= 1;
          if (pending === 0 && !status.classList.contains("mapsvc-error")) {
            say(map.getZoom() < cfg.segmentMinZoom ? T["Zoom in to see alley segments"] : cfg.empty);
          }
          drawn("map");
        })
        .catch(function (err) {
          pending -= 1;
          console.error("mapsvc: " + err.message);
        });
    }
    map.on("moveend", function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 120);
    });
    map.on("overlayadd", function (e) {
      if (e.layer === opts.grids || e.layer === opts.segments) refresh(true);
    });
    // after the page's own script has fitted the map to the district
    setTimeout(function () {
      fitLabels();
      refresh(true);
    }, 0);
  }

  window.mapsvcCoverage = { init: init, escapeHtml: escapeHtml };
})();
