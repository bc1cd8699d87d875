"""Tracks with known coverage: what counts as patrolled, bad tracks, GCJ-02, weekly visits."""

from __future__ import annotations

import datetime as dt
import json
import math

import gpxpy.gpx
import pytest
import sqlalchemy as sa

from mapsvc.config import Settings
from mapsvc.core.errors import ValidationError
from mapsvc.services import patrol
from mapsvc.services.chinacrs import wgs84_to_gcj02
from tests.fixtures.patrol import DAY, add_chief, add_segments, lonlat

T0 = dt.datetime.combine(DAY, dt.time(8, 0), tzinfo=Settings().tz).timestamp()
WALK = 1.4  # m/s


def walk(points_m: list[tuple[float, float]], step: float = 5.0, t0: float = T0) -> list:
    """[lon, lat, unix] every ``step`` metres along a polyline, at walking pace."""
    out = []
    t = t0
    for (x0, y0), (x1, y1) in zip(points_m, points_m[1:], strict=False):
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) / step))
        for k in range(n):
            x, y = x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n
            out.append([*lonlat(x, y), t])
            t += math.hypot(x1 - x0, y1 - y0) / n / WALK
    out.append([*lonlat(*points_m[-1]), t])
    return out


@pytest.fixture
def street(session):
    ids = add_segments(
        session,
        {
            "A": [(0, 0), (100, 0)],
            "B": [(100, 0), (200, 0)],
            "C": [(0, 100), (200, 100)],
        },
    )
    chief = add_chief(session, "陈巷长", [ids["A"], ids["B"]])
    other = add_chief(session, "林巷长", [ids["C"]])
    return ids, chief, other


def test_coverage_share_is_what_geometry_says(session, street):
    ids, chief, other = street
    # walk 5 m north of the street from x=0 to x=150
    patrol.upload_track(session, chief, {"points": walk([(0, 5), (150, 5)])})
    cov = patrol.segment_coverage(session, DAY)
    assert cov[ids["A"]]["share"] == pytest.approx(1.0, abs=1e-6)
    # B: 50 m walked plus the round end of the 20 m buffer at 5 m offset
    expect_b = (50 + math.sqrt(20**2 - 5**2)) / 100
    assert cov[ids["B"]]["share"] == pytest.approx(expect_b, abs=0.01)
    assert ids["C"] not in cov
    assert cov[ids["A"]]["walked_by"] == [chief]
    r = patrol.district_compliance(session, DAY)
    mine = next(c for c in r["chiefs"] if c["staff_id"] == chief)
    assert (mine["segments"], mine["patrolled"], mine["share"]) == (2, 1, 0.5)
    assert (r["segments_assigned"], r["segments_patrolled"]) == (3, 1)
    assert r["share"] == pytest.approx(1 / 3)
    # a second track on the same day completes B: tracks of a day count together
    patrol.upload_track(session, other, {"points": walk([(140, -5), (200, -5)], t0=T0 + 3600)})
    r = patrol.district_compliance(session, DAY)
    mine = next(c for c in r["chiefs"] if c["staff_id"] == chief)
    assert mine["patrolled"] == 2 and mine["share"] == 1.0
    # the threshold is configurable
    strict = patrol.district_compliance(session, DAY, cover_share=0.999, buffer_m=3.0)
    assert strict["segments_patrolled"] == 0
    # another day has nothing
    assert (
        patrol.district_compliance(session, DAY + dt.timedelta(days=1))["segments_patrolled"] == 0
    )


def test_gcj02_track_is_converted(session, street):
    ids, chief, _other = street
    pts = walk([(0, 5), (200, 5)])
    glon, glat = wgs84_to_gcj02([p[0] for p in pts], [p[1] for p in pts])
    shifted = [[float(a), float(b), p[2]] for a, b, p in zip(glon, glat, pts, strict=True)]
    # unconverted, GCJ-02 is hundreds of metres off: nothing is covered
    rep = patrol.upload_track(session, chief, {"points": shifted}, day=DAY + dt.timedelta(days=2))
    assert patrol.segment_coverage(session, DAY + dt.timedelta(days=2)) == {}
    rep = patrol.upload_track(session, chief, {"points": shifted, "crs": "gcj02"})
    assert rep["source_crs"] == "gcj02"
    cov = patrol.segment_coverage(session, DAY)
    assert cov[ids["A"]]["share"] > 0.99 and cov[ids["B"]]["share"] > 0.99


