"""The feature tables in Postgres: cleaned documents, chunks, embeddings (pgvector) and full text."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert

from twin_platform.adapters.postgres.tables import chunks, cleaned_documents
from twin_platform.domain.documents import Category, Platform
from twin_platform.domain.features import ChunkRecord, CleanedDocument, PendingChunk


def _cleaned(row: Any) -> CleanedDocument:
    return CleanedDocument(
        id=str(row.id),
        author_id=row.author_id,
        category=Category(row.category),
        platform=Platform(row.platform),
        source_url=row.source_url,
        title=row.title,
        published_at=row.published_at,
        language=row.language,
        text=row.text,
        raw_version=row.raw_version,
        source_key=row.source_key,
    )


class PostgresFeatureStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def cleaned_keys(self, author_id: str) -> dict[str, str]:
        stmt = sa.select(cleaned_documents.c.id, cleaned_documents.c.source_key).where(
            cleaned_documents.c.author_id == author_id
        )
        with self.engine.connect() as conn:
            return {str(row.id): row.source_key for row in conn.execute(stmt)}

    def write_cleaned(self, documents: Sequence[CleanedDocument], removed_ids: Sequence[str]) -> None:
        with self.engine.begin() as conn:
            if removed_ids:
                conn.execute(
                    sa.delete(cleaned_documents).where(cleaned_documents.c.id.in_([uuid.UUID(i) for i in removed_ids]))
                )
            if documents:
                rows = [
                    {
                        "id": uuid.UUID(d.id),
                        "author_id": d.author_id,
                        "category": d.category.value,
                        "platform": d.platform.value,
                        "source_url": d.source_url,
                        "title": d.title,
                        "published_at": d.published_at,
                        "language": d.language,
                        "text": d.text,
                        "raw_version": d.raw_version,
                        "source_key": d.source_key,
                    }
                    for d in documents
                ]
                stmt = insert(cleaned_documents)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[cleaned_documents.c.id],
                    set_={**{k: stmt.excluded[k] for k in rows[0] if k != "id"}, "updated_at": sa.func.now()},
                )
                conn.execute(stmt, rows)

    def cleaned_documents(self, author_id: str) -> list[CleanedDocument]:
        """Every cleaned document of an author, in a stable order."""
        stmt = (
            sa.select(cleaned_documents)
            .where(cleaned_documents.c.author_id == author_id)
            .order_by(cleaned_documents.c.published_at.asc().nulls_last(), cleaned_documents.c.id)
        )
        with self.engine.connect() as conn:
            return [_cleaned(row) for row in conn.execute(stmt)]

    def documents_to_chunk(self, author_id: str, fingerprint: str) -> list[CleanedDocument]:
        wanted = cleaned_documents.c.source_key + sa.literal("|" + fingerprint)
        stmt = (
            sa.select(cleaned_documents)
            .where(cleaned_documents.c.author_id == author_id)
            .where(sa.or_(cleaned_documents.c.chunked_with.is_(None), cleaned_documents.c.chunked_with != wanted))
            .order_by(cleaned_documents.c.id)
        )
        with self.engine.connect() as conn:
            return [_cleaned(row) for row in conn.execute(stmt)]

    def replace_chunks(self, chunks_by_document: dict[str, list[ChunkRecord]], fingerprint: str) -> tuple[int, int]:
        if not chunks_by_document:
            return 0, 0
        doc_ids = [uuid.UUID(d) for d in chunks_by_document]
        added = removed = 0
        with self.engine.begin() as conn:
            docs = {
                str(r.id): r
                for r in conn.execute(sa.select(cleaned_documents).where(cleaned_documents.c.id.in_(doc_ids)))
            }
            existing: dict[str, set[str]] = {}
            for row in conn.execute(
                sa.select(chunks.c.id, chunks.c.document_id).where(chunks.c.document_id.in_(doc_ids))
            ):
                existing.setdefault(str(row.document_id), set()).add(str(row.id))
            rows: list[dict[str, Any]] = []
            stale: list[uuid.UUID] = []
            for document_id, records in chunks_by_document.items():
                doc = docs[document_id]
                new_ids = {r.id for r in records}
                old_ids = existing.get(document_id, set())
                stale.extend(uuid.UUID(i) for i in old_ids - new_ids)
                added += len(new_ids - old_ids)
                rows.extend(
                    {
                        "id": uuid.UUID(r.id),
                        "document_id": doc.id,
                        "author_id": doc.author_id,
                        "platform": doc.platform,
                        "category": doc.category,
                        "published_at": doc.published_at,
                        "source_url": doc.source_url,
                        "title": doc.title,
                        "chunk_index": r.index,
                        "text": r.text,
                        "token_count": r.tokens,
                    }
                    for r in records
                )
            if stale:
                removed = conn.execute(sa.delete(chunks).where(chunks.c.id.in_(stale))).rowcount
            if rows:
                stmt = insert(chunks)
                # An unchanged chunk keeps its embedding; only its position and document fields move.
                stmt = stmt.on_conflict_do_update(
                    index_elements=[chunks.c.id],
                    set_={
                        k: stmt.excluded[k]
                        for k in (
                            "chunk_index",
                            "platform",
                            "category",
                            "published_at",
                            "source_url",
                            "title",
                            "token_count",
                        )
                    },
                )
                conn.execute(stmt, rows)
            conn.execute(
                sa.update(cleaned_documents)
                .where(cleaned_documents.c.id.in_(doc_ids))
                .values(chunked_with=cleaned_documents.c.source_key + sa.literal("|" + fingerprint))
            )
        return added, removed

    def pending_embeddings(self, author_id: str, model_id: str, limit: int) -> list[PendingChunk]:
        stmt = (
            sa.select(chunks.c.id, chunks.c.text)
            .where(chunks.c.author_id == author_id)
            .where(sa.or_(chunks.c.embedding.is_(None), chunks.c.embedding_model.is_distinct_from(model_id)))
            .order_by(chunks.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [PendingChunk(str(row.id), row.text) for row in conn.execute(stmt)]

    def write_embeddings(self, ids: Sequence[str], vectors: npt.NDArray[np.float32], model_id: str) -> None:
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} chunk ids but {len(vectors)} vectors")
        rows = [{"chunk_id": uuid.UUID(i), "vec": v, "model": model_id} for i, v in zip(ids, vectors, strict=True)]
        stmt = (
            sa.update(chunks)
            .where(chunks.c.id == sa.bindparam("chunk_id"))
            .values(
                embedding=sa.bindparam("vec", type_=chunks.c.embedding.type),
                embedding_model=sa.bindparam("model"),
                embedded_at=sa.func.now(),
            )
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def ensure_dimension(self, dimension: int) -> bool:
        with self.engine.begin() as conn:
            current: int = conn.execute(
                sa.text(
                    "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
                )
            ).scalar_one()
            if current == dimension:
                return False
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('twin_platform.embedding_dimension'))"))
            conn.execute(sa.text("DROP INDEX IF EXISTS ix_chunks_embedding_hnsw"))
            conn.execute(sa.text("UPDATE chunks SET embedding = NULL, embedding_model = NULL, embedded_at = NULL"))
            conn.execute(sa.text(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({int(dimension)})"))
            conn.execute(
                sa.text("CREATE INDEX ix_chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)")
            )
            return True
