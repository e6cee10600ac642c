"""The twin's evaluation and release gate on tiny real models over the demo author's real index: numbers recomputed
independently, the gates both ways, and a released twin served by a running API without a restart."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from litestar.testing import TestClient

from twin_platform.adapters.artifacts import LocalArtifactStore
from twin_platform.adapters.embedding import load_embedder
from twin_platform.adapters.llm.factory import local_batch_generator
from twin_platform.adapters.llm.local import LocalClient
from twin_platform.adapters.runtime import Runtime, open_runtime
from twin_platform.api.app import create_app
from twin_platform.api.state import open_state
from twin_platform.defs.authors.partitions import AUTHORS_PARTITION
from twin_platform.defs.evaluation.assets import REPORT_FILE, model_release
from twin_platform.defs.resources import ArtifactIOManager, ArtifactStoreResource, PlatformSettings, TwinResource
from twin_platform.domain.datasets import InstructionSample
from twin_platform.domain.llm import Generation, GenerationParams, Message
from twin_platform.domain.models import Lineage, ModelEntry
from twin_platform.evaluation.gates import GateThresholds
from twin_platform.evaluation.questions import questions_from_rows
from twin_platform.evaluation.report import Candidate, EvaluationReport, charts, evaluate_twin, summary_markdown
from twin_platform.rag.pipeline import RAGPipeline
from twin_platform.settings import Settings
from twin_platform.training.options import StageOptions, TrainingOptions
from twin_platform.training.trainers import merge_adapters, train_sft
from twin_platform_tests.test_training import EVALUATION, TRAINING, cleaned_documents, raw_documents
from twin_platform_tests.tiny_model import build_tiny_chat_model

AUTHOR = "mara-ellison"
PARAMS = GenerationParams(max_tokens=16, temperature=0.0)


def held_out_and_train(runtime: Runtime) -> tuple[list[InstructionSample], list[str]]:
    """Four of the demo author's documents held out (an instruction per opening paragraph), the rest for training."""
    documents = sorted(runtime.features.cleaned_documents(AUTHOR), key=lambda d: d.id)
    paragraphs = [(d, next(p for p in d.text.split("\n\n") if len(p.split()) > 20)) for d in documents]
    held_out = [
        InstructionSample(
            id=f"s{i}",
            instruction=f"What did you write in '{d.title}'?",
            answer=" ".join(p.split()[:80]),
            document_id=d.id,
            category=d.category.value,
            split="test",
        )
        for i, (d, p) in enumerate(paragraphs[:4])
    ]
    return held_out, [p for _, p in paragraphs[4:]]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An untrained tiny base; a twin fine-tuned on the author's words; a broken twin: the base with its output
    layer scaled up, so it is confidently wrong about every next token."""
    root = tmp_path_factory.mktemp("tiny-eval")
    base = build_tiny_chat_model(root / "base")

    def tuned(name: str, answers: Sequence[str]) -> Path:
        rows = [{"instruction": f"Question {i}?", "answer": a} for i, a in enumerate(answers)]
        options = TrainingOptions(
            base_model=str(base), max_length=128, sft=StageOptions(max_steps=30, batch_size=4, learning_rate=0.01)
        )
        train_sft(options, rows, [], adapter_dir=root / f"{name}-adapter", checkpoint_dir=root / f"{name}-ck")
        return merge_adapters(str(base), [root / f"{name}-adapter"], root / name)

    author_words = sorted((Path(__file__).parents[1] / "twin_platform/demo/corpus").rglob("*.md"))
    texts = [" ".join(p.read_text().split()[:120]) for p in author_words]
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    broken = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        broken.lm_head.weight.mul_(40.0)
    broken.save_pretrained(root / "worse")
    AutoTokenizer.from_pretrained(base).save_pretrained(root / "worse")
    return {"base": base, "twin": tuned("twin", texts * 2), "worse": root / "worse"}


def local(role: str, folder: Path) -> Candidate:
    client = LocalClient(folder, model_id=f"tiny-{role}")
    return Candidate(role=role, model_id=f"tiny-{role}", generate=local_batch_generator(client, 4), scorer=client)


def answering_with(candidate: Candidate, answers: Callable[[Sequence[Sequence[Message]]], list[str]]) -> Candidate:
    """The same scorer, answers from ``answers``: an author-perfect twin, to put the gates' other side to the test."""

    def generate(conversations: Sequence[Sequence[Message]], params: GenerationParams) -> list[Generation]:
        return [Generation(text=t, model=candidate.model_id) for t in answers(conversations)]

    return Candidate(role=candidate.role, model_id=candidate.model_id, generate=generate, scorer=candidate.scorer)


