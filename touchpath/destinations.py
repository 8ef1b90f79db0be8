"""Which network addresses outbound webhook deliveries may reach (pure: no I/O).

By default only public unicast addresses: loopback, private (RFC 1918), link-local (incl. the
cloud metadata address 169.254.169.254), CGNAT (100.64.0.0/10), unique-local (fc00::/7),
multicast, unspecified, reserved and documentation ranges are refused. IPv6 forms that carry
an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``)
are judged by that IPv4 address. Networks listed in ``TOUCHPATH_WEBHOOK_ALLOWED_NETWORKS``
are allowed whatever they are, for receivers inside a self-hosted network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def parse_networks(text: str) -> tuple[Network, ...]:
    """``10.0.0.0/8, fd00::/8, 127.0.0.1`` → networks (host bits are ignored)."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP network (CIDR, e.g. 10.0.0.0/8)") from None
    return tuple(networks)


def ip_literal(host: str) -> Address | None:
    """The address ``host`` spells, in any form a resolver takes as a number (``127.1``,
    ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1``, ``[::1]``); None for a name."""
    text = host.strip().removeprefix("[").removesuffix("]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_number(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = [n for n in numbers if n is not None]
    room = 8 * (4 - len(head))
    if any(n > 255 for n in head) or last >= 1 << room:
        return None
    value = 0
    for n in head:
        value = value << 8 | n
    return ipaddress.IPv4Address(value << room | last)


def _number(part: str) -> int | None:
    """One part of an inet_aton address: decimal, ``0x`` hex or ``0`` octal."""
    try:
        if part[:2].lower() == "0x":
            return int(part[2:], 16) if part[2:] else 0
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def unwrap(address: Address) -> Address:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address.sixtofour:
            return address.sixtofour
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def blocked(address: Address, allowed: Iterable[Network] = ()) -> bool:
    """True when a delivery must not connect to ``address``."""
    inner = unwrap(address)
    if any(a in net for net in allowed for a in {address, inner} if a.version == net.version):
        return False
    return not inner.is_global or inner.is_multicast or inner.is_reserved


def why_blocked(address: Address) -> str:
    """A short name of the kind of address refused (for a 400's reason)."""
    inner = unwrap(address)
    for kind, found in (
        ("unspecified", inner.is_unspecified),
        ("loopback", inner.is_loopback),
        ("link-local", inner.is_link_local),
        ("multicast", inner.is_multicast),
        ("CGNAT", inner in ipaddress.IPv4Network("100.64.0.0/10")),
        ("unique-local", inner in ipaddress.IPv6Network("fc00::/7")),
        ("private", inner.is_private),
    ):
        if found:
            return kind
    return "non-public"
