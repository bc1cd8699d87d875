/* Incident heatmap page: refetch binned counts from /api/heatmap on every pan and zoom.
 *
 * The server (layers/heatmap.py) aggregates incidents into screen cells in PostGIS and
 * answers [lon, lat, count] triples; this script only turns them into leaflet.heat points
 * weighted by count / scale_max (a high percentile of the cells, clipped at 1), so the
 * browser never holds raw incidents, and rewrites the legend's colour classes. With
 * bins "hex" the server answers ST_HexagonGrid cell indices and counts (no polygons: ten
 * times smaller); hexFeatures builds each hexagon's outline in EPSG:3857 exactly as
 * PostGIS ST_Hexagon (and layers/heatmap.py hexagon_outlines for the first paint) does,
 * and the GeoJSON layer of hexagons is refilled and coloured by class.
 */
(function () {
  "use strict";

  function clamp(v, lo, hi) {
    return Math.max(lo, Math.min(hi, v));
  }

  function totalControl(map, label) {
    var Ctl = L.Control.extend({
      options: { position: "bottomright" },
      onAdd: function () {
        var div = L.DomUtil.create("div", "mapsvc-heat-total");
        div.style.cssText =
          "background:rgba(255,255,255,.9);padding:3px 8px;border-radius:4px;font:12px sans-serif";
        return div;
      },
    });
    var ctl = new Ctl();
    ctl.addTo(map);
    return function (total) {
      ctl.getContainer().textContent = Number(total).toLocaleString() + " " + (label || "");
    };
  }

  /* The filter form: the grid list shows the chosen community's grids only, and a grid
   * of another community is unselected when the community changes (it would match
   * nothing together with it). */
  function wireFilterForm() {
    var form = document.getElementById("incident-filters");
    if (!form || !form.elements.community || !form.elements.grid) {
      return;
    }
    var comm = form.elements.community;
    var grid = form.elements.grid;
    function limit() {
      var chosen = comm.value;
      Array.prototype.forEach.call(grid.querySelectorAll("optgroup"), function (g) {
        var show = !chosen || g.getAttribute("data-community") === chosen;
        g.hidden = !show;
        g.disabled = !show;
      });
      var opt = grid.options[grid.selectedIndex];
      if (opt && opt.parentNode.tagName === "OPTGROUP" && opt.parentNode.disabled) {
        grid.value = "";
      }
    }
    comm.addEventListener("change", limit);
    limit();
  }

  /* Leaflet style of a hexagon: the colour of the class its count falls in (the server's
   * classes: [colour, lo, hi], hi null for the open top class). */
  function hexStyle(classes) {
    return function (feature) {
      var n = feature.properties.n;
      var colour = classes.length ? classes[classes.length - 1][0] : "#bd0026";
      for (var i = 0; i < classes.length; i++) {
        var hi = classes[i][2];
        if (hi === null || hi === undefined || n <= hi) {
          colour = classes[i][0];
          break;
        }
      }
      return { fillColor: colour, color: colour, weight: 0.5, fillOpacity: 0.75 };
    };
  }

  var SQRT3 = Math.sqrt(3);
  /* ST_Hexagon's vertices around its centre, in edge lengths (flat-topped, closed ring) */
  var HEX_RING = [
    [-1, 0],
    [-0.5, -SQRT3 / 2],
    [0.5, -SQRT3 / 2],
    [1, 0],
    [0.5, SQRT3 / 2],
    [-0.5, SQRT3 / 2],
    [-1, 0],
  ];

  /* GeoJSON hexagons of a bins=hex answer: cell (i, j) = origin + [di, dj] of
   * ST_HexagonGrid(hex_size) in EPSG:3857, centred at x = 1.5 s i,
   * y = sqrt(3) s (j + (i mod 2) / 2); with "centres" (answers moved to GCJ-02 / BD-09)
   * the hexagon is drawn around the moved centre. crs: the map's (EPSG:3857). */
  function hexFeatures(d, crs) {
    var s = d.hex_size;
    var o = d.origin || [0, 0];
    return {
      type: "FeatureCollection",
      features: (d.cells || []).map(function (c, k) {
        var i = o[0] + c[0];
        var j = o[1] + c[1];
        var x, y;
        if (d.centres) {
          var p = crs.project(L.latLng(d.centres[k][1], d.centres[k][0]));
          x = p.x;
          y = p.y;
        } else {
          x = 1.5 * s * i;
          y = SQRT3 * s * (j + 0.5 * (((i % 2) + 2) % 2));
        }
        var ring = HEX_RING.map(function (v) {
          var ll = crs.unproject(L.point(x + v[0] * s, y + v[1] * s));
          return [ll.lng, ll.lat];
        });
        return {
          type: "Feature",
          geometry: { type: "Polygon", coordinates: [ring] },
          properties: { n: c[2], i: i, j: j },
        };
      }),
    };
  }

  function init(map, heat, opts) {
    opts = opts || {};
    wireFilterForm();
    if (opts.attribution && map.attributionControl) {
      var span = document.createElement("span");
      span.textContent = opts.attribution;
      map.attributionControl.addAttribution(span.innerHTML);
    }
    if (!heat || !opts.api) {
      return;
    }
    var seq = 0;
    var timer = null;
    var showTotal = totalControl(map, opts.total_label);
    var legendRows = opts.legend_rows || 0;

    /* Rewrite the legend's first rows (the colour scale) for the classes of this view:
     * [colour, lo, hi] in incidents per cell, hi null for "lo or more". */
    function showScale(classes) {
      var legend = document.querySelector(".mapsvc-legend");
      if (!legend || !classes) {
        return;
      }
      var rows = legend.querySelectorAll(":scope > div");
      var after = rows[legendRows] || null;
      for (var i = 0; i < legendRows; i++) {
        legend.removeChild(rows[i]);
      }
      classes.forEach(function (c) {
        var row = document.createElement("div");
        row.className = "mapsvc-scale-row";
        var sw = document.createElement("span");
        sw.style.cssText =
          "display:inline-block;width:12px;height:12px;margin-right:6px;border:1px solid #555";
        sw.style.background = c[0];
        row.appendChild(sw);
        var text =
          c[2] === null || c[2] === undefined
            ? c[1] + " " + (opts.or_more || "+")
            : c[1] === c[2]
            ? String(c[1])
            : c[1] + "–" + c[2];
        row.appendChild(document.createTextNode(text));
        legend.insertBefore(row, after);
      });
      legendRows = classes.length;
    }
    var container = map.getContainer();

    function refresh() {
      var b = map.getBounds();
      var params = new URLSearchParams(opts.filters || {});
      params.set(
        "bbox",
        [
          clamp(b.getWest(), -180, 180),
          clamp(b.getSouth(), -85, 85),
          clamp(b.getEast(), -180, 180),
          clamp(b.getNorth(), -85, 85),
        ]
          .map(function (v) {
            return v.toFixed(6);
          })
          .join(",")
      );
      params.set("zoom", String(map.getZoom()));
      var mine = ++seq;
      container.dataset.heatLoading = "1";
      fetch(opts.api + "?" + params.toString(), { headers: { Accept: "application/json" } })
        .then(function (r) {
          if (!r.ok) {
            throw new Error("HTTP " + r.status);
          }
          return r.json();
        })
        .then(function (d) {
          if (mine !== seq) {
            return; // a newer view was asked for meanwhile
          }
          // the scale tops out at a high percentile of the cells (scale_max): fuller
          // cells are clipped to the full colour
          var top = Math.max(1, d.scale_max || d.max || 1);
          var cells;
          if (opts.bins === "hex") {
            cells = d.cells.length;
            heat.options.style = hexStyle(d.classes);
            heat.clearLayers();
            heat.addData(hexFeatures(d, map.options.crs || L.CRS.EPSG3857));
            heat.bringToBack(); // overdue incidents stay on top of the hexagons
          } else {
            cells = d.points.length;
            heat.setLatLngs(
              d.points.map(function (p) {
                return [p[1], p[0], Math.min(1, p[2] / top)];
              })
            );
          }
          showScale(d.classes);
          container.dataset.heatScaleMax = String(top);
          showTotal(d.total);
          container.dataset.heatTotal = String(d.total);
          container.dataset.heatCells = String(cells);
          container.dataset.heatZoom = String(d.zoom);
          container.dataset.heatLoading = "0";
        })
        .catch(function (err) {
          container.dataset.heatLoading = "error";
          console.error("heatmap refresh failed: " + err);
        });
    }

    map.on("moveend", function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 120);
    });
    refresh();
  }

  window.MapsvcHeatmap = { init: init, hexFeatures: hexFeatures, wireFilterForm: wireFilterForm };
})();
