"""API keys and rate limits (the guard that applies them is :mod:`twin_platform.api.guards`).

- Keys travel in ``Authorization: Bearer <key>`` or ``X-API-Key``; a key in the URL is refused (URLs end
  up in access logs, which :mod:`twin_platform.api.access_log` scrubs as well).
- :class:`KeyVerifier` caches answers, valid and invalid, for ``ttl`` seconds: a revoked key stops
  working within that window, and a guessed key costs one database lookup per window, not per request.
- Failed authentication is limited per client address (:class:`TokenBuckets`, in memory: it exists to
  spare the database, so it must not cost a lookup itself); per worker process.
- Authenticated requests are limited per key by a token bucket in Postgres (``PostgresRateLimiter``),
  shared by every worker process and replica.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from typing import Any

from cachetools import TTLCache
from litestar.connection import ASGIConnection

from twin_platform.adapters.postgres.api_store import ApiKeyStore

KEY_QUERY_PARAMETERS = ("api_key", "apikey", "key", "token", "access_token")
MISS = object()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class KeyVerifier:
    """Verifies keys against their stored hashes, remembering each answer for ``ttl`` seconds."""

    def __init__(
        self, store: ApiKeyStore, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic, size: int = 10_000
    ) -> None:
        self.store = store
        self._cache: TTLCache[str, str | None] = TTLCache(maxsize=size, ttl=ttl, timer=clock)
        self._lock = threading.Lock()

    def cached(self, key: str) -> object:
        """The cached answer for ``key`` (a name, or None for a refused key), or ``MISS``."""
        with self._lock:
            return self._cache.get(key, MISS)

    def name_for(self, key: str) -> str | None:
        """The key's name, or None; looks the key up in the database unless the answer is cached."""
        found = self.cached(key)
        if found is not MISS:
            return found if isinstance(found, str) else None
        name = self.store.verify(key)
        with self._lock:
            self._cache[key] = name
        return name


class TokenBuckets:
    """In-memory token buckets by key (``per_minute`` tokens, refilled continuously); idle buckets expire."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, size: int = 100_000) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: TTLCache[str, tuple[float, float]] = TTLCache(
            maxsize=size, ttl=60.0 / self.rate * self.capacity + 1, timer=clock
        )
        self._lock = threading.Lock()

    def _tokens(self, key: str, now: float) -> float:
        tokens, stamp = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - stamp) * self.rate)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token again (0 when it has one); takes nothing."""
        with self._lock:
            tokens = self._tokens(key, self._clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: str) -> None:
        """Use one token of ``key`` (going no lower than empty)."""
        with self._lock:
            now = self._clock()
            self._buckets[key] = (max(0.0, self._tokens(key, now) - 1), now)


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return connection.headers.get("x-api-key", "").strip()