def test_gpx_upload_and_stored_timestamps(session, street):
    _ids, chief, _other = street
    pts = walk([(0, 0), (200, 0)])
    gpx = gpxpy.gpx.GPX()
    seg = gpxpy.gpx.GPXTrackSegment()
    for lon, lat, t in pts:
        seg.points.append(
            gpxpy.gpx.GPXTrackPoint(lat, lon, time=dt.datetime.fromtimestamp(t, dt.UTC))
        )
    trk = gpxpy.gpx.GPXTrack()
    trk.segments.append(seg)
    gpx.tracks.append(trk)
    rep = patrol.upload_track(session, chief, gpx.to_xml())
    assert rep["points_total"] == len(pts) and rep["points_dropped"] == 0
    assert rep["day"] == DAY.isoformat()
    assert rep["length_m"] == pytest.approx(200, abs=0.5)
    m = session.execute(
        sa.text("SELECT ST_M(ST_StartPoint(geom)), ST_M(ST_EndPoint(geom)) FROM patrol_track")
    ).one()
    assert m[0] == pytest.approx(pts[0][2], abs=1) and m[1] == pytest.approx(pts[-1][2], abs=1)


def test_noisy_points_are_dropped_and_counted(session, street):
    _ids, chief, _other = street
    pts = walk([(0, 0), (200, 0)])
    spike = [*lonlat(100, 800), pts[10][2] + 0.5]  # 800 m away in half a second
    pts.insert(11, spike)
    pts.insert(20, list(pts[19]))  # a repeated fix
    rep = patrol.upload_track(session, chief, {"points": pts})
    assert rep["points_total"] == len(pts)
    assert rep["points_dropped"] == 2
    reasons = sorted((d["index"], d["reason"]) for d in rep["dropped"])
    assert reasons == [(12, "jump"), (21, "duplicate")]
    jump = next(d for d in rep["dropped"] if d["reason"] == "jump")
    assert jump["speed_kmh"] > 30
    row = session.execute(
        sa.text("SELECT points_total, points_dropped, ST_NPoints(geom) FROM patrol_track")
    ).one()
    assert row == (len(pts), 2, len(pts) - 2)
    # a wild first fix is dropped too
    pts2 = walk([(0, 0), (200, 0)], t0=T0 + 7200)
    pts2[0] = [*lonlat(5000, 5000), pts2[0][2]]
    rep2 = patrol.upload_track(session, chief, {"points": pts2})
    assert rep2["dropped"][0]["index"] == 1 and rep2["points_dropped"] == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"points": []}, "empty"),
        ({"points": [[118.58, 24.91, 1700000000]]}, "single point"),
        (
            {"points": [[118.58, 24.91, 1700000100], [118.5801, 24.91, 1700000000]]},
            "out of order: point 2",
        ),
        ({"points": [[118.58, 24.91, None], [118.5801, 24.91, 1700000000]]}, "point 1 has no"),
        ("<gpx><trk><trkseg><trkpt lat='x'", "not a readable GPX"),
        ('{"points": [[118.58, "north", 1]]}', "non-numeric"),
    ],
)
def test_bad_tracks_get_a_clear_report(session, street, payload, message):
    _ids, chief, _other = street
    with pytest.raises(ValidationError, match=message):
        patrol.upload_track(session, chief, payload)
    assert session.scalar(sa.text("SELECT count(*) FROM patrol_track")) == 0


def test_track_of_teleports_is_refused(session, street):
    _ids, chief, _other = street
    # every fix 1 km further than the previous one, ten seconds later (360 km/h)
    pts = [[*lonlat(1000 * i, 0), T0 + 10 * i] for i in range(10)]
    with pytest.raises(ValidationError, match="faster than 30 km/h") as err:
        patrol.upload_track(session, chief, {"points": pts})
    assert err.value.details["dropped"]
    assert session.scalar(sa.text("SELECT count(*) FROM patrol_track")) == 0


def test_geojson_feature_with_times(session, street):
    ids, chief, _other = street
    pts = walk([(0, 5), (100, 5)])
    feature = {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [p[:2] for p in pts]},
        "properties": {"times": [dt.datetime.fromtimestamp(p[2], dt.UTC).isoformat() for p in pts]},
    }
    rep = patrol.upload_track(session, chief, json.dumps(feature))
    assert rep["points_kept"] == len(pts)
    assert patrol.patrolled_segments(session, DAY).keys() == {ids["A"]}


