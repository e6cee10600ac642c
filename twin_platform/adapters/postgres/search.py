"""Hybrid search over the chunks table: pgvector cosine (HNSW) and Postgres full-text, with filters.

Every value from a user goes in as a bound parameter; the SQL text is fixed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy import Engine

from twin_platform.domain.documents import Category, Platform
from twin_platform.domain.retrieval import ScoredChunk, SearchFilters

_COLUMNS = "id, document_id, author_id, title, source_url, platform, category, published_at, text"
_FILTERS = """
  AND (CAST(:author AS text) IS NULL OR author_id = :author)
  AND (CAST(:platforms AS text[]) IS NULL OR platform = ANY(:platforms))
  AND (CAST(:categories AS text[]) IS NULL OR category = ANY(:categories))
  AND (CAST(:after AS timestamptz) IS NULL OR published_at >= :after)
  AND (CAST(:before AS timestamptz) IS NULL OR published_at < :before)
"""
# The f-strings below join constant fragments of this module; no user text is ever formatted in.
DENSE_SQL = sa.text(
    f"SELECT {_COLUMNS}, 1 - (embedding <=> CAST(:vector AS vector)) AS score FROM chunks "  # noqa: S608
    f"WHERE embedding IS NOT NULL AND embedding_model = :model {_FILTERS} "
    "ORDER BY embedding <=> CAST(:vector AS vector) LIMIT :k"
)
# A question's words are OR-ed (websearch_to_tsquery would AND them). Natural questions share words with
# most chunks, so ranking every match would cost O(matches): the GIN index yields at most :scan matches,
# which are ranked (ts_rank) -- bounded latency at any corpus size, the dense list covers the rest.
FULL_TEXT_SQL = sa.text(
    f"WITH q AS (SELECT CAST(replace(CAST(websearch_to_tsquery('english', :query) AS text), '&', '|') AS tsquery)"  # noqa: S608
    f" AS query), m AS (SELECT {_COLUMNS}, tsv FROM chunks, q WHERE q.query <> CAST('' AS tsquery) "
    f"AND tsv @@ q.query {_FILTERS} LIMIT :scan) "
    "SELECT m.*, ts_rank(m.tsv, q.query) AS score FROM m, q ORDER BY score DESC, id LIMIT :k"
)


def _params(filters: SearchFilters, k: int) -> dict[str, Any]:
    return {
        "author": filters.author_id,
        "platforms": [p.value for p in filters.platforms] or None,
        "categories": [c.value for c in filters.categories] or None,
        "after": filters.published_after,
        "before": filters.published_before,
        "k": k,
    }


def _hit(row: Any, name: str) -> ScoredChunk:
    return ScoredChunk(
        chunk_id=str(row.id),
        document_id=str(row.document_id),
        author_id=row.author_id,
        title=row.title,
        source_url=row.source_url,
        platform=Platform(row.platform),
        category=Category(row.category),
        published_at=row.published_at,
        text=row.text,
        score=float(row.score),
        ranks={},
        scores={name: float(row.score)},
    )


class PostgresSearchIndex:
    def __init__(self, engine: Engine, *, ef_search: int = 100, full_text_scan: int = 2000) -> None:
        self.engine = engine
        self.ef_search = ef_search
        self.full_text_scan = full_text_scan

    def dense(
        self, vector: npt.NDArray[np.float32], model_id: str, filters: SearchFilters, k: int
    ) -> list[ScoredChunk]:
        params = _params(filters, k) | {
            "vector": "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]",
            "model": model_id,
        }
        with self.engine.begin() as conn:
            # Filtered HNSW scans keep going until k rows pass the filters (pgvector >= 0.8).
            conn.execute(sa.text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            conn.execute(sa.text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(max(self.ef_search, k))})
            return [_hit(row, "dense") for row in conn.execute(DENSE_SQL, params)]

    def full_text(self, query: str, filters: SearchFilters, k: int) -> list[ScoredChunk]:
        with self.engine.connect() as conn:
            params = _params(filters, k) | {"query": query, "scan": self.full_text_scan}
            return [_hit(row, "text") for row in conn.execute(FULL_TEXT_SQL, params)]
