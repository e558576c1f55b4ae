"""The SSRF guard's classification and allow-list, without any connection.

Global addresses appear here only as values to classify: nothing is sent to them.
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

import pytest

from tidings.adapters.channels.addresses import AddressGuard, parse_allowed_networks

REFUSED = [
    ("169.254.169.254", "169.254.169.254 is link-local"),
    ("10.0.0.1", "10.0.0.1 is private"),
    ("172.16.0.1", "172.16.0.1 is private"),
    ("192.168.1.1", "192.168.1.1 is private"),
    ("100.64.0.1", "100.64.0.1 is shared address space (carrier-grade NAT)"),
    ("127.0.0.1", "127.0.0.1 is loopback"),
    ("0.0.0.0", "0.0.0.0 is unspecified"),  # noqa: S104 - classified, never bound
    ("224.0.0.1", "224.0.0.1 is multicast"),
    ("255.255.255.255", "255.255.255.255 is private"),
    ("240.0.0.1", "240.0.0.1 is private"),
    ("192.0.0.8", "192.0.0.8 is reserved for IETF protocol assignments"),
    ("192.0.2.1", "192.0.2.1 is a documentation range"),
    ("198.18.0.1", "198.18.0.1 is a benchmarking range"),
    ("fd00::1", "fd00::1 is private"),
    ("fd00:ec2::254", "fd00:ec2::254 is private"),
    ("fe80::1", "fe80::1 is link-local"),
    ("fec0::1", "fec0::1 is site-local"),
    ("ff02::1", "ff02::1 is multicast"),
    ("::1", "::1 is loopback"),
    ("::", ":: is unspecified"),
    ("::a00:1", "::a00:1 is reserved"),
    ("2001:db8::1", "2001:db8::1 is a documentation range"),
    ("64:ff9b:1::1", "64:ff9b:1::1 is local-use NAT64"),
    ("::ffff:127.0.0.1", "::ffff:7f00:1 is IPv4-mapped 127.0.0.1, which is loopback"),
    ("::ffff:10.0.0.1", "::ffff:a00:1 is IPv4-mapped 10.0.0.1, which is private"),
    (
        "::ffff:169.254.169.254",
        "::ffff:a9fe:a9fe is IPv4-mapped 169.254.169.254, which is link-local",
    ),
    ("64:ff9b::a00:1", "64:ff9b::a00:1 is NAT64 10.0.0.1, which is private"),
    ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe is NAT64 169.254.169.254, which is link-local"),
    ("2002:a00:1::", "2002:a00:1:: is 6to4 10.0.0.1, which is private"),
    ("2002:7f00:1::", "2002:7f00:1:: is 6to4 127.0.0.1, which is loopback"),
]

GLOBAL = [
    "93.184.216.34",
    "1.1.1.1",
    "2606:4700::1111",
    "2a00:1450:4001:82b::200e",
    "::ffff:93.184.216.34",
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
]


@pytest.mark.parametrize(("address", "reason"), REFUSED, ids=[a for a, _ in REFUSED])
def test_non_global_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    assert AddressGuard().refusal(ip_address(address)) == reason


@pytest.mark.parametrize("address", GLOBAL)
def test_global_addresses_are_allowed(address: str) -> None:
    assert AddressGuard().refusal(ip_address(address)) is None


@pytest.mark.parametrize(
    ("allowed", "address"),
    [
        ("127.0.0.0/8", "127.0.0.1"),
        ("127.0.0.0/8", "::ffff:127.0.0.1"),
        ("10.0.0.0/8, 192.168.0.0/16", "192.168.1.1"),
        ("fd00::/8", "fd00::1"),
        ("169.254.169.254", "169.254.169.254"),
    ],
)
def test_an_allow_listed_network_is_allowed(allowed: str, address: str) -> None:
    assert AddressGuard(parse_allowed_networks(allowed)).refusal(ip_address(address)) is None


@pytest.mark.parametrize(
    ("allowed", "address"),
    [
        ("127.0.0.0/8", "::1"),
        ("127.0.0.0/8", "10.0.0.1"),
        ("10.0.0.0/8", "64:ff9b::a00:1"),
        ("192.168.1.0/24", "192.168.2.1"),
    ],
)
def test_the_allow_list_covers_only_its_networks(allowed: str, address: str) -> None:
    assert AddressGuard(parse_allowed_networks(allowed)).refusal(ip_address(address)) is not None


def test_the_allow_list_setting_parses_comma_separated_networks() -> None:
    assert parse_allowed_networks("") == ()
    assert parse_allowed_networks(" , ") == ()
    assert [str(n) for n in parse_allowed_networks(" 10.0.0.0/8 ,fd00::/8,127.0.0.1 ")] == [
        "10.0.0.0/8",
        "fd00::/8",
        "127.0.0.1/32",
    ]


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "localhost", "10.0.0.0/33", "::1/129"])
def test_a_bad_allow_list_entry_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match="TIDINGS_WEBHOOK_ALLOWED_NETWORKS") as raised:
        parse_allowed_networks(f"127.0.0.0/8,{entry}")

    assert repr(entry) in str(raised.value)


def test_resolve_uses_the_system_resolver() -> None:
    addresses = asyncio.run(AddressGuard().resolve("localhost", 80))

    assert addresses
    assert all(address.is_loopback for address in addresses)
    assert len(set(addresses)) == len(addresses)
