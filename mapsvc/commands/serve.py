"""``mapsvc serve``: what ``make demo`` runs.

In this order: checks that the port is free (one line naming the fix when not, before
anything starts), starts the database (embedded unless DATABASE_URL), loads the demo when
the database has no district yet, and serves the map with gunicorn (``--dev``: Werkzeug's
development server). Ctrl-C, SIGTERM and SIGHUP (a closed terminal) stop the web server
gracefully and then the embedded database, when this command started it; the exit status
is 0, so ``make demo`` ends without an error line.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
from types import FrameType

import click

from mapsvc.config import Settings

#: the signals that stop ``mapsvc serve``: Ctrl-C, ``kill``, and a closed terminal
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PortBusy(click.ClickException):
    """The port is taken: one line naming it and how to choose another."""


def _bind_probe(host: str, port: int) -> None:
    """Bind ``host:port`` as the server will (SO_REUSEADDR); raise OSError when it cannot."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(address)


def _next_free_port(host: str, port: int) -> int | None:
    for candidate in range(port + 1, min(port + 100, 65536)):
        try:
            _bind_probe(host, candidate)
            return candidate
        except OSError:
            continue
    return None


def check_port(host: str, port: int) -> None:
    """Fail with one clear line unless the server can listen on ``host:port``.

    Run before the database or the demo load start, so a busy port is the first and only
    thing said, with the commands that pick another port (a free one, checked).
    """
    try:
        _bind_probe(host, port)
    except socket.gaierror as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        other = _next_free_port(host, port) or port + 1
        raise PortBusy(
            f"port {port} on {host} is already in use (another mapsvc serve, or another "
            f"program); stop it, or use another port: make demo PORT={other} "
            f"(or mapsvc serve --port {other})"
        ) from None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _say(message: str) -> None:
    """Echo unless the terminal is gone (after SIGHUP writing to it fails; carry on)."""
    try:
        click.echo(message)
    except OSError:
        pass


@click.command("serve")
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 5000, or MAPSVC_PORT).")
@click.option("--dev", is_flag=True, help="Werkzeug's development server instead of gunicorn.")
@click.option("--no-demo", is_flag=True, help="Do not load the demo into an empty database.")
@click.option("--keep-db", is_flag=True, help="Leave the embedded database running on exit.")
def serve(host: str | None, port: int | None, dev: bool, no_demo: bool, keep_db: bool) -> None:
    """Serve the map service (with the demo district on first run).

    Workers and threads come from MAPSVC_SERVER_WORKERS / MAPSVC_SERVER_THREADS.
    """
    config = Settings.from_environment()
    host = host or str(config.host)
    port = port or int(config.port)
    check_port(host, port)

    from mapsvc import demo
    from mapsvc.app import create_app
    from mapsvc.commands.common import open_engine, progress
    from mapsvc.db import EmbeddedPostgres
    from mapsvc.web import server

    # until the web server takes them over, every stop signal unwinds to the clean-up below
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)
    me = os.getpid()
    embedded = None if config.database_url else EmbeddedPostgres(config.var_dir)
    was_running = embedded.running() if embedded else True
    try:
        engine = open_engine(config)
        if not no_demo and not demo.is_loaded(engine):
            click.echo("empty database: loading the demo district (once)...")
            summary = demo.load_demo(
                engine, **demo.arguments_from_settings(config), progress=progress
            )
            click.echo(demo.format_summary(summary))
        engine.dispose()
        server.preload()
        # absolute URLs default to the address actually served
        app = create_app({"HOST": host, "PORT": port})
        # the workers are forked from this process: they must not share its connections
        app.extensions["mapsvc.engine"].dispose()
        url = f"http://{host}:{port}/"

        def ready() -> None:
            _say(f"serving on {url}  (Ctrl-C stops)")

        if dev:
            ready()
            server.dev_server(app, host, port)
        else:
            server.production_server(app, host, port, config, on_ready=ready).run()
    except KeyboardInterrupt:
        pass
    except SystemExit as exc:
        if os.getpid() != me or exc.code not in (0, None):
            raise  # a worker leaving, or the server failing: not a normal stop
    finally:
        if os.getpid() == me:
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop
            if embedded is not None and not was_running and not keep_db:
                _say("stopping the embedded database...")
                embedded.stop()


COMMANDS = [serve]
