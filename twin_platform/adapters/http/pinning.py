"""Connect to the addresses the SSRF guard checked, never to a second DNS answer (DNS rebinding).

httpx resolves a host name itself when it connects, so a DNS server that answers a public address to the
guard and 127.0.0.1 (or 169.254.169.254) a moment later would slip past the check. :class:`PinnedTransport`
is an httpx transport whose TCP connections go only to the addresses pinned for the request with
:func:`pinned`. The URL keeps its host name, so the ``Host`` header, TLS SNI and certificate verification
all use the name, not the address.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

import httpcore
import httpx

from twin_platform.adapters.http.safety import IPAddress
from twin_platform.domain.crawling import BlockedURL

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's own defaults

# (host as httpcore sees it, port) -> the checked addresses. A context variable, so each thread (each
# request of the thread-safe fetcher) sees only the pins of its own request.
_PINS: ContextVar[Mapping[tuple[str, int], tuple[IPAddress, ...]]] = ContextVar(
    "twin_pinned_addresses", default=MappingProxyType({})
)


def _origin(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    # raw_host is what httpcore hands to connect_tcp: IDNA-encoded, IPv6 without brackets.
    return parsed.raw_host.decode("ascii"), parsed.port or _DEFAULT_PORTS[parsed.scheme]


@contextmanager
def pinned(url: str, addresses: Sequence[IPAddress]) -> Iterator[None]:
    """Within this block, connections to ``url``'s host and port go to ``addresses`` (in order) only."""
    token = _PINS.set({**_PINS.get(), _origin(url): tuple(addresses)})
    try:
        yield
    finally:
        _PINS.reset(token)


class _PinnedBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._tcp = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _PINS.get().get((host, port))
        if not addresses:
            # Fail closed: resolving here would be exactly the unchecked second lookup this module prevents.
            raise BlockedURL(f"{host}:{port}", "no checked address is pinned for this host; refused")
        for address in addresses[:-1]:
            try:
                return self._tcp.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue  # the host's next checked address, as a connect after a lookup would try it
        return self._tcp.connect_tcp(str(addresses[-1]), port, timeout, local_address, socket_options)

    def sleep(self, seconds: float) -> None:
        self._tcp.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's own HTTP transport (pooling, HTTP/1.1, TLS), but connecting only to pinned addresses.

    No proxy and no environment: a proxy would resolve the name itself. ``ssl_context`` replaces the
    default trust store (certifi), e.g. with a private CA; verification is never switched off.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        context = ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=context, trust_env=False, limits=_LIMITS)
        # httpx takes no network backend, but the httpcore pool behind it does: replace the pool with one
        # that uses ours, configured as HTTPTransport configured its own.
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=_LIMITS.max_connections,
            max_keepalive_connections=_LIMITS.max_keepalive_connections,
            keepalive_expiry=_LIMITS.keepalive_expiry,
            network_backend=_PinnedBackend(),
        )
