"""``twin bench``: benchmarks that print JSON."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from twin_platform.cli.console import err, fail, literal, print_json

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


class Device(StrEnum):
    cpu = "cpu"
    cuda = "cuda"


@app.command("training")
def training(
    device: Device = typer.Option(
        Device.cpu,
        "--device",
        help="cpu: SFT/DPO tokens/s and the Dagster asset's overhead over plain trl. "
        "cuda: SFT with unsloth against plain trl, tokens/s and peak GPU memory of both.",
    ),
    sft_steps: int | None = typer.Option(
        None, "--sft-steps", min=1, help="SFT optimizer steps per run (default: 12 on cpu, 60 on cuda)."
    ),
    dpo_steps: int = typer.Option(8, "--dpo-steps", min=1, help="DPO optimizer steps per run (cpu)."),
    warmup_steps: int = typer.Option(5, "--warmup-steps", min=0, help="Unmeasured SFT steps before each run (cuda)."),
) -> None:
    """Training throughput: on cpu the asset's overhead over plain trl (goal <= 10%); on cuda unsloth's speed-up
    over plain trl (goal >= 1.5x)."""
    if device is Device.cuda:
        from twin_platform.benchmarks.training import cuda_unavailable_reason, run_cuda

        reason = cuda_unavailable_reason()
        if reason:
            raise fail(f"--device cuda: {reason}")
        err.print("running the CUDA training benchmark: plain trl, then unsloth, each in a fresh process ...")
        print_json(run_cuda(sft_steps=sft_steps or 60, warmup_steps=warmup_steps))
        return
    from twin_platform.benchmarks.training import run

    err.print("running the training benchmark (a few minutes on CPU) ...")
    print_json(run(sft_steps=sft_steps or 12, dpo_steps=dpo_steps))


def _integers(value: str, option: str) -> list[int]:
    try:
        numbers = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1:
        raise fail(f"{option} takes comma-separated positive integers, got {value!r}")
    return numbers


@app.command("retrieval")
def retrieval(
    handbook: Path | None = typer.Option(
        None, "--handbook", help="The handbook export folder: its authors are benchmarked beside the demo author."
    ),
    chunking: str = typer.Option(
        "128:16,200:0,200:32,254:48", "--chunking", help="Chunk target:overlap tokens, comma-separated (re-embeds)."
    ),
    candidates: str = typer.Option("20,50,100", "--candidates", help="Candidates per search leg, comma-separated."),
    fusion: str = typer.Option(
        "rrf-10,rrf-60,dense,text", "--fusion", help="rrf-<k0>, dense (vectors only), text (full text only)."
    ),
    questions: str = typer.Option(
        "llm,title", "--questions", help="Question kinds: llm (generated instructions), title (no LLM)."
    ),
    max_generated: int = typer.Option(
        12, "--max-generated", min=0, help="Held-out passages per author sent to the generator (0: all; cached)."
    ),
    expansions: int = typer.Option(2, "--expansions", min=0, help="LLM rephrasings per question in the expansion run."),
    expansion_questions: int = typer.Option(
        5, "--expansion-questions", min=0, help="Questions per author in the expansion run (each costs a generation)."
    ),
    skip_expansion: bool = typer.Option(False, "--skip-expansion", help="Skip the query-expansion run (slow on CPU)."),
) -> None:
    """Hit@1/3/10, MRR, passage hits and context recall on held-out questions, over a grid of retrieval settings."""
    from twin_platform.benchmarks.retrieval import Chunking, parse_fusion, run

    if handbook is not None and not handbook.is_dir():
        raise fail(f"--handbook: {handbook} is not a folder")
    try:
        chunkings = [Chunking(*(int(part) for part in item.split(":"))) for item in chunking.split(",") if item]
        fusions = [parse_fusion(item.strip()) for item in fusion.split(",") if item.strip()]
    except (TypeError, ValueError) as exc:
        raise fail(f"--chunking takes target:overlap pairs and --fusion known names: {exc}") from None
    if any(not 0 <= c.overlap < c.target for c in chunkings):
        raise fail("--chunking: each overlap must be smaller than its target")
    kinds = [kind.strip() for kind in questions.split(",") if kind.strip()]
    if not kinds or set(kinds) - {"llm", "title"}:
        raise fail(f"--questions takes llm and/or title, got {questions!r}")
    err.print("running the retrieval benchmark (minutes; progress below) ...")
    print_json(
        run(
            handbook=handbook,
            chunkings=chunkings,
            candidates=_integers(candidates, "--candidates"),
            fusions=fusions,
            kinds=kinds,
            max_generated=max_generated,
            expansions=expansions,
            expansion_questions=expansion_questions,
            skip_expansion=skip_expansion,
            log=lambda line: err.print(literal(line), highlight=False, soft_wrap=True),
        )
    )


@app.command("evaluation")
def evaluation(
    author: str = typer.Option(..., "--author", help="A trained author (twin materialize --select group:training)."),
) -> None:
    """Wall time of evaluation_report for one author (base, SFT and twin) and where it goes."""
    from twin_platform.benchmarks.evaluation import run

    err.print(f"evaluating {literal(author)}'s twin (minutes on CPU) ...")
    try:
        print_json(run(author))
    except LookupError as exc:
        raise fail(str(exc)) from None
