"""Configuration defaults and environment overrides.

Every setting has a default here; ``MAPSVC_<NAME>`` in the environment overrides it (values
are parsed as JSON when they parse, so numbers and booleans work), and ``DATABASE_URL``
selects an external PostgreSQL server instead of the embedded cluster.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from zoneinfo import ZoneInfo

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: the release (setup.cfg reads it from here)
VERSION = "0.1.0"

DEFAULTS: dict[str, object] = {
    # Database: None means "start and use the embedded cluster under VAR_DIR/pg".
    "DATABASE_URL": None,
    "VAR_DIR": str(PROJECT_ROOT / "var"),
    "DB_NAME": "mapsvc",
    # Web
    "HOST": "127.0.0.1",
    "PORT": 5000,
    "MAX_CONTENT_LENGTH": 50 * 1024 * 1024,
    "BABEL_DEFAULT_LOCALE": "zh_CN",
    "LANGUAGES": ["zh_CN", "en"],
    # The district's clock: what "today" is, where a day starts, and how times written
    # without an offset (API, imports, date filters) are read
    "TIMEZONE": "Asia/Shanghai",
    # Base map: none | osm | tianditu | amap (amap tiles are GCJ-02; see layers.basemap)
    "BASEMAP": "none",
    "TIANDITU_KEY": "",
    # Demo
    "DEMO_SEED": 20261124,
    "DEMO_INCIDENTS": 100_000,
    # Incidents: routing to a segment, the boundary margin, time limits per class
    "INCIDENT_SEGMENT_MAX_M": 30.0,
    "INCIDENT_BOUNDARY_CONFIRM_M": 15.0,
    "INCIDENT_TIME_LIMIT_HOURS": {"minor": 24, "ordinary": 72, "major": 168, "grave": 360},
    "OPEN311_API_KEYS": ["demo-key"],
    # Patrol: coverage share and buffer of a patrolled segment, track checks, walking speed
    "PATROL_COVER_SHARE": 0.8,
    "PATROL_BUFFER_M": 20.0,
    "PATROL_MAX_SPEED_KMH": 30.0,
    "WALKING_SPEED_KMH": 4.5,
    # Staffing quota: required staff = a*pop/10000 + b*area_km2 + c*enterprises/100
    "QUOTA_COEFFICIENTS": {"a": 8.0, "b": 2.0, "c": 1.0},
    "GRID_MEMBERS_REQUIRED": 2,
    # staff counted against the quota: community_workers (社区工作者员额) | all | grid_staff ...
    "QUOTA_GROUP": "community_workers",
}


def _parse(value: str) -> object:
    try:
        return json.loads(value)
    except ValueError:
        return value


def from_environment(environ: dict[str, str] | None = None) -> dict[str, object]:
    """Return the defaults with ``MAPSVC_*`` and ``DATABASE_URL`` overrides applied."""
    env = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    for key in DEFAULTS:
        if f"MAPSVC_{key}" in env:
            config[key] = _parse(env[f"MAPSVC_{key}"])
    if env.get("DATABASE_URL"):
        config["DATABASE_URL"] = env["DATABASE_URL"]
    return config


#: the district's time zone (``MAPSVC_TIMEZONE``, default Asia/Shanghai). Day boundaries
#: follow it everywhere (today's compliance, dashboard dates, date filters), whatever zone
#: the server's own clock is set to (CI machines and containers often run in UTC, where
#: 00:00-08:00 Beijing time is still "yesterday").
LOCAL_TZ = ZoneInfo(str(from_environment()["TIMEZONE"]))


def local_today() -> dt.date:
    """Today's date in the district (:data:`LOCAL_TZ`), not on the server's clock."""
    return dt.datetime.now(LOCAL_TZ).date()
