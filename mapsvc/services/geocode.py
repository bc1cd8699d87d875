"""Offline geocoder: a Chinese address -> a WGS84 point, from the service's own gazetteer.

Hotline operators (12345) often have only an address ("鲤城区开元街道中山路123号",
"新华北路与西街交叉口"). The service has no internet and must not call an online geocoder,
but it already knows the district's street names (``alley_segment.name``), its service
centres, grids, communities, subdistricts and district. This module matches the address
text against those names and returns a point with a *precision class* that says how
trustworthy it is:

=============  ===========================================================================
precision      point
=============  ===========================================================================
intersection   "A与B交叉口": the middle of the shortest line between street A's and street
               B's segments (the crossing itself when they cross), computed in metres in the
               streets' UTM zone; refused when the two streets are more than
               :data:`MAX_INTERSECTION_GAP_M` apart (they do not meet: a wrong name)
landmark       a service centre (党群服务中心) named in the address: its own point
street         the longest street name in the address: the point of that street nearest to
               its centre (so it lies on the street, not in a block beside a bend)
grid           a grid name: the grid's point on surface
community      a community name: the community's point on surface
=============  ===========================================================================

The classes are tried in that order (a service centre named in full is a more exact
place than the street it stands on; a street is a more exact place than a grid or a
community, whose names often come first in an address as context). Within a class the
longest name wins ("新华北路" over "华北路").

House numbers (号, 弄) are read and reported but do not move the point: the gazetteer has
no numbering (on the demo, street-level points lie a median 190 m from where the
incidents really are). Subdistrict and community names in the address narrow the search:
a street name used in places more than :data:`SAME_STREET_GAP_M` apart resolves inside the
one named, and without such a name it is refused, naming the communities, rather than
guessed. A subdistrict or district alone is too coarse to dispatch on and is refused too.

An incident located this way is stored with ``located_by`` = its precision class (instead
of ``coordinates``) and is always flagged ``location_to_confirm``: a planner checks the
point. No Flask here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from mapsvc.core.errors import ValidationError
from mapsvc.core.progress import Progress, no_progress

#: precision classes, most precise first
PRECISIONS = ("intersection", "landmark", "street", "grid", "community")
#: two named streets further apart than this (metres) do not form an intersection
MAX_INTERSECTION_GAP_M = 30.0
#: segments of one name closer than this (metres) are one street; further, different ones
SAME_STREET_GAP_M = 1000.0
#: shortest gazetteer name matched (single characters would match almost anything)
MIN_NAME_CHARS = 2

_CONNECTORS = r"与|和|跟|同|及|、|/|&|×"
_CROSSING_MARKERS = (
    r"交叉路口|十字路口|丁字路口|交叉口|交汇处|交会处|交界处|交叉处|交汇口|路口|交口"
)
_CONNECTOR_RE = re.compile(_CONNECTORS)
_MARKER_RE = re.compile(rf"(?:的)?(?:{_CROSSING_MARKERS})(?:附近|旁|处|东侧|西侧|南侧|北侧)?$")
#: a door number: "123号", "12-3号", "45弄6号" (lane 45, door 6)
_HOUSE_RE = re.compile(r"((?:\d+弄)?\d+(?:[-之]\d+)?)号")
_PREFIX_RE = re.compile(
    r"^(?:[\u4e00-\u9fff]{2,7}?(?:省|自治区|特别行政区))?(?:[\u4e00-\u9fff]{1,7}?(?:市|自治州|地区|盟))?$"
)
#: suffixes of formal community names that people leave out when they say the name
_COMMITTEE_SUFFIX = "(居委会|村委会|居民委员会|村民委员会)$"


@dataclass(frozen=True)
class Geocoded:
    """Where an address was located and how.

    ``matched`` is the gazetteer text that decided the point ("新华北路与西街" for an
    intersection); ``streets`` the street names used; ``gap_m`` (intersections) the
    distance in metres between the two streets where they come closest (0 when they
    cross); ``area`` the subdistrict/community named in the address, if any.
    """

    lon: float
    lat: float
    precision: str
    matched: str
    normalized: str
    house_number: str | None = None
    streets: tuple[str, ...] = ()
    gap_m: float | None = None
    area: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["streets"] = list(self.streets)
        return d


def _conn(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def normalize(text: str) -> str:
    """Canonical form of an address for matching.

    NFKC folds full-width digits, letters, spaces and punctuation ("１２３号" -> "123号");
    every space is dropped (operators type "中山路 123 号"); dashes become "-". Street
    suffixes (路/街/巷/弄) are kept: they are part of the names in the gazetteer.
    """
    t = unicodedata.normalize("NFKC", str(text))
    t = re.sub(r"\s+", "", t)
    t = re.sub(r"[‐‑‒–—―－~～]", "-", t)
    return t.strip(",.;:，。；：")


def _candidates(conn: Connection, text: str) -> list[dict[str, Any]]:
    """Every gazetteer name contained in ``text``: kind, name, id (None for streets)."""
    rows = conn.execute(
        sa.text(
            f"""
            SELECT 'street' AS kind, name, NULL::int AS id, NULL::int AS parent
              FROM (SELECT DISTINCT name FROM alley_segment WHERE name IS NOT NULL) s
             WHERE length(name) >= :minc AND strpos(:t, name) > 0
            UNION ALL
            SELECT 'landmark', name, id, community_id FROM service_centre
             WHERE length(name) >= :minc AND strpos(:t, name) > 0
            UNION ALL
            SELECT 'grid', name, id, community_id FROM grid
             WHERE valid_to IS NULL AND length(name) >= :minc AND strpos(:t, name) > 0
            UNION ALL
            SELECT 'community', k, id, subdistrict_id FROM (
                SELECT id, subdistrict_id, regexp_replace(name, '{_COMMITTEE_SUFFIX}', '') AS k
                  FROM community) c
             WHERE length(k) >= :minc AND strpos(:t, k) > 0
            UNION ALL
            SELECT 'subdistrict', name, id, district_id FROM subdistrict
             WHERE length(name) >= :minc AND strpos(:t, name) > 0
            UNION ALL
            SELECT 'district', name, id, NULL FROM district
             WHERE length(name) >= :minc AND strpos(:t, name) > 0"""
        ),
        {"t": text, "minc": MIN_NAME_CHARS},
    ).mappings()
    out = []
    for r in rows:
        d = dict(r)
        d["pos"] = text.find(d["name"])
        out.append(d)
    return out


def _strip_admin_prefix(text: str, admin: list[dict[str, Any]]) -> str:
    """Drop the leading province/city and our own district/subdistrict names.

    A province or city part ("福建省泉州市") is dropped only when one of *our* district or
    subdistrict names follows it, so a street that happens to contain 市 is never cut.
    """
    names = sorted({a["name"] for a in admin}, key=len, reverse=True)
    if not names:
        return text
    first = min((text.find(n), n) for n in names)
    if first[0] > 0 and _PREFIX_RE.match(text[: first[0]]):
        text = text[first[0] :]
    changed = True
    while changed:
        changed = False
        for n in names:
            if text.startswith(n) and len(text) > len(n):
                text, changed = text[len(n) :], True
    return text


def _longest(cands: list[dict[str, Any]], kind: str, within: str | None = None) -> str | None:
    """The longest name of ``kind`` (in ``within`` if given); ties: the later one."""
    names = [c for c in cands if c["kind"] == kind and (within is None or c["name"] in within)]
    if not names:
        return None
    best = max(names, key=lambda c: (len(c["name"]), (within or "").rfind(c["name"]), c["pos"]))
    return best["name"]


def _area(hints: dict[str, list[int]]) -> tuple[str | None, dict[str, Any]]:
    """SQL expression of the named communities' area (else the subdistricts'), or None."""
    for kind in ("community", "subdistrict"):
        if hints.get(kind):
            return (
                f"(SELECT ST_Union(geom) FROM {kind} WHERE id = ANY(:h_ids))",
                {"h_ids": hints[kind]},
            )
    return None, {}


def _narrowing(
    conn: Connection, names: list[str], hints: dict[str, list[int]]
) -> tuple[str | None, dict[str, Any]]:
    """The named area to search the streets ``names`` in, when every one of them runs
    through it; else None (the address's area and street disagree: the street wins)."""
    area, params = _area(hints)
    if area is None:
        return None, {}
    present = conn.execute(
        sa.text(
            "SELECT count(DISTINCT name) FROM alley_segment "
            f"WHERE name = ANY(:names) AND ST_Intersects(geom, {area})"
        ),
        {"names": names, **params},
    ).scalar_one()
    return (area, params) if present == len(set(names)) else (None, {})


def _srid(conn: Connection, names: list[str]) -> int:
    from mapsvc.services.geo import utm_epsg

    x, y = conn.execute(
        sa.text(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)::geometry) c "
            "FROM alley_segment WHERE name = ANY(:names)) s"
        ),
        {"names": names},
    ).one()
    # rounded as metric_epsg_for_data does, so the (slow) pyproj lookup is cached
    return utm_epsg(round(float(x), 1), round(float(y), 1))


