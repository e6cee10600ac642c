"""Hybrid search: the query embedded and matched by cosine, the words matched by full text, fused by RRF."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from twin_platform.domain.features import Embedder
from twin_platform.domain.retrieval import ScoredChunk, SearchFilters, SearchIndex, reciprocal_rank_fusion

# RRF constant of the hybrid fusion: 10, not the customary 60, by `twin bench retrieval` (docs/retrieval.md): context
# recall +0.09 [+0.06, +0.12] on title questions; MRR and context recall not worse on either question kind.
HYBRID_RRF_K0 = 10


@dataclass
class SearchResult:
    hits: list[ScoredChunk]
    timings_ms: dict[str, float] = field(default_factory=dict)


def hybrid_search(
    query: str, index: SearchIndex, embedder: Embedder, filters: SearchFilters, *, k: int = 5, candidates: int = 50
) -> SearchResult:
    """Top ``k`` chunks for ``query``: each list contributes ``candidates`` before fusion."""
    if not query.strip():
        raise ValueError("the query is empty")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    vector = embedder.encode([query])[0]
    timings["embed"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    dense, text = index.candidates(vector, embedder.model_id, query, filters, max(k, candidates))
    timings["sql"] = (time.perf_counter() - started) * 1000
    fused = reciprocal_rank_fusion({"dense": dense, "text": text}, k0=HYBRID_RRF_K0)
    return SearchResult(hits=fused[:k], timings_ms={name: round(ms, 2) for name, ms in timings.items()})
