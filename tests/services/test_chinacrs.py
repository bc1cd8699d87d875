"""GCJ-02 / BD-09 accuracy: against an independent implementation and by round trip.

``eviltransform`` (PyPI, installed for tests only) is an independent implementation of the
published GCJ-02 / BD-09 formulas; distances are geodesic metres from pyproj.Geod.
"""

from __future__ import annotations

import eviltransform
import numpy as np
import pytest
import shapely
from pyproj import Geod

from mapsvc.services import chinacrs

GEOD = Geod(ellps="WGS84")


def _metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


@pytest.fixture(scope="module")
def china_points() -> tuple[np.ndarray, np.ndarray]:
    """Random WGS84 points across mainland China plus Licheng's old city."""
    rng = np.random.default_rng(7)
    lon = np.concatenate([rng.uniform(98.0, 122.0, 2000), rng.uniform(118.5, 118.6, 500)])
    lat = np.concatenate([rng.uniform(22.0, 45.0, 2000), rng.uniform(24.83, 24.95, 500)])
    return lon, lat


def test_forward_matches_eviltransform(china_points) -> None:
    lon, lat = china_points
    glon, glat = chinacrs.wgs84_to_gcj02(lon, lat)
    ref = np.array([eviltransform.wgs2gcj(b, a) for a, b in zip(lon, lat, strict=True)])
    d = _metres(glon, glat, ref[:, 1], ref[:, 0])
    print(f"GCJ-02 forward vs eviltransform: max {d.max() * 1000:.2f} mm")
    # eviltransform scales the offset with the WGS84 semi-major axis (6378137 m), the
    # published formula (ours) with Krasovsky's (6378245 m): a relative 1.7e-5 of a
    # few-hundred-metre offset, i.e. about a centimetre. Anything more is a real bug.
    assert d.max() < 0.02
    # and the offset really is the few hundred metres GCJ-02 is known for
    shift = _metres(lon, lat, glon, glat)
    assert 50 < np.median(shift) < 900


#: what the iterative inverses must give back, in metres: they stop at 1e-10° (about
#: 1e-5 m) and measure 3e-9 m (GCJ-02) and 7e-8 m (BD-09) on these points; a looser
#: stop or fewer iterations shows here long before it reaches a visible centimetre
ROUND_TRIP_M = 1e-6


def test_inverse_round_trip_within_a_micrometre(china_points) -> None:
    lon, lat = china_points
    glon, glat = chinacrs.wgs84_to_gcj02(lon, lat)
    wlon, wlat = chinacrs.gcj02_to_wgs84(glon, glat)
    d = _metres(lon, lat, wlon, wlat)
    print(f"GCJ-02 round trip: max {d.max():.2e} m")
    assert d.max() <= ROUND_TRIP_M
    # the iterative inverse is far better than the usual one-step approximation
    one_step = np.array([eviltransform.gcj2wgs(b, a) for a, b in zip(glon, glat, strict=True)])
    d1 = _metres(lon, lat, one_step[:, 1], one_step[:, 0])
    assert d.max() < d1.max()


def test_inverse_matches_eviltransform_exact(china_points) -> None:
    lon, lat = china_points
    glon, glat = chinacrs.wgs84_to_gcj02(lon[:300], lat[:300])
    wlon, wlat = chinacrs.gcj02_to_wgs84(glon, glat)
    ref = np.array([eviltransform.gcj2wgs_exact(b, a) for a, b in zip(glon, glat, strict=True)])
    # measured 0.14 m: eviltransform's "exact" inverse stops at 1e-6° (about 0.1 m), plus
    # the centimetre of its other semi-major axis (see the forward test)
    assert _metres(wlon, wlat, ref[:, 1], ref[:, 0]).max() < 0.2


def test_bd09_forward_and_round_trip(china_points) -> None:
    lon, lat = china_points
    blon, blat = chinacrs.wgs84_to_bd09(lon, lat)
    ref = np.array([eviltransform.wgs2bd(b, a) for a, b in zip(lon, lat, strict=True)])
    assert _metres(blon, blat, ref[:, 1], ref[:, 0]).max() < 0.02
    wlon, wlat = chinacrs.bd09_to_wgs84(blon, blat)
    d = _metres(lon, lat, wlon, wlat)
    print(f"BD-09 round trip: max {d.max():.2e} m")
    assert d.max() <= ROUND_TRIP_M


