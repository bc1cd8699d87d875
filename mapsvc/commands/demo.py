"""CLI commands: ``mapsvc demo load``."""

from __future__ import annotations

import time

import click

from mapsvc.commands.common import open_engine, progress
from mapsvc.config import Settings


@click.group("demo")
def demo_group() -> None:
    """The demo district (鲤城区 Licheng, Quanzhou)."""


@demo_group.command("load")
@click.option("--seed", type=int, default=None, help="Random seed (default: MAPSVC_DEMO_SEED).")
@click.option(
    "--incidents",
    "incidents",
    type=click.IntRange(min=0),
    default=None,
    help="Number of incidents over the past year (default: MAPSVC_DEMO_INCIDENTS).",
)
@click.option(
    "--force", is_flag=True, help="Replace the data already in the database with the demo."
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def load_command(seed: int | None, incidents: int | None, force: bool, quiet: bool) -> None:
    """Load the demo district; does nothing when a district is already loaded (see --force)."""
    from mapsvc import demo
    from mapsvc.core.progress import no_progress

    config = Settings.from_environment()
    arguments = demo.arguments_from_settings(config, seed=seed, incidents=incidents)
    engine = open_engine(config)
    try:
        if demo.is_loaded(engine) and not force:
            click.echo(
                "A district is already loaded; nothing changed. "
                "Use `mapsvc demo load --force` to replace everything with the demo."
            )
            return
        started = time.perf_counter()
        try:
            summary = demo.load_demo(
                engine, **arguments, progress=no_progress if quiet else progress
            )
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"demo load failed: {exc}") from None
        click.echo(demo.format_summary(summary))
        click.echo(f"Loaded in {time.perf_counter() - started:.1f} s.")
    finally:
        engine.dispose()


COMMANDS = [demo_group]
