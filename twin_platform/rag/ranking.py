"""After retrieval: drop near-duplicates, rerank (with a cross-encoder when one is configured)."""

from __future__ import annotations

import re
from dataclasses import replace

from twin_platform.domain.retrieval import Reranker, ScoredChunk

_WORD = re.compile(r"\w+")


def _shingles(text: str, size: int = 3) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


def deduplicate(hits: list[ScoredChunk], threshold: float = 0.85, limit: int | None = None) -> list[ScoredChunk]:
    """Keep the first of chunks whose word 3-gram Jaccard similarity is ``threshold`` or more
    (overlapping windows of one document, the same post crawled twice); stop once ``limit`` are kept (the
    answer is the same prefix, at a fraction of the pairwise comparisons)."""
    kept: list[ScoredChunk] = []
    signatures: list[set[tuple[str, ...]]] = []
    for hit in hits:
        if limit is not None and len(kept) >= limit:
            break
        signature = _shingles(hit.text)
        size = len(signature)
        # Jaccard(a, b) <= min(|a|, |b|) / max(|a|, |b|): sets of very different sizes are skipped uncompared.
        if any(
            min(size, len(other)) >= threshold * max(size, len(other))
            and len(signature & other) / max(1, len(signature | other)) >= threshold
            for other in signatures
        ):
            continue
        kept.append(hit)
        signatures.append(signature)
    return kept


def rerank(query: str, hits: list[ScoredChunk], reranker: Reranker | None) -> list[ScoredChunk]:
    """Cross-encoder order when a reranker is configured; otherwise the fused order stands."""
    if reranker is None or not hits:
        return hits
    scores = reranker.score(query, [hit.text for hit in hits])
    ordered = sorted(zip(hits, scores, strict=True), key=lambda pair: -pair[1])
    return [
        replace(
            hit, score=float(score), scores={**hit.scores, "rerank": float(score)}, ranks={**hit.ranks, "rerank": rank}
        )
        for rank, (hit, score) in enumerate(ordered, start=1)
    ]
