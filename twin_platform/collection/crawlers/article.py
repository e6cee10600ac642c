"""Any article URL: main-text extraction with trafilatura, metadata from the page itself as fallback."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trafilatura
from bs4 import BeautifulSoup

from twin_platform.collection.crawlers.base import CrawlResult, CrawlSession
from twin_platform.collection.importers.text import InvalidInput, parse_date, parse_html
from twin_platform.domain.crawling import FetchError
from twin_platform.domain.documents import Category, DocumentDraft, Platform

MIN_WORDS = 8
MIN_FALLBACK_WORDS = 20
ARTICLE_TYPES = {
    "Article",
    "NewsArticle",
    "BlogPosting",
    "TechArticle",
    "SocialMediaPosting",
    "DiscussionForumPosting",
    "Report",
}


@dataclass(frozen=True)
class ExtractedArticle:
    title: str
    text: str
    author: str | None
    published_at: datetime | None
    canonical_url: str | None
    language: str | None


def json_ld_objects(html: str) -> list[dict[str, Any]]:
    """Every JSON-LD object on the page (``@graph`` flattened); malformed blocks are ignored."""
    soup = BeautifulSoup(html, "lxml")
    found: list[dict[str, Any]] = []
    for tag in soup.find_all("script", attrs={"type": "application/ld+json"}):
        try:
            data = json.loads(tag.get_text() or "null")
        except json.JSONDecodeError:
            continue
        stack = data if isinstance(data, list) else [data]
        for item in stack:
            if isinstance(item, dict):
                found.append(item)
                graph = item.get("@graph")
                if isinstance(graph, list):
                    found.extend(g for g in graph if isinstance(g, dict))
    return found


def ld_type(item: dict[str, Any]) -> set[str]:
    kind = item.get("@type")
    return {str(k) for k in kind} if isinstance(kind, list) else {str(kind)}


def ld_author(item: dict[str, Any]) -> str | None:
    author = item.get("author")
    if isinstance(author, list):
        author = author[0] if author else None
    if isinstance(author, dict):
        return str(author.get("name") or "") or None
    return str(author) if author else None


def safe_date(value: object) -> datetime | None:
    try:
        return parse_date(value, field="date")
    except InvalidInput:
        return None


def extract_article(html: str, url: str) -> ExtractedArticle:
    """Title, main text (paragraphs kept), author, date, canonical URL and language of an article page."""
    page = parse_html(html)
    extracted = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        include_formatting=True,
        favor_precision=True,
    )
    data: dict[str, Any] = {}
    if isinstance(extracted, dict):
        data = extracted
    elif extracted is not None:
        data = extracted.as_dict()
    text = (data.get("text") or "").strip()
    if not text and len(page.text.split()) >= MIN_FALLBACK_WORDS:
        text = page.text  # trafilatura found no main text; the page's own text is better than nothing
    if len(text.split()) < MIN_WORDS:  # a menu or a cookie banner is not an article
        raise FetchError(url, "no article text found on the page")
    return ExtractedArticle(
        title=str(data.get("title") or page.title or "").strip(),
        text=text,
        author=data.get("author") or page.author,
        published_at=safe_date(page.published) or safe_date(data.get("date")),
        canonical_url=page.canonical_url if page.canonical_url and page.canonical_url.startswith("http") else None,
        language=page.language or data.get("language"),
    )


def article_draft(
    article: ExtractedArticle,
    url: str,
    platform: Platform,
    *,
    category: Category = Category.ARTICLE,
    metadata: dict[str, Any] | None = None,
) -> DocumentDraft:
    meta = {"crawler": platform.value, "fetched_url": url, **(metadata or {})}
    if article.author:
        meta["byline"] = article.author
    return DocumentDraft(
        category=category,
        platform=platform,
        source_url=article.canonical_url or url,
        title=article.title,
        content=article.text,
        published_at=article.published_at,
        language=article.language,
        metadata=meta,
    )


class ArticleCrawler:
    """One article page on any site."""

    platform = Platform.WEB

    def crawl(self, url: str, session: CrawlSession) -> CrawlResult:
        result = CrawlResult(source=url)
        response = session.fetch(url, result)
        if response.not_modified:
            return result
        result.documents.append(article_draft(extract_article(response.text, response.url), url, self.platform))
        return result
