"""``twin import``: store a folder of files or a platform export in the warehouse."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from twin_platform.adapters.runtime import open_runtime
from twin_platform.cli.console import err, fail, literal, out, print_json
from twin_platform.cli.instance import add_author_partitions
from twin_platform.collection.ingest import ImportAborted, import_path
from twin_platform.collection.report import ImportReport
from twin_platform.settings import Settings

EXIT_OK = 0
EXIT_PARTIAL = 1  # some inputs were rejected; everything else was stored
EXIT_ABORTED = 2  # the import could not run; nothing was stored


def print_report(report: ImportReport) -> None:
    table = Table("inserted", "updated", "unchanged", "rejected", "skipped", title="import")
    table.add_row(
        str(report.inserted), str(report.updated), str(report.unchanged), str(len(report.rejected)), str(report.skipped)
    )
    out.print(table)
    for rejection in report.rejected:
        out.print(literal(("rejected", "yellow"), " ", rejection.reason))


def run_import(path: Path, author: str | None, as_json: bool) -> None:
    """Import ``path``; exits 0 when all was stored, 1 when some inputs were rejected, 2 when it could not run."""
    settings = Settings()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("importing {task.description}", markup=False),  # the description is the user's path
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json,
    )
    try:
        with open_runtime(settings) as runtime, progress:
            task = progress.add_task(str(path), total=None)
            report = import_path(
                path,
                warehouse=runtime.warehouse,
                authors=runtime.authors,
                author_name=author,
                max_bytes=settings.import_max_file_bytes,
                on_item=lambda: progress.advance(task),
            )
    except ImportAborted as exc:
        raise fail(str(exc), EXIT_ABORTED) from None
    add_author_partitions(settings, report.authors)
    if as_json:
        print_json(report.as_dict())
    else:
        print_report(report)
    raise typer.Exit(EXIT_PARTIAL if report.rejected else EXIT_OK)


def import_command(
    path: Path = typer.Argument(..., help="A folder of .md/.html/.txt files, or a handbook export folder."),
    author: str | None = typer.Option(None, "--author", help="Whose documents these are (name, alias or id)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Import documents. Exit code: 0 all stored, 1 some rejected (the rest stored), 2 nothing could run."""
    run_import(path, author, as_json)