def test_week_summary_counts_days_and_visits(session, street):
    ids, chief, other = street
    patrol.upload_track(session, chief, {"points": walk([(0, 5), (100, 5)])})
    patrol.upload_track(session, chief, {"points": walk([(100, 5), (200, 5)], t0=T0 + 86400 * 2)})
    for d in (0, 3):
        patrol.log_visit(
            session, chief, DAY + dt.timedelta(days=d), segment_id=ids["A"], note="走访"
        )
    patrol.log_visit(session, other, DAY, place="3号院")
    with pytest.raises(ValidationError):
        patrol.log_visit(session, other, DAY)
    wk = patrol.week_summary(session, DAY + dt.timedelta(days=4))
    assert (wk["week_start"], wk["week_end"]) == ("2026-11-23", "2026-11-29")
    mine = next(c for c in wk["chiefs"] if c["staff_id"] == chief)
    assert (mine["patrolled"], mine["patrol_days"], mine["visits"]) == (2, 2, 2)
    theirs = next(c for c in wk["chiefs"] if c["staff_id"] == other)
    assert (theirs["patrolled"], theirs["visits"]) == (0, 1)
    assert wk["visits"] == 3
    # on the first day alone only A was patrolled
    day1 = patrol.district_compliance(session, DAY)
    assert next(c for c in day1["chiefs"] if c["staff_id"] == chief)["patrolled"] == 1
    # the next week starts empty
    assert patrol.week_summary(session, DAY + dt.timedelta(days=7))["segments_patrolled"] == 0


def test_coverage_is_kept_until_the_days_tracks_change(session, street):
    """A day's coverage is reused across calls, and recomputed when its tracks change."""
    ids, chief, _other = street
    patrol.upload_track(session, chief, {"points": walk([(0, 5), (100, 5)])})
    first = patrol.segment_coverage(session, DAY)
    kept = len(patrol._COVERAGE)
    again = patrol.segment_coverage(session, DAY)
    assert again == first and len(patrol._COVERAGE) == kept  # answered from what was kept
    again[ids["A"]]["share"] = 0.0  # a caller's changes do not leak into what is kept
    assert patrol.segment_coverage(session, DAY)[ids["A"]]["share"] == pytest.approx(1.0)
    # the track is moved 40 m away (same id, same count): the fingerprint sees the geometry
    session.execute(
        sa.text("UPDATE patrol_track SET geom = ST_Translate(geom, 0, 0.0004) WHERE day = :d"),
        {"d": DAY},
    )
    assert ids["A"] not in patrol.segment_coverage(session, DAY)


def test_coverage_is_kept_in_the_database_across_restarts(fresh_engine):
    """A committed day's coverage is stored in patrol_coverage: a new process (the kept
    per-process results forgotten) reads it instead of intersecting the tracks again, and
    a new track of that day makes it compute afresh, with the new track counted."""
    heavy = []
    sa.event.listen(
        fresh_engine,
        "before_cursor_execute",
        lambda c, cur, stmt, *a: heavy.append(stmt) if "ST_Subdivide" in stmt else None,
    )
    with sa.orm.Session(fresh_engine, expire_on_commit=False) as s:
        ids = add_segments(s, {"A": [(0, 0), (100, 0)], "B": [(100, 0), (200, 0)]})
        chief = add_chief(s, "陈巷长", [ids["A"], ids["B"]])
        patrol.upload_track(s, chief, {"points": walk([(0, 5), (100, 5)])})
        uncommitted = patrol.segment_coverage(s, DAY)
        assert s.scalar(sa.text("SELECT count(*) FROM patrol_coverage")) == 0  # not kept
        s.commit()
    assert set(uncommitted) == {ids["A"], ids["B"]}
    patrol._COVERAGE.clear()
    with sa.orm.Session(fresh_engine) as s:
        first = patrol.segment_coverage(s, DAY)
    assert first == uncommitted
    computed = len(heavy)
    patrol._COVERAGE.clear()  # a restarted server
    with sa.orm.Session(fresh_engine) as s:
        assert patrol.segment_coverage(s, DAY) == first
        assert s.scalar(sa.text("SELECT count(*) FROM patrol_coverage")) == 1
    assert len(heavy) == computed  # read from patrol_coverage, not intersected again
    with sa.orm.Session(fresh_engine, expire_on_commit=False) as s:
        patrol.upload_track(s, chief, {"points": walk([(100, 5), (200, 5)])})
        s.commit()
    patrol._COVERAGE.clear()
    with sa.orm.Session(fresh_engine) as s:
        after = patrol.segment_coverage(s, DAY)
        # the row of the old fingerprint is gone, the new one kept
        assert s.scalar(sa.text("SELECT count(*) FROM patrol_coverage")) == 1
    assert len(heavy) == computed + 1
    assert after[ids["B"]]["share"] == pytest.approx(1.0, abs=0.01)
    assert after[ids["B"]]["share"] > first[ids["B"]]["share"]
