"""One settings object: defaults, the environment's overrides, and ``create_app(test_config)``
governing everything, the district's clock included."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest

from mapsvc.config import DEFAULTS, Settings, from_environment

EAST = "Pacific/Kiritimati"  # UTC+14
WEST = "Etc/GMT+12"  # UTC-12: always a different date from EAST (26 hours apart)


def test_defaults_and_environment_overrides() -> None:
    s = Settings()
    assert s.tz.key == "Asia/Shanghai"
    assert s.today() == dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert DEFAULTS["PATROL_BUFFER_M"] == s.patrol_buffer_m == 20.0
    env = {"MAPSVC_PATROL_BUFFER_M": "35", "MAPSVC_LANGUAGES": '["en"]', "MAPSVC_BASEMAP": "osm"}
    s = Settings.from_environment(env)
    assert (s.patrol_buffer_m, s.languages, s.basemap) == (35, ["en"], "osm")
    assert from_environment({"DATABASE_URL": "postgresql://x/y"})["DATABASE_URL"] == (
        "postgresql://x/y"
    )
    # app.config carries Flask's own keys too: they are not settings
    assert Settings.from_mapping({"DEBUG": True, "TIMEZONE": EAST}).tz.key == EAST
    with pytest.raises(ValueError, match="TIMEZONE 'Mars/Olympus' is not a known time zone"):
        Settings(timezone="Mars/Olympus")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.timezone = WEST  # type: ignore[misc]


def test_the_public_address_defaults_to_host_and_port() -> None:
    assert Settings().base_url == "http://127.0.0.1:5000"
    assert Settings(host="10.0.0.7", port=8080).base_url == "http://10.0.0.7:8080"
    env = {"MAPSVC_PUBLIC_URL": "https://grid.example.gov.cn/map/"}
    assert Settings.from_environment(env).base_url == "https://grid.example.gov.cn/map"
    s = Settings.from_environment({"MAPSVC_SERVER_WORKERS": "3", "MAPSVC_SERVER_THREADS": "4"})
    assert (s.server_workers, s.server_threads) == (3, 4)


def test_today_is_the_districts_date_not_the_servers() -> None:
    # a server clock set to UTC-12 and a district at UTC+14 are always a day or more
    # apart: the date comes from the setting (MAPSVC_TIMEZONE), never from the machine
    code = (
        "import datetime as dt; from mapsvc.config import Settings; s = Settings.from_environment(); "
        "print(s.tz.key, s.today(), dt.date.today())"
    )
    env = {**os.environ, "TZ": WEST, "MAPSVC_TIMEZONE": EAST}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == EAST
    assert out[1] == dt.datetime.now(ZoneInfo(EAST)).date().isoformat()
    assert out[1] != out[2]  # the server's own date differs


def test_create_app_test_config_governs_the_clock_and_thresholds(
    make_app, demo_engine, monkeypatch
) -> None:
    """Two apps in one process, each with its own zone, each answer their own "today";
    the environment says a third thing and is overruled by ``test_config``."""
    monkeypatch.setenv("MAPSVC_TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("MAPSVC_PATROL_COVER_SHARE", "0.5")
    east = make_app(demo_engine, TIMEZONE=EAST, PATROL_COVER_SHARE=0.9)
    west = make_app(demo_engine, TIMEZONE=WEST)
    today = {z: dt.datetime.now(ZoneInfo(z)).date().isoformat() for z in (EAST, WEST)}
    assert today[EAST] != today[WEST]
    for app, zone in ((east, EAST), (west, WEST)):
        with app.test_client() as c:
            # a page's default date, a service's default day, and a JSON figure's date
            assert c.get("/api/coverage").get_json()["date"] == today[zone]
            assert c.get("/api/dashboard/district").get_json()["date"] == today[zone]
            assert c.get("/api/patrol/compliance").get_json()["day"] == today[zone]
    with east.test_client() as c:
        assert c.get("/api/patrol/compliance").get_json()["cover_share"] == 0.9
    with west.test_client() as c:  # from the environment: test_config did not say
        assert c.get("/api/patrol/compliance").get_json()["cover_share"] == 0.5
