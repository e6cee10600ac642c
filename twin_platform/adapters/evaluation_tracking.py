"""Evaluation results to Opik as a dataset and one experiment per model, when Opik is configured.

The rule is the tracing one (``OPIK_API_KEY`` or ``OPIK_URL_OVERRIDE`` set, tracking not disabled): without
it nothing is imported and nothing leaves the machine. With it, the held-out samples become dataset items
(instruction and the author's answer, keyed by sample id) and each model's answers an experiment on that
dataset, every item carrying its per-sample scores as feedback scores, so Opik compares models side by side.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from twin_platform.adapters.tracing import opik_configured
from twin_platform.evaluation.models import ModelScores


def log_experiments(
    results: Sequence[ModelScores],
    *,
    dataset_name: str,
    experiment_prefix: str,
    config: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Log ``results`` (scored on the same held-out samples) to Opik; returns model id -> experiment id, or
    ``{}`` when Opik is not configured.

    Name the dataset after what defines the samples (author and dataset version, say): items are
    deduplicated by content, so a re-run adds nothing, and a changed sample set should get its own dataset.
    Each experiment is named ``{experiment_prefix}-{model id}`` and its config holds ``config``, the model's
    summary scores and the metrics version.
    """
    if not results or not opik_configured():
        return {}
    import opik

    client = opik.Opik(project_name=os.environ.get("OPIK_PROJECT_NAME", "twin_platform"))
    dataset = client.get_or_create_dataset(dataset_name, description="The author's held-out instructions and answers")
    dataset.insert(
        [
            {"sample_id": s.sample_id, "instruction": s.instruction, "reference": s.reference}
            for s in results[0].per_sample
        ]
    )
    # Items already stored keep their ids (deduplication), so read the ids back rather than assume them.
    item_ids = {item["sample_id"]: item["id"] for item in dataset.get_items() if "sample_id" in item}
    experiments: dict[str, str] = {}
    for scores in results:
        experiment = client.create_experiment(
            dataset_name=dataset_name,
            name=f"{experiment_prefix}-{scores.model_id}",
            experiment_config={
                **(config or {}),
                "model": scores.model_id,
                "metrics_version": scores.metrics_version,
                **scores.summary(),
            },
        )
        experiment.batch_upload_items(
            [
                opik.ExperimentItemBulkRecord(
                    dataset_item_id=item_ids[sample.sample_id],
                    evaluate_task_result={"output": sample.answer, "finish_reason": sample.finish_reason},
                    feedback_scores=[{"name": name, "value": value} for name, value in sample.numeric_scores().items()],
                )
                for sample in scores.per_sample
            ]
        )
        experiments[scores.model_id] = experiment.id
    client.flush()
    return experiments