def _intersection(
    conn: Connection, a: str, b: str, hints: dict[str, list[int]]
) -> tuple[float, float, float]:
    """(lon, lat, gap in metres): the middle of the shortest line between streets a and b."""
    srid = _srid(conn, [a, b])
    area, params = _narrowing(conn, [a, b], hints)
    where = f"ST_Intersects(geom, {area})" if area else "TRUE"
    row = conn.execute(
        sa.text(
            f"""WITH s AS (
                SELECT name, ST_Transform(ST_Collect(geom), {srid}) AS g FROM alley_segment
                 WHERE name = ANY(:names) AND {where} GROUP BY name),
            l AS (SELECT ST_ShortestLine(sa.g, sb.g) AS l
                    FROM s sa, s sb WHERE sa.name = :a AND sb.name = :b)
            SELECT ST_X(p), ST_Y(p), ST_Length(l) FROM l CROSS JOIN LATERAL (
                SELECT ST_Transform(ST_SetSRID(ST_MakePoint(
                    (ST_X(ST_StartPoint(l)) + ST_X(ST_EndPoint(l))) / 2,
                    (ST_Y(ST_StartPoint(l)) + ST_Y(ST_EndPoint(l))) / 2), {srid}), 4326) AS p
            ) m"""
        ),
        {"names": [a, b], "a": a, "b": b, **params},
    ).one()
    return float(row[0]), float(row[1]), float(row[2])


