// The small map of an incident's page: the district's own base map (served here, no
// internet), the incident as a pin and the segment it was routed to as a line.
(function () {
  var cfgEl = document.getElementById("item-map-config");
  if (!cfgEl || !window.L) return;
  var cfg = JSON.parse(cfgEl.textContent);
  var map = L.map("item-map", { zoomControl: true, attributionControl: false });
  var point = L.latLng(cfg.lat, cfg.lon);
  var bounds = L.latLngBounds(point, point);
  var line = null;
  if (cfg.segment) {
    line = L.geoJSON(cfg.segment, { style: { color: "#1f78b4", weight: 5, opacity: 0.8 } });
    if (cfg.segmentName) {  // a text node: Leaflet would read a string as HTML
      var label = document.createElement("span");
      label.textContent = cfg.segmentName;
      line.bindTooltip(label);
    }
    bounds.extend(line.getBounds());
  }
  // the view first: Leaflet draws layers only on a map that has one
  map.fitBounds(bounds.pad(0.3), { maxZoom: 17 });
  if (cfg.tiles && window.mapsvcBasemap) {
    window.mapsvcBasemap.layer({ url: cfg.tiles, maxZoom: cfg.maxZoom }).addTo(map);
  }
  if (line) line.addTo(map);
  L.circleMarker(point, { radius: 8, color: "#fff", weight: 2, fillColor: "#d7301f", fillOpacity: 1 })
    .addTo(map);
})();
