"""Substack: a publication's archive (public JSON listing, paginated) and post pages, or its RSS feed.

Works on ``*.substack.com`` and on publications with their own domain (register the link under the
``substack`` platform).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bs4 import BeautifulSoup

from twin_platform.collection.crawlers.article import (
    ExtractedArticle,
    article_draft,
    extract_article,
    safe_date,
)
from twin_platform.collection.crawlers.base import JSON, CrawlResult, CrawlSession
from twin_platform.collection.crawlers.feeds import crawl_feed
from twin_platform.collection.importers.text import parse_html
from twin_platform.domain.crawling import FetchError
from twin_platform.domain.documents import Platform

PAGE_SIZE = 12
MAX_PAGES = 500


def extract_post(html: str, url: str) -> ExtractedArticle:
    """A Substack post page: the ``available-content`` body when present, generic extraction otherwise."""
    generic = extract_article(html, url)
    soup = BeautifulSoup(html, "lxml")
    body = soup.select_one("div.available-content div.body") or soup.select_one("div.body.markup")
    if body is None:
        return generic
    title_tag = soup.select_one("h1.post-title")
    return ExtractedArticle(
        title=title_tag.get_text(" ", strip=True) if title_tag else generic.title,
        text=parse_html(str(body)).text or generic.text,
        author=generic.author,
        published_at=generic.published_at,
        canonical_url=generic.canonical_url,
        language=generic.language,
    )


class SubstackCrawler:
    platform = Platform.SUBSTACK

    def crawl(self, url: str, session: CrawlSession) -> CrawlResult:
        parts = urlsplit(url)
        path = parts.path.rstrip("/")
        if path.endswith("/feed"):
            return crawl_feed(url, session, self.platform)
        if "/p/" in path:
            return self._post(url, session, CrawlResult(source=url), entry={})
        return self._archive(f"{parts.scheme}://{parts.netloc}", session, CrawlResult(source=url))

    def _archive(self, base: str, session: CrawlSession, result: CrawlResult) -> CrawlResult:
        offset = 0
        for _ in range(MAX_PAGES):
            # The listing itself is always fetched: a new post changes it, an edited one may not.
            page_url = f"{base}/api/v1/archive?sort=new&search=&offset={offset}&limit={PAGE_SIZE}"
            entries = session.fetch(page_url, result, accept=JSON, conditional=False).json()
            if not isinstance(entries, list):
                raise FetchError(page_url, "the archive listing is not a JSON list of posts")
            for entry in entries:
                if not isinstance(entry, dict) or not entry.get("canonical_url"):
                    result.skipped.append(f"archive entry at offset {offset} has no canonical_url")
                    continue
                if entry.get("type") not in (None, "newsletter"):
                    result.skipped.append(f"{entry['canonical_url']}: a {entry.get('type')} post, not text")
                    continue
                if entry.get("audience") == "only_paid":
                    result.skipped.append(f"{entry['canonical_url']}: for paid subscribers only")
                    continue
                try:
                    self._post(str(entry["canonical_url"]), session, result, entry)
                except FetchError as exc:
                    result.skipped.append(str(exc))
            if len(entries) < PAGE_SIZE:
                break
            offset += len(entries)
        return result

    def _post(self, url: str, session: CrawlSession, result: CrawlResult, entry: dict[str, Any]) -> CrawlResult:
        response = session.fetch(url, result)
        if response.not_modified:
            return result
        post = extract_post(response.text, response.url)
        metadata = {"subtitle": entry["subtitle"]} if entry.get("subtitle") else {}
        draft = article_draft(post, url, self.platform, metadata=metadata)
        updates: dict[str, Any] = {}
        if entry.get("title"):
            updates["title"] = " ".join(str(entry["title"]).split())
        if entry.get("post_date") and safe_date(entry["post_date"]):
            updates["published_at"] = safe_date(entry["post_date"])
        result.documents.append(draft.model_copy(update=updates) if updates else draft)
        return result
