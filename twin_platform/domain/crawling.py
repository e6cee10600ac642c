"""What crawlers need from the network, and how fetching fails. No I/O here."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)


class FetchError(Exception):
    """A URL that could not be fetched; ``str()`` says why in words a user can act on."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class BlockedURL(FetchError):
    """Refused before connecting: not http(s), or a private, loopback, link-local or metadata address."""


class RobotsDisallowed(FetchError):
    """robots.txt of the site disallows this URL for our user agent."""


class ResponseTooLarge(FetchError):
    pass


class UnexpectedContentType(FetchError):
    pass


class HttpStatusError(FetchError):
    def __init__(self, url: str, status: int, reason: str) -> None:
        super().__init__(url, reason)
        self.status = status


class LoginWall(FetchError):
    """The page is only shown to signed-in users."""


@dataclass(frozen=True)
class Validators:
    """HTTP cache validators of a fetched URL, for conditional re-fetching."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


@dataclass(frozen=True)
class FetchResponse:
    url: str  # the final URL, after redirects
    status: int
    headers: Mapping[str, str]  # lower-case names
    content: bytes = b""
    validators: Validators = field(default_factory=Validators)

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def charset(self) -> str:
        declared = _CHARSET.search(self.headers.get("content-type", ""))
        name = declared.group(1) if declared else None
        if name is None and "html" in self.content_type:
            meta = _META_CHARSET.search(self.content[:4096])
            name = meta.group(1).decode("ascii") if meta else None
        try:
            return codecs.lookup(name).name if name else "utf-8"
        except LookupError:
            return "utf-8"

    @property
    def text(self) -> str:
        """The body decoded by its declared charset (UTF-8 by default); undecodable bytes are replaced."""
        return self.content.decode(self.charset(), errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise FetchError(self.url, f"the response is not valid JSON ({exc.msg})") from None


class Fetcher(Protocol):
    """An HTTP GET that is polite (robots.txt, rate limits), safe (no SSRF) and robust (retries)."""

    def get(
        self,
        url: str,
        *,
        accept: tuple[str, ...] = ("text/html",),
        validators: Validators | None = None,
        respect_robots: bool = True,
    ) -> FetchResponse:
        """Fetch ``url``. With ``validators`` the request is conditional and may answer 304."""
        ...


class ValidatorStore(Protocol):
    """Remembers cache validators per URL between crawls."""

    def load(self, urls: list[str]) -> dict[str, Validators]: ...

    def save(self, validators: Mapping[str, Validators]) -> None: ...
