"""What an import did: counts per outcome and every rejection with its reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from twin_platform.domain.documents import Category, Platform, UpsertOutcome


@dataclass(frozen=True)
class Rejection:
    """One input that was not stored: where it came from and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class Skipped:
    """A file an importer does not read (an image beside the articles, say); not an error."""

    source: str


@dataclass(frozen=True)
class SourceStatus:
    """How one configured source (an import path or a link) fared."""

    source: str
    kind: str  # "import" or "link"
    ok: bool
    documents: int = 0
    detail: str = ""


@dataclass
class ImportReport:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    tombstoned: int = 0
    skipped: int = 0
    not_modified: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    by_platform_category: Counter[tuple[Platform, Category]] = field(default_factory=Counter)
    authors: set[str] = field(default_factory=set)
    seen_source_urls: dict[str, set[str]] = field(default_factory=dict)  # author id -> source URLs
    sources: list[SourceStatus] = field(default_factory=list)

    @property
    def all_sources_failed(self) -> bool:
        return bool(self.sources) and not any(source.ok for source in self.sources)

    @property
    def stored(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def count(self, outcome: UpsertOutcome) -> None:
        if outcome is UpsertOutcome.INSERTED:
            self.inserted += 1
        elif outcome is UpsertOutcome.UPDATED:
            self.updated += 1
        else:
            self.unchanged += 1

    def reject(self, source: str, reason: str) -> None:
        self.rejected.append(Rejection(source=source, reason=reason))

    def merge(self, other: ImportReport) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.tombstoned += other.tombstoned
        self.skipped += other.skipped
        self.not_modified += other.not_modified
        self.rejected.extend(other.rejected)
        self.by_platform_category.update(other.by_platform_category)
        self.authors |= other.authors
        self.sources.extend(other.sources)
        for author_id, urls in other.seen_source_urls.items():
            self.seen_source_urls.setdefault(author_id, set()).update(urls)

    def as_dict(self) -> dict[str, Any]:
        return {
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "tombstoned": self.tombstoned,
            "skipped": self.skipped,
            "not_modified": self.not_modified,
            "rejected": len(self.rejected),
            "rejections": [{"source": r.source, "reason": r.reason} for r in self.rejected],
            "authors": sorted(self.authors),
            "sources": [
                {"source": s.source, "kind": s.kind, "ok": s.ok, "documents": s.documents, "detail": s.detail}
                for s in self.sources
            ],
            "by_platform_category": [
                {"platform": platform.value, "category": category.value, "documents": n}
                for (platform, category), n in sorted(self.by_platform_category.items())
            ],
        }
