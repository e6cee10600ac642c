"""A polite, safe and robust HTTP GET for crawlers.

- Politeness: robots.txt (cached per host), a minimum interval between requests to one host, a cap
  on concurrent requests (overall and per host), a clear User-Agent.
- Safety: every URL and every redirect target passes the SSRF guard before a connection is made, and
  the connection goes to the very addresses the guard checked (no second DNS lookup: DNS rebinding);
  a maximum response size, enforced while streaming; a content-type check.
- Robustness: connect/read timeouts; retries (tenacity) with exponential backoff and full jitter on
  429, 5xx and network errors, honouring ``Retry-After``.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx
import tenacity

from twin_platform.adapters.http.pinning import PinnedTransport, pinned
from twin_platform.adapters.http.retry_after import parse_retry_after
from twin_platform.adapters.http.safety import IPAddress, UrlGuard
from twin_platform.domain.crawling import (
    FetchError,
    FetchResponse,
    HttpStatusError,
    ResponseTooLarge,
    RobotsDisallowed,
    UnexpectedContentType,
    Validators,
)

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class FetchPolicy:
    user_agent: str = "twin-platform-crawler/0.1 (+https://github.com/twin-platform)"
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_retries: int = 4
    backoff_base: float = 0.5  # seconds: the first retry waits up to this; the window doubles per retry
    backoff_max: float = 30.0  # the window's cap (the wait is drawn uniformly below it: full jitter)
    max_retry_after: float = 60.0  # a longer Retry-After fails the fetch instead of stalling the run
    min_interval_per_host: float = 1.0  # seconds between two requests to one host
    max_concurrency: int = 4
    max_concurrency_per_host: int = 2
    max_response_bytes: int = 10_000_000


class _Retryable(Exception):
    """One attempt failed in a way worth retrying (429, 5xx, network error, timeout)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _HostState:
    def __init__(self, concurrency: int) -> None:
        self.lock = threading.Lock()
        self.next_request_at = 0.0
        self.slots = threading.BoundedSemaphore(concurrency)
        self.robots: RobotFileParser | None = None
        self.robots_lock = threading.Lock()


