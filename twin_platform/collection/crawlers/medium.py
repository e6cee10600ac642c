"""Medium: an author's profile through its public RSS feed (full post content), or one article page."""

from __future__ import annotations

from urllib.parse import urlsplit

from twin_platform.collection.crawlers.article import ArticleCrawler
from twin_platform.collection.crawlers.base import CrawlResult, CrawlSession
from twin_platform.collection.crawlers.feeds import crawl_feed
from twin_platform.domain.documents import Platform


def medium_feed_url(url: str) -> str | None:
    """The RSS feed behind a Medium profile URL, or None when the URL is an article.

    ``medium.com/@jane`` -> ``medium.com/feed/@jane``; ``jane.medium.com`` -> ``jane.medium.com/feed``;
    a ``/feed`` URL is its own feed.
    """
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    segments = [s for s in parts.path.split("/") if s]
    if segments and segments[0] == "feed":
        return url
    if len(segments) == 1 and segments[0].startswith("@"):
        return f"{base}/feed/{segments[0]}"
    host = (parts.hostname or "").lower()
    if not segments and host.endswith(".medium.com"):
        return f"{base}/feed"
    return None


class MediumCrawler:
    platform = Platform.MEDIUM

    def crawl(self, url: str, session: CrawlSession) -> CrawlResult:
        feed = medium_feed_url(url)
        if feed is not None:
            return crawl_feed(feed, session, self.platform, CrawlResult(source=url))
        article = ArticleCrawler()
        article.platform = self.platform
        return article.crawl(url, session)
