"""Interfaces the logic layer needs from storage; the adapters layer implements them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from twin_platform.domain.authors import Author
from twin_platform.domain.documents import Category, Platform, RawDocument, UpsertOutcome


@dataclass(frozen=True)
class DocumentQuery:
    """Filters for :meth:`DocumentWarehouse.find`; ``None`` means "any"."""

    author_id: str | None = None
    platform: Platform | None = None
    category: Category | None = None
    updated_since: datetime | None = None
    include_deleted: bool = False
    limit: int | None = None


@dataclass(frozen=True)
class ChangeBatch:
    """Documents changed (inserted, updated or tombstoned) after a cursor, oldest first."""

    documents: list[RawDocument]
    cursor: int  # pass back to get the next batch; unchanged when there was nothing new


class DocumentWarehouse(Protocol):
    """Raw documents keyed by (author, source URL). Upserts are idempotent; deletes are tombstones."""

    def upsert_many(self, documents: Sequence[RawDocument]) -> list[UpsertOutcome]:
        """Store documents atomically: all of them, or none when an error is raised."""
        ...

    def get(self, author_id: str, source_url: str) -> RawDocument | None: ...

    def find(self, query: DocumentQuery) -> list[RawDocument]: ...

    def tombstone(self, author_id: str, source_urls: Sequence[str]) -> int:
        """Mark documents deleted at their source; returns how many were live before."""
        ...

    def changes_since(self, cursor: int, limit: int = 1000) -> ChangeBatch: ...

    def count(self, author_id: str | None = None, include_deleted: bool = False) -> int: ...


class AuthorRegistry(Protocol):
    """Registered authors; ids are the Dagster partition keys."""

    def save(self, author: Author) -> Author: ...

    def get(self, author_id: str) -> Author | None: ...

    def find_by_name(self, name: str) -> Author | None:
        """Look an author up by id, full name or alias (case-insensitive)."""
        ...

    def list(self) -> list[Author]: ...