def _street_point(
    conn: Connection, name: str, hints: dict[str, list[int]], field: str
) -> tuple[float, float]:
    """The point of street ``name`` nearest to its centre (it lies on the street).

    A name can be used by streets in separate places (OpenStreetMap has several 中山路 in
    a city): its segments are grouped into places :data:`SAME_STREET_GAP_M` apart (in
    metres), and a name that still means more than one place, after narrowing to the area
    the address names, is refused rather than guessed, naming the communities it runs in.
    """
    srid = _srid(conn, [name])
    area, params = _narrowing(conn, [name], hints)
    # places are told apart on whole segments (clipping to the area would cut one street
    # where it leaves and re-enters); narrowed, the places through the area are kept and
    # only their stretch inside it is used
    inside = f"ST_Intersects(c.geom, {area})" if area else "TRUE"
    part = f"ST_CollectionExtract(ST_Intersection(c.geom, {area}), 2)" if area else "c.geom"
    rows = conn.execute(
        sa.text(
            f"""WITH c AS (
                SELECT geom, ST_ClusterDBSCAN(ST_Transform(geom, {srid}), eps := :gap,
                       minpoints := 1) OVER () AS k
                  FROM alley_segment WHERE name = :n),
            parts AS (SELECT k, ST_Transform({part}, {srid}) AS g FROM c WHERE {inside}),
            p AS (SELECT k, ST_Transform(ST_ClosestPoint(ST_Collect(g),
                         ST_Centroid(ST_Collect(g))), 4326) AS p, sum(ST_Length(g)) AS len
                    FROM parts WHERE NOT ST_IsEmpty(g) GROUP BY k)
            SELECT ST_X(p.p), ST_Y(p.p), (SELECT string_agg(cm.name, '、' ORDER BY cm.name)
                FROM community cm WHERE ST_Intersects(cm.geom, p.p)) AS where_
            FROM p ORDER BY p.len DESC"""
        ),
        {"n": name, "gap": SAME_STREET_GAP_M, **params},
    ).all()
    if len(rows) > 1:
        places = "; ".join(r.where_ or "outside every community" for r in rows)
        raise ValidationError(
            f"{field}: {name} names {len(rows)} separate streets ({places}); "
            "add the community or subdistrict to the address",
            field=field,
        )
    return float(rows[0][0]), float(rows[0][1])


