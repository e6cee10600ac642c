"""RSS and Atom feeds that carry full post content (Medium profiles, Substack publications)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import Any

import feedparser  # type: ignore[import-untyped]

from twin_platform.collection.crawlers.base import FEEDS, CrawlResult, CrawlSession
from twin_platform.collection.importers.text import parse_html
from twin_platform.domain.crawling import FetchError
from twin_platform.domain.documents import Category, DocumentDraft, Platform


def _entry_date(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC) if parsed else None


def _entry_html(entry: Any) -> str:
    contents = entry.get("content") or []
    if contents:
        return str(max(contents, key=lambda c: len(c.get("value", ""))).get("value", ""))
    return str(entry.get("summary") or "")


def crawl_feed(url: str, session: CrawlSession, platform: Platform, result: CrawlResult | None = None) -> CrawlResult:
    result = result or CrawlResult(source=url)
    response = session.fetch(url, result, accept=FEEDS)
    if response.not_modified:
        return result
    feed = feedparser.parse(
        response.content, response_headers={"content-type": response.headers.get("content-type", "")}
    )
    if not feed.entries:
        problem = getattr(feed, "bozo_exception", None)
        if problem is not None:
            raise FetchError(url, f"is not a valid RSS/Atom feed ({problem})")
        return result
    language = feed.feed.get("language")
    for entry in feed.entries:
        link = str(entry.get("link") or "").strip()
        text = parse_html(_entry_html(entry)).text
        if not link.startswith(("http://", "https://")):
            result.skipped.append(f"feed entry {entry.get('title', '?')!r} has no http(s) link")
            continue
        if not text:
            result.skipped.append(f"{link}: the feed entry has no content")
            continue
        metadata: dict[str, Any] = {"crawler": platform.value, "feed": url}
        tags = [t.get("term") for t in entry.get("tags", []) if t.get("term")]
        if tags:
            metadata["tags"] = tags
        if entry.get("author"):
            metadata["byline"] = str(entry["author"])
        result.documents.append(
            DocumentDraft(
                category=Category.ARTICLE,
                platform=platform,
                source_url=link,
                title=str(entry.get("title") or ""),
                content=text,
                published_at=_entry_date(entry),
                language=str(language) if language else None,
                metadata=metadata,
            )
        )
    return result
