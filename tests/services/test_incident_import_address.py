"""Bulk import of hotline rows that have an address and no coordinates, and ``mapsvc geocode``.

Runs on the demo district (its real street, community and subdistrict names): imports go
to this module's own copy of it (``load_demo`` without incidents, same seed as the
session's demo), read-only geocoding to ``demo_engine``. Which streets cross, which name
is used by two separate streets, etc. is found with SQL on the data, and every stored
point is checked in metres (PostGIS geography) against the street, crossing or community
the address names.
"""

from __future__ import annotations

import csv
import json

import pytest
import sqlalchemy as sa

from mapsvc.core.errors import ValidationError
from mapsvc.db import make_engine
from mapsvc.services.chinacrs import wgs84_to_gcj02
from mapsvc.services.geo import metric_epsg_for_data
from mapsvc.services.geocode import geocode, geocode_many
from mapsvc.services.incident_import import ColumnMapping, ImportRejected, import_csv
from tests.conftest import demo_arguments
from tests.core.recording_progress import RecordingProgress
from tests.fixtures.incidents import run_cli, write_csv

HEADER = ["工单号", "纬度", "经度", "类别", "受理时间", "地址"]
MAP = "id=工单号,lat=纬度,lon=经度,category=类别,opened=受理时间,address=地址"
OPENED = "2026-03-01T09:30:00"
NONSENSE = "火星基地1号"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo_db(make_database, template_db):
    """A writable demo district (no incidents) for this module's imports."""
    from mapsvc.demo import load_demo

    engine = make_engine(make_database(template=template_db))
    load_demo(engine, **demo_arguments(incidents=0))
    yield engine
    engine.dispose()


def _places(engine) -> dict:
    """Names and points of the demo district the test addresses are made of."""
    with engine.connect() as c:
        srid = metric_epsg_for_data(c)
        # street names used by separate streets (segments more than 1 km apart)
        ambiguous = c.scalars(
            sa.text(
                f"""SELECT name FROM (
                    SELECT name, ST_ClusterDBSCAN(ST_Transform(geom, {srid}), eps := 1000,
                           minpoints := 1) OVER (PARTITION BY name) AS k
                    FROM alley_segment WHERE name IS NOT NULL) s
                GROUP BY name HAVING count(DISTINCT k) > 1 ORDER BY name"""
            )
        ).all()
        assert ambiguous, "the demo has no street name shared by separate streets"
        street, sub, district = c.execute(
            sa.text(
                """SELECT s.name, sd.name, d.name
                FROM (SELECT name, count(*) n, ST_Collect(geom) g FROM alley_segment
                      WHERE name IS NOT NULL AND name <> ALL(:amb) GROUP BY name) s
                JOIN subdistrict sd ON ST_Intersects(sd.geom, ST_PointOnSurface(s.g))
                JOIN district d ON d.id = sd.district_id
                ORDER BY s.n DESC, s.name LIMIT 1"""
            ),
            {"amb": ambiguous},
        ).one()
        a, b, cx, cy = c.execute(
            sa.text(
                """WITH s AS (SELECT name, ST_Collect(geom) g FROM alley_segment
                              WHERE name IS NOT NULL AND name <> ALL(:amb) GROUP BY name)
                SELECT a.name, b.name, ST_X(x.p), ST_Y(x.p)
                FROM s a JOIN s b ON a.name < b.name AND ST_Intersects(a.g, b.g)
                CROSS JOIN LATERAL (SELECT ST_Intersection(a.g, b.g) p) x
                WHERE ST_GeometryType(x.p) = 'ST_Point' AND a.name <> :st AND b.name <> :st
                ORDER BY a.name, b.name LIMIT 1"""
            ),
            {"amb": ambiguous, "st": street},
        ).one()
        community = c.scalar(
            sa.text(
                """SELECT cm.name FROM community cm WHERE NOT EXISTS (
                    SELECT 1 FROM alley_segment s WHERE strpos(cm.name, s.name) > 0)
                ORDER BY cm.id LIMIT 1"""
            )
        )
        grid_points = c.execute(
            sa.text(
                """SELECT ST_X(p), ST_Y(p) FROM (
                    SELECT ST_PointOnSurface(geom) p FROM grid ORDER BY id LIMIT 3) s"""
            )
        ).all()
    return {
        "ambiguous": ambiguous[0],
        "street": street,
        "sub": sub,
        "district": district,
        "crossing": (a, b, cx, cy),
        "community": community,
        "grid_points": [(float(x), float(y)) for x, y in grid_points],
    }


