"""Real streets from OpenStreetMap into ``alley_segment``, noded at junctions.

Ways are read with pyrosm (its "walking" filter: every highway a person may walk) and cut
at every junction, i.e. every node that another way shares or that the way itself passes
twice. Each piece gets the stable code ``osm:<way id>:<piece>`` (piece numbers count along
the way from 0), so a re-import of an updated extract updates geometry and names in place
and keeps the chiefs' assignments, which point at segment ids.

Segments that were imported before but are missing from the new extract (inside the
imported area) are deleted, unless someone was ever assigned to them: those are kept and
reported, so no assignment history disappears silently.

The data is © OpenStreetMap contributors (ODbL); the map pages and GPX files say so.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.core.errors import NotFound, ValidationError
from mapsvc.core.progress import Progress, no_progress
from mapsvc.core.values import BBox
from mapsvc.services.geo import geometry_lonlat_problem

if TYPE_CHECKING:
    from geopandas import GeoDataFrame

OSM_CREDIT = "© OpenStreetMap contributors"
#: coordinate key precision (degrees); OSM stores 1e-7, so equal nodes give equal keys
_KEY_DIGITS = 7


def _key(c: tuple[float, ...]) -> tuple[float, float]:
    return (round(c[0], _KEY_DIGITS), round(c[1], _KEY_DIGITS))


def read_ways(path: str | Path) -> GeoDataFrame:
    """Walkable OSM ways (id, name, highway, geometry) of a whole PBF file."""
    import pyrosm

    path = Path(path)
    if not path.exists():
        raise ValidationError(f"file not found: {path}", field="file")
    try:
        ways = pyrosm.OSM(str(path)).get_network(network_type="walking")
    except Exception as exc:  # noqa: BLE001 - pyrosm raises many kinds for a broken file
        raise ValidationError(f"cannot read {path.name} as OSM PBF: {exc}", field="file") from None
    if ways is None or len(ways) == 0:
        raise ValidationError(f"{path.name} has no walkable streets", field="file")
    return ways


def split_ways(ways: GeoDataFrame, bbox: BBox | None = None) -> list[dict[str, Any]]:
    """Cut ways at junctions; one dict per piece with code, way id, piece, name, highway, wkt.

    A junction is a coordinate used by two or more way positions (another way's vertex, or
    the same way passing again); way ends are always piece ends. Junctions are found over
    *all* ``ways`` even when ``bbox`` keeps only the ways touching it (whole), so a piece
    gets the same code whether the file was imported whole or in parts.
    """
    import shapely
    from shapely.geometry import LineString

    parts: list[tuple[int, str | None, str | None, list]] = []
    for wid, name, highway, geom in zip(
        ways["id"], ways["name"], ways["highway"], ways.geometry, strict=True
    ):
        if geom is None or geom.is_empty:
            continue
        off = geometry_lonlat_problem(geom)  # OSM is longitude/latitude by definition
        if off is not None:
            raise ValidationError(f"{off} in OSM way {int(wid)}", field="file")
        lines = list(geom.geoms) if geom.geom_type == "MultiLineString" else [geom]
        for line in lines:
            parts.append((int(wid), _clean(name), _clean(highway), list(line.coords)))
    uses = Counter(_key(c) for _w, _n, _h, cs in parts for c in cs)
    if bbox is not None:
        box = shapely.box(*bbox)
        parts = [p for p in parts if LineString(p[3]).intersects(box)]
        if not parts:
            raise ValidationError(f"no walkable streets inside bbox {list(bbox)}", field="bbox")
    out: list[dict[str, Any]] = []
    piece_of: Counter = Counter()
    for wid, name, highway, cs in parts:
        cur = [cs[0]]
        for i in range(1, len(cs)):
            cur.append(cs[i])
            last = i == len(cs) - 1
            if last or uses[_key(cs[i])] >= 2:
                line = LineString(cur)
                if len(cur) >= 2 and line.length > 0:
                    piece = piece_of[wid]
                    piece_of[wid] += 1
                    out.append(
                        {
                            "code": f"osm:{wid}:{piece}",
                            "osm_way_id": wid,
                            "piece": piece,
                            "name": name,
                            "highway": highway,
                            "wkt": shapely.to_wkt(line, rounding_precision=8),
                        }
                    )
                cur = [cs[i]]
    return out


def _clean(value: object) -> str | None:
    if value is None:
        return None
    try:
        import math

        if isinstance(value, float) and math.isnan(value):
            return None
    except TypeError:
        pass
    text = str(value).strip()
    return text or None


def import_osm(
    session: Session,
    path: str | Path,
    bbox: BBox | None = None,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Load walkable streets from ``path`` into ``alley_segment`` (one transaction: caller's).

    Returns a summary: pieces, inserted, updated, removed, stale segments kept because they
    carry assignments, total length in metres (geodesic) and the attribution to show.
    ``progress`` (:mod:`mapsvc.core.progress`) shows the pieces as they are staged: a
    city extract has tens of thousands.
    """
    ways = read_ways(path)
    pieces = split_ways(ways, bbox)
    conn = session.connection()
    conn.execute(sa.text("DROP TABLE IF EXISTS _osm_import"))
    conn.execute(
        sa.text(
            "CREATE TEMP TABLE _osm_import (code text PRIMARY KEY, osm_way_id bigint, "
            "piece int, name text, highway text, geom geometry(LineString, 4326)) "
            "ON COMMIT DROP"
        )
    )
    batch: list[dict[str, Any]] = []
    ins = sa.text(
        "INSERT INTO _osm_import VALUES (:code, :osm_way_id, :piece, :name, :highway, "
        "ST_GeomFromText(:wkt, 4326))"
    )
    with progress(pieces, total=len(pieces), desc="segments", unit="seg") as rows:
        for r in rows:
            batch.append(r)
            if len(batch) >= 2000:
                conn.execute(ins, batch)
                batch = []
    if batch:
        conn.execute(ins, batch)
    area = (
        "ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)"
        if bbox
        else "(SELECT ST_Envelope(ST_Collect(geom)) FROM _osm_import)"
    )
    params = dict(zip(("minx", "miny", "maxx", "maxy"), bbox, strict=True)) if bbox else {}
    existing = conn.scalar(
        sa.text(
            "SELECT count(*) FROM alley_segment s JOIN _osm_import i USING (code) "
            "WHERE s.source = 'osm'"
        )
    )
    clash = (
        conn.execute(
            sa.text(
                "SELECT s.code FROM alley_segment s JOIN _osm_import i USING (code) "
                "WHERE s.source <> 'osm' LIMIT 5"
            )
        )
        .scalars()
        .all()
    )
    if clash:
        raise ValidationError(
            f"segment codes already used by non-OSM segments: {', '.join(clash)}", field="code"
        )
    conn.execute(
        sa.text(
            "INSERT INTO alley_segment (code, name, geom, osm_way_id, piece, highway, source) "
            "SELECT code, name, geom, osm_way_id, piece, highway, 'osm' FROM _osm_import "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, geom = EXCLUDED.geom, "
            "osm_way_id = EXCLUDED.osm_way_id, piece = EXCLUDED.piece, "
            "highway = EXCLUDED.highway, source = 'osm'"
        )
    )
    stale = conn.execute(
        sa.text(
            f"""SELECT s.id, s.code, EXISTS (SELECT 1 FROM assignment a WHERE a.segment_id = s.id)
            FROM alley_segment s
            WHERE s.source = 'osm' AND ST_Intersects(s.geom, {area})
              AND NOT EXISTS (SELECT 1 FROM _osm_import i WHERE i.code = s.code)"""
        ),
        params,
    ).all()
    removable = [r[0] for r in stale if not r[2]]
    kept = [r[1] for r in stale if r[2]]
    if removable:
        conn.execute(sa.text("DELETE FROM alley_segment WHERE id = ANY(:ids)"), {"ids": removable})
    total = conn.scalar(
        sa.text(
            "SELECT coalesce(sum(s.length_m), 0) FROM alley_segment s "
            "JOIN _osm_import i USING (code)"
        )
    )
    conn.execute(sa.text("DROP TABLE _osm_import"))
    return {
        "file": Path(path).name,
        "ways": len({p["osm_way_id"] for p in pieces}),
        "segments": len(pieces),
        "inserted": len(pieces) - int(existing),
        "updated": int(existing),
        "removed": len(removable),
        "stale_kept_assigned": kept,
        "length_m": float(total),
        "attribution": OSM_CREDIT,
    }


