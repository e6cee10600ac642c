"""What every crawler shares: a crawl session (conditional fetches) and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from twin_platform.domain.crawling import Fetcher, FetchResponse, Validators, ValidatorStore
from twin_platform.domain.documents import DocumentDraft, Platform

HTML = ("text/html", "application/xhtml+xml")
FEEDS = ("application/rss+xml", "application/atom+xml", "application/xml", "text/xml", "application/rdf+xml")
JSON = ("application/json",)


@dataclass
class CrawlResult:
    source: str
    documents: list[DocumentDraft] = field(default_factory=list)
    not_modified: int = 0  # pages the server said were unchanged since the last crawl (HTTP 304)
    skipped: list[str] = field(default_factory=list)  # entries left out on purpose, with the reason
    validators: dict[str, Validators] = field(default_factory=dict)  # to remember once stored


class CrawlSession:
    """One crawl of one source: conditional fetches against remembered validators."""

    def __init__(self, fetcher: Fetcher, store: ValidatorStore | None, *, respect_robots: bool = True) -> None:
        self.fetcher = fetcher
        self.store = store
        self.respect_robots = respect_robots

    def fetch(
        self, url: str, result: CrawlResult, *, accept: tuple[str, ...] = HTML, conditional: bool = True
    ) -> FetchResponse:
        known = self.store.load([url]).get(url) if conditional and self.store is not None else None
        response = self.fetcher.get(url, accept=accept, validators=known, respect_robots=self.respect_robots)
        if response.not_modified:
            result.not_modified += 1
        elif conditional and response.validators:
            result.validators[url] = response.validators
        return response


class Crawler(Protocol):
    platform: Platform

    def crawl(self, url: str, session: CrawlSession) -> CrawlResult: ...
