"""One author's twin evaluated end to end: the base model, the SFT model and the DPO twin on the author's held-out
split (fit, voice, degeneration, judge), retrieval and answer groundedness through the RAG pipeline, and the
release gates. :func:`evaluate_twin` runs it; :class:`EvaluationReport` is what it returns, written and read
as JSON by the same class; :func:`summary_markdown` and :func:`charts` are what a person looks at.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from twin_platform.domain.datasets import InstructionSample
from twin_platform.domain.features import Embedder
from twin_platform.domain.llm import AnswerScorer, Generation, GenerationParams, LLMClient, Message
from twin_platform.evaluation import ModelUnderTest, evaluate_models
from twin_platform.evaluation.gates import (
    GateResult,
    GateThresholds,
    degeneration_gate,
    perplexity_gate,
    rag_gate,
    stylometry_gate,
)
from twin_platform.evaluation.grounding import groundedness
from twin_platform.evaluation.models import GroundingSummary, ModelScores
from twin_platform.evaluation.questions import Question
from twin_platform.evaluation.retrieval import RetrievalReport, evaluate_retrieval
from twin_platform.rag.pipeline import RAGPipeline, RAGRequest

REPORT_VERSION = "eval-report-v1"
ROLES = ("base", "sft", "twin")
Generate = Callable[[Sequence[Sequence[Message]], GenerationParams], list[Generation]]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Candidate:
    """A model in the comparison: how it answers (batched) and how it scores an answer (for perplexity)."""

    role: str  # base, sft or twin
    model_id: str
    generate: Generate
    scorer: AnswerScorer | None


class RagEvaluation(BaseModel):
    retrieval: RetrievalReport
    groundedness: dict[str, GroundingSummary]  # role -> how well its RAG answers stick to the context

    def metrics(self, role: str = "twin") -> dict[str, float]:
        """The numbers the RAG gate compares (those that exist)."""
        summary = self.retrieval.summary
        values = {
            "hit_at_10": summary.hit_at_10,
            "mrr": summary.mrr,
            "context_recall": summary.context_recall,
            "groundedness": self.groundedness[role].mean_share,
        }
        return {name: value for name, value in values.items() if value is not None}


class EvaluationReport(BaseModel):
    report_version: str = REPORT_VERSION
    author: str
    twin_version: str
    instruction_dataset: str
    created_at: datetime
    held_out_samples: int
    models: dict[str, ModelScores]  # role -> scores
    model_ids: dict[str, str]  # role -> model id
    rag: RagEvaluation
    judge_reason: str | None  # why no judge ran; None when one did
    thresholds: dict[str, float]
    previous_release: str | None  # the version the RAG gate compared with
    gates: list[GateResult]
    timings_s: dict[str, float] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    @property
    def failed_gates(self) -> list[GateResult]:
        return [gate for gate in self.gates if not gate.passed]

    def registry_evaluation(self, report_uri: str) -> dict[str, object]:
        """What the model registry keeps: per-role headline numbers, the RAG summary, the gates, the report."""

        def per_role(metric: str) -> dict[str, float | None]:
            return {role: self.models[role].summary().get(metric) for role in self.models}

        return {
            "report_version": self.report_version,
            "perplexity": per_role("perplexity"),
            "stylometric_distance": per_role("stylometric_distance"),
            "centroid_similarity": per_role("centroid_similarity"),
            "rouge_l": per_role("rouge_l"),
            "repeated_ngram_rate": per_role("repeated_ngram_rate"),
            "cut_at_limit_share": per_role("cut_at_limit_share"),
            "rag": self.rag.metrics(),
            "judge": None if self.judge_reason else per_role("judge_accuracy"),
            "judge_reason": self.judge_reason,
            "gates": [
                {**gate.values, "name": gate.name, "passed": gate.passed, "detail": gate.detail} for gate in self.gates
            ],
            "passed": self.passed,
            "report": report_uri,
        }


def evaluate_twin(
    *,
    author: str,
    twin_version: str,
    instruction_dataset: str,
    held_out: Sequence[InstructionSample],
    author_passages: Sequence[str],
    candidates: Sequence[Candidate],
    params: GenerationParams,
    embedder: Embedder,
    pipeline: RAGPipeline,
    questions: Sequence[Question],
    thresholds: GateThresholds,
    previous_rag: Mapping[str, float] | None = None,
    previous_release: str | None = None,
    judge: LLMClient | None = None,
    no_judge: str | None = None,
    progress: Progress = lambda message: None,
) -> EvaluationReport:
    """Evaluate ``candidates`` (base, sft, twin) on the held-out samples and ``questions``; apply the gates.

    Every candidate answers the same prompts with the same ``params``. Retrieval runs once (it does not depend
    on the model); each candidate then answers every question from the retrieved context, and its answers'
    groundedness is measured. The RAG gate compares with ``previous_rag`` (the author's current release) when
    given, else the twin's groundedness with the base model's.
    """
    timings: dict[str, float] = {}
    roles = {c.role for c in candidates}
    if roles != set(ROLES):
        raise ValueError(f"evaluate_twin needs the roles {', '.join(ROLES)}; got {', '.join(sorted(roles))}")
    started = time.perf_counter()
    under_test = []
    for candidate in candidates:
        progress(f"{candidate.role}: answering {len(held_out)} held-out instructions")
        role_started = time.perf_counter()
        generations = candidate.generate([[Message("user", s.instruction)] for s in held_out], params)
        timings[f"generation_{candidate.role}"] = time.perf_counter() - role_started
        under_test.append(ModelUnderTest(candidate.model_id, generations, candidate.scorer))
    timings["generation"] = time.perf_counter() - started
    started = time.perf_counter()
    progress("scoring fit and voice")
    scores = evaluate_models(
        under_test, held_out, author_passages=author_passages, embedder=embedder, judge=judge, no_judge=no_judge
    )
    timings["scoring"] = time.perf_counter() - started
    started = time.perf_counter()
    progress(f"retrieval: {len(questions)} questions")
    retrieval = evaluate_retrieval(pipeline, questions, author_id=author, k=10)
    timings["retrieval"] = time.perf_counter() - started
    started = time.perf_counter()
    grounding = _rag_answers(pipeline, questions, author, candidates, params, judge, progress)
    timings["rag_answers"] = time.perf_counter() - started
    models = {c.role: s for c, s in zip(candidates, scores, strict=True)}
    rag = RagEvaluation(retrieval=retrieval, groundedness=grounding)
    gates = _gates(models, rag, thresholds, previous_rag)
    return EvaluationReport(
        author=author,
        twin_version=twin_version,
        instruction_dataset=instruction_dataset,
        created_at=datetime.now(UTC),
        held_out_samples=len(held_out),
        models=models,
        model_ids={c.role: c.model_id for c in candidates},
        rag=rag,
        judge_reason=None if judge is not None else no_judge,
        thresholds=vars(thresholds),
        previous_release=previous_release if previous_rag else None,
        gates=gates,
        timings_s={k: round(v, 2) for k, v in timings.items()},
    )


def _rag_answers(
    pipeline: RAGPipeline,
    questions: Sequence[Question],
    author: str,
    candidates: Sequence[Candidate],
    params: GenerationParams,
    judge: LLMClient | None,
    progress: Progress,
) -> dict[str, GroundingSummary]:
    prompts, contexts = [], []
    for question in questions:
        request = RAGRequest(query=question.text, author_id=author, k=5)
        messages, context = pipeline.prompt(request, pipeline.retrieve(request))
        prompts.append(messages)
        contexts.append([hit.text for hit in context.sources])
    grounding = {}
    for candidate in candidates:
        progress(f"{candidate.role}: answering {len(questions)} questions from their retrieved context")
        answers = [g.text for g in candidate.generate(prompts, params)] if prompts else []
        grounding[candidate.role] = groundedness([q.id for q in questions], answers, contexts, judge=judge)
    return grounding


def _gates(
    models: Mapping[str, ModelScores],
    rag: RagEvaluation,
    thresholds: GateThresholds,
    previous_rag: Mapping[str, float] | None,
) -> list[GateResult]:
    base, twin = models["base"], models["twin"]
    current = rag.metrics("twin")
    if not previous_rag:
        current = {
            "groundedness": rag.groundedness["twin"].mean_share or 0.0,
            "base_groundedness": rag.groundedness["base"].mean_share or 0.0,
        }
    return [
        perplexity_gate(base.perplexity, twin.perplexity, thresholds.perplexity_margin),
        stylometry_gate(base.stylometric_distance, twin.stylometric_distance),
        rag_gate(current, previous_rag, thresholds.rag_tolerance),
        degeneration_gate(twin.repeated_ngram_rate, twin.cut_at_limit_share, thresholds),
    ]


# --- what a person looks at ---------------------------------------------------------------------------

HEADLINE = {
    "perplexity": "held-out perplexity (lower is better)",
    "stylometric_distance": "stylometric distance to the author (lower is closer)",
    "centroid_similarity": "similarity to the author's style centroid (higher is closer)",
    "rouge_l": "ROUGE-L against the author's answer",
    "distinct_2": "distinct-2 (low: repetitive)",
    "repeated_ngram_rate": "repeated 3-gram rate (high: loops)",
    "cut_at_limit_share": "answers cut at the token limit",
}


def _shown(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def summary_markdown(report: EvaluationReport) -> str:
    """The report in a few tables: metrics per model with the change against base, RAG, gates."""
    roles = [r for r in ROLES if r in report.models]
    lines = [
        f"**{report.author}**: twin `{report.twin_version}` on {report.held_out_samples} held-out samples "
        f"(documents never seen in training). **{'Release' if report.passed else 'Refused'}**"
        + ("" if report.passed else f": {', '.join(g.name for g in report.failed_gates)}"),
        "",
        "| metric | " + " | ".join(roles) + " | twin - base |",
        "|---|" + "---|" * (len(roles) + 1),
    ]
    for metric, label in HEADLINE.items():
        values = {role: report.models[role].summary().get(metric) for role in roles}
        base, twin = values.get("base"), values.get("twin")
        delta = _shown(twin - base) if base is not None and twin is not None else "n/a"
        lines.append(f"| {label} | " + " | ".join(_shown(values[r]) for r in roles) + f" | {delta} |")
    judge = report.judge_reason or "judge scores in the report's JSON"
    summary = report.rag.retrieval.summary
    lines += [
        "",
        f"Judge: {judge}.",
        "",
        f"RAG over {summary.questions} questions: hit@1 {_shown(summary.hit_at_1)}, hit@3 {_shown(summary.hit_at_3)}, "
        f"hit@10 {_shown(summary.hit_at_10)}, MRR {_shown(summary.mrr)}, context recall "
        f"{_shown(summary.context_recall)}; answer groundedness "
        + ", ".join(f"{role} {_shown(report.rag.groundedness[role].mean_share)}" for role in roles)
        + ".",
        "",
        "| gate | passed | detail |",
        "|---|---|---|",
        *(f"| {g.name} | {'yes' if g.passed else '**no**'} | {g.detail} |" for g in report.gates),
    ]
    return "\n".join(lines)


def charts(report: EvaluationReport, folder: Path) -> dict[str, Path]:
    """PNG charts: each headline metric per model, and each model's change against the base model."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    roles = [r for r in ROLES if r in report.models]
    metrics = [m for m in HEADLINE if any(report.models[r].summary().get(m) is not None for r in roles)]
    colours = {"base": "tab:gray", "sft": "tab:blue", "twin": "tab:green"}
    figure, axes = plt.subplots(1, len(metrics), figsize=(2.3 * len(metrics), 3.0), dpi=100)
    for axis, metric in zip(axes if len(metrics) > 1 else [axes], metrics, strict=True):
        values = [report.models[r].summary().get(metric) or 0.0 for r in roles]
        axis.bar(roles, values, color=[colours[r] for r in roles])
        axis.set_title(metric.replace("_", " "), fontsize=8)
        axis.tick_params(labelsize=7)
    figure.suptitle(f"{report.author}: base, SFT and twin on held-out samples", fontsize=9)
    figure.tight_layout()
    paths = {"metrics": folder / "metrics.png"}
    figure.savefig(paths["metrics"])
    plt.close(figure)

    base = report.models["base"].summary()
    deltas = {
        metric: [(report.models[r].summary().get(metric) or 0.0) - (base.get(metric) or 0.0) for r in roles[1:]]
        for metric in metrics
    }
    figure, axis = plt.subplots(figsize=(7, 3.2), dpi=100)
    width = 0.38
    for i, role in enumerate(roles[1:]):
        positions = [m + (i - 0.5) * width for m in range(len(metrics))]
        axis.bar(positions, [deltas[m][i] for m in metrics], width, label=role, color=colours[role])
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_xticks(range(len(metrics)), [m.replace("_", "\n") for m in metrics], fontsize=7)
    axis.set_title("change against the base model", fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    paths["deltas"] = folder / "deltas.png"
    figure.savefig(paths["deltas"])
    plt.close(figure)
    return paths
