"""Retrieval records: filters, scored chunks, and the search index port."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from twin_platform.domain.documents import Category, Platform


@dataclass(frozen=True)
class SearchFilters:
    author_id: str | None = None
    platforms: tuple[Platform, ...] = ()
    categories: tuple[Category, ...] = ()
    published_after: datetime | None = None
    published_before: datetime | None = None


@dataclass(frozen=True)
class ScoredChunk:
    chunk_id: str
    document_id: str
    author_id: str
    title: str
    source_url: str
    platform: Platform
    category: Category
    published_at: datetime | None
    text: str
    score: float  # the score of the list it came from (cosine similarity, ts_rank, fused RRF...)
    ranks: dict[str, int] = field(default_factory=dict)  # rank in each list it appeared in, 1-based
    scores: dict[str, float] = field(default_factory=dict)


class SearchIndex(Protocol):
    def candidates(
        self, vector: npt.NDArray[np.float32], model_id: str, query: str, filters: SearchFilters, k: int
    ) -> tuple[list[ScoredChunk], list[ScoredChunk]]:
        """The ``k`` nearest chunks to ``vector`` and the ``k`` best full-text matches of ``query``, best first."""
        ...


def reciprocal_rank_fusion(lists: Mapping[str, Sequence[ScoredChunk]], k0: int = 60) -> list[ScoredChunk]:
    """Fuse ranked lists: score = sum over lists of 1 / (k0 + rank). Keeps every list's rank and score."""
    fused: dict[str, ScoredChunk] = {}
    totals: dict[str, float] = {}
    for name, ranked in lists.items():
        for rank, hit in enumerate(ranked, start=1):
            base = fused.get(hit.chunk_id, hit)
            fused[hit.chunk_id] = replace(
                base, ranks={**base.ranks, name: rank}, scores={**base.scores, name: hit.score}
            )
            totals[hit.chunk_id] = totals.get(hit.chunk_id, 0.0) + 1.0 / (k0 + rank)
    ordered = sorted(fused.values(), key=lambda h: (-totals[h.chunk_id], h.chunk_id))
    return [replace(h, score=totals[h.chunk_id], ranks={**h.ranks, "fused": i}) for i, h in enumerate(ordered, start=1)]


class Reranker(Protocol):
    model_id: str

    def score(self, query: str, texts: Sequence[str]) -> list[float]: ...