def segment_grids(session: Session, segment_ids: list[int] | None = None) -> dict[int, list[int]]:
    """Grid ids each segment runs through (derived spatially), longest share first.

    A segment belongs to a grid when more than half a metre of it lies inside the grid,
    so a street that merely touches a grid boundary is not counted there.
    """
    where = "TRUE" if segment_ids is None else "s.id = ANY(:ids)"
    rows = session.execute(
        sa.text(
            f"""SELECT s.id, g.id,
                   ST_Length(geography(ST_Intersection(s.geom, g.geom))) AS inside_m
            FROM alley_segment s JOIN grid g ON ST_Intersects(s.geom, g.geom)
            WHERE {where} AND g.valid_to IS NULL
            ORDER BY s.id, inside_m DESC, g.id"""
        ),
        {"ids": list(segment_ids or [])},
    ).all()
    out: dict[int, list[int]] = {sid: [] for sid in (segment_ids or [])}
    for sid, gid, inside in rows:
        if inside is not None and inside > 0.5:
            out.setdefault(sid, []).append(gid)
    return out


def _find_by_code_or_id(session: Session, table: str, ref: str) -> int | None:
    """Id of the ``table`` row whose code is ``ref``, else whose id is ``ref`` (digits).

    Ids are tried only for up to 18 digits: a longer number cannot be a bigint id, and
    ``int()`` of thousands of digits is refused by Python itself.
    """
    ref = ref.strip()
    rid = session.scalar(sa.text(f"SELECT id FROM {table} WHERE code = :c"), {"c": ref})
    if rid is None and ref.isascii() and ref.isdigit() and len(ref) <= 18:
        rid = session.scalar(sa.text(f"SELECT id FROM {table} WHERE id = :i"), {"i": int(ref)})
    return rid


