"""Raw documents: what the collection stage stores in the document warehouse."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Category(StrEnum):
    ARTICLE = "article"
    POST = "post"
    REPOSITORY = "repository"


class Platform(StrEnum):
    MEDIUM = "medium"
    SUBSTACK = "substack"
    LINKEDIN = "linkedin"
    GITHUB = "github"
    WEB = "web"  # any other article URL
    LOCAL = "local"  # a local file with no public URL


def platform_for_url(url: str) -> Platform:
    """The platform a URL belongs to, judged by its scheme and host."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Platform.LOCAL
    host = (parts.hostname or "").lower()
    if host == "medium.com" or host.endswith(".medium.com"):
        return Platform.MEDIUM
    if host == "substack.com" or host.endswith(".substack.com"):
        return Platform.SUBSTACK
    if host == "linkedin.com" or host.endswith(".linkedin.com"):
        return Platform.LINKEDIN
    if host in {"github.com", "www.github.com"}:
        return Platform.GITHUB
    return Platform.WEB


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class DocumentFields(BaseModel):
    """What every document has, wherever it is in its life."""

    model_config = ConfigDict(frozen=True)

    category: Category
    platform: Platform
    source_url: str = Field(min_length=1, max_length=2048)
    title: str = Field(default="", max_length=1000)
    content: str
    published_at: datetime | None = None
    language: str | None = Field(default=None, max_length=16)
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Source URLs an earlier version of the document's importer stored it under (the folder importer's
    # absolute file:/// paths, say). Not stored itself: a warehouse that holds the document under one of
    # them moves that row to ``source_url`` on upsert, so a changed URL scheme never duplicates a document.
    previous_source_urls: tuple[str, ...] = Field(default=(), exclude=True)

    @field_validator("content")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content is empty")
        if "\x00" in value:
            raise ValueError("content contains NUL bytes")
        return value

    @field_validator("title")
    @classmethod
    def _clean_title(cls, value: str) -> str:
        return " ".join(value.split())

    @field_validator("published_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)

    @field_validator("metadata")
    @classmethod
    def _json_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata is not JSON-serialisable: {exc}") from exc
        return value


class DocumentDraft(DocumentFields):
    """A document as an importer or crawler found it, before it belongs to an author."""

    author_ref: str | None = None  # the source's own reference to its author (a name or an export id)

    def for_author(self, author_id: str) -> RawDocument:
        return RawDocument(
            author_id=author_id,
            previous_source_urls=self.previous_source_urls,
            **self.model_dump(exclude={"author_ref"}),
        )


def document_id(author_id: str, source_url: str) -> str:
    """Stable id of a document: the same (author, source URL) always maps to the same id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{author_id}\n{source_url}"))


def content_hash(
    *,
    category: Category,
    title: str,
    content: str,
    published_at: datetime | None,
    language: str | None,
    metadata: dict[str, Any],
) -> str:
    """sha256 over everything that makes a new version of a document."""
    payload = json.dumps(
        {
            "category": category.value,
            "title": title,
            "content": content,
            "published_at": published_at.isoformat() if published_at else None,
            "language": language,
            "metadata": metadata,
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class RawDocument(DocumentFields):
    """A document in the warehouse.

    ``version`` starts at 1 and grows by one with each content change; ``deleted_at`` set means
    the document is a tombstone (gone at its source) that downstream stages must drop.
    ``revision`` is a warehouse-wide, ever-increasing change counter: the sensors' cursor.
    """

    author_id: str
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0
    deleted_at: datetime | None = None
    revision: int = 0

    @field_validator("first_seen", "last_seen", "updated_at", "deleted_at")
    @classmethod
    def _utc_stamps(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)

    @property
    def id(self) -> str:
        return document_id(self.author_id, self.source_url)

    @property
    def previous_ids(self) -> list[str]:
        """The ids this document had under its :attr:`previous_source_urls`."""
        return [document_id(self.author_id, url) for url in self.previous_source_urls if url != self.source_url]

    @property
    def content_hash(self) -> str:
        return content_hash(
            category=self.category,
            title=self.title,
            content=self.content,
            published_at=self.published_at,
            language=self.language,
            metadata=self.metadata,
        )

    @property
    def is_tombstone(self) -> bool:
        return self.deleted_at is not None


class UpsertOutcome(StrEnum):
    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def plan_upsert(
    existing: RawDocument | None, incoming: RawDocument, now: datetime
) -> tuple[UpsertOutcome, RawDocument]:
    """Decide what an upsert does, the same way for every warehouse backend.

    Unchanged content only refreshes ``last_seen``; changed content (or a tombstone coming back)
    bumps ``version`` and ``updated_at``. ``existing`` may be the row stored under one of the incoming
    document's :attr:`~DocumentFields.previous_source_urls`: moving it to the new URL is an update that
    keeps its history (``first_seen``, and ``version`` unless the content changed too).
    ``revision`` is assigned by the backend on write.
    """
    if existing is None:
        return UpsertOutcome.INSERTED, incoming.model_copy(
            update={"first_seen": now, "last_seen": now, "updated_at": now, "version": 1, "deleted_at": None}
        )
    same_content = existing.content_hash == incoming.content_hash and not existing.is_tombstone
    if same_content and existing.source_url == incoming.source_url:
        return UpsertOutcome.UNCHANGED, existing.model_copy(update={"last_seen": now})
    return UpsertOutcome.UPDATED, incoming.model_copy(
        update={
            "first_seen": existing.first_seen,
            "last_seen": now,
            "updated_at": now,
            "version": existing.version if same_content else existing.version + 1,
            "deleted_at": None,
        }
    )


def utcnow() -> datetime:
    return datetime.now(UTC)
