"""The ``fullmaja-stac`` command line: parses arguments, calls library functions, prints.

No pipeline logic lives here; every command is a thin wrapper over a function that is usable
from Python too.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fullmaja_stac.errors import FullMajaError

console = Console()
err_console = Console(stderr=True)
DATE_FORMATS = ["%Y-%m-%d"]


class _App(typer.Typer):
    """Typer app that turns user-facing errors into one red line and exit code 1."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except FullMajaError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise SystemExit(130) from None


app = _App(
    help="Order MAJA Sentinel-2 L2A time series (PEPS FULL_MAJA or its local emulator), "
    "download them, and turn them into Cloud-Optimized GeoTIFFs in a static STAC catalog.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.command()
def synth(
    tile: str = typer.Option("31TCJ", help="Sentinel-2 tile, e.g. 31TCJ or T31TCJ."),
    orbit: int = typer.Option(51, min=1, max=143, help="Relative orbit (1–143)."),
    start: datetime = typer.Option(..., formats=DATE_FORMATS, help="First day (YYYY-MM-DD)."),
    end: datetime = typer.Option(..., formats=DATE_FORMATS, help="Last day (YYYY-MM-DD)."),
    out: Path = typer.Option(Path("products"), help="Folder to write the products into."),
    size: int = typer.Option(120, help="R1 pixels (10 m) per side, a multiple of 6; 10980 covers the whole tile."),
    folders: bool = typer.Option(False, "--folders", help="Write folders instead of zips."),
    seed: int = typer.Option(0, help="Random seed: the same seed writes the same bytes."),
) -> None:
    """Write synthetic MAJA L2A products (MUSCATE format) for a tile, orbit and period.

    The products sit on the real grid of the tile, with realistic pixels, masks and metadata;
    about one date in seven is too cloudy (L2NOTV) and one in ten is a split product.
    """
    from fullmaja_stac.maja.synthetic import SynthOptions, plan_series, write_product

    if end < start:
        raise FullMajaError(f"--end {end:%Y-%m-%d} is before --start {start:%Y-%m-%d}")
    specs = plan_series(tile, orbit, start.date(), end.date(), seed=seed)
    if not specs:
        raise FullMajaError(f"no Sentinel-2 pass on orbit {orbit} between {start:%Y-%m-%d} and {end:%Y-%m-%d}")
    options = SynthOptions(size=size, zipped=not folders, seed=seed)
    with progress_bar() as progress:
        task = progress.add_task(f"writing {len(specs)} products", total=len(specs))
        for spec in specs:
            path = write_product(spec, out, options)
            progress.advance(task)
            progress.console.print(f"  {path}", highlight=False)
    console.print(f"[green]{len(specs)} products written to {out}[/]")


@app.command()
def info(product: Path = typer.Argument(..., help="A MAJA product: zip, folder or its MTD_ALL.xml.")) -> None:
    """Read one MAJA product and print what fullmaja-stac understands of it."""
    from fullmaja_stac.maja import read_product

    p = read_product(product)
    console.print(f"[bold]{p.id}[/]")
    console.print(f"  platform {p.platform}, tile {p.tile}, orbit {p.relative_orbit} (absolute {p.absolute_orbit})")
    console.print(f"  acquired {p.acquired.isoformat()}, MAJA {p.maja_version or '?'}, valid {p.valid}")
    console.print(f"  cloud {p.cloud_percent} %, snow {p.snow_percent} %, EPSG:{p.epsg}")
    for group, grid in p.grids.items():
        console.print(f"  {group}: {grid.ncols}x{grid.nrows} px of {grid.resolution:g} m from ({grid.ulx:.10g}, {grid.uly:.10g})")
    kinds: dict[str, int] = {}
    for r in p.rasters:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    console.print("  rasters: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))


@app.command()
def ingest(
    inputs: list[Path] = typer.Argument(..., help="MAJA products (zips or folders) or folders holding them."),
    catalog: Path = typer.Option(Path("catalog"), "--catalog", "-c", help="Catalog folder to create or update."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Parallel processes (default: all cores)."),
) -> None:
    """Convert MAJA products to COGs and add them to a static STAC catalog.

    Products already in the catalog are skipped without raster work; a newer version of a
    product replaces the older one. A product that fails is reported at the end and the
    exit code is 1; the others still land.
    """
    from fullmaja_stac.ingest import ingest as run_ingest
    from fullmaja_stac.progress import RichIngestObserver, make_progress

    with make_progress(console) as progress:
        report = run_ingest(inputs, catalog, workers=workers, observer=RichIngestObserver(progress))
    _print_ingest_report(report, catalog)
    if not report.ok:
        raise typer.Exit(1)


def _print_ingest_report(report, catalog: Path) -> None:
    console.print(
        f"[bold]{catalog}[/]: {len(report.added)} added, {len(report.replaced)} replaced, "
        f"{len(report.unchanged)} already there, {len(report.superseded)} older than the catalog's, "
        f"{len(report.failed)} failed"
    )
    for new, old in report.replaced:
        console.print(f"  replaced {old} by {new}", highlight=False)
    for given, newer in report.superseded:
        console.print(f"  [yellow]skipped[/] {given}: {newer} is newer", highlight=False)
    for source, reason in report.failed:
        err_console.print(f"  [red]failed[/] {source}: {reason}", highlight=False, soft_wrap=True)


@app.command()
def validate(
    catalog: Path = typer.Argument(Path("catalog"), help="Catalog folder or its catalog.json."),
    online: bool = typer.Option(False, "--online", help="Fetch schemas from the web instead of the bundled mirror."),
    schema_map: Optional[Path] = typer.Option(None, help="A schema-map.json (URL → local file) to use instead."),
) -> None:
    """Validate every STAC object of a catalog (recursively) against its JSON schemas."""
    from fullmaja_stac.stac.validate import BUNDLED_SCHEMA_MAP, validate_catalog

    result = validate_catalog(catalog, schema_map or BUNDLED_SCHEMA_MAP, online=online)
    counts = ", ".join(f"{n} {kind.lower()}s" for kind, n in sorted(result.by_type.items()))
    if result.ok:
        console.print(f"[green]valid[/]: {result.checked} objects ({counts})")
        return
    for path, error in result.invalid:
        err_console.print(f"[red]invalid[/] {path}: {error}", highlight=False, soft_wrap=True)
    err_console.print(f"{len(result.invalid)} of {result.checked} objects invalid")
    raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console-script entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
