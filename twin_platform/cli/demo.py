"""``twin demo``: the shipped demo author and corpus."""

from __future__ import annotations

from pathlib import Path

import typer

from twin_platform.adapters.runtime import open_runtime
from twin_platform.cli.console import literal, out, print_json
from twin_platform.cli.instance import add_author_partitions
from twin_platform.collection.sources import sync_author_sources
from twin_platform.domain.authors import Author
from twin_platform.settings import Settings

DEMO_CORPUS = Path(__file__).resolve().parent.parent / "demo" / "corpus"
DEMO_AUTHOR = Author(full_name="Mara Ellison", aliases=("M. Ellison",))


def register_demo(settings: Settings) -> dict[str, object]:
    """Register the demo author with the shipped corpus as import, and import it (idempotent)."""
    with open_runtime(settings) as runtime:
        existing = runtime.authors.get(DEMO_AUTHOR.id) or DEMO_AUTHOR
        author = existing.with_additions(aliases=DEMO_AUTHOR.aliases, imports=(str(DEMO_CORPUS),))
        runtime.authors.save(author)
        report = sync_author_sources(
            author, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=settings.import_max_file_bytes
        )
    add_author_partitions(settings, [author.id])
    return {"author": author.id, **report.as_dict()}


def demo_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Register the demo author (Mara Ellison) and import the demo corpus."""
    result = register_demo(Settings())
    if as_json:
        print_json(result)
    else:
        counts = (
            f"{result['inserted']} inserted, {result['updated']} updated, "
            f"{result['unchanged']} unchanged, {result['rejected']} rejected"
        )
        out.print(literal("demo author ", (str(result["author"]), "bold"), ": ", counts))