def evaluate(runtime: Runtime, candidates: list[Candidate], **overrides: Any) -> EvaluationReport:
    held_out, train = held_out_and_train(runtime)
    pipeline = RAGPipeline(index=runtime.search, embedder=load_embedder(), authors=runtime.authors.list, llm=None)
    return evaluate_twin(
        author=AUTHOR,
        twin_version="v-test",
        instruction_dataset="ids-test",
        held_out=held_out,
        author_passages=train,
        candidates=candidates,
        params=PARAMS,
        embedder=load_embedder(),
        pipeline=pipeline,
        questions=questions_from_rows([s.as_row() for s in held_out]),
        thresholds=overrides.pop("thresholds", GateThresholds(max_cut_at_limit_share=1.0)),
        no_judge="no judge configured in this test",
        **overrides,
    )


def own_words(held_out: Sequence[InstructionSample]) -> Callable[[Sequence[Sequence[Message]]], list[str]]:
    by_instruction = {s.instruction: s.answer for s in held_out}
    fallback = " ".join(s.answer for s in held_out)

    def answers(conversations: Sequence[Sequence[Message]]) -> list[str]:
        return [by_instruction.get(c[-1].content, fallback) for c in conversations]

    return answers


def test_a_twin_closer_to_the_author_passes_and_the_numbers_recompute(api_settings: Settings, tiny_models, tmp_path):
    with open_runtime(api_settings) as runtime:
        held_out, _ = held_out_and_train(runtime)
        twin = answering_with(local("twin", tiny_models["twin"]), own_words(held_out))
        sft = answering_with(local("sft", tiny_models["twin"]), own_words(held_out))
        report = evaluate(runtime, [local("base", tiny_models["base"]), sft, twin])

    assert report.passed, [g.detail for g in report.failed_gates]
    assert [g.name for g in report.gates] == ["perplexity", "stylometry", "rag", "degeneration"]
    twin_scores, base_scores = report.models["twin"], report.models["base"]
    assert twin_scores.perplexity is not None
    assert base_scores.perplexity is not None
    assert twin_scores.perplexity < base_scores.perplexity
    assert twin_scores.rouge_l == pytest.approx(1.0)
    assert twin_scores.stylometric_distance < base_scores.stylometric_distance

    # Perplexity recomputed from the model itself: the mean loss over the answers' tokens, exponentiated.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["twin"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["twin"])
    total, tokens = 0.0, 0
    for sample in held_out:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": sample.instruction}], tokenize=False, add_generation_prompt=True
        )
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(prompt + sample.answer, add_special_tokens=False)["input_ids"][len(prompt_ids) :]
        ids = torch.tensor([prompt_ids + answer_ids])
        labels = ids.clone()
        labels[0, : len(prompt_ids)] = -100
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss.item()
        total += loss * len(answer_ids)
        tokens += len(answer_ids)
    assert twin_scores.perplexity == pytest.approx(math.exp(total / tokens), rel=1e-3)

    # Retrieval figures from the report's own rows.
    results = report.rag.retrieval.results
    assert len(results) == 4
    hit = sum(1 for r in results if r.document_rank is not None and r.document_rank <= 10) / len(results)
    mrr = sum(1 / r.document_rank for r in results if r.document_rank) / len(results)
    assert report.rag.retrieval.summary.hit_at_10 == pytest.approx(hit, abs=1e-4)
    assert report.rag.retrieval.summary.mrr == pytest.approx(mrr, abs=1e-4)
    assert hit >= 0.75  # the titles are in the questions: the demo index finds their documents

    assert EvaluationReport.model_validate_json(report.model_dump_json()) == report
    text = summary_markdown(report)
    assert "**Release**" in text
    assert "| perplexity | yes |" in text
    plots = charts(report, tmp_path / "charts")
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in plots.values())
    evaluation = report.registry_evaluation("evaluation_report/x")
    assert set(evaluation["perplexity"]) == {"base", "sft", "twin"}  # type: ignore[arg-type]


