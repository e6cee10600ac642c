"""Pick the crawler for a URL: by the platform it was registered under, else by its host."""

from __future__ import annotations

from dataclasses import dataclass

from twin_platform.collection.crawlers.article import ArticleCrawler
from twin_platform.collection.crawlers.base import Crawler, CrawlResult, CrawlSession
from twin_platform.collection.crawlers.github import CloneFunction, GitHubCrawler, RepositoryLimits
from twin_platform.collection.crawlers.linkedin import LinkedInCrawler
from twin_platform.collection.crawlers.medium import MediumCrawler
from twin_platform.collection.crawlers.substack import SubstackCrawler
from twin_platform.domain.crawling import Fetcher, ValidatorStore
from twin_platform.domain.documents import Platform, platform_for_url


@dataclass
class CrawlEnvironment:
    """The crawlers' clients: HTTP, remembered validators, git."""

    fetcher: Fetcher
    validators: ValidatorStore | None
    clone: CloneFunction
    repository_limits: RepositoryLimits
    max_workers: int = 4

    def crawler_for(self, url: str, platform: Platform | None = None) -> Crawler:
        """A custom domain works when the link was registered under its platform (e.g. ``substack``)."""
        if platform is None:
            platform = platform_for_url(url) if url.startswith(("http://", "https://")) else Platform.GITHUB
        if platform is Platform.MEDIUM:
            return MediumCrawler()
        if platform is Platform.SUBSTACK:
            return SubstackCrawler()
        if platform is Platform.LINKEDIN:
            return LinkedInCrawler()
        if platform is Platform.GITHUB:
            return GitHubCrawler(self.clone, self.repository_limits)
        return ArticleCrawler()

    def crawl(self, url: str, platform: Platform | None = None, *, respect_robots: bool = True) -> CrawlResult:
        session = CrawlSession(self.fetcher, self.validators, respect_robots=respect_robots)
        return self.crawler_for(url, platform).crawl(url, session)
