"""Which addresses webhook deliveries may reach, and how IP literals are spelled (pure)."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchpath.destinations import blocked, ip_literal, parse_networks, unwrap

REFUSED = [
    "127.0.0.1",
    "127.255.0.9",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.10",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "2002:7f00:1::1",
    "64:ff9b::a9fe:a9fe",
    "2001:db8::1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("text", REFUSED)
def test_non_public_addresses_are_refused(text: str) -> None:
    assert blocked(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_allowed(text: str) -> None:
    assert not blocked(ipaddress.ip_address(text))


def test_listed_networks_are_allowed_and_nothing_else() -> None:
    allowed = parse_networks("127.0.0.0/8, ::1, 10.20.0.0/16")
    assert not blocked(ipaddress.ip_address("127.0.0.1"), allowed)
    assert not blocked(ipaddress.ip_address("::ffff:127.0.0.1"), allowed)
    assert not blocked(ipaddress.ip_address("::1"), allowed)
    assert not blocked(ipaddress.ip_address("10.20.3.4"), allowed)
    assert blocked(ipaddress.ip_address("10.21.3.4"), allowed)
    assert blocked(ipaddress.ip_address("169.254.169.254"), allowed)
    with pytest.raises(ValueError, match="not an IP network"):
        parse_networks("10.0.0.0/8,intranet")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_every_spelling_of_an_address_is_recognised(host: str, address: str) -> None:
    assert ip_literal(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["localhost", "example.com", "1.2.3.4.5", "08.0.0.1", "1..2", ""])
def test_names_are_not_literals(host: str) -> None:
    assert ip_literal(host) is None


@given(st.integers(0, 2**32 - 1), st.sampled_from(["{}", "0x{:x}", "0{:o}"]))
def test_literals_agree_with_inet_aton(value: int, spelling: str) -> None:
    host = spelling.format(value)
    assert ip_literal(host) == ipaddress.IPv4Address(socket.inet_aton(host))


def test_embedded_ipv4_is_unwrapped() -> None:
    assert unwrap(ipaddress.ip_address("::ffff:1.2.3.4")) == ipaddress.ip_address("1.2.3.4")
    assert unwrap(ipaddress.ip_address("64:ff9b::102:304")) == ipaddress.ip_address("1.2.3.4")