def _unit_point(
    conn: Connection,
    kind: str,
    cands: list[dict[str, Any]],
    hints: dict[str, list[int]],
    field: str,
) -> tuple[float, float, str]:
    """Point of the longest-named service centre / grid / community (one, or refused)."""
    name = _longest(cands, kind)
    rows = [c for c in cands if c["kind"] == kind and c["name"] == name]
    # a name shared by units of different parents: keep those under the named area
    parent_hint = hints.get("community" if kind in ("landmark", "grid") else "subdistrict")
    if len(rows) > 1 and parent_hint:
        rows = [r for r in rows if r["parent"] in parent_hint] or rows
    if len(rows) > 1:
        raise ValidationError(
            f"{field}: {name!r} names {len(rows)} different {kind} places; "
            "add the community or subdistrict to the address",
            field=field,
        )
    table = {"landmark": "service_centre", "grid": "grid", "community": "community"}[kind]
    point = "geom" if kind == "landmark" else "ST_PointOnSurface(geom)"
    x, y = conn.execute(
        sa.text(f"SELECT ST_X(p), ST_Y(p) FROM (SELECT {point} AS p FROM {table} WHERE id = :i) s"),
        {"i": rows[0]["id"]},
    ).one()
    return float(x), float(y), name


def geocode(db: Session | Connection, address: str, *, field: str = "address") -> Geocoded:
    """Locate ``address`` with the service's own gazetteer; see the module docstring.

    Parameters
    ----------
    db : Session or Connection
        Read only; nothing is written.
    address : str
        The address as the caller gave it.
    field : str
        The request field the address came in (named in errors: ``address`` for the
        incidents API, ``address_string`` for Open311).

    Raises
    ------
    ValidationError
        Empty address; nothing in it matches a street, service centre, grid or community
        (the message says so and names the field); a subdistrict alone; two streets of an
        intersection that do not meet; a street, grid or community name shared by several
        places that the address does not tell apart.
    """
    conn = _conn(db)
    if address is None or not str(address).strip():
        raise ValidationError(f"{field} is empty: nothing to locate", field=field)
    full = normalize(address)
    cands = _candidates(conn, full)
    admin = [c for c in cands if c["kind"] in ("district", "subdistrict")]
    text = _strip_admin_prefix(full, admin)
    if text != full:
        cands = [c for c in cands if c["kind"] in ("district", "subdistrict") or c["name"] in text]
    house = _HOUSE_RE.search(text)
    house_number = house.group(1) if house else None
    hints: dict[str, list[int]] = {}
    for kind in ("subdistrict", "community"):
        ids = [c["id"] for c in cands if c["kind"] == kind]
        if ids:
            hints[kind] = ids
    # the most specific named area (for the report)
    area_names = [c["name"] for c in cands if c["kind"] == "community"] or [
        c["name"] for c in cands if c["kind"] == "subdistrict"
    ]
    area = max(area_names, key=len) if area_names else None

    def result(lon: float, lat: float, precision: str, matched: str, **kw: Any) -> Geocoded:
        return Geocoded(
            lon=lon,
            lat=lat,
            precision=precision,
            matched=matched,
            normalized=full,
            house_number=house_number,
            area=area,
            **kw,
        )

    # 1. an intersection: a street on each side of a connector (the first such split)
    core = _MARKER_RE.sub("", text)
    for m in _CONNECTOR_RE.finditer(core):
        a = _longest(cands, "street", core[: m.start()])
        b = _longest(cands, "street", core[m.end() :])
        if a and b and a != b:
            lon, lat, gap = _intersection(conn, a, b, hints)
            if gap > MAX_INTERSECTION_GAP_M:
                raise ValidationError(
                    f"{field}: {a} and {b} do not meet (they come no closer than "
                    f"{gap:.0f} m); check the street names",
                    field=field,
                )
            return result(
                lon, lat, "intersection", f"{a}与{b}", streets=(a, b), gap_m=round(gap, 2)
            )
    # 2. a service centre, 3. a street, 4. a grid, 5. a community
    if any(c["kind"] == "landmark" for c in cands):
        lon, lat, name = _unit_point(conn, "landmark", cands, hints, field)
        return result(lon, lat, "landmark", name)
    street = _longest(cands, "street")
    if street:
        lon, lat = _street_point(conn, street, hints, field)
        return result(lon, lat, "street", street, streets=(street,))
    for kind in ("grid", "community"):
        if any(c["kind"] == kind for c in cands):
            lon, lat, name = _unit_point(conn, kind, cands, hints, field)
            return result(lon, lat, kind, name)
    if admin:
        names = "、".join(sorted({c["name"] for c in admin}))
        raise ValidationError(
            f"{field}: only {names} matched, too coarse to locate; "
            "give a street, intersection, community or grid",
            field=field,
        )
    raise ValidationError(
        f"{field}: nothing in {str(address)[:80]!r} matched a known street, intersection, "
        "service centre, grid or community",
        field=field,
    )


