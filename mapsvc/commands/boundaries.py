"""CLI commands: ``mapsvc import district|subdistricts|communities|grids|units FILE``.

Each import is one transaction; ``--dry-run`` runs every check and prints the summary
(each polygon's geodesic area) and then rolls back, so nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import click

from mapsvc.commands.common import dry_run_option, one_transaction, open_engine, progress


@click.group("import")
def import_group() -> None:
    """Import your own boundaries (GeoJSON, GeoPackage, zipped Shapefile)."""


def _level_command(level: str, doc: str) -> click.Command:
    @click.command(level, help=doc)
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option(
        "--crs",
        default=None,
        help="CRS of the coordinates when the file does not say or says wrong: "
        "EPSG:xxxx (e.g. EPSG:4490, EPSG:3857), gcj02 or bd09.",
    )
    @click.option(
        "--encoding",
        default=None,
        help="Text encoding of a Shapefile's attributes when it has no .cpg file (e.g. gbk).",
    )
    @click.option("--code-field", default="code", show_default=True)
    @click.option("--name-field", default="name", show_default=True)
    @click.option(
        "--parent-field",
        default=None,
        help="Field with the parent's code (default: 'parent_code' if present, otherwise "
        "the parent each feature overlaps most).",
    )
    @click.option("--population-field", default=None, help="Default: 'population' if present.")
    @click.option("--households-field", default=None, help="Default: 'households' if present.")
    @click.option("--enterprises-field", default=None, help="Communities: default 'enterprises'.")
    @click.option(
        "--repair",
        is_flag=True,
        help="Repair invalid geometry with make_valid (each repair is reported) "
        "instead of rejecting the file.",
    )
    @click.option(
        "--tolerance-m",
        type=click.FloatRange(min=0),
        default=5.0,
        show_default=True,
        help="How far a feature may stick out of its parent, in metres.",
    )
    @click.option(
        "--code",
        "code_value",
        default=None,
        help="Code of a file holding one polygon without attributes (a bare GeoJSON "
        "geometry, as outline services publish them); with --name.",
    )
    @click.option("--name", "name_value", default=None, help="Name of that polygon.")
    @dry_run_option
    @click.option(
        "--strict-tiling",
        is_flag=True,
        help="Grids: reject the file when the grids of a community leave gaps or overlap.",
    )
    def command(
        file: Path,
        crs: str | None,
        encoding: str | None,
        code_field: str,
        name_field: str,
        parent_field: str | None,
        population_field: str | None,
        households_field: str | None,
        enterprises_field: str | None,
        repair: bool,
        tolerance_m: float,
        code_value: str | None,
        name_value: str | None,
        dry_run: bool,
        strict_tiling: bool,
        from_points: bool = False,
    ) -> None:
        from mapsvc.core.errors import ServiceError
        from mapsvc.services.boundaries import FieldNames, format_report, import_boundaries
        from mapsvc.services.boundary_points import import_from_points

        if enterprises_field and level != "communities":
            raise click.ClickException("--enterprises-field applies to communities only")
        if (population_field or households_field) and level not in ("communities", "grids"):
            raise click.ClickException(
                "--population-field/--households-field apply to communities and grids only"
            )
        if not file.exists():
            raise click.ClickException(f"{file}: no such file")
        fields = FieldNames(
            code=code_field,
            name=name_field,
            parent=parent_field,
            population=population_field,
            households=households_field,
            enterprises=enterprises_field,
        )
        if from_points and (code_value or name_value):
            raise click.ClickException("--from-points reads codes and names from the list")
        engine = open_engine()
        bar = progress(total=1, desc=f"import {level}", unit="file")
        try:
            with one_transaction(engine, dry_run) as session:
                if from_points:
                    report = import_from_points(
                        session, level, file, crs=crs, tolerance_m=tolerance_m
                    )
                else:
                    report = import_boundaries(
                        session,
                        level,
                        file,
                        crs=crs,
                        encoding=encoding,
                        fields=fields,
                        code=code_value,
                        name=name_value,
                        repair=repair,
                        tolerance_m=tolerance_m,
                        tiling="error" if strict_tiling else "warn",
                    )
                report.dry_run = dry_run
            bar.update(1)
        except ServiceError as exc:
            raise click.ClickException(exc.message) from None
        finally:
            bar.close()
            engine.dispose()
        click.echo(format_report(report))

    if level in ("subdistricts", "communities"):
        command = click.option(
            "--from-points",
            is_flag=True,
            help="FILE is a CSV list of centre points (code, name, parent_code, longitude, "
            "latitude; or the statistical division list as published): build Voronoi cells "
            "inside the parents, reported as generated. Needs --crs.",
        )(command)
    return command


for _level, _doc in (
    ("district", "Import the district outline from FILE."),
    ("subdistricts", "Import subdistricts (街道) from FILE."),
    (
        "communities",
        "Import communities (社区) from FILE, with population, households and enterprises.",
    ),
    ("grids", "Import grids (网格) from FILE and check that they tile their communities."),
):
    import_group.add_command(_level_command(_level, _doc))


@import_group.command("units")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--crs", default=None, help="CRS when the file does not say: EPSG:xxxx, gcj02 or bd09."
)
@click.option(
    "--community", default=None, help="Put every unit in this community (default: by location)."
)
@click.option("--code-field", default="code", show_default=True)
@click.option("--households-field", default="households", show_default=True)
@click.option("--population-field", default="population", show_default=True)
@click.option(
    "--group-field",
    default="group",
    show_default=True,
    help="Units with one value stay in one grid.",
)
@dry_run_option
def units_cmd(
    file: Path,
    crs: str | None,
    community: str | None,
    code_field: str,
    households_field: str,
    population_field: str,
    group_field: str,
    dry_run: bool,
) -> None:
    """Import planning units (blocks, building groups with households) for automatic grids."""
    from mapsvc.core.errors import ServiceError
    from mapsvc.services.units import import_units

    engine = open_engine()
    try:
        with one_transaction(engine, dry_run) as session:
            r = import_units(
                session, file, crs=crs, community=community, code_field=code_field,
                households_field=households_field, population_field=population_field,
                group_field=group_field, progress=progress,
            )  # fmt: skip
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()
    verb = "checked (dry run)" if dry_run else "imported"
    click.echo(f"{verb} {r.units:,} units with {r.households:,} households ({r.source_crs})")
    for code, n in r.communities.items():
        click.echo(f"  community {code}: {n:,} units")
    if dry_run:
        click.echo("dry run: nothing written")


COMMANDS = [import_group]