def _ids_of(session: Session, table: str, refs: list[str]) -> dict[str, int]:
    """The ids of the ``table`` rows that ``refs`` name, by code first, else by id (as
    :func:`_find_by_code_or_id`, in two statements for any number of references)."""
    refs = [r.strip() for r in refs]
    codes = sorted(set(refs))
    found = dict(
        session.execute(
            sa.text(f"SELECT code, id FROM {table} WHERE code = ANY(CAST(:c AS text[]))"),
            {"c": codes},
        ).all()
    )
    numbers = {
        r: int(r) for r in codes if r not in found and r.isascii() and r.isdigit() and len(r) <= 18
    }
    if numbers:
        ids = set(
            session.scalars(
                sa.text(f"SELECT id FROM {table} WHERE id = ANY(CAST(:i AS bigint[]))"),
                {"i": sorted(set(numbers.values()))},
            )
        )
        found.update({r: n for r, n in numbers.items() if n in ids})
    return found


def _find_segment(session: Session, ref: str) -> int | None:
    return _find_by_code_or_id(session, "alley_segment", ref)


def _find_staff(session: Session, ref: str) -> int | None:
    return _find_by_code_or_id(session, "staff", ref)


def assign_segment(
    session: Session,
    segment_ref: str | int,
    staff_ref: str | int,
    role: str = "alley_chief",
    valid_from: dt.date | None = None,
) -> dict[str, Any]:
    """Give a segment (id or code) a chief or deputy (staff id or code) from ``valid_from``."""
    from mapsvc.services.assignments import assign

    seg = _find_segment(session, str(segment_ref))
    if seg is None:
        raise NotFound(f"segment {segment_ref!r} does not exist", field="segment")
    staff = _find_staff(session, str(staff_ref))
    if staff is None:
        raise NotFound(f"staff {staff_ref!r} does not exist", field="staff")
    if role not in ("alley_chief", "deputy_chief"):
        raise ValidationError(
            f"role must be alley_chief or deputy_chief, got {role!r}", field="role"
        )
    a = assign(session, staff, role, segment_id=seg, valid_from=valid_from)
    return {
        "assignment_id": a.id,
        "segment_id": seg,
        "staff_id": staff,
        "role": role,
        "valid_from": a.valid_from.isoformat(),
        "grids": segment_grids(session, [seg]).get(seg, []),
    }


