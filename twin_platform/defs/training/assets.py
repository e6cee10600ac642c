"""The training graph, per author:

cleaned_documents -> instruction_dataset -> preference_dataset
                     instruction_dataset -> sft_adapter -> dpo_adapter (+ preference_dataset) -> merged_model

Datasets and adapters are versioned folders behind the ``artifacts`` IO manager (local dir or S3);
the merged model is published to the same store and entered in the model registry. Nothing here runs
on its own: training is materialized on demand (UI, ``twin materialize --select group:training``).
Every asset carries dagster-k8s config, so on a cluster each step runs in a GPU pod.
"""

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from twin_platform.adapters.artifacts import ArtifactRef
from twin_platform.adapters.cache import load_cache, save_cache
from twin_platform.adapters.hub import push_folder
from twin_platform.adapters.llm.factory import base_model, dataset_generator, local_batch_generator, models_dir
from twin_platform.adapters.llm.local import LocalClient
from twin_platform.adapters.registry import register_model
from twin_platform.datasets.backtranslation import ANSWER_PROMPT_VERSION, INSTRUCTION_PROMPT_VERSION
from twin_platform.datasets.curation import CurationRules
from twin_platform.datasets.formats import book_json, load_rows, save_dataset
from twin_platform.datasets.pipeline import Sample, build_instructions, build_preferences, health, version
from twin_platform.defs.authors.partitions import authors_partitions
from twin_platform.defs.metadata import Cell, table, values_table
from twin_platform.defs.resources import (
    ArtifactStoreResource,
    PlatformSettings,
    Staged,
    TwinResource,
    discard,
    staging_dir,
)
from twin_platform.domain.datasets import CurationReport, Split, text_hash
from twin_platform.domain.llm import GenerationParams
from twin_platform.settings import Settings
from twin_platform.training.options import LoraOptions, StageOptions, TrainingOptions
from twin_platform.training.reports import loss_curve, loss_went_down, model_card, png_markdown
from twin_platform.training.trainers import (
    TrainingResult,
    clear_checkpoints,
    merge_adapters,
    smoke_generate,
    train_dpo,
    train_sft,
    write_json,
)

# Bump when the training code changes in a way that should invalidate adapters and models.
TRAINING_CODE_VERSION = "training-v1"
DATASET_CODE_VERSION = f"datasets-v1:{INSTRUCTION_PROMPT_VERSION}:{ANSWER_PROMPT_VERSION}"
SMOKE_PROMPT = "What do you think matters most when building a data platform?"
# The columns of each dataset's preview table in the UI (ids left out); text cut to PREVIEW_CHARS.
INSTRUCTION_PREVIEW = {
    "instruction": "string",
    "answer": "string",
    "category": "string",
    "split": "string",
    "repaired": "bool",
}
PREFERENCE_PREVIEW = {
    "instruction": "string",
    "chosen": "string",
    "rejected": "string",
    "category": "string",
    "split": "string",
}
PREVIEW_CHARS = 120


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
    return {"container_config": {"resources": resources}, "pod_spec_config": pod}


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


def _model_id(base: str) -> str:
    meta = Path(base) / "twin_model.json"
    return str(json.loads(meta.read_text()).get("model_id", base)) if meta.exists() else base


def _generator_id(settings: Settings, base: str) -> str:
    if settings.llm_backend == "local":
        return f"local:{_model_id(base)}"
    return f"{settings.llm_backend}:{settings.llm_model or settings.llm_url}"


def _cache_path(settings: Settings, kind: str, author: str, *namespace: str) -> Path:
    """One file per author and (prompt version, generator): changing either starts a fresh cache."""
    return settings.data_path / "cache" / kind / author / f"{text_hash('|'.join(namespace))}.json"


def _progress(context: dg.AssetExecutionContext, what: str) -> Any:
    def tick(done: int, total: int) -> None:
        context.log.info("%s: %d/%d", what, done, total)

    return tick


def dataset_checks(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        # Blocking: a failed guard stops the run before anything trains on bad data.
        dg.AssetCheckSpec(
            "minimum_size", asset=asset, blocking=True, description="Train and test splits at least the set sizes."
        ),
        dg.AssetCheckSpec("no_empty_fields", asset=asset, blocking=True),
        dg.AssetCheckSpec(
            "no_train_test_overlap", asset=asset, blocking=True, description="No document or answer on both sides."
        ),
    ]


