"""Rich progress display for ingest: one bar per product in flight and one overall."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TransferSpeedColumn,
)


def make_progress(console: Console | None = None, bytes_: bool = False) -> Progress:
    counts = (DownloadColumn(), TransferSpeedColumn()) if bytes_ else (MofNCompleteColumn(),)
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        *counts,
        TimeElapsedColumn(),
        console=console,
    )


class Counter:
    """A ``callback(done, total)`` that shows a bar from its first call on, so that work
    that turns out to be nothing shows nothing. Use it as a context manager."""

    def __init__(self, console: Console, description: str) -> None:
        self.console, self.description = console, description
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            self.progress = make_progress(self.console)
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=total)
        self.progress.update(self.task, completed=done, total=total)

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


class RichIngestObserver:
    """Implements fullmaja_stac.ingest.IngestObserver on a rich Progress."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.overall: TaskID | None = None
        self.tasks: dict[str, TaskID] = {}

    def started(self, total_products: int) -> None:
        self.overall = self.progress.add_task("[bold]products", total=total_products)

    def product_started(self, product_id: str, total_rasters: int) -> None:
        self.tasks[product_id] = self.progress.add_task(f"  {product_id}", total=total_rasters)

    def raster_done(self, product_id: str) -> None:
        if product_id in self.tasks:
            self.progress.advance(self.tasks[product_id])

    def product_done(self, product_id: str, outcome: str) -> None:
        task = self.tasks.pop(product_id, None)
        if task is not None:
            self.progress.remove_task(task)
        colour = {"added": "green", "replaced": "green", "unchanged": "dim", "failed": "red"}.get(outcome, "yellow")
        self.progress.console.print(f"  [{colour}]{outcome:>10}[/] {product_id}", highlight=False)
        if self.overall is not None:
            self.progress.advance(self.overall)


class RichDownloadObserver:
    """Implements fullmaja_stac.providers.job_files.DownloadObserver: a bar per file in flight."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def file_started(self, name: str, total: int | None) -> None:
        self.tasks[name] = self.progress.add_task(f"  {name}", total=total)

    def file_progress(self, name: str, nbytes: int, total: int | None) -> None:
        task = self.tasks.get(name)
        if task is not None:
            self.progress.update(task, advance=nbytes, total=total)

    def file_done(self, name: str, outcome: str) -> None:
        task = self.tasks.pop(name, None)
        if task is not None:
            self.progress.remove_task(task)
