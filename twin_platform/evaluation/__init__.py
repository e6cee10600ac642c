"""Evaluation logic: how close a model's answers are to the author's own, and how grounded RAG answers are.

Pure logic over what callers pass in (samples, generations, an :class:`Embedder`, LLM clients as protocols);
no settings, no files, no framework. :func:`evaluate_models` scores every model under comparison on the
author's held-out samples in one call; the modules hold the measures:

- ``voice``: stylometry (Burrows' Delta, sentence lengths, punctuation), style-centroid similarity, ROUGE-L,
  degeneration (distinct-2, repeated 3-grams, answers cut at the token limit)
- ``perplexity``: of the author's held-out answers, through :class:`~twin_platform.domain.llm.AnswerScorer`
- ``judge``: the LLM Engineer's Handbook accuracy/style rubric with any LLM client as the judge
- ``grounding``: the share of a RAG answer's sentences its retrieved context supports
- ``models``: the typed, JSON round-trippable results
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twin_platform.domain.datasets import InstructionSample
from twin_platform.domain.features import Embedder
from twin_platform.domain.llm import AnswerScorer, Generation, LLMClient
from twin_platform.evaluation.judge import judge_answers
from twin_platform.evaluation.models import ModelScores, PerplexityResult, SampleScores
from twin_platform.evaluation.perplexity import perplexity
from twin_platform.evaluation.voice import (
    centroid_similarities,
    cut_at_limit_share,
    delta_reference,
    distinct_n,
    mean_or_zero,
    repeated_ngram_rate,
    rouge_l,
    style_centroid,
    stylometry,
)


@dataclass(frozen=True)
class ModelUnderTest:
    """One model to evaluate: its answers to the held-out instructions (same order as the samples) and,
    when it can score answers, the client that scores them for perplexity."""

    model_id: str
    generations: Sequence[Generation]
    scorer: AnswerScorer | None = None
    no_scorer_reason: str = "no scorer was given for this model"


def evaluate_models(
    models: Sequence[ModelUnderTest],
    held_out: Sequence[InstructionSample],
    *,
    author_passages: Sequence[str],
    embedder: Embedder,
    judge: LLMClient | None = None,
    no_judge: str | None = None,
) -> list[ModelScores]:
    """Score each model's answers to the author's held-out instructions against the author's answers.

    ``author_passages`` are the author's training answers: they make the style centroid and, with the
    held-out answers and every model's answers, the corpus Burrows' Delta standardises by, so all models are
    measured on one scale. Without a ``judge``, ``no_judge`` is the reason the report gives (see
    :func:`~twin_platform.evaluation.judge.no_judge_reason`). Model-level rates over nothing (no bigram in
    any answer, say) are 0.
    """
    if not held_out:
        raise ValueError("no held-out samples to evaluate on")
    if len({s.id for s in held_out}) != len(held_out):
        raise ValueError("held-out sample ids repeat: per-sample scores are keyed by id")
    for model in models:
        if len(model.generations) != len(held_out):
            raise ValueError(f"{model.model_id}: {len(model.generations)} answers for {len(held_out)} samples")
    if judge is None and not no_judge:
        raise ValueError("without a judge, say why (no_judge)")
    author_answers = [s.answer for s in held_out]
    centroid = style_centroid(embedder, author_passages)
    reference = delta_reference([*author_passages, *author_answers, *(g.text for m in models for g in m.generations)])
    results = []
    for model in models:
        answers = [g.text for g in model.generations]
        similarities = centroid_similarities(embedder, centroid, answers)
        rouges = rouge_l(answers, author_answers)
        ppl = (
            perplexity(model.scorer, held_out)
            if model.scorer is not None
            else PerplexityResult.not_computed(model.no_scorer_reason)
        )
        sample_ppl = {s.sample_id: s.perplexity for s in ppl.samples}
        judged = (
            judge_answers(judge, [s.id for s in held_out], [s.instruction for s in held_out], answers)
            if judge is not None
            else None
        )
        verdicts = {v.sample_id: v for v in judged.verdicts} if judged is not None else {}
        per_sample = [
            SampleScores(
                sample_id=sample.id,
                instruction=sample.instruction,
                reference=sample.answer,
                answer=generation.text,
                finish_reason=generation.finish_reason,
                cut_at_limit=generation.finish_reason == "length",
                rouge_l=rouge,
                centroid_similarity=similarity,
                distinct_2=distinct_n([generation.text], 2),
                repeated_ngram_rate=repeated_ngram_rate(generation.text, 3),
                perplexity=sample_ppl.get(sample.id),
                judge_accuracy=verdicts[sample.id].accuracy if sample.id in verdicts else None,
                judge_style=verdicts[sample.id].style if sample.id in verdicts else None,
            )
            for sample, generation, rouge, similarity in zip(
                held_out, model.generations, rouges, similarities, strict=True
            )
        ]
        style = stylometry(answers, author_answers, reference)
        results.append(
            ModelScores(
                model_id=model.model_id,
                sample_count=len(held_out),
                perplexity=ppl.perplexity,
                perplexity_tokens=ppl.tokens,
                perplexity_reason=ppl.not_computed_reason,
                perplexity_skipped=ppl.skipped,
                stylometric_distance=style.distance,
                stylometry=style,
                centroid_similarity=mean_or_zero(similarities),
                rouge_l=mean_or_zero(rouges),
                distinct_2=distinct_n(answers, 2) or 0.0,
                repeated_ngram_rate=mean_or_zero([s.repeated_ngram_rate for s in per_sample]),
                cut_at_limit_share=cut_at_limit_share(model.generations),
                judge=judged,
                judge_reason=None if judged is not None else no_judge,
                per_sample=per_sample,
            )
        )
    return results


__all__ = ["ModelUnderTest", "evaluate_models"]