@pytest.fixture(scope="module")
def places(demo_db) -> dict:
    return _places(demo_db)


def _gcj(lon: float, lat: float) -> tuple[str, str]:
    glon, glat = wgs84_to_gcj02(lon, lat)
    return f"{float(glat):.8f}", f"{float(glon):.8f}"


def _rows(p: dict, prefix: str) -> tuple[list[list[str]], dict[str, str]]:
    """A hotline export: coordinate rows (GCJ-02), address rows of every kind with the
    repeats hotline data has, one nonsense and one ambiguous address. Returns the rows and
    {external id: what the row is}."""
    a, b = p["crossing"][:2]
    rows: list[list[str]] = []
    kind: dict[str, str] = {}

    def add(what: str, lat: str, lon: str, address: str, category: str = "road_damage") -> None:
        ext = f"{prefix}{len(rows):03d}"
        rows.append([ext, lat, lon, category, OPENED, address])
        kind[ext] = what

    for lon, lat in p["grid_points"]:
        add("coordinates", *_gcj(lon, lat), "")
    # coordinates and an address: the coordinates win
    lon, lat = p["grid_points"][0]
    add("coordinates+address", *_gcj(lon, lat), f"{p['street']}12号")
    for k in range(30):
        add("street", "", "", f"{p['street']}12号", "garbage" if k % 2 else "road_damage")
    for _ in range(5):
        add("street", "", "", f" {p['street']} １２ 号 ")  # the same address, typed differently
    add("street+area", "", "", f"{p['district']}{p['sub']}{p['street']}8号")
    for _ in range(3):
        add("intersection", "", "", f"{a}与{b}交叉口")
    for _ in range(2):
        add("community", "", "", f"{p['community']}居民反映")
    add("nonsense", "", "", NONSENSE)
    add("ambiguous", "", "", f"{p['ambiguous']}3号")
    return rows, kind


def _counts(engine) -> tuple[int, int]:
    with engine.connect() as c:
        return (
            c.scalar(sa.text("SELECT count(*) FROM incident")),
            c.scalar(sa.text("SELECT count(*) FROM incident_event")),
        )


def _metres(conn, lon: float, lat: float, sql: str, **params) -> float:
    """Metres (geography) from the point to the nearest geometry ``sql`` selects as g."""
    return conn.scalar(
        sa.text(
            f"""SELECT min(ST_Distance(geography(s.g),
                    geography(ST_SetSRID(ST_MakePoint(:x, :y), 4326)))) FROM ({sql}) s"""
        ),
        {"x": lon, "y": lat, **params},
    )


# --------------------------------------------------------------------------- import


def test_bad_addresses_reject_the_whole_file(demo_db, places, tmp_path) -> None:
    rows, kind = _rows(places, "R")
    f = write_csv(tmp_path / "hotline.csv", HEADER, rows)
    before = _counts(demo_db)
    res = run_cli(demo_db, "incidents", "import", str(f), "--crs", "gcj02", "--map", MAP)
    assert res.exit_code == 1
    n = len(rows)
    assert f"2 of {n} rows are bad; nothing was imported" in res.output
    line = {k: 2 + i for i, k in enumerate(kind)}  # header = line 1
    (bad_nonsense,) = [line[e] for e, w in kind.items() if w == "nonsense"]
    (bad_ambiguous,) = [line[e] for e, w in kind.items() if w == "ambiguous"]
    assert f"row {bad_nonsense}: 地址: nothing in '{NONSENSE}' matched" in res.output
    assert (
        f"row {bad_ambiguous}: 地址: {places['ambiguous']} names 2 separate streets" in res.output
    ), res.output
    assert "add the community or subdistrict" in res.output
    assert _counts(demo_db) == before


