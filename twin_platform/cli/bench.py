"""``twin bench``: benchmarks that print JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from twin_platform.cli.console import err, fail, print_json

app = typer.Typer(help="Benchmarks (they print JSON).", no_args_is_help=True)


@app.command("features")
def features(
    docs: int = typer.Option(300, "--docs", min=1, help="Size of the generated corpus, in documents."),
    handbook: Path | None = typer.Option(None, "--handbook", help="The handbook export folder to run as well."),
    vectors: str = typer.Option("10000,100000", "--vectors", help="HNSW benchmark sizes, comma-separated."),
    queries: int = typer.Option(200, "--queries", min=1, help="Queries per HNSW benchmark."),
) -> None:
    """Pipeline documents/s and chunks/s, ratio to bare model.encode, 1% refresh cost, HNSW recall@10."""
    from twin_platform.benchmarks.features import run

    try:
        sizes = tuple(int(v) for v in vectors.split(",") if v.strip())
    except ValueError:
        raise fail(f"--vectors must be comma-separated integers, got {vectors!r}") from None
    err.print("running the feature benchmark (minutes at the default sizes) ...")
    print_json(run(documents=docs, handbook=handbook, vector_sizes=sizes, queries=queries))
