"""The fetcher and the SSRF guard, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from twin_platform.adapters.http.fetcher import FetchPolicy, PoliteFetcher, _parse_retry_after
from twin_platform.adapters.http.safety import UrlGuard
from twin_platform.domain.crawling import (
    BlockedURL,
    FetchError,
    HttpStatusError,
    ResponseTooLarge,
    RobotsDisallowed,
    UnexpectedContentType,
)
from twin_platform_tests.web.pages import article_page
from twin_platform_tests.web.server import Page, Site


def fake_resolver(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata host"),
        ("http://127.0.0.1:8080/", "a loopback address"),
        ("http://[::1]/", "a loopback address"),
        ("http://[::ffff:10.0.0.1]/", "a private address"),
        ("http://10.1.2.3/", "a private address"),
        ("http://192.168.1.10/", "a private address"),
        ("http://172.16.0.1/", "a private address"),
        ("http://169.254.1.1/", "a link-local address"),
        ("http://100.64.0.1/", "shared"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://intranet.example/", "intranet.example resolves to 10.9.8.7, a private address"),
        ("ftp://example.com/file", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.com/", "only http and https"),
        ("http://user:pw@example.com/", "credentials"),
    ],
)
def test_guard_refuses_unsafe_urls(url: str, why: str):
    guard = UrlGuard.from_setting(
        "", resolver=fake_resolver({"intranet.example": ["10.9.8.7"], "example.com": ["93.184.216.34"]})
    )
    with pytest.raises(BlockedURL) as excinfo:
        guard.check(url)
    assert why in str(excinfo.value)


def test_guard_allows_public_hosts_and_explicit_exceptions():
    resolver = fake_resolver(
        {
            "example.com": ["93.184.216.34"],
            "intranet.example": ["10.9.8.7"],
            "mixed.example": ["93.184.216.34", "127.0.0.1"],
        }
    )
    UrlGuard.from_setting("", resolver=resolver).check("https://example.com/a")
    allowed = UrlGuard.from_setting("intranet.example, 127.0.0.1, 169.254.0.0/16", resolver=resolver)
    allowed.check("http://intranet.example/wiki")
    allowed.check("http://127.0.0.1:9000/")
    allowed.check("http://169.254.1.1/")
    with pytest.raises(BlockedURL, match="metadata"):
        allowed.check("http://169.254.169.254/")  # a broad network does not open the metadata address
    with pytest.raises(BlockedURL, match=r"127\.0\.0\.1"):
        UrlGuard.from_setting("", resolver=resolver).check("http://mixed.example/")  # every address must pass


def test_fetch_follows_redirects_and_checks_content_type(fetcher: PoliteFetcher, site: Site):
    site.route("/old", Page("", status=301, headers={"Location": "/new"}))
    site.route("/new", Page(article_page("New home")))
    site.route("/image.png", Page(b"\x89PNG", content_type="image/png"))
    response = fetcher.get(site.url("/old"))
    assert response.url == site.url("/new")
    assert "New home" in response.text
    with pytest.raises(UnexpectedContentType, match="image/png"):
        fetcher.get(site.url("/image.png"))


def test_redirect_to_a_private_address_is_refused_before_connecting(fetcher: PoliteFetcher, site: Site):
    site.route("/go", Page("", status=302, headers={"Location": "http://10.0.0.1/secret"}))
    site.route("/meta", Page("", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}))
    with pytest.raises(BlockedURL, match=r"10\.0\.0\.1 is a private address"):
        fetcher.get(site.url("/go"))
    with pytest.raises(BlockedURL, match="metadata"):
        fetcher.get(site.url("/meta"))


def test_429_then_success_honours_retry_after(fast_policy: FetchPolicy, site: Site):
    sleeps: list[float] = []
    site.route(
        "/busy",
        [Page("slow down", status=429, headers={"Retry-After": "1"}, etag=False), Page(article_page("Finally"))],
    )
    with PoliteFetcher(UrlGuard.from_setting("127.0.0.1"), fast_policy, sleep=sleeps.append) as fetcher:
        response = fetcher.get(site.url("/busy"))
    assert response.status == 200
    assert len(site.hits_for("/busy")) == 2
    assert sleeps == [1.0]


def test_5xx_is_retried_with_backoff_then_fails_clearly(fetcher: PoliteFetcher, site: Site):
    site.route("/down", Page("oops", status=503, etag=False))
    with pytest.raises(FetchError, match="HTTP 503 after 3 attempts"):
        fetcher.get(site.url("/down"))
    assert len(site.hits_for("/down")) == 3
    site.route("/gone", Page("no", status=404, etag=False))
    with pytest.raises(HttpStatusError, match="HTTP 404"):
        fetcher.get(site.url("/gone"))
    assert len(site.hits_for("/gone")) == 1  # a 404 is not retried


def test_timeout_is_retried_then_reported(fetcher: PoliteFetcher, site: Site):
    site.route("/slow", Page(article_page("Slow"), delay=1.0))
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out after 3 attempts"):
        fetcher.get(site.url("/slow"))
    assert time.monotonic() - started < 10


def test_too_long_retry_after_fails_instead_of_stalling(fetcher: PoliteFetcher, site: Site):
    site.route("/later", Page("later", status=503, headers={"Retry-After": "3600"}, etag=False))
    with pytest.raises(FetchError, match="retry after 3600 s"):
        fetcher.get(site.url("/later"))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "streamed"])
def test_oversized_body_is_refused(fetcher: PoliteFetcher, site: Site, chunked: bool):
    site.route("/huge", Page(b"<p>" + b"x" * 1_200_000 + b"</p>", chunked=chunked))
    with pytest.raises(ResponseTooLarge, match="over the 1,000,000-byte limit"):
        fetcher.get(site.url("/huge"))


def test_robots_txt_is_respected_unless_disabled(fetcher: PoliteFetcher, site: Site):
    site.route("/robots.txt", Page("User-agent: *\nDisallow: /private/\n", content_type="text/plain"))
    site.route("/private/page", Page(article_page("Private")))
    site.route("/public/page", Page(article_page("Public")))
    assert fetcher.get(site.url("/public/page")).status == 200
    with pytest.raises(RobotsDisallowed, match=r"robots\.txt"):
        fetcher.get(site.url("/private/page"))
    assert site.hits_for("/private/page") == []
    assert fetcher.get(site.url("/private/page"), respect_robots=False).status == 200
    assert len(site.hits_for("/robots.txt")) == 1  # cached per host


def test_user_agent_and_conditional_requests(fetcher: PoliteFetcher, site: Site):
    site.route("/page", Page(article_page("Cached")))
    first = fetcher.get(site.url("/page"))
    assert first.validators.etag
    second = fetcher.get(site.url("/page"), validators=first.validators)
    assert second.not_modified
    hit = site.hits_for("/page")[-1]
    assert hit.headers["if-none-match"] == first.validators.etag
    assert hit.headers["user-agent"].startswith("twin-platform-crawler/")


def test_non_utf8_page_is_decoded_by_its_declared_charset(fetcher: PoliteFetcher, site: Site):
    page = article_page("Café crème", charset="windows-1252").encode("cp1252")
    site.route("/cp1252", Page(page, content_type="text/html; charset=windows-1252"))
    site.route("/meta-only", Page(page, content_type="text/html"))
    assert "Café crème" in fetcher.get(site.url("/cp1252")).text
    assert "Café crème" in fetcher.get(site.url("/meta-only")).text


def test_rate_limit_spaces_requests_to_one_host(site: Site):
    site.route("/a", Page(article_page("A")))
    policy = FetchPolicy(min_interval_per_host=0.2, backoff_base=0.01)
    with PoliteFetcher(UrlGuard.from_setting("127.0.0.1"), policy) as fetcher:
        started = time.monotonic()
        for _ in range(4):
            fetcher.get(site.url("/a"), respect_robots=False)
        elapsed = time.monotonic() - started
    assert elapsed >= 0.55  # three waits of 0.2 s between four requests


def test_retry_after_parsing():
    assert _parse_retry_after("7") == 7.0
    assert _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert _parse_retry_after("soon") is None