def test_a_worse_twin_fails_the_gates_that_measure_it(api_settings: Settings, tiny_models):
    with open_runtime(api_settings) as runtime:
        base = local("base", tiny_models["base"])
        worse = local("twin", tiny_models["worse"])
        report = evaluate(runtime, [base, local("sft", tiny_models["worse"]), worse])
    assert not report.passed
    failed = {g.name: g for g in report.failed_gates}
    assert "perplexity" in failed
    gate = failed["perplexity"]
    assert gate.values["twin"] > gate.values["base"]  # type: ignore[operator]
    assert "held-out perplexity" in gate.detail
    assert "**Refused**" in summary_markdown(report)


def test_the_rag_gate_compares_with_the_current_release(api_settings: Settings, tiny_models):
    with open_runtime(api_settings) as runtime:
        held_out, _ = held_out_and_train(runtime)
        twin = answering_with(local("twin", tiny_models["twin"]), own_words(held_out))
        sft = answering_with(local("sft", tiny_models["twin"]), own_words(held_out))
        better_before = {"hit_at_10": 1.0, "mrr": 1.0, "context_recall": 1.0, "groundedness": 1.0}
        report = evaluate(
            runtime,
            [local("base", tiny_models["base"]), sft, twin],
            previous_rag={name: value + 0.5 for name, value in better_before.items()},
            previous_release="v-previous",
        )
    [rag] = [g for g in report.gates if g.name == "rag"]
    assert not rag.passed
    assert "against the current release" in rag.detail
    assert report.previous_release == "v-previous"


