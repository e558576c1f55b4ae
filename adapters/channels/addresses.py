"""The SSRF guard for webhooks: which network addresses tidings may connect to.

A webhook URL is supplied by whoever edits recipients, and the runner usually sits
inside a private network next to databases and a cloud metadata service. So a
destination is refused unless every address it resolves to is globally routable,
and the sender connects to an address checked here, never to a name resolved again
later (DNS rebinding). Operators who do want internal receivers allow-list their
networks in ``TIDINGS_WEBHOOK_ALLOWED_NETWORKS``.

Python's ``is_global`` alone is not enough (depending on the version it calls
multicast, NAT64 and IETF-reserved ranges global), so the classification names each
kind of non-global range itself and looks inside addresses that embed an IPv4 one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable

import attrs

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_NETWORKS_SETTING = "TIDINGS_WEBHOOK_ALLOWED_NETWORKS"

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
"""The well-known NAT64 prefix: the last 32 bits are the IPv4 address reached."""

_NAMED_RANGES: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.IPv4Network("100.64.0.0/10"), "shared address space (carrier-grade NAT)"),
    (ipaddress.IPv4Network("192.0.0.0/24"), "reserved for IETF protocol assignments"),
    (ipaddress.IPv4Network("192.0.2.0/24"), "a documentation range"),
    (ipaddress.IPv4Network("198.51.100.0/24"), "a documentation range"),
    (ipaddress.IPv4Network("203.0.113.0/24"), "a documentation range"),
    (ipaddress.IPv4Network("198.18.0.0/15"), "a benchmarking range"),
    (ipaddress.IPv6Network("2001:db8::/32"), "a documentation range"),
    (ipaddress.IPv6Network("3fff::/20"), "a documentation range"),
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "local-use NAT64"),
)
"""Non-global ranges that some Python versions misclassify, with a clearer name."""

_PROPERTIES: tuple[tuple[Callable[[IPAddress], bool], str], ...] = (
    (lambda a: a.is_loopback, "loopback"),
    (lambda a: a.is_unspecified, "unspecified"),
    (lambda a: a.is_link_local, "link-local"),
    (lambda a: a.is_multicast, "multicast"),
    (lambda a: isinstance(a, ipaddress.IPv6Address) and a.is_site_local, "site-local"),
    (lambda a: a.is_private, "private"),
    (lambda a: a.is_reserved, "reserved"),
    (lambda a: not a.is_global, "not globally routable"),
)


def parse_allowed_networks(text: str) -> tuple[IPNetwork, ...]:
    """The allow-list from its setting: comma-separated CIDRs (a bare address is a /32
    or /128); empty means nothing beyond global addresses is allowed."""
    networks: list[IPNetwork] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as error:
            raise ValueError(
                f"{ALLOWED_NETWORKS_SETTING}: {entry!r} is not a network: {error}"
            ) from None
    return tuple(networks)


def _kind(address: IPAddress) -> str | None:
    """What makes ``address`` non-global, or None when it is globally routable."""
    for network, name in _NAMED_RANGES:
        if address in network:
            return name
    for test, name in _PROPERTIES:
        if test(address):
            return name
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    return None


@attrs.frozen
class AddressGuard:
    """Decides whether a resolved address may be connected to; resolves host names."""

    allowed: tuple[IPNetwork, ...] = ()

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` must not be connected to, or None when it may.

        An address embedding an IPv4 one (IPv4-mapped, NAT64, 6to4) is judged by the
        IPv4 address it leads to, since that is the host reached: the well-known NAT64
        prefix itself counts as reserved, and ``::ffff:127.0.0.1`` is loopback. The
        allow-list applies to the address and, for IPv4-mapped ones, to the IPv4 form.
        """
        embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        if self._allows(address):
            return None
        if embedded is None:
            kind = _kind(address)
            return None if kind is None else f"{address} is {kind}"
        how, inner = embedded
        if how == "IPv4-mapped" and self._allows(inner):
            return None
        inner_kind = _kind(inner)
        return None if inner_kind is None else f"{address} is {how} {inner}, which is {inner_kind}"

    def _allows(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allowed)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every distinct address ``host`` resolves to, in the resolver's order.

        Raises ``OSError`` (``socket.gaierror``) when the name does not resolve.
        """
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: list[IPAddress] = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(str(sockaddr[0]))
            if address not in addresses:
                addresses.append(address)
        return addresses