def assign_csv(
    session: Session,
    text: str | bytes,
    check_segments: Callable[[list[int]], None] | None = None,
) -> dict[str, Any]:
    """Assign segments from CSV text with columns ``segment,staff[,role][,valid_from]``.

    ``check_segments(segment_ids)``, when given, is called with every segment of the file
    before anything is assigned and may refuse by raising (the caller's scope check).

    ``segment`` is a segment code (``osm:123:0``) or id; ``staff`` a staff code or id;
    ``role`` alley_chief (default) or deputy_chief; ``valid_from`` YYYY-MM-DD (default today).
    Every row is checked first; any problem raises one ValidationError listing each bad row
    and field, and nothing is assigned (the caller's transaction is rolled back).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"the CSV is not UTF-8 text (byte {exc.start} cannot be read)", field="file"
            ) from None
    if "\x00" in text:  # PostgreSQL text cannot hold it: name the line, do not fail in a query
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ValidationError(f"line {line} of the CSV contains a NUL character", field="file")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "segment" not in fields or "staff" not in fields:
        raise ValidationError(
            "CSV needs a header with columns segment,staff[,role][,valid_from]; "
            f"got {reader.fieldnames}",
            field="header",
        )
    problems: list[str] = []
    todo: list[tuple[int, int, str, dt.date | None]] = []
    try:
        rows = [
            {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()} for raw in reader
        ]
    except csv.Error as exc:  # a cell beyond the csv module's field limit, a stray quote
        raise ValidationError(
            f"line {reader.line_num + 1} of the CSV cannot be read: {exc}", field="file"
        ) from None
    segments = _ids_of(session, "alley_segment", [r.get("segment", "") for r in rows])
    people = _ids_of(session, "staff", [r.get("staff", "") for r in rows])
    for lineno, row in enumerate(rows, start=2):
        seg = segments.get(row.get("segment", ""))
        staff = people.get(row.get("staff", ""))
        role = row.get("role") or "alley_chief"
        day = None
        if seg is None:
            problems.append(f"row {lineno}: segment {row.get('segment')!r} does not exist")
        if staff is None:
            problems.append(f"row {lineno}: staff {row.get('staff')!r} does not exist")
        if role not in ("alley_chief", "deputy_chief"):
            problems.append(f"row {lineno}: role {role!r} is not alley_chief or deputy_chief")
        if row.get("valid_from"):
            try:
                day = dt.date.fromisoformat(row["valid_from"])
            except ValueError:
                problems.append(f"row {lineno}: valid_from {row['valid_from']!r} is not a date")
        if seg is not None and staff is not None:
            todo.append((seg, staff, role, day))
    if problems:
        raise ValidationError(
            f"{len(problems)} problem(s) in the CSV; nothing was assigned: "
            + "; ".join(problems[:50]),
            problems=problems,
        )
    if not todo:
        raise ValidationError("the CSV has no rows", field="rows")
    if check_segments is not None:
        check_segments(sorted({seg for seg, *_rest in todo}))
    from mapsvc.services.assignments import assign_segments

    assign_segments(session, todo)
    return {"assigned": len(todo)}
