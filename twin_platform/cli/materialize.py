"""``twin materialize``: run assets headless, recorded in the same Dagster instance as the UI."""

from __future__ import annotations

import typer

from twin_platform.cli.console import fail, out
from twin_platform.cli.instance import get_instance
from twin_platform.settings import Settings


def materialize_assets(select: str | None, authors: list[str], settings: Settings) -> bool:
    """Materialize ``select`` (Dagster selection syntax; all assets by default) for each author partition."""
    import dagster as dg

    from twin_platform.definitions import defs
    from twin_platform.defs.authors.partitions import AUTHORS_PARTITION

    # Definitions modules may re-export an asset; materialize each once.
    assets = [a for a in {id(a): a for a in defs.assets or []}.values() if isinstance(a, dg.AssetsDefinition)]
    selection = dg.AssetSelection.from_string(select) if select else dg.AssetSelection.all()
    with get_instance(settings) as instance:
        known = instance.get_dynamic_partitions(AUTHORS_PARTITION)
        partitions = authors or known
        unknown = [author for author in partitions if author not in known]
        if unknown:
            raise fail(f"unknown author partition(s): {', '.join(unknown)} (registered: {', '.join(known) or 'none'})")
        if not partitions:
            raise fail("no authors are registered: run `twin demo` or `twin authors add NAME` first")
        ok = True
        for author in partitions:
            result = dg.materialize(
                assets,
                instance=instance,
                resources=defs.resources,
                partition_key=author,
                selection=selection,
                raise_on_error=False,
                tags={"twin/author": author},
            )
            status = "[green]succeeded[/]" if result.success else "[red]failed[/]"
            out.print(f"run {result.run_id} for {author}: {status}")
            ok = ok and result.success
        return ok


def materialize_command(
    select: str | None = typer.Option(
        None, "--select", help="Asset selection, e.g. 'raw_documents' or 'key:raw_documents+'."
    ),
    author: list[str] = typer.Option([], "--author", help="Author partition(s); default: every author."),
) -> None:
    """Materialize assets without the UI; exits 1 if a run fails."""
    if not materialize_assets(select, author, Settings()):
        raise typer.Exit(1)
