"""The merged twin, per author: the SFT and DPO adapters folded into the base weights, smoke-tested, published
to the artifact store and registered as a candidate; whether it is released is the evaluation's call."""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg

from twin_platform.adapters.artifacts import ArtifactRef
from twin_platform.adapters.hub import push_folder
from twin_platform.adapters.llm.factory import base_model
from twin_platform.defs.metadata import values_table
from twin_platform.defs.resources import ArtifactStoreResource, PlatformSettings, TwinResource, discard, staging_dir
from twin_platform.defs.training.common import TRAINING, TRAINING_CODE_VERSION, model_id
from twin_platform.domain.models import Lineage, ModelEntry
from twin_platform.training.records import TrainingRecord
from twin_platform.training.reports import model_card
from twin_platform.training.trainers import merge_adapters, smoke_generate, write_json

SMOKE_PROMPT = "What do you think matters most when building a data platform?"


@dg.asset(
    **TRAINING,
    kinds={"pytorch", "huggingface"},
    code_version=TRAINING_CODE_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "loads_and_generates",
            asset="merged_model",
            blocking=True,
            description="Blocking: the merged folder reloads and answers a prompt; nothing is evaluated otherwise.",
        )
    ],
    description="The SFT and DPO adapters merged into the base weights, saved with tokenizer, chat "
    "template and a model card (lineage, hyperparameters, metrics), published to the artifact store and "
    "entered in the model registry as a candidate. Whether it is released is the evaluation's call "
    "(evaluation_report -> model_release).",
)
def merged_model(
    context: dg.AssetExecutionContext,
    platform: PlatformSettings,
    twin: TwinResource,
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
    sft, dpo = TrainingRecord.read(sft_adapter.path), TrainingRecord.read(dpo_adapter.path)
    lineage = {
        "author": author,
        "base_model": model_id(base),
        "instruction_dataset": sft.inputs["instruction_dataset"],
        "preference_dataset": dpo.inputs["preference_dataset"],
        "sft_adapter": sft_adapter.version,
        "dpo_adapter": dpo_adapter.version,
        "code_version": TRAINING_CODE_VERSION,
    }
    hyperparameters = {
        "lora_rank": sft.options.lora.rank,
        "lora_alpha": sft.options.lora.alpha,
        "max_length": sft.options.max_length,
        "sft_learning_rate": sft.options.sft.learning_rate,
        "sft_steps": sft.steps,
        "dpo_learning_rate": dpo.options.dpo.learning_rate,
        "dpo_beta": dpo.options.dpo.beta,
        "dpo_steps": dpo.steps,
        "seed": sft.options.seed,
    }
    metrics = {
        "sft_final_loss": sft.final_loss,
        "sft_eval_loss": sft.evaluation.get("eval_loss", float("nan")),
        "dpo_final_loss": dpo.final_loss,
        "dpo_eval_reward_accuracy": dpo.evaluation.get("eval_rewards/accuracies", float("nan")),
    }
    created = datetime.now(UTC)
    name = f"twin-{author}-{created:%Y%m%d%H%M%S}"
    (folder / "README.md").write_text(
        model_card(
            name=name,
            author=author,
            base_model=model_id(base),
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
    entry = twin.runtime.models.register(
        ModelEntry(
            version=ref.version,
            name=name,
            author=author,
            created_at=created,
            uri=ref.uri,
            lineage=Lineage(**{k: v for k, v in lineage.items() if k != "author"}, hyperparameters=hyperparameters),
            metrics=metrics,
        ),
        actor=f"dagster:{context.run.run_id}",
    )
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(ref.version),
        metadata={
            "name": name,
            "path": dg.MetadataValue.path(str(ref.path)),
            "uri": ref.uri,
            "version": ref.version,
            "state": entry.state,
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
