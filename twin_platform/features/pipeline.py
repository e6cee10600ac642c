"""The feature pipeline, one author at a time, incremental end to end.

Each step does only what its input changed: a raw document is re-cleaned when its content hash (or
the cleaner) changed; a cleaned document is re-chunked when its text (or the chunking options)
changed; a chunk is embedded when it has no embedding from the current model. Tombstoned and
vanished documents lose their cleaned text and chunks in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twin_platform.domain.features import ChunkRecord, CleanedDocument, Embedder, FeatureStore
from twin_platform.domain.ports import DocumentQuery, DocumentWarehouse
from twin_platform.features.chunking import ChunkingOptions, chunk_document
from twin_platform.features.cleaning import CLEANER_VERSION, CleaningOptions, clean_document

CHUNK_BATCH_DOCUMENTS = 50


@dataclass(frozen=True)
class CleanReport:
    cleaned: int
    unchanged: int
    removed: int
    empty: int  # documents whose cleaning left no text (only boilerplate): removed from features


@dataclass(frozen=True)
class ChunkReport:
    documents: int
    added: int
    removed: int


@dataclass(frozen=True)
class EmbedReport:
    embedded: int
    dimension_changed: bool


def source_key(content_hash: str, options: CleaningOptions) -> str:
    return f"{content_hash}:{CLEANER_VERSION}:{'pii' if options.mask_pii else 'raw'}"


def refresh_cleaned(
    author_id: str, warehouse: DocumentWarehouse, store: FeatureStore, options: CleaningOptions
) -> CleanReport:
    raw = warehouse.find(DocumentQuery(author_id=author_id, include_deleted=True))
    known = store.cleaned_keys(author_id)
    live = {doc.id: doc for doc in raw if not doc.is_tombstone}
    removed = [doc_id for doc_id in known if doc_id not in live]
    updates: list[CleanedDocument] = []
    unchanged = empty = 0
    for doc_id, doc in live.items():
        key = source_key(doc.content_hash, options)
        if known.get(doc_id) == key:
            unchanged += 1
            continue
        text = clean_document(doc.category, doc.content, options)
        if not text.strip():
            empty += 1
            if doc_id in known:
                removed.append(doc_id)
            continue
        updates.append(
            CleanedDocument(
                id=doc_id,
                author_id=author_id,
                category=doc.category,
                platform=doc.platform,
                source_url=doc.source_url,
                title=doc.title,
                published_at=doc.published_at,
                language=doc.language,
                text=text,
                raw_version=doc.version,
                source_key=key,
            )
        )
    store.write_cleaned(updates, removed)
    return CleanReport(cleaned=len(updates), unchanged=unchanged, removed=len(removed), empty=empty)


def refresh_chunks(
    author_id: str, store: FeatureStore, count: Callable[..., list[int]], options: ChunkingOptions
) -> ChunkReport:
    fingerprint = options.fingerprint()
    documents = store.documents_to_chunk(author_id, fingerprint)
    added = removed = 0
    for start in range(0, len(documents), CHUNK_BATCH_DOCUMENTS):
        batch = documents[start : start + CHUNK_BATCH_DOCUMENTS]
        by_document = {
            doc.id: [
                ChunkRecord(id=c.id, document_id=doc.id, index=c.index, text=c.text, tokens=c.tokens)
                for c in chunk_document(doc.id, doc.category, doc.text, count, options)
            ]
            for doc in batch
        }
        batch_added, batch_removed = store.replace_chunks(by_document, fingerprint)
        added += batch_added
        removed += batch_removed
    return ChunkReport(documents=len(documents), added=added, removed=removed)


def refresh_embeddings(
    author_id: str,
    store: FeatureStore,
    embedder: Embedder,
    *,
    batch_size: int = 1024,
    on_batch: Callable[[int], None] | None = None,
) -> EmbedReport:
    dimension_changed = store.ensure_dimension(embedder.dimension)
    embedded = 0
    while pending := store.pending_embeddings(author_id, embedder.model_id, batch_size):
        vectors = embedder.encode([chunk.text for chunk in pending])
        store.write_embeddings([chunk.id for chunk in pending], vectors, embedder.model_id)
        embedded += len(pending)
        if on_batch is not None:
            on_batch(embedded)
    return EmbedReport(embedded=embedded, dimension_changed=dimension_changed)
