"""What `make demo` runs: `mapsvc serve` on its own embedded cluster, first and second run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mapsvc.db import EmbeddedPostgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(var_dir: Path, port: int) -> subprocess.Popen:
    env = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("MAPSVC_")
    }
    env.update(
        MAPSVC_VAR_DIR=str(var_dir),
        MAPSVC_PORT=str(port),
        MAPSVC_DEMO_INCIDENTS="300",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "mapsvc.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_healthy(proc: subprocess.Popen, port: int, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"not healthy after {seconds}s:\n{proc.stdout.read()}")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


def test_serve_loads_demo_once_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    port = _free_port()
    pg = EmbeddedPostgres(var_dir)
    try:
        proc = _serve(var_dir, port)
        health = _wait_healthy(proc, port, 300)
        assert health == {"status": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
            page = r.read().decode()
        assert "leaflet" in page.lower()
        out = _stop(proc)
        assert "loading the demo" in out
        assert proc.returncode == 0, out
        assert not pg.running(), "Ctrl-C must stop the embedded database"

        # second run: quick, keeps the data (no demo load)
        t0 = time.monotonic()
        proc = _serve(var_dir, port)
        _wait_healthy(proc, port, 120)
        second = time.monotonic() - t0
        out = _stop(proc)
        assert "loading the demo" not in out
        assert second < 30, f"second start took {second:.1f}s"
        assert not pg.running()
    finally:
        pg.destroy()


def test_serve_no_demo_leaves_an_empty_database_empty(fresh_engine) -> None:
    """``mapsvc serve --no-demo`` on an empty database (DATABASE_URL): it serves at once
    and loads nothing (without the option, the demo would be loaded before serving)."""
    import sqlalchemy as sa

    port = _free_port()
    env = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("MAPSVC_")
    }
    env.update(
        DATABASE_URL=fresh_engine.url.render_as_string(hide_password=False),
        MAPSVC_DEMO_INCIDENTS="300",  # so that a wrongly loaded demo is quick to see
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapsvc.cli", "serve", "--no-demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = _wait_healthy(proc, port, 120)
        assert health["status"] == "ok"
        with fresh_engine.connect() as c:
            rows = {
                t: c.scalar(sa.text(f"SELECT count(*) FROM {t}"))
                for t in ("district", "community", "grid", "incident")
            }
        assert rows == dict.fromkeys(rows, 0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/communities", timeout=30) as r:
            assert json.loads(r.read())["features"] == []
    finally:
        out = _stop(proc)
    assert "loading the demo" not in out
    assert proc.returncode == 0, out
