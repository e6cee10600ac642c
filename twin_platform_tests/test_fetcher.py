"""The fetcher and the SSRF guard, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from twin_platform.adapters.git import shallow_clone
from twin_platform.adapters.http.fetcher import FetchPolicy, PoliteFetcher
from twin_platform.adapters.http.retry_after import parse_retry_after
from twin_platform.adapters.http.safety import UrlGuard, system_resolver
from twin_platform.domain.crawling import (
    BlockedURL,
    FetchError,
    HttpStatusError,
    ResponseTooLarge,
    RobotsDisallowed,
    UnexpectedContentType,
)
from twin_platform_tests.web.pages import article_page
from twin_platform_tests.web.server import Page, Site, serve
from twin_platform_tests.web.tls import issue_certificates

# RFC 6761: names under .invalid never resolve, so only a connection to the pinned address can reach the site.
UNRESOLVABLE = "rebind.invalid"


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
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    in_a_minute = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 58 <= (parse_retry_after(in_a_minute) or 0) <= 60
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None


def test_retry_after_as_an_http_date_is_honoured(fast_policy: FetchPolicy, site: Site):
    sleeps: list[float] = []
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    site.route(
        "/busy", [Page("busy", status=503, headers={"Retry-After": later}, etag=False), Page(article_page("Ok"))]
    )
    with PoliteFetcher(UrlGuard.from_setting("127.0.0.1"), fast_policy, sleep=sleeps.append) as fetcher:
        assert fetcher.get(site.url("/busy"), respect_robots=False).status == 200
    assert len(sleeps) == 1
    assert 18 <= sleeps[0] <= 20  # the date has one-second resolution


def test_backoff_without_retry_after_grows_exponentially_with_jitter(site: Site):
    sleeps: list[float] = []
    site.route("/down", Page("oops", status=502, etag=False))
    policy = FetchPolicy(max_retries=5, backoff_base=1.0, backoff_max=4.0, min_interval_per_host=0.0)
    with (
        PoliteFetcher(UrlGuard.from_setting("127.0.0.1"), policy, sleep=sleeps.append) as fetcher,
        pytest.raises(FetchError, match=r"/down: HTTP 502 after 6 attempts"),
    ):
        fetcher.get(site.url("/down"), respect_robots=False)
    assert len(sleeps) == 5
    for attempt, slept in enumerate(sleeps):
        assert 0 <= slept <= min(4.0, 2**attempt)  # a random wait below a doubling, capped window


# --- DNS rebinding: connections go to the very address the guard checked ---------------------------------


def rebinding_resolver(first: str, later: str, calls: list[str]):
    """Answers ``first`` to the first lookup and ``later`` to every other one, like a rebinding DNS server."""

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return [first if len(calls) == 1 else later]

    return resolve


def test_unresolvable_names_are_unresolvable():
    with pytest.raises(OSError, match="cannot resolve"):
        system_resolver(UNRESOLVABLE, 80)


def test_each_hop_connects_to_the_address_its_check_resolved(fast_policy: FetchPolicy, site: Site):
    # The guard resolves the name to the local site; the system cannot resolve it at all. The redirect's
    # target is fetched only if that connection, too, goes to the address the guard checked.
    site.route("/start", Page("", status=302, headers={"Location": f"http://{UNRESOLVABLE}:{site.port}/page"}))
    site.route("/page", Page(article_page("Pinned")))
    guard = UrlGuard.from_setting("127.0.0.1", resolver=fake_resolver({UNRESOLVABLE: ["127.0.0.1"]}))
    with PoliteFetcher(guard, fast_policy) as fetcher:
        response = fetcher.get(site.url("/start"), respect_robots=False)
        assert response.url == f"http://{UNRESOLVABLE}:{site.port}/page"
        assert "Pinned" in response.text
        assert site.hits_for("/page")[-1].headers["host"] == f"{UNRESOLVABLE}:{site.port}"


def test_a_rebound_name_does_not_reach_the_address_it_rebinds_to(fast_policy: FetchPolicy, site: Site):
    # The guard's lookup answers 127.0.0.2 (allowed here, standing in for a public address where nothing
    # listens); every later lookup answers 127.0.0.1, which is also what the system resolver gives for
    # localhost. A client that resolves again after the check reaches the local site.
    site.route("/secret", Page(article_page("Secret")))
    calls: list[str] = []
    guard = UrlGuard.from_setting("127.0.0.2", resolver=rebinding_resolver("127.0.0.2", "127.0.0.1", calls))
    with PoliteFetcher(guard, fast_policy) as fetcher, pytest.raises(FetchError, match="network error"):
        fetcher.get(f"http://localhost:{site.port}/secret", respect_robots=False)
    assert calls == ["localhost"]  # one lookup, reused by the retries
    assert site.hits_for("/secret") == []
    # The other way round: the checked answer is the forbidden one, and nothing connects at all.
    strict = UrlGuard.from_setting("", resolver=rebinding_resolver("127.0.0.1", "93.184.216.34", []))
    with (
        PoliteFetcher(strict, fast_policy) as fetcher,
        pytest.raises(BlockedURL, match=r"localhost resolves to 127\.0\.0\.1, a loopback address"),
    ):
        fetcher.get(f"http://localhost:{site.port}/secret", respect_robots=False)
    assert site.hits_for("/secret") == []


def test_pinned_ipv6_addresses_and_literals(fast_policy: FetchPolicy):
    site = Site()
    site.route("/page", Page(article_page("Six")))
    guard = UrlGuard.from_setting("::1", resolver=fake_resolver({UNRESOLVABLE: ["::1"]}))
    with serve(site, host="::1"), PoliteFetcher(guard, fast_policy) as fetcher:
        assert "Six" in fetcher.get(f"http://{UNRESOLVABLE}:{site.port}/page", respect_robots=False).text
        assert "Six" in fetcher.get(f"http://[::1]:{site.port}/page", respect_robots=False).text
    with PoliteFetcher(UrlGuard.from_setting(""), fast_policy) as fetcher, pytest.raises(BlockedURL, match="loopback"):
        fetcher.get(f"http://[::1]:{site.port}/page", respect_robots=False)
    assert len(site.hits_for("/page")) == 2


def test_https_to_a_pinned_address_verifies_the_certificate_for_the_host_name(fast_policy: FetchPolicy, tmp_path: Path):
    certificates = issue_certificates(tmp_path, UNRESOLVABLE)  # a name only, no IP address
    site = Site()
    site.route("/page", Page(article_page("Secure")))
    guard = UrlGuard.from_setting("127.0.0.1", resolver=fake_resolver({UNRESOLVABLE: ["127.0.0.1"]}))
    with (
        serve(site, tls=certificates.server_context()),
        PoliteFetcher(guard, fast_policy, ssl_context=certificates.client_context()) as fetcher,
    ):
        # SNI and verification use the host name, although the connection goes to 127.0.0.1 ...
        assert "Secure" in fetcher.get(f"https://{UNRESOLVABLE}:{site.port}/page", respect_robots=False).text
        # ... and verification is on: the same server is refused under a name its certificate lacks.
        with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):
            fetcher.get(f"https://127.0.0.1:{site.port}/page", respect_robots=False)
    assert len(site.hits_for("/page")) == 1


def test_git_clone_connects_to_the_checked_address(tmp_path: Path):
    # git resolves host names itself; the clone must go to the address the guard checked. A bare TCP
    # listener records the connection (git then fails the TLS handshake, which is expected here).
    connected = threading.Event()
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.1)

        def accept() -> None:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                connected.set()
                connection.close()

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        port = listener.getsockname()[1]
        guard = UrlGuard.from_setting("127.0.0.1", resolver=fake_resolver({UNRESOLVABLE: ["127.0.0.1"]}))
        try:
            with pytest.raises(FetchError, match="git clone failed"):
                shallow_clone(f"https://{UNRESOLVABLE}:{port}/jane/repo", tmp_path / "repo", guard=guard, timeout=30)
        finally:
            stop.set()
            acceptor.join(5)
    assert connected.is_set()
    with pytest.raises(FetchError, match="ASCII"):  # libcurl would convert the name, and might miss the pin
        shallow_clone("https://bücher.example/jane/repo", tmp_path / "x", guard=UrlGuard.from_setting("bücher.example"))
    assert not (tmp_path / "x").exists()
