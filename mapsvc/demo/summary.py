"""What a demo load reports: row counts of every table, the district, a few checks."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mapsvc.demo.source import ATTRIBUTION
from mapsvc.models import table_names


def summarize(conn: Connection, seed: int) -> dict:
    """The summary of the demo just loaded on ``conn`` (counts in table dependency order)."""
    counts = {
        t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()) for t in table_names()
    }
    d = conn.execute(
        sa.text("SELECT code, name, area_km2 FROM district ORDER BY id LIMIT 1")
    ).first()
    no_chief = conn.execute(
        sa.text(
            "SELECT count(*) FROM alley_segment s WHERE NOT EXISTS (SELECT 1 FROM assignment a "
            "WHERE a.segment_id = s.id AND a.role = 'alley_chief' AND a.valid_to IS NULL)"
        )
    ).scalar()
    states = dict(
        conn.execute(sa.text("SELECT state, count(*) FROM incident GROUP BY state")).all()
    )
    return {
        "seed": seed,
        "district_code": d.code,
        "district_name": d.name,
        "district_area_km2": round(float(d.area_km2), 3),
        "counts": counts,
        "segments_without_chief": int(no_chief),
        "incidents_by_state": {k: int(v) for k, v in sorted(states.items())},
        "attribution": ATTRIBUTION,
    }


def format_summary(summary: dict) -> str:
    """The load summary as aligned text lines (for the CLI)."""
    lines = [
        f"{summary['district_name']} ({summary['district_code']}): "
        f"{summary['district_area_km2']:.2f} km² (geodesic), seed {summary['seed']}",
    ]
    width = max(len(t) for t in summary["counts"])
    for table, n in summary["counts"].items():
        lines.append(f"  {table:<{width}}  {n:>8,}")
    if summary.get("segments_without_chief") is not None:
        lines.append(f"  alley segments without a chief: {summary['segments_without_chief']}")
    if summary.get("incidents_by_state"):
        states = ", ".join(f"{k} {v:,}" for k, v in summary["incidents_by_state"].items())
        lines.append(f"  incidents by state: {states}")
    logins = summary.get("logins")
    if logins:
        lines.append(
            f"Demo logins ({', '.join(logins['usernames'])}), password: {logins['password']}"
        )
        lines.append(f"  12345 hotline API token (Open311 api_key): {logins['hotline_token']}")
    lines.append(f"Boundaries: {summary.get('attribution', ATTRIBUTION)}")
    return "\n".join(lines)
