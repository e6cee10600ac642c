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


@app.command("api")
def api(
    chunks: str = typer.Option("10000,100000", "--chunks", help="Index sizes, comma-separated."),
    clients: str = typer.Option("1,8,32", "--clients", help="Concurrent clients, comma-separated."),
    seconds: float = typer.Option(60.0, "--seconds", min=1, help="Duration of each load run."),
    workers: int = typer.Option(0, "--workers", min=0, help="API worker processes (0: one per core)."),
) -> None:
    """/v1/search latency p50/p95/p99 and requests/s per concurrency, against bare embed + SQL loops."""
    from twin_platform.benchmarks.api import run

    try:
        sizes = tuple(int(v) for v in chunks.split(",") if v.strip())
        concurrency = tuple(int(v) for v in clients.split(",") if v.strip())
    except ValueError:
        raise fail("--chunks and --clients take comma-separated integers") from None
    err.print("running the API benchmark ...")
    print_json(run(sizes=sizes, clients=concurrency, seconds=seconds, workers=workers or None))


@app.command("training")
def training(
    sft_steps: int = typer.Option(12, "--sft-steps", min=1, help="SFT optimizer steps per run."),
    dpo_steps: int = typer.Option(8, "--dpo-steps", min=1, help="DPO optimizer steps per run."),
) -> None:
    """SFT/DPO tokens/s on the base model, and the Dagster asset's overhead over plain trl (goal <= 10%)."""
    from twin_platform.benchmarks.training import run

    err.print("running the training benchmark (a few minutes on CPU) ...")
    print_json(run(sft_steps=sft_steps, dpo_steps=dpo_steps))