class PoliteFetcher:
    """Implements :class:`twin_platform.domain.crawling.Fetcher` with httpx. Thread-safe."""

    def __init__(
        self,
        guard: UrlGuard,
        policy: FetchPolicy | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``ssl_context`` replaces the default trust store (e.g. a private CA); ``sleep`` serves the
        per-host spacing and the waits between retries (tests record them instead of waiting)."""
        self.guard = guard
        self.policy = policy or FetchPolicy()
        self._sleep = sleep
        self._backoff = tenacity.wait_random_exponential(
            multiplier=self.policy.backoff_base, max=self.policy.backoff_max
        )
        self._client = httpx.Client(
            follow_redirects=False,
            timeout=httpx.Timeout(
                self.policy.read_timeout, connect=self.policy.connect_timeout, pool=self.policy.read_timeout
            ),
            headers={"User-Agent": self.policy.user_agent, "Accept-Encoding": "gzip, deflate"},
            transport=PinnedTransport(ssl_context=ssl_context),
            trust_env=False,  # no proxy from the environment may route around the guard
        )
        self._slots = threading.BoundedSemaphore(self.policy.max_concurrency)
        self._hosts: dict[str, _HostState] = {}
        self._hosts_lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PoliteFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public ------------------------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        accept: tuple[str, ...] = ("text/html",),
        validators: Validators | None = None,
        respect_robots: bool = True,
    ) -> FetchResponse:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            addresses = self.guard.check(current)
            if respect_robots:
                self._check_robots(current)
            response = self._get_with_retries(current, addresses, accept, validators)
            if response.status in REDIRECT_STATUSES:
                location = response.headers.get("location")
                if not location:
                    raise HttpStatusError(current, response.status, f"redirect ({response.status}) without a Location")
                current = urljoin(current, location)
                continue
            return self._finish(current, response, accept)
        raise FetchError(url, f"more than {MAX_REDIRECTS} redirects")

    # -- internals ---------------------------------------------------------------------------------

    def _host(self, url: str) -> _HostState:
        key = urlsplit(url).netloc.lower()
        with self._hosts_lock:
            state = self._hosts.get(key)
            if state is None:
                state = self._hosts[key] = _HostState(self.policy.max_concurrency_per_host)
            return state

    def _finish(self, url: str, response: FetchResponse, accept: tuple[str, ...]) -> FetchResponse:
        if response.not_modified:
            return response
        if response.status >= 400:
            raise HttpStatusError(url, response.status, f"HTTP {response.status}")
        content_type = response.content_type
        if accept and content_type and not any(content_type == a or content_type.endswith(a) for a in accept):
            raise UnexpectedContentType(url, f"content type {content_type!r} is not one of {', '.join(accept)}")
        return response

    def _check_robots(self, url: str) -> None:
        state = self._host(url)
        with state.robots_lock:
            if state.robots is None:
                state.robots = self._load_robots(url)
        if not state.robots.can_fetch(self.policy.user_agent, url):
            raise RobotsDisallowed(url, "disallowed by the site's robots.txt (configurable per author)")

    def _load_robots(self, url: str) -> RobotFileParser:
        parts = urlsplit(url)
        robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
        parser = RobotFileParser(robots_url)
        try:
            response = self.get(robots_url, accept=(), respect_robots=False)
        except HttpStatusError as exc:
            # RFC 9309: 4xx means no rules; 5xx means the site is unreachable, so assume full disallow.
            parser.parse(["User-agent: *", "Disallow: /"] if exc.status >= 500 else [])
            return parser
        except FetchError as exc:
            logger.warning("robots.txt of %s could not be read (%s); treating the site as allowing", parts.netloc, exc)
            parser.parse([])
            return parser
        parser.parse(response.text.splitlines())
        return parser

    def _wait_turn(self, state: _HostState) -> None:
        with state.lock:
            now = time.monotonic()
            wait = state.next_request_at - now
            state.next_request_at = max(now, state.next_request_at) + self.policy.min_interval_per_host
        if wait > 0:
            self._sleep(wait)

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        """What the server asked for (``Retry-After``), else exponential backoff with jitter."""
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, _Retryable) and error.retry_after is not None:
            return error.retry_after
        return self._backoff(retry_state)

    def _get_with_retries(
        self,
        url: str,
        addresses: tuple[IPAddress, ...],
        accept: tuple[str, ...],
        validators: Validators | None,
    ) -> FetchResponse:
        headers = {"Accept": ", ".join((*accept, "*/*;q=0.1")) if accept else "*/*"}
        if validators and validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators and validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        state = self._host(url)
        attempts = self.policy.max_retries + 1

        def attempt() -> FetchResponse:
            # The slots are held for the request only, not while waiting to retry.
            with self._slots, state.slots:
                self._wait_turn(state)
                try:
                    with pinned(url, addresses):
                        response = self._get_once(url, headers)
                except httpx.TimeoutException:
                    raise _Retryable("timed out") from None
                except httpx.TransportError as exc:
                    raise _Retryable(f"network error ({type(exc).__name__}: {exc})") from None
            if response.status not in RETRY_STATUSES:
                return response
            delay = parse_retry_after(response.headers.get("retry-after"))
            if delay is not None and delay > self.policy.max_retry_after:
                raise FetchError(
                    url, f"HTTP {response.status}: the server asks to retry after {delay:.0f} s, longer than we wait"
                )
            raise _Retryable(f"HTTP {response.status}", delay)

        def log_retry(retry_state: tenacity.RetryCallState) -> None:
            error = retry_state.outcome.exception() if retry_state.outcome else None
            delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
            logger.info("%s: %s, retrying in %.2f s", url, error, delay)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as exc:
            raise FetchError(url, f"{exc.reason} after {attempts} attempts") from None

    def _get_once(self, url: str, headers: dict[str, str]) -> FetchResponse:
        limit = self.policy.max_response_bytes
        with self._client.stream("GET", url, headers=headers) as response:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise ResponseTooLarge(url, f"the response is {int(declared):,} bytes, over the {limit:,}-byte limit")
            body = bytearray()
            if response.status_code not in REDIRECT_STATUSES and response.status_code != 304:
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > limit:
                        raise ResponseTooLarge(url, f"the response is over the {limit:,}-byte limit")
            lowered = {k.lower(): v for k, v in response.headers.items()}
            return FetchResponse(
                url=url,
                status=response.status_code,
                headers=lowered,
                content=bytes(body),
                validators=Validators(etag=lowered.get("etag"), last_modified=lowered.get("last-modified")),
            )