def _publish_dataset(
    context: dg.AssetExecutionContext,
    settings: Settings,
    samples: Sequence[Sample],
    report: CurationReport,
    lineage: dict[str, Any],
    preview_columns: dict[str, str],
) -> Iterator[dg.Output[Staged] | dg.AssetCheckResult]:
    folder = staging_dir(settings, context.asset_key.path[-1])
    sizes = save_dataset(samples, folder / "hf")
    book = book_json(samples, settings.dataset_test_fraction)
    (folder / "book.json").write_text(json.dumps(book, indent=1))
    dataset_version = version(samples)
    write_json(folder / "manifest.json", {"version": dataset_version, **lineage, "kept": sizes, **report.__dict__})
    hub = push_folder(settings, folder, f"{context.asset_key.path[-1]}-{context.partition_key}", repo_type="dataset")
    check = health(samples)
    yield dg.Output(
        Staged(folder, dataset_version),
        data_version=dg.DataVersion(dataset_version),
        metadata={
            "train": sizes["train"],
            "test": sizes["test"],
            "documents": len({s.document_id for s in samples}),
            "candidates": report.candidates,
            "dropped": dg.MetadataValue.json(report.dropped),
            "repaired_json": sum(1 for s in samples if getattr(s, "repaired", False)),
            "lineage": dg.MetadataValue.json(lineage),
            "preview": table(preview_columns, (_preview_row(s) for s in samples[:5])),
            **({"hub": dg.MetadataValue.url(hub)} if hub else {}),
        },
    )
    yield dg.AssetCheckResult(
        check_name="minimum_size",
        passed=check.train >= settings.dataset_min_train_samples and check.test >= settings.dataset_min_test_samples,
        metadata={
            "train": check.train,
            "test": check.test,
            "min_train": settings.dataset_min_train_samples,
            "min_test": settings.dataset_min_test_samples,
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_empty_fields", passed=check.empty_fields == 0, metadata={"empty_fields": check.empty_fields}
    )
    yield dg.AssetCheckResult(
        check_name="no_train_test_overlap",
        passed=check.overlap == 0,
        metadata={"shared_documents": check.shared_documents, "shared_texts": check.shared_texts},
    )


def _preview_row(sample: Sample) -> dict[str, Cell]:
    return {k: v[:PREVIEW_CHARS] if isinstance(v, str) else v for k, v in sample.as_row().items()}


@dg.asset(
    **STORED,
    deps=["cleaned_documents"],
    kinds={"python", "huggingface"},
    code_version=DATASET_CODE_VERSION,
    check_specs=dataset_checks("instruction_dataset"),
    description="Instruction back-translation: each answer is a passage the author wrote, each instruction "
    "is written by the configured LLM (versioned prompt, JSON validated or repaired or dropped). Rule "
    "filters, exact and near-duplicate removal, a train/test split by document and decontamination. "
    "Stored as Hugging Face datasets (load_from_disk) plus the book's JSON format.",
)
def instruction_dataset(
    context: dg.AssetExecutionContext, twin: TwinResource
) -> Iterator[dg.Output[Staged] | dg.AssetCheckResult]:
    from transformers import AutoTokenizer

    runtime = twin.runtime
    settings = runtime.settings
    author = context.partition_key
    documents = runtime.features.cleaned_documents(author)
    if not documents:
        raise dg.Failure(f"author {author!r} has no cleaned documents: materialize cleaned_documents first")
    base = base_model(settings)
    tokenizer = AutoTokenizer.from_pretrained(base)

    def count(texts: Any) -> list[int]:
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    generator = _generator_id(settings, base)
    cache_file = _cache_path(settings, "instructions", author, INSTRUCTION_PROMPT_VERSION, generator)
    cache = load_cache(cache_file)
    rules = curation_rules(settings)
    params = GenerationParams(max_tokens=settings.dataset_instruction_max_tokens, temperature=0.7, top_p=0.9)
    generate = dataset_generator(settings, base, _progress(context, "instructions written"))
    try:
        samples, report = build_instructions(
            documents, count, generate, params, rules, max_passages=settings.dataset_max_passages, cache=cache
        )
    finally:
        save_cache(cache_file, cache)  # what was generated before a failure is kept
    lineage = {
        "author": author,
        "documents": len(documents),
        "generator": generator,
        "prompt_version": INSTRUCTION_PROMPT_VERSION,
        "code_version": DATASET_CODE_VERSION,
        "rules": rules.__dict__,
    }
    yield from _publish_dataset(context, settings, samples, report, lineage, INSTRUCTION_PREVIEW)


@dg.asset(
    **STORED,
    kinds={"pytorch", "huggingface"},
    code_version=DATASET_CODE_VERSION,
    check_specs=dataset_checks("preference_dataset"),
    description="Preference pairs for DPO: for each instruction, chosen = the author's passage, rejected = "
    "the base model's own answer (the contrast in voice the twin should learn). Too-short or too-similar "
    "pairs are dropped; the split follows the documents, as in the instruction dataset.",
)
def preference_dataset(
    context: dg.AssetExecutionContext, platform: PlatformSettings, instruction_dataset: ArtifactRef
) -> Iterator[dg.Output[Staged] | dg.AssetCheckResult]:
    settings = platform.get()
    author = context.partition_key
    base = base_model(settings)
    rows = _rows(instruction_dataset, "train") + _rows(instruction_dataset, "test")
    cache_file = _cache_path(settings, "base-answers", author, ANSWER_PROMPT_VERSION, _model_id(base))
    cache = load_cache(cache_file)
    params = GenerationParams(max_tokens=settings.dataset_answer_max_tokens, temperature=0.7, top_p=0.9)
    generate = local_batch_generator(
        LocalClient(Path(base)), settings.dataset_generation_batch_size, _progress(context, "base-model answers")
    )
    try:
        pairs, report = build_preferences(rows, generate, params, curation_rules(settings), cache=cache)
    finally:
        save_cache(cache_file, cache)
    lineage = {
        "author": author,
        "instruction_dataset": instruction_dataset.version,
        "rejected_by": _model_id(base),
        "prompt_version": ANSWER_PROMPT_VERSION,
        "code_version": DATASET_CODE_VERSION,
    }
    yield from _publish_dataset(context, settings, pairs, report, lineage, PREFERENCE_PREVIEW)


def _log_relay(context: dg.AssetExecutionContext, stage: str) -> Any:
    def relay(entry: dict[str, float]) -> None:
        if "loss" in entry:
            context.log.info("%s step %d: loss %.4f", stage, int(entry["step"]), entry["loss"])

    return relay


def _training_metadata(
    result: TrainingResult, options: TrainingOptions, inputs: dict[str, str], stage: str, folder: Path
) -> dict[str, Any]:
    plot = loss_curve(result.history, folder / "loss_curve.png", f"{stage} loss")
    went_down, first, last = loss_went_down(result.losses)
    summary = {
        "steps": int(result.metrics.get("train_steps", len(result.losses))),
        "first_loss": result.losses[0] if result.losses else float("nan"),
        "final_loss": result.losses[-1] if result.losses else float("nan"),
        "tokens_per_second": result.metrics.get("tokens_per_second", 0.0),
        "train_seconds": result.metrics.get("train_runtime", 0.0),
        **{k: v for k, v in result.evaluation.items() if not k.endswith(("runtime", "per_second"))},
    }
    record = {
        "stage": stage,
        "options": options.as_dict(),
        "inputs": inputs,
        "code_version": TRAINING_CODE_VERSION,
        "backend": result.backend,
        "resumed_from": result.resumed_from,
        "metrics": result.metrics,
        "evaluation": result.evaluation,
        "history": result.history,
        "loss_went_down": went_down,
    }
    write_json(folder / "training.json", record)
    return {
        "loss_curve": dg.MetadataValue.md(png_markdown(plot, f"{stage} loss")),
        "metrics": values_table(summary),
        "final_loss": summary["final_loss"],
        "tokens_per_second": round(summary["tokens_per_second"], 1),
        "config": dg.MetadataValue.json(options.as_dict()),
        "inputs": dg.MetadataValue.json(inputs),
        "code_version": TRAINING_CODE_VERSION,
        "backend": result.backend,
        "resumed_from": result.resumed_from or "",
        "_loss": (went_down, first, last),
    }


def _loss_check(meta: dict[str, Any]) -> dg.AssetCheckResult:
    went_down, first, last = meta.pop("_loss")
    return dg.AssetCheckResult(
        check_name="loss_went_down",
        passed=bool(went_down),
        metadata={"first_quarter_mean": round(first, 4), "last_quarter_mean": round(last, 4)},
    )


def _train_stage(
    context: dg.AssetExecutionContext,
    settings: Settings,
    options: TrainingOptions,
    stage: str,
    inputs: dict[str, str],
    train: Callable[[Path, Path, Callable[[dict[str, float]], None]], TrainingResult],
) -> tuple[Path, TrainingResult, dict[str, Any]]:
    """Run one stage into a staging folder. Checkpoints live under a name derived from the config,
    the input versions and the code version: an interrupted run resumes; a finished one clears them."""
    run = options.fingerprint(*inputs.values(), TRAINING_CODE_VERSION)
    checkpoints = settings.data_path / "checkpoints" / context.partition_key / f"{stage}-{run}"
    folder = staging_dir(settings, f"{stage}_adapter")
    try:
        result = train(folder, checkpoints, _log_relay(context, stage))
    except BaseException:
        discard(folder)  # the checkpoints stay for the next attempt
        raise
    meta = _training_metadata(result, options, inputs, stage, folder)
    clear_checkpoints(checkpoints)
    return folder, result, meta


def _rows(ref: ArtifactRef, split: Split) -> list[dict[str, Any]]:
    return load_rows(ref.path / "hf", split)


@dg.asset(
    **STORED,
    kinds={"pytorch", "huggingface"},
    code_version=TRAINING_CODE_VERSION,
    check_specs=[dg.AssetCheckSpec("loss_went_down", asset="sft_adapter", blocking=True)],
    description="LoRA supervised fine-tuning (trl SFTTrainer + peft) of the base model on the instruction "
    "dataset: chat template, loss on the author's answers only, seeded; unsloth on CUDA. Resumes from its "
    "newest checkpoint when a run with the same config and data was interrupted.",
)
def sft_adapter(
    context: dg.AssetExecutionContext, platform: PlatformSettings, instruction_dataset: ArtifactRef
) -> Iterator[dg.Output[Staged] | dg.AssetCheckResult]:
    settings = platform.get()
    options = training_options(settings, base_model(settings))
    inputs = {"instruction_dataset": instruction_dataset.version}
    train, test = _rows(instruction_dataset, "train"), _rows(instruction_dataset, "test")
    folder, _, meta = _train_stage(
        context,
        settings,
        options,
        "sft",
        inputs,
        lambda adapter, checkpoints, log: train_sft(
            options, train, test, adapter_dir=adapter, checkpoint_dir=checkpoints, on_log=log
        ),
    )
    check = _loss_check(meta)
    yield dg.Output(Staged(folder), metadata=meta)
    yield check


@dg.asset(
    **STORED,
    kinds={"pytorch", "huggingface"},
    code_version=TRAINING_CODE_VERSION,
    check_specs=[dg.AssetCheckSpec("loss_went_down", asset="dpo_adapter", blocking=True)],
    description="DPO (trl DPOTrainer, LoRA) on the SFT model with the preference dataset: the author's "
    "passage preferred over the base model's answer. Reward margins and accuracies in the metadata.",
)
def dpo_adapter(
    context: dg.AssetExecutionContext,
    platform: PlatformSettings,
    sft_adapter: ArtifactRef,
    preference_dataset: ArtifactRef,
) -> Iterator[dg.Output[Staged] | dg.AssetCheckResult]:
    settings = platform.get()
    options = training_options(settings, base_model(settings))
    inputs = {"sft_adapter": sft_adapter.version, "preference_dataset": preference_dataset.version}
    train, test = _rows(preference_dataset, "train"), _rows(preference_dataset, "test")
    folder, result, meta = _train_stage(
        context,
        settings,
        options,
        "dpo",
        inputs,
        lambda adapter, checkpoints, log: train_dpo(
            options, sft_adapter.path, train, test, adapter_dir=adapter, checkpoint_dir=checkpoints, on_log=log
        ),
    )
    last = next((h for h in reversed(result.history) if "rewards/margins" in h), {})
    meta["reward_margin"] = round(last.get("rewards/margins", float("nan")), 4)
    meta["reward_accuracy"] = round(last.get("rewards/accuracies", float("nan")), 4)
    if "eval_rewards/accuracies" in result.evaluation:
        meta["eval_reward_accuracy"] = round(result.evaluation["eval_rewards/accuracies"], 4)
        meta["eval_reward_margin"] = round(result.evaluation["eval_rewards/margins"], 4)
    check = _loss_check(meta)
    yield dg.Output(Staged(folder), metadata=meta)
    yield check


@dg.asset(
    **TRAINING,
    kinds={"pytorch", "huggingface"},
    code_version=TRAINING_CODE_VERSION,
    check_specs=[dg.AssetCheckSpec("loads_and_generates", asset="merged_model")],
    description="The SFT and DPO adapters merged into the base weights, saved with tokenizer, chat "
    "template and a model card (lineage, hyperparameters, metrics), published to the artifact store and "
    "entered in the model registry. Released twins are what the RAG API's local backend serves.",
)
def merged_model(
    context: dg.AssetExecutionContext,
    platform: PlatformSettings,
    artifact_store: ArtifactStoreResource,
    sft_adapter: ArtifactRef,
    dpo_adapter: ArtifactRef,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    settings = platform.get()
    author = context.partition_key
    base = base_model(settings)
    folder = staging_dir(settings, "merged_model")
    try:
        merge_adapters(base, [sft_adapter.path, dpo_adapter.path], folder)
        sample = smoke_generate(folder, SMOKE_PROMPT)
    except BaseException:
        discard(folder)
        raise
    sft = json.loads((sft_adapter.path / "training.json").read_text())
    dpo = json.loads((dpo_adapter.path / "training.json").read_text())
    lineage = {
        "author": author,
        "base_model": _model_id(base),
        "instruction_dataset": sft["inputs"]["instruction_dataset"],
        "preference_dataset": dpo["inputs"]["preference_dataset"],
        "sft_adapter": sft_adapter.version,
        "dpo_adapter": dpo_adapter.version,
        "code_version": TRAINING_CODE_VERSION,
    }
    options = sft["options"]
    hyperparameters = {
        "lora_rank": options["lora"]["rank"],
        "lora_alpha": options["lora"]["alpha"],
        "max_length": options["max_length"],
        "sft_learning_rate": options["sft"]["learning_rate"],
        "sft_steps": len(sft["history"]),
        "dpo_learning_rate": options["dpo"]["learning_rate"],
        "dpo_beta": options["dpo"]["beta"],
        "dpo_steps": len(dpo["history"]),
        "seed": options["seed"],
    }
    metrics = {
        "sft_final_loss": sft["history"][-1]["loss"] if sft["history"] else float("nan"),
        "sft_eval_loss": sft["evaluation"].get("eval_loss", float("nan")),
        "dpo_final_loss": dpo["history"][-1]["loss"] if dpo["history"] else float("nan"),
        "dpo_eval_reward_accuracy": dpo["evaluation"].get("eval_rewards/accuracies", float("nan")),
    }
    created = datetime.now(UTC)
    name = f"twin-{author}-{created:%Y%m%d%H%M%S}"
    (folder / "README.md").write_text(
        model_card(
            name=name,
            author=author,
            base_model=_model_id(base),
            lineage=lineage,
            hyperparameters=hyperparameters,
            metrics=metrics,
            sample=sample,
        )
    )
    write_json(folder / "twin_model.json", {"model_id": name, "author": author, "lineage": lineage})
    generates = bool(sample.strip())
    ref = artifact_store.store().publish(folder, f"merged_model/{author}")
    hub = push_folder(settings, ref.path, name, repo_type="model")
    entry = register_model(
        models_dir(settings),
        {
            "version": ref.version,
            "name": name,
            "author": author,
            "path": str(ref.path),
            "uri": hub or ref.uri,
            "created_at": created.isoformat(),
            "released": settings.training_auto_release and generates,
            "lineage": lineage,
            "metrics": metrics,
        },
    )
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(ref.version),
        metadata={
            "name": name,
            "path": dg.MetadataValue.path(str(ref.path)),
            "uri": ref.uri,
            "version": ref.version,
            "released": entry["released"],
            "lineage": dg.MetadataValue.json(lineage),
            "hyperparameters": values_table(hyperparameters, "hyperparameter"),
            "metrics": values_table(metrics),
            "sample": dg.MetadataValue.text(sample),
            **({"hub": dg.MetadataValue.url(hub)} if hub else {}),
        },
    )
    yield dg.AssetCheckResult(
        check_name="loads_and_generates",
        passed=generates,
        metadata={"prompt": SMOKE_PROMPT, "output": sample[:500]},
    )
