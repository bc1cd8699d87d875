/* The local base map: the district's own data, painted from the service's vector tiles.
 *
 * /tiles/basemap/{z}/{x}/{y}.mvt holds the layers district, communities,
 * community_labels, grid_labels, grids, streets and centres (layers/tiles.py). This
 * script paints them with protomaps-leaflet (canvas, no web workers, no other origin):
 * a light ground, white streets with a grey casing, community and grid outlines, and the
 * names in CJK type - streets along their line from zoom 16, communities from 12, grids
 * from 15, service centres from 15.
 *
 * mapsvcBasemap.layer(options) answers the Leaflet layer (folium adds it to the map and
 * the layer switch). The street names a layer has placed are listed, for tests and the
 * screenshot script, in <html data-basemap-streets="...">.
 */
(function () {
  "use strict";

  var P = window.protomapsL;
  var FONT = '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", ' +
    '"Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif';
  var COLOURS = {
    ground: "#f4f2ec",
    district: "#eeebe3",
    districtLine: "#8a94a3",
    community: "#98a2b3",
    grid: "#cfd4db",
    casing: "#cdc6b8",
    street: "#ffffff",
    major: "#fbe7b5",
    centre: "#d1495b",
    text: "#2f3640",
    textSoft: "#5d6875",
    halo: "#ffffff",
  };
  var MAJOR = { primary: 1, secondary: 1, tertiary: 1, trunk: 1 };

  /** Street width in CSS pixels at zoom z (thin when far, a real road when near). */
  function streetWidth(z, f) {
    var major = f && f.props && MAJOR[f.props.highway];
    var w = z < 14 ? 0.8 : z < 15 ? 1.5 : z < 16 ? 3 : z < 17 ? 6 : z < 18 ? 10 : 16;
    return major ? w * 1.4 : w;
  }

  /** A label symbolizer that also records the names it placed (see the header). */
  function recording(symbolizer, seen) {
    return {
      place: function (layout, geom, feature) {
        var out = symbolizer.place(layout, geom, feature);
        if (out && out.length && feature.props && feature.props.name) {
          var name = String(feature.props.name);
          if (!seen[name]) {
            seen[name] = true;
            document.documentElement.setAttribute(
              "data-basemap-streets", Object.keys(seen).join("\n")
            );
          }
        }
        return out;
      },
    };
  }

  function text(size, colour, weight) {
    return {
      labelProps: ["name"],
      fontFamily: FONT,
      fontSize: size,
      fontWeight: weight || 400,
      fill: colour,
      stroke: COLOURS.halo,
      width: 3,
    };
  }

  function paintRules() {
    return [
      { dataLayer: "district", symbolizer: new P.PolygonSymbolizer({ fill: COLOURS.district }) },
      {
        dataLayer: "grids",
        minzoom: 13,
        symbolizer: new P.LineSymbolizer({ color: COLOURS.grid, width: 0.8 }),
      },
      {
        dataLayer: "communities",
        symbolizer: new P.LineSymbolizer({ color: COLOURS.community, width: 1.4, dash: [6, 3] }),
      },
      {
        dataLayer: "streets",
        symbolizer: new P.LineSymbolizer({
          color: COLOURS.casing,
          width: function (z, f) { return streetWidth(z, f) + (z < 15 ? 0 : 1.5); },
        }),
      },
      {
        dataLayer: "streets",
        minzoom: 14,
        symbolizer: new P.LineSymbolizer({
          color: function (z, f) { return MAJOR[f && f.props.highway] ? COLOURS.major : COLOURS.street; },
          width: streetWidth,
        }),
      },
      {
        dataLayer: "district",
        symbolizer: new P.LineSymbolizer({ color: COLOURS.districtLine, width: 2.5 }),
      },
      {
        dataLayer: "centres",
        minzoom: 14,
        symbolizer: new P.CircleSymbolizer({
          radius: 4, fill: COLOURS.centre, stroke: COLOURS.halo, width: 1.5,
        }),
      },
    ];
  }

  function labelRules(seen) {
    return [
      {
        dataLayer: "streets",
        minzoom: 16,
        symbolizer: recording(
          new P.LineLabelSymbolizer(
            L.extend(text(14, COLOURS.text, 500), { position: P.LineLabelPlacement.Center })
          ),
          seen
        ),
      },
      {
        dataLayer: "centres",
        minzoom: 15,
        symbolizer: new P.OffsetTextSymbolizer(text(12, COLOURS.centre, 600)),
      },
      {
        dataLayer: "community_labels",
        minzoom: 12,
        symbolizer: new P.CenteredTextSymbolizer(text(15, COLOURS.textSoft, 600)),
      },
      {
        dataLayer: "grid_labels",
        minzoom: 15,
        symbolizer: new P.CenteredTextSymbolizer(text(11, COLOURS.textSoft)),
      },
    ];
  }

  function layer(options) {
    var seen = {};
    var lyr = P.leafletLayer({
      url: options.url,
      // the server makes tiles to z16; nearer in, the z16 tile is drawn larger
      maxDataZoom: 16,
      maxZoom: options.maxZoom || 20,
      backgroundColor: COLOURS.ground,
      paintRules: paintRules(),
      labelRules: labelRules(seen),
    });
    layers.push(lyr);
    return lyr;
  }

  var layers = [];
  window.mapsvcBasemap = { layer: layer, layers: layers };
})();
