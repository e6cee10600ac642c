"""``twin materialize``: run assets headless, recorded in the same Dagster instance as the UI."""

from __future__ import annotations

import typer

from twin_platform.cli.console import fail, out
from twin_platform.cli.instance import get_instance
from twin_platform.settings import Settings


def materialize_assets(select: str | None, authors: list[str], settings: Settings) -> bool:
    """Materialize ``select`` (Dagster selection syntax; everything by default).

    Per-author assets run once per author partition; the rest (the dbt marts) run once afterwards.
    """
    import dagster as dg

    from twin_platform.definitions import defs
    from twin_platform.defs.authors.partitions import AUTHORS_PARTITION

    # Definitions modules may re-export an asset; materialize each once.
    assets = [a for a in {id(a): a for a in defs.assets or []}.values() if isinstance(a, dg.AssetsDefinition)]
    graph = defs.resolve_asset_graph()
    selection = dg.AssetSelection.from_string(select) if select else dg.AssetSelection.all()
    try:
        keys = selection.resolve(graph)
    except dg.DagsterInvalidSubsetError as exc:
        raise fail(f"--select {select!r} matches no asset: {exc}") from None
    if not keys:
        raise fail(f"--select {select!r} matches no asset")
    partitioned = {k for k in keys if graph.get(k).partitions_def is not None}
    unpartitioned = set(keys) - partitioned
    with get_instance(settings) as instance:
        known = instance.get_dynamic_partitions(AUTHORS_PARTITION)
        partitions = authors or known
        unknown = [author for author in partitions if author not in known]
        if unknown:
            raise fail(f"unknown author partition(s): {', '.join(unknown)} (registered: {', '.join(known) or 'none'})")
        if partitioned and not partitions:
            raise fail("no authors are registered: run `twin demo` or `twin authors add NAME` first")
        runs: list[tuple[str, set[dg.AssetKey], str | None]] = []
        if partitioned:
            runs += [(author, partitioned, author) for author in partitions]
        if unpartitioned:
            runs.append(("marts", unpartitioned, None))
        ok = True
        for label, run_keys, partition in runs:
            result = dg.materialize(
                assets,
                instance=instance,
                resources=defs.resources,
                partition_key=partition,
                selection=dg.AssetSelection.assets(*run_keys),
                raise_on_error=False,
                tags={"twin/author": partition} if partition else None,
            )
            status = "[green]succeeded[/]" if result.success else "[red]failed[/]"
            out.print(f"run {result.run_id} for {label}: {status}")
            ok = ok and result.success
        return ok


def materialize_command(
    select: str | None = typer.Option(
        None, "--select", help="Asset selection, e.g. 'raw_documents' or 'key:raw_documents+' (default: all)."
    ),
    author: list[str] = typer.Option([], "--author", help="Author partition(s); default: every author."),
) -> None:
    """Materialize assets without the UI; exits 1 if a run fails."""
    if not materialize_assets(select, author, Settings()):
        raise typer.Exit(1)
