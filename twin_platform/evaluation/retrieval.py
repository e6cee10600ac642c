"""Retrieval metrics, measured through the pipeline the API serves: ``RAGPipeline.retrieve`` for the ranked
chunks and ``RAGPipeline.prompt`` for the context the LLM would read.

Per question (``k`` retrieved chunks, 10 by default):

- **document hit**: a retrieved chunk comes from the question's source document (same document id, or same
  source URL); ``document_rank`` is the rank of the first such chunk. hit@n = share of questions whose
  ``document_rank`` <= n; MRR = mean of 1 / ``document_rank`` (0 for a miss).
- **passage hit** (questions with a passage): the chunk is the passage's text, not just its document:
  ``passage_overlap(chunk, passage)`` >= ``PASSAGE_OVERLAP_THRESHOLD``, where the overlap is the share of the
  smaller text's word 5-grams that the other text contains (a chunk inside the passage, or the passage inside
  a chunk, scores 1; a chunk holding half the passage scores 0.5 or more).
- **context hit**: a chunk of the source document reached the assembled prompt context.
- **context recall** (questions with a passage): the share of the passage's word 5-grams found in the
  prompt context.

Words are lower-cased runs of letters and digits. Results are pydantic models: ``model_dump_json()`` writes
them, ``RetrievalReport.model_validate_json()`` reads them back.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from twin_platform.domain.retrieval import SearchFilters
from twin_platform.evaluation.questions import Question, QuestionOrigin
from twin_platform.rag.pipeline import RAGPipeline, RAGRequest

OVERLAP_NGRAM = 5
PASSAGE_OVERLAP_THRESHOLD = 0.5
CUTOFFS = (1, 3, 10)
DEFINITIONS = {
    "hit_at_n": "share of questions with a chunk of the source document among the first n retrieved",
    "mrr": "mean over questions of 1 / rank of the first chunk of the source document (0 when not retrieved)",
    "passage_hit_at_n": (
        f"as hit_at_n, counting only chunks whose word {OVERLAP_NGRAM}-gram overlap with the source passage is "
        f">= {PASSAGE_OVERLAP_THRESHOLD} (overlap: share of the smaller text's {OVERLAP_NGRAM}-grams found in the "
        "other); questions with a passage only"
    ),
    "context_hit_rate": "share of questions with a chunk of the source document in the assembled prompt context",
    "context_recall": (
        f"mean share of the source passage's word {OVERLAP_NGRAM}-grams present in the prompt context; "
        "questions with a passage only"
    ),
}
_WORD = re.compile(r"[^\W_]+")

Progress = Callable[[int, int], None]  # (done, total)


def word_ngrams(text: str, n: int = OVERLAP_NGRAM) -> set[tuple[str, ...]]:
    """The text's word ``n``-grams; a text shorter than ``n`` words is one gram of all its words."""
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def passage_overlap(chunk: str, passage: str) -> float:
    """Share of the smaller text's word 5-grams that the other text contains (0 to 1)."""
    left, right = word_ngrams(chunk), word_ngrams(passage)
    if not left or not right:
        return 0.0
    return len(left & right) / min(len(left), len(right))


def containment(part: str, whole: str) -> float:
    """Share of ``part``'s word 5-grams found in ``whole`` (0 to 1)."""
    grams = word_ngrams(part)
    return len(grams & word_ngrams(whole)) / len(grams) if grams else 0.0


class RetrievedChunk(BaseModel):
    rank: int
    chunk_id: str
    document_id: str
    title: str
    source_url: str
    from_source: bool  # a chunk of the question's source document
    passage_overlap: float | None  # None when the question has no passage


class QuestionResult(BaseModel):
    question_id: str
    question: str
    origin: QuestionOrigin
    document_id: str | None
    source_url: str | None
    document_rank: int | None  # of the first chunk of the source document; None: not among the k retrieved
    passage_rank: int | None  # of the first chunk that is the passage; None: not retrieved, or no passage
    has_passage: bool
    context_hit: bool
    context_recall: float | None
    context_sources: int  # chunks in the prompt context
    self_query: str  # how filters were read from the question: llm, rules or none
    filters: dict[str, Any]  # the filters the search ran with (the question's and the request's)
    queries: list[str]
    timings_ms: dict[str, float]
    retrieved: list[RetrievedChunk]

    def hit_at(self, n: int, *, passage: bool = False) -> bool:
        rank = self.passage_rank if passage else self.document_rank
        return rank is not None and rank <= n

    def reciprocal_rank(self, *, passage: bool = False) -> float:
        rank = self.passage_rank if passage else self.document_rank
        return 1.0 / rank if rank else 0.0


