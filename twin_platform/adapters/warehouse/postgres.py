"""The document warehouse in Postgres: one row per (author, source URL), metadata as JSONB.

A document whose source URL changed form (see ``DocumentFields.previous_source_urls``) has its old
row moved to the new URL in the transaction that upserts it: one row per document, always.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert

from twin_platform.adapters.postgres.tables import raw_documents, revision_seq
from twin_platform.domain.documents import RawDocument, UpsertOutcome, document_id, plan_upsert, utcnow
from twin_platform.domain.ports import ChangeBatch, DocumentQuery

_WRITE_COLUMNS = (
    "category",
    "platform",
    "title",
    "content",
    "published_at",
    "language",
    "metadata",
    "content_hash",
    "version",
    "first_seen",
    "last_seen",
    "updated_at",
    "deleted_at",
)


def _to_document(row: Any) -> RawDocument:
    return RawDocument(
        author_id=row.author_id,
        source_url=row.source_url,
        category=row.category,
        platform=row.platform,
        title=row.title,
        content=row.content,
        published_at=row.published_at,
        language=row.language,
        metadata=row.metadata,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        updated_at=row.updated_at,
        version=row.version,
        deleted_at=row.deleted_at,
        revision=row.revision,
    )


def _row(document: RawDocument) -> dict[str, Any]:
    return {
        "id": uuid.UUID(document.id),
        "author_id": document.author_id,
        "source_url": document.source_url,
        "category": document.category.value,
        "platform": document.platform.value,
        "title": document.title,
        "content": document.content,
        "published_at": document.published_at,
        "language": document.language,
        "metadata": document.metadata,
        "content_hash": document.content_hash,
        "version": document.version,
        "first_seen": document.first_seen,
        "last_seen": document.last_seen,
        "updated_at": document.updated_at,
        "deleted_at": document.deleted_at,
    }


class PostgresWarehouse:
    """Implements :class:`twin_platform.domain.ports.DocumentWarehouse` on the platform's Postgres."""

    backend = "postgres"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert_many(self, documents: Sequence[RawDocument]) -> list[UpsertOutcome]:
        if not documents:
            return []
        ids = [uuid.UUID(doc.id) for doc in documents]
        if len(set(ids)) != len(ids):
            raise ValueError("upsert_many got the same (author, source URL) twice in one batch")
        now = utcnow()
        outcomes: list[UpsertOutcome] = []
        with self.engine.begin() as conn:
            # Serialise writers of the same authors so version numbers never race.
            for author_id in sorted({doc.author_id for doc in documents}):
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(author_id))))
            previous = [uuid.UUID(old) for doc in documents for old in doc.previous_ids]
            rows = conn.execute(sa.select(raw_documents).where(raw_documents.c.id.in_(ids + previous))).all()
            existing = {str(row.id): _to_document(row) for row in rows}
            writes: list[dict[str, Any]] = []
            touched: list[uuid.UUID] = []
            moved: list[uuid.UUID] = []
            for doc in documents:
                # A row under a previous URL of this document moves to its current URL, history and all.
                former = [existing[old] for old in doc.previous_ids if old in existing]
                moved.extend(uuid.UUID(row.id) for row in former)
                outcome, stored = plan_upsert(existing.get(doc.id) or (former[0] if former else None), doc, now)
                outcomes.append(outcome)
                if outcome is UpsertOutcome.UNCHANGED:
                    touched.append(uuid.UUID(doc.id))
                else:
                    writes.append(_row(stored))
            if moved:
                conn.execute(sa.delete(raw_documents).where(raw_documents.c.id.in_(moved)))
            if writes:
                stmt = insert(raw_documents)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[raw_documents.c.id],
                    set_={**{col: stmt.excluded[col] for col in _WRITE_COLUMNS}, "revision": revision_seq.next_value()},
                )
                conn.execute(stmt, writes)
            if touched:
                conn.execute(sa.update(raw_documents).where(raw_documents.c.id.in_(touched)).values(last_seen=now))
        return outcomes

    def get(self, author_id: str, source_url: str) -> RawDocument | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(raw_documents).where(raw_documents.c.id == uuid.UUID(document_id(author_id, source_url)))
            ).one_or_none()
        return _to_document(row) if row else None

    def find(self, query: DocumentQuery) -> list[RawDocument]:
        stmt = sa.select(raw_documents).order_by(raw_documents.c.revision)
        if query.author_id is not None:
            stmt = stmt.where(raw_documents.c.author_id == query.author_id)
        if query.platform is not None:
            stmt = stmt.where(raw_documents.c.platform == query.platform.value)
        if query.category is not None:
            stmt = stmt.where(raw_documents.c.category == query.category.value)
        if query.updated_since is not None:
            stmt = stmt.where(raw_documents.c.updated_at > query.updated_since)
        if not query.include_deleted:
            stmt = stmt.where(raw_documents.c.deleted_at.is_(None))
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        with self.engine.connect() as conn:
            return [_to_document(row) for row in conn.execute(stmt)]

    def tombstone(self, author_id: str, source_urls: Sequence[str]) -> int:
        if not source_urls:
            return 0
        now = utcnow()
        stmt = (
            sa.update(raw_documents)
            .where(
                raw_documents.c.author_id == author_id,
                raw_documents.c.source_url.in_(list(source_urls)),
                raw_documents.c.deleted_at.is_(None),
            )
            .values(deleted_at=now, updated_at=now, revision=revision_seq.next_value())
        )
        with self.engine.begin() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(author_id))))
            return conn.execute(stmt).rowcount

    def changes_since(self, cursor: int, limit: int = 1000) -> ChangeBatch:
        stmt = (
            sa.select(raw_documents)
            .where(raw_documents.c.revision > cursor)
            .order_by(raw_documents.c.revision)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            documents = [_to_document(row) for row in conn.execute(stmt)]
        return ChangeBatch(documents=documents, cursor=documents[-1].revision if documents else cursor)

    def count(self, author_id: str | None = None, include_deleted: bool = False) -> int:
        stmt = sa.select(sa.func.count()).select_from(raw_documents)
        if author_id is not None:
            stmt = stmt.where(raw_documents.c.author_id == author_id)
        if not include_deleted:
            stmt = stmt.where(raw_documents.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
