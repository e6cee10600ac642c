"""LinkedIn: public post and article pages, where LinkedIn shows them without login.

LinkedIn shows most pages only to signed-in members; then the crawl fails with a clear error that
points to the LinkedIn data-export importer, which is the reliable way to get an author's posts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bs4 import BeautifulSoup

from twin_platform.collection.crawlers.article import (
    ARTICLE_TYPES,
    article_draft,
    extract_article,
    json_ld_objects,
    ld_author,
    ld_type,
    safe_date,
)
from twin_platform.collection.crawlers.base import CrawlResult, CrawlSession
from twin_platform.domain.crawling import FetchError, HttpStatusError, LoginWall
from twin_platform.domain.documents import Category, DocumentDraft, Platform

EXPORT_HELP = (
    "LinkedIn shows this page only to signed-in members. Get your data instead: LinkedIn > Settings > "
    "Data privacy > Get a copy of your data (Shares and Articles), then run: "
    "twin import <the downloaded .zip> --author NAME"
)
_WALL_PATHS = ("/authwall", "/login", "/uas/login", "/checkpoint", "/signup")


def _is_login_wall(final_url: str, html: str) -> bool:
    if urlsplit(final_url).path.startswith(_WALL_PATHS):
        return True
    soup = BeautifulSoup(html, "lxml")
    title = soup.title.get_text(" ", strip=True).lower() if soup.title else ""
    return bool(soup.select_one("form.authwall-join-form, div.authwall, #join-form, main.authwall")) or (
        title.startswith(("sign up", "log in", "sign in")) and not json_ld_objects(html)
    )


def category_for(url: str) -> Category:
    return Category.ARTICLE if "/pulse/" in urlsplit(url).path else Category.POST


class LinkedInCrawler:
    platform = Platform.LINKEDIN

    def crawl(self, url: str, session: CrawlSession) -> CrawlResult:
        path = urlsplit(url).path
        if path.startswith("/in/") or path.startswith("/company/"):
            raise LoginWall(url, "a profile's activity is not public. " + EXPORT_HELP)
        result = CrawlResult(source=url)
        try:
            response = session.fetch(url, result)
        except HttpStatusError as exc:
            if exc.status in {401, 403, 999}:  # 999: LinkedIn's answer to clients it will not serve
                raise LoginWall(url, f"HTTP {exc.status}. {EXPORT_HELP}") from None
            raise
        if response.not_modified:
            return result
        html = response.text
        if _is_login_wall(response.url, html):
            raise LoginWall(url, EXPORT_HELP)
        result.documents.append(self._document(url, response.url, html))
        return result

    def _document(self, url: str, final_url: str, html: str) -> DocumentDraft:
        category = category_for(final_url)
        for item in json_ld_objects(html):
            if not ld_type(item) & ARTICLE_TYPES:
                continue
            text = str(item.get("articleBody") or item.get("text") or "").strip()
            if not text:
                continue
            return DocumentDraft(
                category=category,
                platform=self.platform,
                source_url=url,
                title=str(item.get("headline") or item.get("name") or text.split("\n")[0][:120]),
                content=text,
                published_at=safe_date(item.get("datePublished")),
                language=str(item.get("inLanguage") or "") or None,
                metadata={"crawler": "linkedin", **({"byline": a} if (a := ld_author(item)) else {})},
            )
        try:
            article = extract_article(html, final_url)
        except FetchError:
            raise FetchError(url, "no post text found on the LinkedIn page") from None
        return article_draft(article, url, self.platform, category=category)