def test_skip_bad_imports_located_rows_on_their_streets(demo_db, places, tmp_path) -> None:
    rows, kind = _rows(places, "S")
    f = write_csv(tmp_path / "hotline.csv", HEADER, rows)
    out = tmp_path / "bad.csv"
    before = _counts(demo_db)
    res = run_cli(
        demo_db,
        "incidents",
        "import",
        str(f),
        "--crs",
        "gcj02",
        "--map",
        MAP,
        "--skip-bad",
        str(out),
    )
    assert res.exit_code == 0, res.output
    n = len(rows)
    assert f"imported {n - 2} of {n} rows" in res.output
    # 36 street rows (35 + one naming its area), 3 intersection, 2 community
    assert "located by address: 41 (intersection 3, street 36, community 2)" in res.output
    assert "2 bad rows written" in res.output
    after = _counts(demo_db)
    assert after == (before[0] + n - 2, before[1] + n - 2)

    with out.open(encoding="utf-8") as fh:
        written = {w["工单号"]: w for w in csv.DictReader(fh)}
    assert {kind[e] for e in written} == {"nonsense", "ambiguous"}
    for e, w in written.items():
        assert w["_reasons"].startswith("地址: ")
        expected = "matched a known street" if kind[e] == "nonsense" else "separate streets"
        assert expected in w["_reasons"], w

    a, b, cx, cy = places["crossing"]
    with demo_db.connect() as c:
        stored = c.execute(
            sa.text(
                """SELECT i.external_id, i.located_by, i.location_to_confirm, i.address,
                       i.source_crs, i.grid_id, ST_X(i.geom) x, ST_Y(i.geom) y, e.note
                FROM incident i JOIN incident_event e ON e.incident_id = i.id
                WHERE i.external_id LIKE 'S%'"""
            )
        ).all()
        assert len(stored) == n - 2
        for r in stored:
            what = kind[r.external_id]
            assert r.grid_id is not None, r  # routed like any other
            if what.startswith("coordinates"):
                assert r.located_by == "coordinates" and r.source_crs == "gcj02"
                assert r.note == "imported"
                continue
            assert r.location_to_confirm is True, r
            assert r.source_crs == "EPSG:4326"  # the gazetteer's, not the file's GCJ-02
            # the address as written, stored trimmed
            assert r.address in {x[5].strip() for x in rows} and r.address == r.address.strip()
            if what.startswith("street"):
                assert r.located_by == "street"
                d = _metres(
                    c,
                    r.x,
                    r.y,
                    "SELECT geom g FROM alley_segment WHERE name = :n",
                    n=places["street"],
                )
                assert d < 0.5, (r, d)
                assert f"(street: {places['street']})" in r.note
            elif what == "intersection":
                assert r.located_by == "intersection"
                d = _metres(
                    c,
                    r.x,
                    r.y,
                    "SELECT ST_SetSRID(ST_MakePoint(:px, :py), 4326) g",
                    px=cx,
                    py=cy,
                )
                assert d < 1.0, (r, d)
                assert f"{a}与{b}" in r.note
            else:
                assert what == "community" and r.located_by == "community"
                d = _metres(
                    c,
                    r.x,
                    r.y,
                    "SELECT geom g FROM community WHERE name = :n",
                    n=places["community"],
                )
                assert d == 0, (r, d)
        # the row naming its subdistrict lies inside it
        (area_row,) = [r for r in stored if kind[r.external_id] == "street+area"]
        assert c.scalar(
            sa.text(
                "SELECT ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) "
                "FROM subdistrict WHERE name = :n"
            ),
            {"x": area_row.x, "y": area_row.y, "n": places["sub"]},
        )
        # coordinates win over an address: the row is where its (GCJ-02) coordinates say
        (both,) = [r for r in stored if kind[r.external_id] == "coordinates+address"]
        lon, lat = places["grid_points"][0]
        d = _metres(
            c, both.x, both.y, "SELECT ST_SetSRID(ST_MakePoint(:px, :py), 4326) g", px=lon, py=lat
        )
        assert d < 0.05, d
        street_d = _metres(
            c,
            both.x,
            both.y,
            "SELECT geom g FROM alley_segment WHERE name = :n",
            n=places["street"],
        )
        assert street_d > 1.0  # not moved onto the street of its address
        to_confirm = c.scalar(
            sa.text(
                "SELECT count(*) FROM incident WHERE external_id LIKE 'S%' "
                "AND located_by <> 'coordinates' AND location_to_confirm"
            )
        )
    assert to_confirm == 41
    # the planner's to-confirm list shows them
    res = run_cli(demo_db, "incidents", "to-confirm", "--json", "--limit", "5000")
    listed = {i["external_id"] for i in json.loads(res.output)}
    assert {r.external_id for r in stored if r.located_by != "coordinates"} <= listed


