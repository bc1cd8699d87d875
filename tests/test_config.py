"""The district's clock: one time zone setting decides what "today" is."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from zoneinfo import ZoneInfo

from mapsvc.config import LOCAL_TZ, local_today


def test_today_is_the_districts_date_not_the_servers() -> None:
    assert LOCAL_TZ.key == "Asia/Shanghai"  # the default
    assert local_today() == dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    # a server clock set to UTC-12 and a district at UTC+14 are always a day or more
    # apart: the date comes from the setting (MAPSVC_TIMEZONE), never from the machine
    code = (
        "import datetime as dt; from mapsvc.config import local_today, LOCAL_TZ; "
        "print(LOCAL_TZ.key, local_today(), dt.date.today())"
    )
    env = {**os.environ, "TZ": "Etc/GMT+12", "MAPSVC_TIMEZONE": "Pacific/Kiritimati"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "Pacific/Kiritimati"
    assert out[1] == dt.datetime.now(ZoneInfo("Pacific/Kiritimati")).date().isoformat()
    assert out[1] != out[2]  # the server's own date differs