def wait_for(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def watched(api_settings: Settings, tiny_models) -> Iterator[tuple[TestClient, dict[str, str], Settings]]:
    """The API with the local backend, following the registry every 50 ms; a first twin released."""
    settings = api_settings.model_copy(update={"llm_backend": "local", "api_model_poll_seconds": 0.05})
    with open_runtime(settings) as runtime:
        runtime.models.register(registered("v-first", tiny_models["base"]))
        runtime.models.release("v-first", reason="first", gates=[], actor="test", force=True)
    state = open_state(settings)
    key = state.keys.store.create("tests")
    with TestClient(create_app(settings, state=state)) as client:
        yield client, {"Authorization": f"Bearer {key}"}, settings
    state.close()


def registered(version: str, folder: Path) -> ModelEntry:
    return ModelEntry(
        version=version,
        name=f"twin-{AUTHOR}-{version}",
        author=AUTHOR,
        created_at=datetime.now(UTC),
        uri=str(folder),
        lineage=Lineage(
            instruction_dataset="ids",
            preference_dataset="pds",
            sft_adapter="sft",
            dpo_adapter="dpo",
            base_model="tiny",
            code_version="test",
            hyperparameters={},
        ),
        metrics={},
    )


def test_model_release_releases_a_twin_that_passed_and_the_running_api_switches_to_it(
    watched, tiny_models, monkeypatch: pytest.MonkeyPatch
):
    client, headers, settings = watched

    def served() -> str:
        [model] = client.get("/v1/models", headers=headers).json()["data"]
        return str(model["id"])

    wait_for(lambda: served().endswith("@v-first"))
    with open_runtime(settings) as runtime:
        runtime.models.register(registered("v-better", tiny_models["twin"]))
        held_out, _ = held_out_and_train(runtime)
        twin = answering_with(local("twin", tiny_models["twin"]), own_words(held_out))
        sft = answering_with(local("sft", tiny_models["twin"]), own_words(held_out))
        report = evaluate(runtime, [local("base", tiny_models["base"]), sft, twin])
    report = report.model_copy(update={"twin_version": "v-better"})
    assert report.passed
    folder = settings.data_path / "report-staging"
    folder.mkdir(parents=True)
    (folder / REPORT_FILE).write_text(report.model_dump_json())
    LocalArtifactStore(settings.data_path / "artifacts").publish(folder, f"evaluation_report/{AUTHOR}")

    monkeypatch.setenv("TWIN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TWIN_DATABASE_URL", settings.database_url.get_secret_value())  # type: ignore[union-attr]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(AUTHORS_PARTITION, [AUTHOR])
    storage = ArtifactStoreResource()
    result = dg.materialize(
        [raw_documents, cleaned_documents, *TRAINING, *EVALUATION],
        selection=[model_release],
        resources={
            "twin": TwinResource(),
            "platform": PlatformSettings(),
            "artifact_store": storage,
            "artifacts": ArtifactIOManager(storage=storage),
        },
        partition_key=AUTHOR,
        instance=instance,
    )
    assert result.success
    with open_runtime(settings) as runtime:
        current = runtime.models.current(AUTHOR)
        assert current is not None
        assert current.version == "v-better"
        assert runtime.models.get("v-first").state == "retired"  # type: ignore[union-attr]
        [release] = [e for e in runtime.models.history("v-better") if e.action == "release"]
        assert release.reason == "every release gate passed"
    wait_for(lambda: served().endswith("@v-better"))  # the running API, no restart


def test_the_evaluation_runs_by_itself_for_a_new_merged_model_and_the_release_follows_passed_gates():
    def updated(instance: dg.DagsterInstance, *assets: str) -> None:
        for asset in assets:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=AUTHOR))

    def checked(instance: dg.DagsterInstance, asset: str, check: str, passed: bool) -> None:
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(asset_key=dg.AssetKey(asset), check_name=check, passed=passed, partition=AUTHOR)
        )

    def gates(instance: dg.DagsterInstance, passed: bool) -> None:
        for gate in ("perplexity", "stylometry", "rag", "degeneration"):
            checked(instance, "evaluation_report", f"{gate}_gate", passed or gate != "perplexity")

    def requested(result: Any) -> set[str]:
        return {r.key.to_user_string() for r in result.results if not r.true_subset.is_empty}

    storage = ArtifactStoreResource()
    resources = {
        "twin": TwinResource(),
        "platform": PlatformSettings(),
        "artifact_store": storage,
        "artifacts": ArtifactIOManager(storage=storage),
    }
    defs = dg.Definitions(assets=[raw_documents, cleaned_documents, *TRAINING, *EVALUATION], resources=resources)

    def trained(instance: dg.DagsterInstance) -> Any:
        """A training run's events: every asset up to merged_model updated, their blocking checks passed."""
        instance.add_dynamic_partitions(AUTHORS_PARTITION, [AUTHOR])
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        updated(instance, "raw_documents", "cleaned_documents", *(a.key.path[-1] for a in TRAINING))
        for asset in TRAINING:
            for spec in asset.check_specs:
                checked(instance, spec.asset_key.path[-1], spec.name, True)
        return dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)

    for gates_pass in (False, True):  # (runless check results can be reported once per instance)
        with dg.instance_for_test() as instance:
            tick = trained(instance)
            assert "evaluation_report" in requested(tick)  # by itself, for the new merged model
            updated(instance, "evaluation_report")
            gates(instance, passed=gates_pass)
            tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
            assert ("model_release" in requested(tick)) is gates_pass  # only a twin that passed is released
            # A rebuilt dataset alone is no reason to evaluate the old twin again.
            updated(instance, "instruction_dataset")
            tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
            assert "evaluation_report" not in requested(tick)