def test_each_distinct_address_is_geocoded_once(demo_db, places, tmp_path) -> None:
    rows, _ = _rows(places, "C")
    f = write_csv(tmp_path / "hotline.csv", HEADER, rows)
    bar = RecordingProgress()
    before = _counts(demo_db)
    with demo_db.connect() as conn:
        with conn.begin() as tx:
            result = import_csv(
                conn,
                f,
                crs="gcj02",
                mapping=ColumnMapping.from_options(MAP),
                skip_bad=True,
                progress=bar,
            )
            tx.rollback()
    assert _counts(demo_db) == before
    # 43 address rows, 6 distinct addresses once normalized (the 5 differently typed
    # repeats of the street address are the same one): 6 lookups, progress shown per lookup
    geo = [s for s in bar.steps if s[0] == "geocode"]
    assert geo == [["geocode", 6, 6]], bar.steps
    # the stages in order, each bar closed; the last one counts the rows copied
    assert bar.names == [["read"], ["geocode"], ["copy", "route", "insert"]], bar.names
    assert bar.all_closed
    assert bar.steps[0][2] == result.rows and bar.steps[-1][1] == bar.steps[-1][2]
    assert result.located_by == {"street": 36, "intersection": 3, "community": 2}
    assert result.seconds["geocode"] < 5.0


def test_coordinate_file_does_no_geocoding(demo_db, places, tmp_path) -> None:
    # an address column, but every row has coordinates: no geocoding step at all
    rows, kind = _rows(places, "K")
    keep = [r for r in rows if kind[r[0]].startswith("coordinates")]
    f = write_csv(tmp_path / "coords.csv", HEADER, keep)
    bar = RecordingProgress()
    with demo_db.connect() as conn, conn.begin() as tx:
        result = import_csv(
            conn, f, crs="gcj02", mapping=ColumnMapping.from_options(MAP), progress=bar
        )
        tx.rollback()
    assert result.imported == len(keep) and result.located_by == {}
    assert "geocode" not in result.seconds
    assert [s[0] for s in bar.steps if s[0] == "geocode"] == []


def test_half_missing_coordinates_stay_bad_despite_an_address(demo_db, places, tmp_path) -> None:
    lon, lat = places["grid_points"][1]
    glat, glon = _gcj(lon, lat)
    rows = [
        ["H1", "", glon, "road_damage", OPENED, f"{places['street']}1号"],
        ["H2", glat, glon, "road_damage", OPENED, ""],
        ["H3", "", "", "road_damage", OPENED, ""],
    ]
    f = write_csv(tmp_path / "half.csv", HEADER, rows)
    before = _counts(demo_db)
    bars = RecordingProgress()
    with demo_db.connect() as conn, conn.begin():
        with pytest.raises(ImportRejected) as e:
            import_csv(conn, f, crs="gcj02", mapping=ColumnMapping.from_options(MAP), progress=bars)
    # refused after routing: its bars are closed before the CLI lists the bad rows
    assert bars.names[-1] == ["copy", "route"] and bars.all_closed
    got = {(b["row"], b["column"], b["reason"]) for b in e.value.result.bad}
    assert got == {
        (2, "纬度", "missing coordinate"),  # one coordinate given: a typo, not an address row
        (4, "纬度", "missing coordinate"),  # neither coordinates nor an address
        (4, "经度", "missing coordinate"),
    }
    assert _counts(demo_db) == before