def test_outside_china_unchanged() -> None:
    lon = np.array([-0.1276, 2.3522, 139.6917, 151.2093, 37.6173])  # London .. Moscow
    lat = np.array([51.5072, 48.8566, 35.6895, -33.8688, 55.7558])
    for fwd in (chinacrs.wgs84_to_gcj02, chinacrs.gcj02_to_wgs84):
        x, y = fwd(lon, lat)
        np.testing.assert_array_equal(x, lon)
        np.testing.assert_array_equal(y, lat)
    assert eviltransform.outOfChina(51.5072, -0.1276)


def test_vectorised_equals_scalar(china_points) -> None:
    lon, lat = china_points
    vx, vy = chinacrs.gcj02_to_wgs84(lon[:50], lat[:50])
    for i in range(50):
        sx, sy = chinacrs.gcj02_to_wgs84(lon[i], lat[i])
        assert float(sx) == pytest.approx(vx[i], abs=1e-12)
        assert float(sy) == pytest.approx(vy[i], abs=1e-12)
    assert vx.shape == (50,)


def test_geometry_and_points_helpers() -> None:
    """Polygons convert vertex by vertex; points_to_wgs84 handles names and EPSG codes."""
    poly = shapely.box(118.58, 24.90, 118.59, 24.91)
    w = chinacrs.geometry_to_wgs84(poly, "GCJ-02")
    coords = shapely.get_coordinates(w)
    ex, ey = chinacrs.gcj02_to_wgs84(*shapely.get_coordinates(poly).T)
    np.testing.assert_allclose(coords, np.column_stack([ex, ey]), atol=1e-12)
    back = chinacrs.geometry_from_wgs84(w, "gcj02")
    back_m = _metres(*shapely.get_coordinates(back).T, *shapely.get_coordinates(poly).T)
    assert back_m.max() <= ROUND_TRIP_M  # measured 2e-9 m
    x, y = chinacrs.points_to_wgs84([118.58], [24.90], "EPSG:4490")
    assert (float(x[0]), float(y[0])) == (118.58, 24.90)
    x, y = chinacrs.points_to_wgs84([13200000.0], [2860000.0], "EPSG:3857")
    assert 118.5 < float(x[0]) < 118.7 and 24.8 < float(y[0]) < 25.0


@pytest.mark.parametrize(
    ("given", "read_as"),
    [
        (None, "wgs84"),
        ("", "wgs84"),
        ("wgs84", "wgs84"),
        ("WGS-84", "wgs84"),
        ("wgs_84", "wgs84"),
        ("EPSG:4326", "wgs84"),
        ("gcj02", "gcj02"),
        ("GCJ-02", "gcj02"),
        (" gcj_02 ", "gcj02"),
        ("mars", "gcj02"),
        ("bd09", "bd09"),
        ("BD-09", "bd09"),
        ("bd09ll", "bd09"),
        ("BD09LL", "bd09"),
        ("baidu", "bd09"),
    ],
)
def test_display_crs_accepts_the_import_spellings(given: str | None, read_as: str) -> None:
    """A map page reads a datum name as an import does (one parser: normalize_crs_name)."""
    assert chinacrs.display_crs(given) == read_as
    if read_as != "wgs84":
        assert chinacrs.normalize_crs_name(given) == read_as


@pytest.mark.parametrize("given", ["bd09mc", "epsg3857", "EPSG:3857", "mars2", "EPSG:4490x"])
def test_display_crs_refuses_other_datums_naming_the_accepted_ones(given: str) -> None:
    with pytest.raises(ValueError, match="^crs must be one of wgs84, gcj02, bd09; got ") as exc:
        chinacrs.display_crs(given)
    assert repr(given) in str(exc.value)
    # a long value is quoted by its start only
    with pytest.raises(ValueError) as long_exc:
        chinacrs.display_crs("x" * 500)
    assert "x" * 40 in str(long_exc.value) and "x" * 41 not in str(long_exc.value)
