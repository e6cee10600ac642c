"""LoRA fine-tuning, per author: SFT on the instruction dataset, then DPO on the preference dataset. Each stage
writes its :class:`TrainingRecord` beside the adapter and must show its loss going down (a blocking check)."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from twin_platform.adapters.artifacts import ArtifactRef
from twin_platform.adapters.llm.factory import base_model
from twin_platform.defs.metadata import values_table
from twin_platform.defs.resources import PlatformSettings, Staged, discard, staging_dir
from twin_platform.defs.training.common import STORED, TRAINING_CODE_VERSION, rows, training_options
from twin_platform.settings import Settings
from twin_platform.training.options import TrainingOptions
from twin_platform.training.records import TrainingRecord
from twin_platform.training.reports import loss_curve, loss_went_down, png_markdown
from twin_platform.training.trainers import TrainingResult, clear_checkpoints, train_dpo, train_sft


def _log_relay(context: dg.AssetExecutionContext, stage: str) -> Any:
    def relay(entry: dict[str, float]) -> None:
        if "loss" in entry:
            context.log.info("%s step %d: loss %.4f", stage, int(entry["step"]), entry["loss"])

    return relay


@dataclass
class StageOutcome:
    """What one stage left in its staging folder, and what the UI and the loss check show of it."""

    folder: Path
    record: TrainingRecord
    metadata: dict[str, Any]
    check: dg.AssetCheckResult


def _outcome(
    result: TrainingResult, options: TrainingOptions, inputs: dict[str, str], stage: str, folder: Path
) -> StageOutcome:
    plot = loss_curve(result.history, folder / "loss_curve.png", f"{stage} loss")
    went_down, first, last = loss_went_down(result.losses)
    record = TrainingRecord(
        stage="sft" if stage == "sft" else "dpo",
        options=options,
        inputs=inputs,
        code_version=TRAINING_CODE_VERSION,
        backend=result.backend,
        resumed_from=result.resumed_from,
        metrics=result.metrics,
        evaluation=result.evaluation,
        history=result.history,
        loss_went_down=went_down,
    )
    record.write(folder)
    summary = {
        "steps": int(result.metrics.get("train_steps", len(result.losses))),
        "first_loss": result.losses[0] if result.losses else float("nan"),
        "final_loss": record.final_loss,
        "tokens_per_second": result.metrics.get("tokens_per_second", 0.0),
        "train_seconds": result.metrics.get("train_runtime", 0.0),
        **{k: v for k, v in result.evaluation.items() if not k.endswith(("runtime", "per_second"))},
    }
    metadata = {
        "loss_curve": dg.MetadataValue.md(png_markdown(plot, f"{stage} loss")),
        "metrics": values_table(summary),
        "final_loss": summary["final_loss"],
        "tokens_per_second": round(summary["tokens_per_second"], 1),
        "config": dg.MetadataValue.json(options.as_dict()),
        "inputs": dg.MetadataValue.json(inputs),
        "code_version": TRAINING_CODE_VERSION,
        "backend": result.backend,
        "resumed_from": result.resumed_from or "",
    }
    check = dg.AssetCheckResult(
        check_name="loss_went_down",
        passed=bool(went_down),
        metadata={"first_quarter_mean": round(first, 4), "last_quarter_mean": round(last, 4)},
    )
    return StageOutcome(folder, record, metadata, check)


def _train_stage(
    context: dg.AssetExecutionContext,
    settings: Settings,
    options: TrainingOptions,
    stage: str,
    inputs: dict[str, str],
    train: Callable[[Path, Path, Callable[[dict[str, float]], None]], TrainingResult],
) -> StageOutcome:
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
    outcome = _outcome(result, options, inputs, stage, folder)
    clear_checkpoints(checkpoints)
    return outcome


LOSS_CHECK = "Blocking: the mean loss of the last quarter of the steps is below the first quarter's."


@dg.asset(
    **STORED,
    kinds={"pytorch", "huggingface"},
    code_version=TRAINING_CODE_VERSION,
    check_specs=[dg.AssetCheckSpec("loss_went_down", asset="sft_adapter", blocking=True, description=LOSS_CHECK)],
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
    train, test = rows(instruction_dataset, "train"), rows(instruction_dataset, "test")
    outcome = _train_stage(
        context,
        settings,
        options,
        "sft",
        inputs,
        lambda adapter, checkpoints, log: train_sft(
            options, train, test, adapter_dir=adapter, checkpoint_dir=checkpoints, on_log=log
        ),
    )
    yield dg.Output(Staged(outcome.folder), metadata=outcome.metadata)
    yield outcome.check


@dg.asset(
    **STORED,
    kinds={"pytorch", "huggingface"},
    code_version=TRAINING_CODE_VERSION,
    check_specs=[dg.AssetCheckSpec("loss_went_down", asset="dpo_adapter", blocking=True, description=LOSS_CHECK)],
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
    train, test = rows(preference_dataset, "train"), rows(preference_dataset, "test")
    outcome = _train_stage(
        context,
        settings,
        options,
        "dpo",
        inputs,
        lambda adapter, checkpoints, log: train_dpo(
            options, sft_adapter.path, train, test, adapter_dir=adapter, checkpoint_dir=checkpoints, on_log=log
        ),
    )
    record, meta = outcome.record, outcome.metadata
    last = next((h for h in reversed(record.history) if "rewards/margins" in h), {})
    meta["reward_margin"] = round(last.get("rewards/margins", float("nan")), 4)
    meta["reward_accuracy"] = round(last.get("rewards/accuracies", float("nan")), 4)
    if "eval_rewards/accuracies" in record.evaluation:
        meta["eval_reward_accuracy"] = round(record.evaluation["eval_rewards/accuracies"], 4)
        meta["eval_reward_margin"] = round(record.evaluation["eval_rewards/margins"], 4)
    yield dg.Output(Staged(outcome.folder), metadata=meta)
    yield outcome.check