# --------------------------------------------------------------------------- mapsvc geocode


def test_geocode_command_prints_point_precision_and_match(demo_engine) -> None:
    p = _places(demo_engine)
    a, b, cx, cy = p["crossing"]
    res = run_cli(demo_engine, "geocode", f"{p['street']}12号", f"{a}和{b}路口")
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 2
    street_line = lines[0].split("\t")
    assert street_line[0] == f"{p['street']}12号" and street_line[2] == "street"
    assert street_line[3] == f"matched {p['street']}; house number 12"
    lon, lat = (float(v) for v in street_line[1].split(","))
    with demo_engine.connect() as c:
        d = _metres(c, lon, lat, "SELECT geom g FROM alley_segment WHERE name = :n", n=p["street"])
        assert d < 0.5
    assert lines[1].split("\t")[2] == "intersection" and f"matched {a}与{b}" in lines[1]

    res = run_cli(demo_engine, "geocode", "--json", f"{a}与{b}交叉口")
    assert res.exit_code == 0, res.output
    (item,) = json.loads(res.output)
    assert item["precision"] == "intersection" and item["streets"] == [a, b]
    with demo_engine.connect() as c:
        d = _metres(
            c,
            item["lon"],
            item["lat"],
            "SELECT ST_SetSRID(ST_MakePoint(:px, :py), 4326) g",
            px=cx,
            py=cy,
        )
    assert d < 1.0


def test_geocode_command_refuses_with_reason_and_exit_1(demo_engine) -> None:
    p = _places(demo_engine)
    res = run_cli(demo_engine, "geocode", NONSENSE)
    assert res.exit_code == 1
    assert f"{NONSENSE}\trefused: nothing in '{NONSENSE}' matched a known street" in res.output
    res = run_cli(demo_engine, "geocode", "--json", f"{p['ambiguous']}3号", f"{p['street']}1号")
    assert res.exit_code == 1  # one of them refused
    refused, ok = json.loads(res.output)
    assert "2 separate streets" in refused["error"] and "lon" not in refused
    assert ok["precision"] == "street" and ok["matched"] == p["street"]


# --------------------------------------------------------------------------- geocode_many


def test_geocode_many_equals_geocode_with_fewer_lookups(demo_engine) -> None:
    """Sharing one lookup between addresses that differ only in door numbers gives each
    address exactly what geocode() gives it alone (grid names with digits included)."""
    p = _places(demo_engine)
    a, b = p["crossing"][:2]
    with demo_engine.connect() as c:
        grid = c.scalar(sa.text("SELECT name FROM grid WHERE name ~ '[0-9]' ORDER BY id LIMIT 1"))
    st = p["street"]
    addresses = [
        f"{st}12号",
        f"{st}14号",
        f"{st} １４ 号",
        f"{st}45弄6号",
        f"{p['district']}{p['sub']}{st}8号",
        f"{p['district']}{p['sub']}{st}9号",
        f"{a}与{b}交叉口",
        f"{a}与{b}交叉口",
        f"{grid}3号楼下",
        f"{grid}5号楼下",
        f"{p['community']}居民反映",
        "火星基地1号",
        "火星基地2号",
        f"{p['ambiguous']}3号",
        f"{p['ambiguous']}5号",
    ]
    bar = RecordingProgress()
    with demo_engine.connect() as c:
        many = geocode_many(c, addresses, progress=bar)
        for address in addresses:
            try:
                alone: object = geocode(c, address)
            except ValidationError as exc:
                alone = exc.message.removeprefix("address: ")
            assert many[address] == alone, (address, many[address], alone)
    assert "火星基地2号" in many["火星基地2号"]  # each refusal quotes its own address
    assert many[f"{st}45弄6号"].house_number == "45弄6"
    # 14 distinct addresses; one lookup per street (plain / with its area), crossing,
    # grid, community, nonsense and ambiguous street
    assert bar.steps == [["geocode", 7, 7]] and bar.all_closed
