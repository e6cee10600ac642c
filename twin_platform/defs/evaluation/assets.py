"""The end of the training graph, per author: ``merged_model -> evaluation_report -> model_release``.

``evaluation_report`` compares the base model, the SFT model and the DPO twin on the author's held-out split
and through the RAG pipeline (``twin_platform.evaluation``), writes the report (JSON, markdown, charts) through
the artifacts IO manager and into the model registry, and carries the release gates as *blocking* checks:
``model_release`` runs only when every gate passed. A refused twin is recorded as refused, with the gate that
failed and its numbers; the author's previous release keeps serving. Both run by themselves when a new merged
model appears.
"""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from twin_platform.adapters.artifacts import ArtifactRef
from twin_platform.adapters.aws_release import ReleaseError, release_publisher
from twin_platform.adapters.evaluation_tracking import log_experiments
from twin_platform.adapters.llm.factory import base_model, build_judge, local_batch_generator, model_folder
from twin_platform.adapters.llm.local import LocalClient
from twin_platform.adapters.query_encoder import query_embedder
from twin_platform.defs.metadata import table
from twin_platform.defs.resources import Staged, TwinResource, discard, staging_dir
from twin_platform.defs.training.common import TRAINING, model_id, rows
from twin_platform.domain.datasets import InstructionSample
from twin_platform.domain.llm import GenerationParams
from twin_platform.domain.models import Gate, ModelEntry
from twin_platform.evaluation.gates import GATES, GateThresholds
from twin_platform.evaluation.judge import no_judge_reason
from twin_platform.evaluation.questions import author_questions
from twin_platform.evaluation.report import ROLES, Candidate, EvaluationReport, charts, evaluate_twin, summary_markdown
from twin_platform.rag.pipeline import RAGPipeline
from twin_platform.settings import Settings
from twin_platform.training.reports import png_markdown
from twin_platform.training.trainers import merge_adapters

REPORT_FILE = "report.json"
GATE_DESCRIPTIONS = {
    "perplexity": "Blocking release gate: the twin's held-out perplexity is at most (1 - "
    "TWIN_RELEASE_PERPLEXITY_MARGIN) x the base model's.",
    "stylometry": "Blocking release gate: the twin's answers are stylometrically closer to the author's than the "
    "base model's (Burrows' Delta, sentence lengths, punctuation).",
    "rag": "Blocking release gate: no RAG metric drops by more than TWIN_RELEASE_RAG_TOLERANCE against the "
    "author's current release (without one: the twin's answers as grounded as the base model's).",
    "degeneration": "Blocking release gate: repeated 3-grams and answers cut at the token limit within "
    "TWIN_RELEASE_MAX_REPEATED_NGRAM_RATE and TWIN_RELEASE_MAX_CUT_AT_LIMIT_SHARE.",
}

# Run when a new merged model appears (a rebuilt dataset alone is no reason to evaluate the old twin again),
# once nothing upstream is in progress and the merged model's own blocking check passed.
ON_NEW_MODEL = (
    dg.AutomationCondition.eager().replace(
        "any_deps_updated", dg.AutomationCondition.any_deps_updated().allow(dg.AssetSelection.assets("merged_model"))
    )
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
)


def evaluation_params(settings: Settings) -> GenerationParams:
    """How every model answers in the evaluation: as the API serves (sampling at its temperature and top-p),
    seeded so a rerun gives the same answers. Greedy decoding would measure a setting nobody serves, and makes
    small models repeat themselves (Holtzman et al., 2020, "The Curious Case of Neural Text Degeneration")."""
    return GenerationParams(
        max_tokens=settings.eval_max_new_tokens,
        temperature=settings.eval_temperature,
        top_p=0.95,
        seed=settings.eval_seed,
    )


def thresholds(settings: Settings) -> GateThresholds:
    return GateThresholds(
        perplexity_margin=settings.release_perplexity_margin,
        rag_tolerance=settings.release_rag_tolerance,
        max_repeated_ngram_rate=settings.release_max_repeated_ngram_rate,
        max_cut_at_limit_share=settings.release_max_cut_at_limit_share,
    )


def _samples(rows_: list[dict[str, Any]]) -> list[InstructionSample]:
    fields = InstructionSample.__dataclass_fields__
    return [InstructionSample(**{k: v for k, v in row.items() if k in fields}) for row in rows_]


def _candidate(role: str, folder: Path, name: str, batch_size: int) -> Candidate:
    client = LocalClient(folder, model_id=name)
    return Candidate(role=role, model_id=name, generate=local_batch_generator(client, batch_size), scorer=client)


