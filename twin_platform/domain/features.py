"""Feature-stage records: cleaned documents and chunks, and the ports that store and embed them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from twin_platform.domain.documents import Category, Platform


@dataclass(frozen=True)
class CleanedDocument:
    id: str  # the raw document's id: lineage to the warehouse
    author_id: str
    category: Category
    platform: Platform
    source_url: str
    title: str
    published_at: datetime | None
    language: str | None
    text: str
    raw_version: int
    source_key: str  # raw content hash + cleaner version + options: what this text was made from


@dataclass(frozen=True)
class ChunkRecord:
    id: str
    document_id: str
    index: int
    text: str
    tokens: int


@dataclass(frozen=True)
class PendingChunk:
    id: str
    text: str


class FeatureStore(Protocol):
    def cleaned_keys(self, author_id: str) -> dict[str, str]:
        """document id -> source key of every cleaned document of the author."""
        ...

    def write_cleaned(self, documents: Sequence[CleanedDocument], removed_ids: Sequence[str]) -> None:
        """Upsert cleaned documents and delete removed ones (their chunks with them), atomically."""
        ...

    def documents_to_chunk(self, author_id: str, fingerprint: str) -> list[CleanedDocument]:
        """Cleaned documents whose chunks were not made from their current text with ``fingerprint``."""
        ...

    def replace_chunks(self, chunks_by_document: dict[str, list[ChunkRecord]], fingerprint: str) -> tuple[int, int]:
        """Make each document's chunks exactly these, atomically; returns (added, removed).

        Chunks whose id (content hash) is unchanged keep their embedding.
        """
        ...

    def pending_embeddings(self, author_id: str, model_id: str, limit: int) -> list[PendingChunk]: ...

    def write_embeddings(self, ids: Sequence[str], vectors: npt.NDArray[np.float32], model_id: str) -> None: ...

    def ensure_dimension(self, dimension: int) -> bool:
        """Make the vector column hold ``dimension``; returns True when it had to change (all re-embed)."""
        ...


class Embedder(Protocol):
    model_id: str
    dimension: int
    max_tokens: int

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...
