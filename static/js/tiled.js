/* Large overlays painted from the service's vector tiles instead of embedded GeoJSON.
 *
 * mapsvcTiled.segments(options) answers a Leaflet layer that paints the alley segments
 * of /tiles/segments/{z}/{x}/{y}.mvt with protomaps-leaflet. The page sends only what
 * the tiles cannot know: options.states maps a segment id to its state key and
 * options.colours a state key to a colour; segments without a state are not drawn.
 * A click on the map opens a popup with the segment, its chief and its state, read from
 * the tile's own feature properties (no extra request). For tests, <html> carries the
 * number of segments with a state (data-tiled-segments) and of those painted so far
 * (data-tiled-painted).
 */
(function () {
  "use strict";

  var P = window.protomapsL;

  function esc(s) {
    return String(s === undefined || s === null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function segments(options) {
    var states = options.states || {};
    var colours = options.colours || {};
    var labels = options.labels || {};
    var painted = {};
    var count = 0;
    var lyr = P.leafletLayer({
      url: options.url,
      maxDataZoom: 16,
      maxZoom: options.maxZoom || 20,
      paintRules: [
        {
          dataLayer: "segments",
          filter: function (z, f) {
            if (states[f.id] === undefined) return false;
            if (!painted[f.id]) {
              painted[f.id] = true;
              count += 1;
              document.documentElement.setAttribute("data-tiled-painted", String(count));
            }
            return true;
          },
          symbolizer: new P.LineSymbolizer({
            color: function (z, f) { return colours[states[f.id]] || "#999"; },
            width: function (z) { return z < 14 ? 2.5 : z < 16 ? 4 : 6; },
            opacity: 0.9,
          }),
        },
      ],
      labelRules: [],
    });
    var map = null;
    lyr.on("add", function (e) {
      map = e.target._map;
      var onClick = function (ev) {
        var found = lyr.queryTileFeaturesDebug(ev.latlng.lng, ev.latlng.lat, 8);
        var hit = null;
        found.forEach(function (list) {
          list.forEach(function (q) {
            if (!hit && q.layerName === "segments" && states[q.feature.id] !== undefined) {
              hit = q.feature;
            }
          });
        });
        if (!hit) return;
        var p = hit.props || {};
        var state = states[hit.id];
        L.popup()
          .setLatLng(ev.latlng)
          .setContent(
            "<b>" + esc(labels.segment) + "</b> " + esc(p.name || p.code) + "<br>" +
            "<b>" + esc(labels.chief) + "</b> " + esc(p.chief_name) + "<br>" +
            "<b>" + esc(labels.state) + "</b> " + esc((labels.states || {})[state] || state)
          )
          .openOn(map);
      };
      lyr._mapsvcClick = onClick;
      map.on("click", onClick);
    });
    lyr.on("remove", function () {
      if (lyr._mapsvcClick && map) map.off("click", lyr._mapsvcClick);
    });
    document.documentElement.setAttribute(
      "data-tiled-segments", String(Object.keys(states).length)
    );
    return lyr;
  }

  window.mapsvcTiled = { segments: segments };
})();
