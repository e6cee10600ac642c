"""SQL behind the feature asset checks, per author."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine


@dataclass(frozen=True)
class ChunkHealth:
    chunks: int
    empty_chunks: int
    orphan_chunks: int
    documents: int
    documents_without_chunks: int
    duplicate_chunks: int
    max_tokens: int
    embedded: int
    wrong_dimension: int
    other_model: int

    @property
    def duplicate_rate(self) -> float:
        return self.duplicate_chunks / self.chunks if self.chunks else 0.0


def chunk_health(engine: Engine, author_id: str, *, dimension: int, model_id: str) -> ChunkHealth:
    query = sa.text(
        """
        WITH c AS (SELECT * FROM chunks WHERE author_id = :author)
        SELECT
          (SELECT count(*) FROM c) AS chunks,
          (SELECT count(*) FROM c WHERE length(btrim(text)) = 0) AS empty_chunks,
          (SELECT count(*) FROM c LEFT JOIN cleaned_documents d ON d.id = c.document_id
             WHERE d.id IS NULL OR d.author_id <> c.author_id) AS orphan_chunks,
          (SELECT count(*) FROM cleaned_documents WHERE author_id = :author) AS documents,
          (SELECT count(*) FROM cleaned_documents d WHERE d.author_id = :author
             AND NOT EXISTS (SELECT 1 FROM chunks x WHERE x.document_id = d.id)) AS documents_without_chunks,
          (SELECT count(*) - count(DISTINCT md5(text)) FROM c) AS duplicate_chunks,
          (SELECT coalesce(max(token_count), 0) FROM c) AS max_tokens,
          (SELECT count(*) FROM c WHERE embedding IS NOT NULL) AS embedded,
          (SELECT count(*) FROM c WHERE embedding IS NOT NULL AND vector_dims(embedding) <> :dim) AS wrong_dimension,
          (SELECT count(*) FROM c WHERE embedding IS NOT NULL AND embedding_model IS DISTINCT FROM :model)
             AS other_model
        """
    )
    with engine.connect() as conn:
        row = conn.execute(query, {"author": author_id, "dim": dimension, "model": model_id}).one()
    return ChunkHealth(**row._mapping)
