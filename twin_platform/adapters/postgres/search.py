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
_DENSE = (
    f"SELECT {_COLUMNS}, 1 - (embedding <=> CAST(:vector AS vector)) AS score FROM chunks "  # noqa: S608
    f"WHERE embedding IS NOT NULL AND embedding_model = :model {_FILTERS} "
    "ORDER BY embedding <=> CAST(:vector AS vector) LIMIT :k"
)
# A question's words are OR-ed (websearch_to_tsquery would AND them). Natural questions share words with
# most chunks, so ranking every match would cost O(matches): the GIN index yields at most :scan matches,
# which are ranked (ts_rank) -- bounded latency at any corpus size, the dense list covers the rest.
_FULL_TEXT = (
    f"WITH q AS (SELECT CAST(replace(CAST(websearch_to_tsquery('english', :query) AS text), '&', '|') AS tsquery)"  # noqa: S608
    f" AS query), m AS (SELECT {_COLUMNS}, tsv FROM chunks, q WHERE q.query <> CAST('' AS tsquery) "
    f"AND tsv @@ q.query {_FILTERS} LIMIT :scan) "
    f"SELECT {_COLUMNS}, ts_rank(m.tsv, q.query) AS score FROM m, q ORDER BY score DESC, id LIMIT :k"
)
# Two statements on one connection. (One UNION ALL statement would save a round trip, but once psycopg
# prepares it, Postgres's generic plan for it takes ten times as long.)
DENSE_SQL = sa.text(_DENSE)
FULL_TEXT_SQL = sa.text(_FULL_TEXT)


DEFAULT_EF_SEARCH = 100


def _hnsw_settings(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET hnsw.iterative_scan = relaxed_order")
        cursor.execute(f"SET hnsw.ef_search = {DEFAULT_EF_SEARCH}")
    dbapi_connection.commit()


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
        # Set once per connection, not per query (two round trips and a transaction saved on every search):
        # filtered HNSW scans keep going until k rows pass the filters (pgvector >= 0.8), and look at
        # ``ef_search`` candidates. Only HNSW index scans read these settings.
        if not sa.event.contains(engine, "connect", _hnsw_settings):
            sa.event.listen(engine, "connect", _hnsw_settings)
        engine.pool.dispose()  # connections opened before the listener get it on their next checkout

    def candidates(
        self, vector: npt.NDArray[np.float32], model_id: str, query: str, filters: SearchFilters, k: int
    ) -> tuple[list[ScoredChunk], list[ScoredChunk]]:
        """The ``k`` nearest chunks by cosine (HNSW) and the ``k`` best by full text, each best first."""
        params = _params(filters, k) | {
            "vector": "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]",
            "model": model_id,
            "query": query,
            "scan": self.full_text_scan,
        }
        ef_search = max(self.ef_search, k)
        # Read-only: autocommit spares the BEGIN and ROLLBACK round trips, unless ef_search must be set locally.
        options = {"isolation_level": "AUTOCOMMIT"} if ef_search == DEFAULT_EF_SEARCH else {}
        with self.engine.connect().execution_options(**options) as conn:
            if ef_search != DEFAULT_EF_SEARCH:
                conn.execute(sa.text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef_search)})
            dense = [_hit(row, "dense") for row in conn.execute(DENSE_SQL, params)]
            text = [_hit(row, "text") for row in conn.execute(FULL_TEXT_SQL, params)]
        return dense, text
