"""Heatmap colour scale: a high percentile of the cells, classes in incidents per cell."""

from __future__ import annotations

import numpy as np
import pytest

from layers import get_layer
from layers.heatmap import (
    CLASS_COLOURS,
    GRADIENT,
    SCALE_PERCENTILE,
    class_colour,
    scale_classes,
    scale_legend,
    scale_top,
)
from mapsvc.db import session_scope
from tests.fixtures.incidents import zoom_and_wait
from tests.fixtures.web import LiveServer, wait_until

WAIT_LOADED = "document.querySelector('.folium-map').dataset.heatLoading === '0'"


def _percentile(counts: list[int]) -> int:
    # numpy's nearest-rank definition ("inverted_cdf"), an implementation apart from ours
    return int(np.percentile(np.asarray(counts), SCALE_PERCENTILE, method="inverted_cdf"))


@pytest.mark.parametrize(
    "counts",
    [
        list(range(1, 101)),
        [1] * 50 + [500],  # one very full cell does not set the scale
        [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9],
        [7],
    ],
)
def test_scale_top_is_the_percentile(counts: list[int]) -> None:
    assert scale_top(counts) == _percentile(counts)
    assert scale_top([]) == 1


def test_classes_partition_the_counts() -> None:
    for top in (1, 2, 3, 5, 7, 10, 38, 59, 1000):
        classes = scale_classes(top)
        # contiguous from 1, the last one open ("top or more" is in it), colours in order
        assert classes[0][1] == 1 and classes[-1][2] is None
        for (_c, _lo, hi), (_c2, lo2, _hi2) in zip(classes, classes[1:], strict=False):
            assert lo2 == hi + 1
        assert classes[-1][1] <= top
        colours = [c[0] for c in classes]
        assert colours == [c for c in CLASS_COLOURS if c in colours]
        assert colours[-1] == CLASS_COLOURS[-1]
        # a cell's colour is that of the gradient at its weight n / top (the heat layer's)
        stops = sorted(GRADIENT)
        for n in range(1, 2 * top + 2):
            w = min(1.0, n / top)
            expected = GRADIENT[next(s for s in stops if w <= s + 1e-9)]
            assert class_colour(n, top) == expected, (n, top)
    # 5 classes when there is room for them
    assert [(lo, hi) for _c, lo, hi in scale_classes(50)] == [
        (1, 10),
        (11, 20),
        (21, 30),
        (31, 40),
        (41, None),
    ]
    assert [i.label for i in scale_legend(1, "en")] == ["1 or more"]
    assert [i.label for i in scale_legend(50, "zh_CN")][-1] == "41 及以上"


def test_query_scale_on_the_cells(populated) -> None:
    layer = get_layer("heatmap")
    with session_scope(populated.engine) as s:
        for zoom in (13, 15, 17):
            data = layer.query(s, None, zoom=zoom)
            counts = [p[2] for p in data["points"]]
            assert data["scale_max"] == _percentile(counts) <= data["max"] == max(counts)
            assert data["classes"] == [list(c) for c in scale_classes(data["scale_max"])]
            # the cells clipped to the full colour are the top few percent
            full = sum(n >= data["scale_max"] for n in counts)
            assert full >= 1
            assert sum(n > data["scale_max"] for n in counts) <= 0.03 * len(counts) + 1
        empty = layer.query(s, None, zoom=14, category="no_such")
    assert empty["total"] == 0 and empty["scale_max"] == 1


def test_page_legend_follows_the_view(populated, make_app, page) -> None:
    app = make_app(populated.engine)
    server = LiveServer(app)
    client = app.test_client()
    try:
        page.goto(f"{server.url}/incidents/map?lang=en")
        wait_until(page, WAIT_LOADED)
        legend = page.inner_text(".mapsvc-legend")
        assert legend.startswith("Incidents per cell (12×12 pixels)")
        for zoom_by in (0, 2):
            if zoom_by:
                zoom_and_wait(page, zoom_by)
            view = page.evaluate(
                """() => { const m = Object.values(window).find(v => v instanceof L.Map);
                const b = m.getBounds();
                return [[b.getWest(), b.getSouth(), b.getEast(), b.getNorth()], m.getZoom()]; }"""
            )
            (w, so, e, n), zoom = view
            api = client.get(
                f"/api/heatmap?bbox={w:.6f},{so:.6f},{e:.6f},{n:.6f}&zoom={zoom}"
            ).get_json()
            shown = page.eval_on_selector(".folium-map", "e => Number(e.dataset.heatScaleMax)")
            assert shown == api["scale_max"]
            rows = page.eval_on_selector_all(
                ".mapsvc-legend > div", "ds => ds.map(d => d.textContent.trim())"
            )
            expected = [i.label for i in scale_legend(api["scale_max"], "en")]
            assert rows[: len(expected)] == expected
            assert rows[len(expected)].startswith("Overdue incidents")
        assert page.errors == []
    finally:
        server.stop()