def _house_numbers_are_context(conn: Connection) -> bool:
    """True when removing a door number from an address cannot change what it matches.

    That holds unless some gazetteer name could overlap a door number's text: a name
    with 号 or 弄 in it ("3号路"), or one that starts or ends with a digit (then "网格10"
    + "12号" reads as door number 1012). Grid names such as "上村社区第10网格" are fine.
    """
    return not conn.scalar(
        sa.text(
            """SELECT EXISTS (SELECT 1 FROM (
                SELECT name FROM alley_segment UNION ALL SELECT name FROM service_centre
                UNION ALL SELECT name FROM grid WHERE valid_to IS NULL UNION ALL SELECT name FROM community
                UNION ALL SELECT name FROM subdistrict UNION ALL SELECT name FROM district
            ) n WHERE name ~ '[号弄]' OR name ~ '[0-9０-９]$' OR name ~ '^[0-9０-９之-]')"""
        )
    )


def geocode_many(
    db: Session | Connection,
    addresses: Any,
    *,
    field: str = "address",
    progress: Progress = no_progress,
) -> dict[str, Geocoded | str]:
    """Locate many addresses at once, each distinct place only once; see :func:`geocode`.

    Hotline exports repeat the same addresses (a market, a lane that floods), and each
    lookup costs three queries (2.2 ms per address on the demo district), so addresses
    are looked up once per *normalized* form ("中山路 12 号" and "中山路１２号" are one
    lookup). Door numbers do not move the point (module docstring), so addresses that
    differ only in them ("康福路12号", "康福路14号") share one lookup too, each keeping its
    own ``house_number`` and ``normalized``; that is skipped when a gazetteer name could
    overlap a door number (:func:`_house_numbers_are_context`). A refusal shared that way
    is looked up again per address, so its message quotes the address itself.

    Parameters
    ----------
    db : Session or Connection
        Read only; nothing is written.
    addresses : iterable of str
        The addresses as written in the file (repeats allowed).
    field : str
        The column the addresses came from; refusals name it as :func:`geocode` does.
    progress : Progress, optional
        Factory of the progress bar (:mod:`mapsvc.core.progress`): one bar "geocode" of
        as many steps as there are lookups, advanced by one per lookup.

    Returns
    -------
    dict
        Each given address -> its :class:`Geocoded`, or the refusal reason (str) for one
        that matches nothing or is ambiguous: the :class:`ValidationError` message without
        its leading ``"<field>: "`` (a bad-row report names the column already).
    """
    conn = _conn(db)
    by_number = _house_numbers_are_context(conn)
    by_key: dict[str, list[str]] = {}
    for a in dict.fromkeys(str(a) for a in addresses):
        key = normalize(a)
        if by_number:
            key = _HOUSE_RE.sub("#", key)  # a placeholder keeps the text's structure
        by_key.setdefault(key, []).append(a)
    prefix = f"{field}: "

    def one(address: str) -> Geocoded | str:
        try:
            return geocode(conn, address, field=field)
        except ValidationError as exc:
            m = exc.message
            return m[len(prefix) :] if m.startswith(prefix) else m

    out: dict[str, Geocoded | str] = {}
    with progress(total=len(by_key), desc="geocode", unit="address") as bar:
        for originals in by_key.values():
            first = one(originals[0])
            out[originals[0]] = first
            for a in originals[1:]:
                if isinstance(first, str):
                    out[a] = first if normalize(a) == normalize(originals[0]) else one(a)
                else:
                    house = _HOUSE_RE.search(normalize(a))
                    out[a] = replace(
                        first,
                        normalized=normalize(a),
                        house_number=house.group(1) if house else None,
                    )
            bar.update(1)
    return out