class RetrievalSummary(BaseModel):
    """Means over questions; ``None`` where there is nothing to measure (no questions, or none with a passage)."""

    questions: int
    passage_questions: int
    hit_at_1: float | None
    hit_at_3: float | None
    hit_at_10: float | None
    mrr: float | None
    passage_hit_at_1: float | None
    passage_hit_at_3: float | None
    passage_hit_at_10: float | None
    passage_mrr: float | None
    context_hit_rate: float | None
    context_recall: float | None
    self_query: dict[str, int]  # questions per self-query method


class RetrievalReport(BaseModel):
    author_id: str | None
    k: int
    expansions: int
    definitions: dict[str, str]
    summary: RetrievalSummary
    results: list[QuestionResult]


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def summarize(results: Sequence[QuestionResult]) -> RetrievalSummary:
    """Hit rates, MRR and context figures over ``results`` (pool several authors' results for one figure)."""
    with_passage = [r for r in results if r.has_passage]
    return RetrievalSummary(
        questions=len(results),
        passage_questions=len(with_passage),
        hit_at_1=_mean([r.hit_at(1) for r in results]),
        hit_at_3=_mean([r.hit_at(3) for r in results]),
        hit_at_10=_mean([r.hit_at(10) for r in results]),
        mrr=_mean([r.reciprocal_rank() for r in results]),
        passage_hit_at_1=_mean([r.hit_at(1, passage=True) for r in with_passage]),
        passage_hit_at_3=_mean([r.hit_at(3, passage=True) for r in with_passage]),
        passage_hit_at_10=_mean([r.hit_at(10, passage=True) for r in with_passage]),
        passage_mrr=_mean([r.reciprocal_rank(passage=True) for r in with_passage]),
        context_hit_rate=_mean([r.context_hit for r in results]),
        context_recall=_mean([r.context_recall for r in with_passage if r.context_recall is not None]),
        self_query=dict(sorted(Counter(r.self_query for r in results).items())),
    )


def _filters(filters: SearchFilters) -> dict[str, Any]:
    return {
        "author_id": filters.author_id,
        "platforms": [str(p) for p in filters.platforms],
        "categories": [str(c) for c in filters.categories],
        "published_after": filters.published_after.isoformat() if filters.published_after else None,
        "published_before": filters.published_before.isoformat() if filters.published_before else None,
    }


def evaluate_question(
    pipeline: RAGPipeline, question: Question, *, author_id: str | None = None, k: int = 10, expansions: int = 0
) -> QuestionResult:
    """Retrieve for one question as the API would (``author_id`` as the request's author) and score it."""
    request = RAGRequest(query=question.text, author_id=author_id, k=k, expansions=expansions)
    retrieval = pipeline.retrieve(request)
    _, context = pipeline.prompt(request, retrieval)
    passage = question.passage
    retrieved = [
        RetrievedChunk(
            rank=rank,
            chunk_id=hit.chunk_id,
            document_id=hit.document_id,
            title=hit.title,
            source_url=hit.source_url,
            from_source=question.is_source(hit.document_id, hit.source_url),
            passage_overlap=round(passage_overlap(hit.text, passage), 4) if passage else None,
        )
        for rank, hit in enumerate(retrieval.hits, start=1)
    ]
    return QuestionResult(
        question_id=question.id,
        question=question.text,
        origin=question.origin,
        document_id=question.document_id,
        source_url=question.source_url,
        document_rank=next((c.rank for c in retrieved if c.from_source), None),
        passage_rank=next((c.rank for c in retrieved if (c.passage_overlap or 0.0) >= PASSAGE_OVERLAP_THRESHOLD), None),
        has_passage=passage is not None,
        context_hit=any(question.is_source(s.document_id, s.source_url) for s in context.sources),
        context_recall=round(containment(passage, context.text), 4) if passage else None,
        context_sources=len(context.sources),
        self_query=retrieval.self_query_method,
        filters=_filters(retrieval.filters),
        queries=retrieval.queries,
        timings_ms=retrieval.timings_ms,
        retrieved=retrieved,
    )


def evaluate_retrieval(
    pipeline: RAGPipeline,
    questions: Sequence[Question],
    *,
    author_id: str | None = None,
    k: int = 10,
    expansions: int = 0,
    progress: Progress | None = None,
) -> RetrievalReport:
    """Every question through ``pipeline`` (``k`` >= 10, so hit@10 means what it says), one row each, and the
    summary. ``author_id`` is sent as the request's author, as a per-author twin's requests would be."""
    if k < max(CUTOFFS):
        raise ValueError(f"k must be at least {max(CUTOFFS)} for hit@{max(CUTOFFS)}, got {k}")
    results = []
    for done, question in enumerate(questions, start=1):
        results.append(evaluate_question(pipeline, question, author_id=author_id, k=k, expansions=expansions))
        if progress is not None:
            progress(done, len(questions))
    return RetrievalReport(
        author_id=author_id,
        k=k,
        expansions=expansions,
        definitions=DEFINITIONS,
        summary=summarize(results),
        results=results,
    )
