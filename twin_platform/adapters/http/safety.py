"""SSRF guard: only http(s) URLs whose host resolves to public addresses, unless explicitly allowed.

``TWIN_CRAWL_ALLOWED_HOSTS`` lists exceptions: host names (``intranet.example``) or networks
(``127.0.0.1``, ``10.0.0.0/8``). Every address a host resolves to must pass, and every redirect is
checked again before it is followed. :meth:`UrlGuard.check` returns the addresses it checked: callers
connect to those and never resolve the name again (see :mod:`twin_platform.adapters.http.pinning`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from twin_platform.domain.crawling import BlockedURL, FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata endpoints (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba, Oracle): refused even when a
# broader network is allowed, unless listed on their own.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})

Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc.strerror}") from None
    return sorted({str(info[4][0]) for info in infos})


def _forbidden_kind(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        return _forbidden_kind(mapped)
    for kind, flag in (
        ("a loopback address", address.is_loopback),
        ("an unspecified address", address.is_unspecified),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a shared (carrier-grade NAT) address", address in ipaddress.ip_network("100.64.0.0/10")),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
    ):
        if flag:
            return kind
    return None


@dataclass(frozen=True)
class UrlGuard:
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver

    @classmethod
    def from_setting(cls, value: str | Iterable[str], resolver: Resolver = system_resolver) -> UrlGuard:
        entries = [e.strip() for e in (value.split(",") if isinstance(value, str) else value) if e.strip()]
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks), resolver)

    def _allowed(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allowed_networks)

    def check(self, url: str) -> tuple[IPAddress, ...]:
        """Raise :class:`BlockedURL` unless ``url`` is http(s) to a public (or explicitly allowed) host.

        Returns the addresses the host resolved to, each of them checked. Connect to these only: a second
        lookup may answer differently (DNS rebinding: public for the check, 127.0.0.1 for the connection).
        """
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise BlockedURL(url, f"is not a valid URL ({exc})") from None
        if parts.scheme not in {"http", "https"}:
            raise BlockedURL(url, f"only http and https URLs are crawled, not {parts.scheme or 'a bare path'!r}")
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise BlockedURL(url, "has no host")
        if parts.username or parts.password:
            raise BlockedURL(url, "carries credentials in the URL; refused")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if host in self.allowed_hosts:
            return (literal,) if literal is not None else self._resolve(url, host, port)
        if host in METADATA_HOSTS:
            raise BlockedURL(url, f"{host} is a cloud metadata host; refused (SSRF protection)")
        addresses = (literal,) if literal is not None else self._resolve(url, host, port)
        for address in addresses:
            if self._allowed(address) and (address not in METADATA_ADDRESSES or self._metadata_listed(address)):
                continue
            kind = _forbidden_kind(address)
            if kind is not None:
                where = f"{address} is" if literal is not None else f"{host} resolves to {address},"
                raise BlockedURL(
                    url,
                    f"{where} {kind}; refused (SSRF protection). "
                    "Allow it explicitly with TWIN_CRAWL_ALLOWED_HOSTS if this is intended",
                )
        return addresses

    def _metadata_listed(self, address: IPAddress) -> bool:
        return any(network.num_addresses == 1 and address in network for network in self.allowed_networks)

    def _resolve(self, url: str, host: str, port: int) -> tuple[IPAddress, ...]:
        try:
            # Zones (``fe80::1%eth0``) are dropped: only link-local addresses have one, refused unless allowed.
            addresses = tuple(dict.fromkeys(ipaddress.ip_address(a.split("%")[0]) for a in self.resolver(host, port)))
        except OSError as exc:
            raise FetchError(url, str(exc)) from None
        if not addresses:
            raise FetchError(url, f"{host} resolves to no address")
        return addresses
