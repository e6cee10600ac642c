"""What the training assets share: per-author partitions, the training group, GPU pods on Kubernetes,
the run options built from settings, and small helpers. The assets themselves live beside this module:
``datasets.py`` (instruction and preference datasets), ``adapters.py`` (SFT and DPO), ``merge.py`` (the
merged twin, entered in the model registry)."""

import json
from pathlib import Path
from typing import Any

import dagster as dg

from twin_platform.adapters.artifacts import ArtifactRef
from twin_platform.datasets.backtranslation import ANSWER_PROMPT_VERSION, INSTRUCTION_PROMPT_VERSION
from twin_platform.datasets.curation import CurationRules
from twin_platform.datasets.formats import load_rows
from twin_platform.defs.authors.partitions import authors_partitions
from twin_platform.domain.datasets import Split, text_hash
from twin_platform.settings import Settings
from twin_platform.training.options import LoraOptions, StageOptions, TrainingOptions

# Bump when the training code changes in a way that should invalidate adapters and models.
TRAINING_CODE_VERSION = "training-v1"
DATASET_CODE_VERSION = f"datasets-v1:{INSTRUCTION_PROMPT_VERSION}:{ANSWER_PROMPT_VERSION}"


def k8s_config(settings: Settings) -> dict[str, Any]:
    """dagster-k8s per-step pod config: GPU requests/limits, node selector and a GPU toleration."""
    resources: dict[str, dict[str, str]] = {
        "requests": {"memory": settings.training_k8s_memory},
        "limits": {"memory": settings.training_k8s_memory},
    }
    pod: dict[str, Any] = {}
    if settings.training_k8s_gpus:
        gpus = str(settings.training_k8s_gpus)
        resources["requests"]["nvidia.com/gpu"] = gpus
        resources["limits"]["nvidia.com/gpu"] = gpus
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    selector = dict(
        pair.split("=", 1) for pair in settings.training_k8s_node_selector.split(",") if "=" in pair.strip()
    )
    if selector:
        pod["node_selector"] = {k.strip(): v.strip() for k, v in selector.items()}
    container: dict[str, Any] = {"resources": resources}
    if settings.training_k8s_image:  # the CUDA trainer image; the code location's image has CPU torch
        container["image"] = settings.training_k8s_image
    return {"container_config": container, "pod_spec_config": pod}


K8S_TAGS = {"dagster-k8s/config": json.dumps(k8s_config(Settings()))}
# What every training asset shares: per author, on demand, in the "training" group, GPU pods on k8s.
TRAINING: dict[str, Any] = {"partitions_def": authors_partitions, "group_name": "training", "op_tags": K8S_TAGS}
STORED: dict[str, Any] = {
    **TRAINING,
    "io_manager_key": "artifacts",
}  # versioned folders through the artifact IO manager


def training_options(settings: Settings, base: str) -> TrainingOptions:
    return TrainingOptions(
        base_model=base,
        max_length=settings.training_max_length,
        seed=settings.training_seed,
        load_in_4bit=settings.training_load_in_4bit,
        lora=LoraOptions(
            rank=settings.training_lora_rank, alpha=settings.training_lora_alpha, dropout=settings.training_lora_dropout
        ),
        sft=StageOptions(
            learning_rate=settings.training_sft_learning_rate,
            batch_size=settings.training_sft_batch_size,
            grad_accum=settings.training_grad_accum,
            epochs=settings.training_sft_epochs,
            max_steps=settings.training_sft_max_steps,
            save_steps=settings.training_checkpoint_steps,
        ),
        dpo=StageOptions(
            learning_rate=settings.training_dpo_learning_rate,
            batch_size=settings.training_dpo_batch_size,
            grad_accum=settings.training_grad_accum,
            epochs=settings.training_dpo_epochs,
            max_steps=settings.training_dpo_max_steps,
            save_steps=settings.training_checkpoint_steps,
            beta=settings.training_dpo_beta,
        ),
    )


def curation_rules(settings: Settings) -> CurationRules:
    return CurationRules(
        max_tokens=settings.dataset_passage_tokens,
        min_words=settings.dataset_min_words,
        test_fraction=settings.dataset_test_fraction,
    )


def model_id(base: str) -> str:
    meta = Path(base) / "twin_model.json"
    return str(json.loads(meta.read_text()).get("model_id", base)) if meta.exists() else base


def generator_id(settings: Settings, base: str) -> str:
    if settings.llm_backend == "local":
        return f"local:{model_id(base)}"
    return f"{settings.llm_backend}:{settings.llm_model or settings.llm_url}"


def cache_path(settings: Settings, kind: str, author: str, *namespace: str) -> Path:
    """One file per author and (prompt version, generator): changing either starts a fresh cache."""
    return settings.data_path / "cache" / kind / author / f"{text_hash('|'.join(namespace))}.json"


def progress(context: dg.AssetExecutionContext, what: str) -> Any:
    def tick(done: int, total: int) -> None:
        context.log.info("%s: %d/%d", what, done, total)

    return tick


def rows(ref: ArtifactRef, split: Split) -> list[dict[str, Any]]:
    return load_rows(ref.path / "hf", split)