def _newest_candidate(twin: TwinResource, author: str) -> ModelEntry:
    models = twin.runtime.models.list(author)
    if not models:
        raise dg.Failure(f"author {author!r} has no merged model in the registry: materialize merged_model first")
    return models[0]


@dg.asset(
    **{**TRAINING, "io_manager_key": "artifacts"},
    deps=["merged_model"],
    kinds={"pytorch", "python"},
    automation_condition=ON_NEW_MODEL,
    check_specs=[
        dg.AssetCheckSpec(f"{gate}_gate", asset="evaluation_report", blocking=True, description=GATE_DESCRIPTIONS[gate])
        for gate in GATES
    ],
    description="The base model, the SFT model and the DPO twin compared on the author's held-out split: "
    "perplexity of the author's answers, stylometric distance (Burrows' Delta, sentence lengths, punctuation), "
    "style-centroid similarity, ROUGE-L, degeneration, the LLM judge when one is configured; retrieval hit@k, "
    "MRR and context recall through the API's pipeline, and each model's answer groundedness. The release gates "
    "are its blocking checks.",
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    twin: TwinResource,
    instruction_dataset: ArtifactRef,
    sft_adapter: ArtifactRef,
) -> Iterator[dg.Output[Staged] | dg.AssetCheckResult]:
    runtime = twin.runtime
    settings = runtime.settings
    author = context.partition_key
    entry = _newest_candidate(twin, author)
    held_out = _samples(rows(instruction_dataset, "test"))
    if settings.eval_max_samples:
        held_out = held_out[: settings.eval_max_samples]
    if not held_out:
        raise dg.Failure(f"author {author!r} has no held-out samples: the instruction dataset's test split is empty")
    train = rows(instruction_dataset, "train")
    base = base_model(settings)
    question_file = settings.data_path / "eval" / author / "questions.jsonl"
    questions = author_questions([r.as_row() for r in held_out], question_file if question_file.exists() else None)
    previous = runtime.models.current(author)
    previous_rag = (
        previous.evaluation.get("rag")
        if previous and previous.evaluation and previous.version != entry.version
        else None
    )
    judge = build_judge(settings)
    names = {"base": model_id(base), "sft": f"{entry.name}-sft", "twin": entry.model_id}
    no_judge = None if judge else no_judge_reason(settings.judge_backend or None, evaluated_models=list(names.values()))
    workdir = Path(tempfile.mkdtemp(prefix="evaluation-", dir=settings.data_path))
    try:
        merge_adapters(base, [sft_adapter.path], workdir / "sft")  # the SFT model on its own, as trained
        batch = settings.dataset_generation_batch_size
        candidates = [
            _candidate("base", Path(base), names["base"], batch),
            _candidate("sft", workdir / "sft", names["sft"], batch),
            _candidate("twin", model_folder(entry, settings), names["twin"], batch),
        ]
        pipeline = RAGPipeline(
            index=runtime.search,
            embedder=query_embedder(settings),
            authors=runtime.authors.list,
            llm=None,
            context_tokens=settings.api_context_tokens,
        )
        report = evaluate_twin(
            author=author,
            twin_version=entry.version,
            instruction_dataset=instruction_dataset.version,
            held_out=held_out,
            author_passages=[r["answer"] for r in train],
            candidates=candidates,
            params=evaluation_params(settings),
            embedder=runtime.embedder(),
            pipeline=pipeline,
            questions=questions,
            thresholds=thresholds(settings),
            previous_rag=previous_rag,
            previous_release=previous.version if previous else None,
            judge=judge,
            no_judge=no_judge,
            progress=context.log.info,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    folder = staging_dir(settings, "evaluation_report")
    try:
        (folder / REPORT_FILE).write_text(report.model_dump_json(indent=1))
        summary = summary_markdown(report)
        (folder / "summary.md").write_text(summary)
        plots = charts(report, folder / "charts")
    except BaseException:
        discard(folder)
        raise
    experiments = log_experiments(
        list(report.models.values()),
        dataset_name=f"{author}-heldout-{instruction_dataset.version}",
        experiment_prefix=f"{author}-{entry.version}",
        config={"twin_version": entry.version, "instruction_dataset": instruction_dataset.version},
    )
    evaluation = report.registry_evaluation(report_uri=f"evaluation_report/{author}/{entry.version}")
    runtime.models.record_evaluation(entry.version, evaluation)
    gates = [Gate.model_validate(g) for g in evaluation["gates"]]  # type: ignore[attr-defined]
    if not report.passed:
        failed = "; ".join(f"{g.name}: {g.detail}" for g in report.failed_gates)
        runtime.models.refuse(
            entry.version, gates=gates, reason=f"release gates failed: {failed}", actor=_actor(context)
        )
    yield dg.Output(
        Staged(folder, f"{entry.version}-{instruction_dataset.version}"),
        metadata={
            "twin_version": entry.version,
            "decision": "release" if report.passed else "refused",
            "summary": dg.MetadataValue.md(summary),
            "metrics": dg.MetadataValue.md(png_markdown(plots["metrics"], "metrics per model")),
            "deltas": dg.MetadataValue.md(png_markdown(plots["deltas"], "change against base")),
            "models": table(
                {"role": "string", "model": "string", **dict.fromkeys(_HEADLINE_COLUMNS, "float")},
                (
                    {
                        "role": role,
                        "model": report.model_ids[role],
                        **{m: report.models[role].summary().get(m) for m in _HEADLINE_COLUMNS},
                    }
                    for role in ROLES
                ),
            ),
            "rag": dg.MetadataValue.json(report.rag.retrieval.summary.model_dump()),
            "judge": report.judge_reason or "judge scores in report.json",
            "held_out_samples": report.held_out_samples,
            "questions": report.rag.retrieval.summary.questions,
            "timings_s": dg.MetadataValue.json(report.timings_s),
            **({"opik_experiments": dg.MetadataValue.json(experiments)} if experiments else {}),
        },
    )
    for gate in report.gates:
        yield dg.AssetCheckResult(
            check_name=f"{gate.name}_gate",
            passed=gate.passed,
            description=gate.detail,
            metadata={k: v for k, v in gate.values.items() if v is not None},
        )


_HEADLINE_COLUMNS = ("perplexity", "stylometric_distance", "centroid_similarity", "rouge_l", "repeated_ngram_rate")


def _actor(context: dg.AssetExecutionContext) -> str:
    return f"dagster:{context.run.run_id}"


def read_report(ref: ArtifactRef) -> EvaluationReport:
    return EvaluationReport.model_validate_json((ref.path / REPORT_FILE).read_text())


@dg.asset(
    **TRAINING,
    kinds={"python"},
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    description="Releases the evaluated twin: with TWIN_RELEASE_S3_BUCKET it is uploaded to "
    "s3://BUCKET/PREFIX/AUTHOR/VERSION/ and the pointer AUTHOR/current.json moved to it, then it becomes the "
    "author's released model in the registry (the previous release is retired), and with TWIN_RELEASE_ASG_NAME an "
    "instance refresh makes the TGI hosts load it; the API switches to it without a restart. Runs only when every "
    "release gate on evaluation_report passed; override with `twin models release VERSION --force --reason ...`.",
)
def model_release(
    context: dg.AssetExecutionContext, twin: TwinResource, evaluation_report: ArtifactRef
) -> dg.MaterializeResult:
    report = read_report(evaluation_report)
    if not report.passed:  # the blocking checks stop this in a run; a forced materialization is refused here
        failed = ", ".join(g.name for g in report.failed_gates)
        raise dg.Failure(f"twin {report.twin_version} failed its release gates ({failed}); nothing was released")
    registry = twin.runtime.models
    settings = twin.runtime.settings
    gates = [Gate.model_validate(g) for g in report.registry_evaluation("")["gates"]]  # type: ignore[attr-defined]
    # Upload, then the S3 pointer, then the registry: a failed upload releases nothing (see aws_release).
    try:
        publisher = release_publisher(settings, registry, lambda e: model_folder(e, settings))
        published = publisher.release(
            report.twin_version, reason="every release gate passed", gates=gates, actor=_actor(context)
        )
    except ReleaseError as exc:
        raise dg.Failure(str(exc)) from exc
    entry = published.entry
    for line in published.lines():
        context.log.info(line)
    publication = published.as_json()
    if published.refresh is not None and not published.refresh.ok:
        # Registry and pointer name the new twin, the hosts do not yet: materializing again retries the refresh.
        raise dg.Failure(
            f"{entry.version} is released (registry and S3 pointer), but the TGI hosts were not refreshed: "
            f"{published.refresh.detail}",
            metadata={"publication": dg.MetadataValue.json(publication)},
        )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(entry.version),
        metadata={
            "released": entry.model_id,
            "version": entry.version,
            "release_uri": entry.release_uri or "not published (TWIN_RELEASE_S3_BUCKET unset)",
            "publication": dg.MetadataValue.json(publication),
            "perplexity_twin_vs_base": dg.MetadataValue.json(
                {"twin": report.models["twin"].perplexity, "base": report.models["base"].perplexity}
            ),
        },
    )
