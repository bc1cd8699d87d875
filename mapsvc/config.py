"""The service's settings: their defaults, the environment's overrides, one object.

Every setting has a typed default in :class:`Settings`; ``MAPSVC_<NAME>`` in the
environment overrides it (values are parsed as JSON when they parse, so numbers, lists and
booleans work), and ``DATABASE_URL`` selects an external PostgreSQL server instead of the
embedded cluster. The web app builds its :class:`Settings` from ``app.config`` (which
``create_app(test_config)`` governs); the CLI from the environment. Nothing else reads the
environment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: the release (setup.cfg reads it from here)
VERSION = "0.1.0"


def _const(value: Any) -> Any:
    return field(default_factory=lambda: json.loads(json.dumps(value)))


@dataclass(frozen=True)
class Settings:
    """The service's settings, read once and passed down: one object for every part.

    Services and layers take it (or the values they need from it) as an argument and
    never read the environment themselves. ``app.config`` keys are the upper-case names
    (``PATROL_BUFFER_M`` is :attr:`patrol_buffer_m`).
    """

    # Database: None means "start and use the embedded cluster under var_dir/pg"
    database_url: str | None = None
    var_dir: str = str(PROJECT_ROOT / "var")
    db_name: str = "mapsvc"
    # The embedded cluster listens on its private Unix socket only; True adds 127.0.0.1
    # (password still required), for tools that cannot use a socket
    db_listen_tcp: bool = False
    # Web
    host: str = "127.0.0.1"
    port: int = 5000
    # The address users reach the service at (scheme, host, port, any path prefix of a
    # reverse proxy). Absolute links (Open311 discovery) are built from it, never from the
    # request's Host header, which any client can set. Empty: http://HOST:PORT
    public_url: str = ""
    # The production server (gunicorn, gthread workers): processes x threads. Two processes
    # use both cores of a small server (the database shares them); threads overlap the
    # time each request waits for PostgreSQL
    server_workers: int = 2
    server_threads: int = 8
    # Seconds a stopping server lets running requests finish (Ctrl-C, SIGTERM, SIGHUP)
    server_graceful_timeout: int = 10
    # Seconds the dashboard's figures are reused while no write happened in the database
    # (0: always recompute); see mapsvc.services.dashboard
    dashboard_cache_seconds: float = 30.0
    max_content_length: int = 50 * 1024 * 1024
    babel_default_locale: str = "zh_CN"
    languages: list[str] = _const(["zh_CN", "en"])
    # The district's clock: what "today" is, where a day starts, and how times written
    # without an offset (API, imports, date filters) are read
    timezone: str = "Asia/Shanghai"
    # Base map: local (drawn from the district's own data, offline) | osm | tianditu | amap
    # | none; a raster choice is added on top of the local one (amap tiles are GCJ-02; see
    # layers.basemap)
    basemap: str = "local"
    tianditu_key: str = ""
    # Accounts and sessions. An empty secret_key means "the one kept in var_dir/secret_key"
    # (made at first start); there is no default secret.
    secret_key: str | None = None
    # Secure cookies: "auto" (when the request came over HTTPS), true or false
    session_cookie_secure: str | bool = "auto"
    # trust one reverse proxy's X-Forwarded-Proto/-For/-Host (only behind such a proxy)
    proxy_fix: bool = False
    session_hours: float = 12.0
    # failed logins before an account is locked, and for how long
    login_max_failures: int = 5
    login_lock_minutes: float = 15.0
    # login attempts per client address (Flask-Limiter syntax), on top of the lockout
    login_rate_limit: str = "20 per minute"
    # Vector tiles: how long a browser may use a tile before it revalidates it (ETag)
    tile_cache_seconds: int = 60
    # Demo
    demo_seed: int = 20261124
    demo_incidents: int = 100_000
    # the demo accounts' password; empty: made up once and kept in var_dir/demo_password
    demo_password: str = ""
    # Incidents: routing to a segment, the boundary margin, time limits per class (hours)
    incident_segment_max_m: float = 30.0
    incident_boundary_confirm_m: float = 15.0
    # an import's exact point shared by at least this many rows is a fallback (a city
    # centre the caller used for "no location"): those rows are flagged to confirm
    incident_fallback_rows: int = 50
    incident_time_limit_hours: dict[str, float] = _const(
        {"minor": 24, "ordinary": 72, "major": 168, "grave": 360}
    )
    # Patrol: coverage share and buffer of a patrolled segment, track checks, walking speed
    patrol_cover_share: float = 0.8
    patrol_buffer_m: float = 20.0
    patrol_max_speed_kmh: float = 30.0
    walking_speed_kmh: float = 4.5
    # Staffing quota: required staff = a*pop/10000 + b*area_km2 + c*enterprises/100
    quota_coefficients: dict[str, float] = _const({"a": 8.0, "b": 2.0, "c": 1.0})
    grid_members_required: int = 2
    # staff counted against the quota: community_workers (社区工作者员额) | all | grid_staff ...
    quota_group: str = "community_workers"
    # The leadership big screen (/screen): seconds between refreshes of its figures
    screen_refresh_s: int = 30

    def __post_init__(self) -> None:
        try:
            ZoneInfo(str(self.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"TIMEZONE {self.timezone!r} is not a known time zone (e.g. Asia/Shanghai)"
            ) from None

    @property
    def tz(self) -> ZoneInfo:
        """The district's time zone: day boundaries follow it, not the server's clock.

        CI machines and containers often run in UTC, where 00:00-08:00 Beijing time is
        still "yesterday".
        """
        return ZoneInfo(str(self.timezone))

    @property
    def base_url(self) -> str:
        """The service's public address without a trailing slash (:attr:`public_url`, else
        ``http://HOST:PORT``): the root of every absolute URL the service writes."""
        return (str(self.public_url) or f"http://{self.host}:{self.port}").rstrip("/")

    def today(self) -> dt.date:
        """Today's date in the district (:attr:`tz`)."""
        return dt.datetime.now(self.tz).date()

    def local(self, value: dt.datetime) -> dt.datetime:
        """``value`` in the district's zone; a time without an offset is read as local."""
        return value.replace(tzinfo=self.tz) if value.tzinfo is None else value.astimezone(self.tz)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> Settings:
        """Settings from a config mapping by upper-case keys (``app.config``); other keys
        (Flask's own) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{k.lower(): v for k, v in config.items() if k.lower() in names and k.isupper()}
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from the defaults and ``MAPSVC_*`` / ``DATABASE_URL`` (the CLI's path)."""
        return cls.from_mapping(from_environment(environ))

    def as_config(self) -> dict[str, Any]:
        """Every setting by its upper-case ``app.config`` key."""
        return {k.upper(): v for k, v in dataclasses.asdict(self).items()}


#: every setting's default by its ``app.config`` key
DEFAULTS: dict[str, Any] = Settings().as_config()


def _parse(value: str) -> object:
    try:
        return json.loads(value)
    except ValueError:
        return value


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the defaults with ``MAPSVC_*`` and ``DATABASE_URL`` overrides applied.

    The one reading of the environment, for the app (``create_app``) and the CLI alike.
    Flask's ``Config.from_prefixed_env`` parses values the same way (JSON, else text) but
    is not used: the CLI and the services read settings without a Flask app, and it would
    also take every other ``MAPSVC_*`` variable (the tests' own) as a setting.
    """
    env = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    for key in DEFAULTS:
        if f"MAPSVC_{key}" in env:
            config[key] = _parse(env[f"MAPSVC_{key}"])
    if env.get("DATABASE_URL"):
        config["DATABASE_URL"] = env["DATABASE_URL"]
    return config
