"""``mapsvc serve``: what ``make demo`` runs.

Starts the database (embedded unless DATABASE_URL), loads the demo when the database has
no district yet, serves the map, and on Ctrl-C stops the web server and, when this command
started it, the embedded database.
"""

from __future__ import annotations

import click

from mapsvc.config import Settings


@click.command("serve")
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 5000, or MAPSVC_PORT).")
@click.option("--no-demo", is_flag=True, help="Do not load the demo into an empty database.")
@click.option("--keep-db", is_flag=True, help="Leave the embedded database running on exit.")
def serve(host: str | None, port: int | None, no_demo: bool, keep_db: bool) -> None:
    """Serve the map service (with the demo district on first run)."""
    from werkzeug.serving import run_simple

    from mapsvc import demo
    from mapsvc.app import create_app
    from mapsvc.commands.common import open_engine, progress
    from mapsvc.db import EmbeddedPostgres

    config = Settings.from_environment()
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
        app = create_app()
        host = host or str(config.host)
        port = port or int(config.port)
        click.echo(f"serving on http://{host}:{port}/  (Ctrl-C stops)")
        run_simple(host, port, app, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        if embedded is not None and not was_running and not keep_db:
            click.echo("stopping the embedded database...")
            embedded.stop()


COMMANDS = [serve]
