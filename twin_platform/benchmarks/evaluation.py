"""Evaluation benchmark: how long ``evaluation_report`` takes for one author on this machine, and where the time goes.

It materializes the real asset for the author's partition (an ephemeral Dagster instance; inputs are the
newest ``instruction_dataset`` and ``sft_adapter`` artifacts in ``TWIN_DATA_DIR``, the twin is the author's
newest model in the registry), so the author must have been trained first (else the asset's own error says
which input is missing)::

    twin materialize --select group:training --author mara-ellison
    twin bench evaluation --author mara-ellison

Like any run of the asset it records the evaluation on that model version (the same numbers again for the
same model and data) and publishes a report artifact. The breakdown comes from the report's own timers:
answering the held-out instructions per model, scoring (perplexity and voice), retrieval over the question
set, and the RAG answers; ``setup`` is the rest of the run (loading, merging the SFT adapter, writing the
report and its charts). Goal: under 5 minutes for base + SFT + DPO with SmolLM2 on CPU.
"""

from __future__ import annotations

import platform
import time
from typing import Any

from twin_platform.settings import Settings

GOAL_S = 300.0


def run(author: str) -> dict[str, Any]:
    import dagster as dg
    import torch

    from twin_platform.defs.authors.partitions import AUTHORS_PARTITION
    from twin_platform.defs.evaluation.assets import evaluation_report, read_report
    from twin_platform.defs.resources import ArtifactIOManager, ArtifactStoreResource, PlatformSettings, TwinResource
    from twin_platform.defs.training.adapters import sft_adapter
    from twin_platform.defs.training.datasets import instruction_dataset

    settings = Settings()
    storage = ArtifactStoreResource(data_dir=str(settings.data_path))
    store = storage.store()
    resources = {
        "twin": TwinResource(data_dir=str(settings.data_path)),
        "platform": PlatformSettings(data_dir=str(settings.data_path)),
        "artifact_store": storage,
        "artifacts": ArtifactIOManager(storage=storage),
    }
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(AUTHORS_PARTITION, [author])
    started = time.perf_counter()
    result = dg.materialize(
        [instruction_dataset, sft_adapter, evaluation_report],
        selection=[evaluation_report],
        resources=resources,
        partition_key=author,
        instance=instance,
        raise_on_error=False,  # a refused twin (a failed blocking gate) is still a measured evaluation
    )
    wall = time.perf_counter() - started
    if not result.asset_materializations_for_node("evaluation_report"):
        failures = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
        failure = next((error.message.strip() for error in failures if error), "no materialization")
        raise LookupError(f"evaluation_report failed for {author!r}: {failure}")
    report = read_report(store.latest(f"evaluation_report/{author}"))
    timings = dict(report.timings_s)
    measured = sum(v for k, v in timings.items() if not k.startswith("generation_"))
    breakdown = {**timings, "setup": round(wall - measured, 2)}
    return {
        "machine": {
            "cpus": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.cuda.is_available(),
        },
        "author": author,
        "twin_version": report.twin_version,
        "models": report.model_ids,
        "held_out_samples": report.held_out_samples,
        "questions": report.rag.retrieval.summary.questions,
        "max_new_tokens": settings.eval_max_new_tokens,
        "judge": report.judge_reason or "configured",
        "wall_s": round(wall, 2),
        "breakdown_s": breakdown,
        "share": {k: round(v / wall, 3) for k, v in breakdown.items() if not k.startswith("generation_")},
        "decision": "release" if report.passed else "refused",
        "goals": {"under_5_minutes": wall < GOAL_S},
    }
