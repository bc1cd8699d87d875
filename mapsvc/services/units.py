"""Planning units (blocks, building groups): imported from a file, read for the partition.

A file's units carry households and population; each is put in the community holding most
of it (or the one named by a ``community`` field). The import is one transaction and
replaces the units of the communities it touches, so importing a corrected file twice
gives the same units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.core.errors import NotFound, ValidationError
from mapsvc.core.progress import Progress, no_progress
from mapsvc.models import Community, PlanningUnit
from mapsvc.services import boundaries
from mapsvc.services.partition import Unit


@dataclass
class UnitsReport:
    """What an import did."""

    file: str
    source_crs: str
    units: int = 0
    households: int = 0
    communities: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False


def _number(value: Any, what: str, where: str) -> int:
    if value is None or (isinstance(value, float) and value != value):
        return 0
    try:
        n = int(float(value))
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: {what} {value!r} is not a number", field=what) from None
    if n < 0:
        raise ValidationError(f"{where}: {what} {n} is below 0", field=what)
    return n


def import_units(
    session: Session,
    path: str | Path,
    *,
    crs: str | None = None,
    code_field: str = "code",
    households_field: str = "households",
    population_field: str = "population",
    group_field: str = "group",
    community: str | None = None,
    progress: Progress = no_progress,
) -> UnitsReport:
    """Read units from a GeoPackage, GeoJSON or zipped Shapefile into ``planning_unit``.

    Each feature needs a polygon and households; ``code`` defaults to the feature's
    number. A unit lying mostly outside every community is an error naming it.
    """
    raw, source_crs = boundaries.read_features(path, crs)
    wgs = boundaries.to_wgs84(raw, source_crs)
    cols = {str(c).lower(): c for c in raw.columns if c != raw.geometry.name}
    if households_field.lower() not in cols:
        raise ValidationError(
            f"{path}: no field {households_field!r} for the households; the file has: "
            f"{', '.join(map(str, cols.values())) or 'no fields'}",
            field="households",
        )
    forced = None
    if community:
        forced = session.scalar(sa.select(Community).where(Community.code == community))
        if forced is None:
            raise NotFound(f"community {community} does not exist", field="community")
    report = UnitsReport(file=str(path), source_crs=source_crs)
    rows = []
    for i in progress(range(len(raw)), desc="units", unit="unit"):
        where = f"{path}: feature #{i}"
        g = wgs[i]
        if g is None or g.is_empty or g.geom_type not in ("Polygon", "MultiPolygon"):
            raise ValidationError(f"{where}: a unit needs a polygon", field="geometry")
        if not g.is_valid:
            raise ValidationError(
                f"{where}: invalid polygon ({shapely.is_valid_reason(g)})", field="geometry"
            )
        code_col = cols.get(code_field.lower())
        code = boundaries.text_value(raw[code_col].iloc[i]) if code_col is not None else None
        group_col = cols.get(group_field.lower())
        group = boundaries.text_value(raw[group_col].iloc[i]) if group_col is not None else None
        rows.append(
            {
                "i": i,
                "code": code or str(i + 1),
                "wkt": (shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g).wkt,
                "households": _number(
                    raw[cols[households_field.lower()]].iloc[i], "households", where
                ),
                "population": _number(
                    raw[cols[population_field.lower()]].iloc[i]
                    if population_field.lower() in cols
                    else None,
                    "population",
                    where,
                ),
                "group": group,
            }
        )
    if not rows:
        raise ValidationError(f"{path}: the file has no features")
    session.execute(
        sa.text(
            "CREATE TEMP TABLE _units (i int, code text, geom geometry, households int, "
            "population int, grp text, community_id int) ON COMMIT DROP"
        )
    )
    session.execute(
        sa.text(
            "INSERT INTO _units (i, code, geom, households, population, grp) VALUES "
            "(:i, :code, ST_GeomFromText(:wkt, 4326), :households, :population, :group)"
        ),
        rows,
    )
    if forced is not None:
        session.execute(sa.text("UPDATE _units SET community_id = :c"), {"c": forced.id})
    else:
        session.execute(
            sa.text(
                """UPDATE _units u SET community_id = (
                     SELECT c.id FROM community c WHERE ST_Intersects(c.geom, u.geom)
                      ORDER BY ST_Area(ST_Intersection(c.geom, u.geom)) DESC LIMIT 1)"""
            )
        )
    lost = session.execute(
        sa.text(
            """SELECT u.i, u.code FROM _units u LEFT JOIN community c ON c.id = u.community_id
                WHERE c.id IS NULL OR ST_Area(ST_Intersection(c.geom, u.geom)) < 0.5 * ST_Area(u.geom)
                ORDER BY u.i LIMIT 5"""
        )
    ).all()
    if lost and forced is None:
        shown = ", ".join(f"#{r.i} (code {r.code})" for r in lost)
        raise ValidationError(f"{path}: units lie mostly outside every community: {shown}")
    dup = session.execute(
        sa.text("SELECT community_id, code FROM _units GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 5")
    ).all()
    if dup:
        raise ValidationError(f"{path}: unit codes appear twice: {', '.join(r.code for r in dup)}")
    session.execute(
        sa.text(
            "DELETE FROM planning_unit WHERE community_id IN (SELECT DISTINCT community_id FROM _units)"
        )
    )
    session.execute(
        sa.text(
            """INSERT INTO planning_unit (code, community_id, geom, households, population,
                                          group_code, source)
               SELECT code, community_id, ST_Multi(geom), households, population, grp, :src
                 FROM _units ORDER BY i"""
        ),
        {"src": Path(path).name[:40]},
    )
    counts = session.execute(
        sa.text(
            "SELECT c.code, count(*), sum(u.households) FROM _units u JOIN community c "
            "ON c.id = u.community_id GROUP BY c.code ORDER BY c.code"
        )
    ).all()
    report.communities = {code: int(n) for code, n, _h in counts}
    report.units = sum(report.communities.values())
    report.households = int(sum(h for _c, _n, h in counts))
    session.execute(sa.text("DROP TABLE _units"))
    return report


def community_units(session: Session, community_id: int) -> list[Unit]:
    """The units of a community, for :func:`mapsvc.services.partition.partition`."""
    rows = session.execute(
        sa.select(
            PlanningUnit.code,
            sa.func.ST_AsBinary(PlanningUnit.geom),
            PlanningUnit.households,
            PlanningUnit.population,
            PlanningUnit.group_code,
        )
        .where(PlanningUnit.community_id == community_id)
        .order_by(PlanningUnit.code)
    ).all()
    return [
        Unit(code, shapely.from_wkb(bytes(wkb)), int(h), int(p), g) for code, wkb, h, p, g in rows
    ]


def write_units(session: Session, community_id: int, units: list[Unit], source: str) -> None:
    """Replace a community's units with ``units`` (the demo's generated ones)."""
    session.execute(sa.delete(PlanningUnit).where(PlanningUnit.community_id == community_id))
    if units:
        session.execute(
            sa.text(
                """INSERT INTO planning_unit (code, community_id, geom, households, population,
                                              group_code, source)
                   VALUES (:code, :c, ST_Multi(ST_GeomFromText(:wkt, 4326)), :h, :p, :g, :s)"""
            ),
            [
                {"code": u.id, "c": community_id, "wkt": u.geom.wkt, "h": u.households,
                 "p": u.population, "g": u.group, "s": source}
                for u in units
            ],
        )  # fmt: skip
