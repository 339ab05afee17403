"""Which addresses the bot may connect to, and a connector that enforces it at connect time.

The check lives in the connector rather than in URL validation because only the connector sees the addresses it
is about to dial: a public-looking hostname can resolve to 10.0.0.5, or re-resolve differently between a pre-check
and the connection (DNS rebinding). Checking the exact list that is then dialled closes both gaps.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import ResolveResult

from bot.net.errors import BlockedAddress, InvalidUrl

if TYPE_CHECKING:
    from aiohttp.tracing import Trace

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_SETTING = "FETCH_ALLOW_PRIVATE_NETWORKS"

# Cloud metadata services are also reachable by name; these names are refused even if an allowed network would
# cover the address they resolve to, because no image is ever served from them.
METADATA_HOSTNAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)

# And their addresses (AWS, GCP, Azure, OpenStack: 169.254.169.254; AWS over IPv6; Alibaba; Oracle), refused however
# wide an allowed network is: an operator allowing 169.254.0.0/16 or 100.64.0.0/10 for a device means that device.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)

# Listed explicitly although most are covered by `not is_global`: Python patch releases have changed is_global
# (3.11.7 calls 100.64/10 non-global but multicast and fec0::/10 global), and this list must not move with them.
# 192.0.0.0/24 holds Oracle's 192.0.0.192 metadata address; 100.64/10 holds Alibaba's 100.100.100.200.
_ALWAYS_BLOCKED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/8",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "64:ff9b:1::/48",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
# Labels that the C resolver reads as numbers (decimal, octal 0177, hex 0x7f): "2130706433" and "127.1" are
# 127.0.0.1 to getaddrinfo, so any such host must be decoded and judged, not passed on as a name.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


def parse_allow_networks(value: str) -> tuple[IPNetwork, ...]:
    """Parse the FETCH_ALLOW_PRIVATE_NETWORKS setting: CIDRs or single addresses, separated by commas or spaces."""
    networks: list[IPNetwork] = []
    for item in re.split(r"[\s,]+", value.strip()):
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=True)
        except ValueError:
            raise ValueError(_explain_bad_network(item)) from None
        networks.append(_unmap_network(network))
    return tuple(networks)


def _explain_bad_network(item: str) -> str:
    try:
        loose = ipaddress.ip_network(item, strict=False)
    except ValueError:
        return f"{ALLOW_SETTING}: {item!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8 or 192.168.1.5)"
    return f"{ALLOW_SETTING}: {item!r} has host bits set; did you mean {loose}?"


def _unmap_network(network: IPNetwork) -> IPNetwork:
    # Addresses are judged after unwrapping ::ffff:a.b.c.d, so an allowance written in mapped form must be too.
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_IPV4_MAPPED):
        base = ipaddress.IPv4Address(int(network.network_address) & 0xFFFFFFFF)
        return ipaddress.IPv4Network((base, network.prefixlen - 96))
    return network


def _to_address(ip: IPAddress | str) -> IPAddress:
    if isinstance(ip, str):
        return ipaddress.ip_address(ip)
    return ip


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Blocks every non-public address except those inside ``allow_networks``."""

    allow_networks: tuple[IPNetwork, ...] = ()

    def is_blocked(self, ip: IPAddress | str) -> bool:
        address = _to_address(ip)
        if address in METADATA_ADDRESSES:
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                # The kernel dials ::ffff:a.b.c.d as plain IPv4, so it must be judged as exactly that address.
                return self.is_blocked(address.ipv4_mapped)
            if self._allows(address):
                return False
            if address in _NAT64:
                # A NAT64 gateway forwards to the embedded IPv4 address; judge where the packets end up.
                return self.is_blocked(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
            embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
            if embedded is not None and self.is_blocked(embedded):
                return True
        elif self._allows(address):
            return False
        return _is_special(address)

    def _allows(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.allow_networks)

    def check_host(self, host: str) -> None:
        """Refuse a URL host before any connection: metadata names, and blocked or odd-looking IP literals.

        Raises BlockedAddress or InvalidUrl. Ordinary names pass: their addresses are checked when resolved.
        """
        name = host.strip("[]").rstrip(".").lower()
        if name in METADATA_HOSTNAMES:
            raise BlockedAddress(name)
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            address = None
        if address is not None:
            if self.is_blocked(address):
                raise BlockedAddress(str(address))
            return
        labels = name.split(".")
        if len(labels) <= 4 and all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
            try:
                legacy = ipaddress.IPv4Address(socket.inet_aton(name))
            except OSError:
                legacy = None
            if legacy is not None and self.is_blocked(legacy):
                raise BlockedAddress(str(legacy))
            raise InvalidUrl("write IP addresses in the usual dotted form, like 203.0.113.7")


def _is_special(address: IPAddress) -> bool:
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or any(address.version == net.version and address in net for net in _ALWAYS_BLOCKED)
    )


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that refuses to dial any address its policy blocks.

    Never use it with a proxy (session ``trust_env`` or ``proxy=``): the connector would then judge the proxy's
    address, not the target's.
    """

    def __init__(self, policy: NetworkPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    async def vet(self, host: str, port: int) -> None:
        """Refuse a host before anything is sent to it (BlockedAddress, InvalidUrl), as a fetch of it would be
        refused: for an early, clear answer. The fetch itself is still checked when it dials."""
        await self._resolve_host(host, port)

    # `_resolve_host` is private aiohttp API, but it is the one place that sees both IP-literal hosts (which skip
    # the resolver) and every resolved address right before they are dialled. tests/net pins it against the
    # installed aiohttp.
    async def _resolve_host(self, host: str, port: int, traces: Sequence[Trace] | None = None) -> list[ResolveResult]:
        self.policy.check_host(host)
        results = await super()._resolve_host(host, port, traces=traces)
        for result in results:
            try:
                blocked = self.policy.is_blocked(result["host"])
            except ValueError:
                blocked = True
            if blocked:
                raise BlockedAddress(result["host"])
        return results


if not callable(getattr(aiohttp.TCPConnector, "_resolve_host", None)):  # pragma: no cover
    # Fail at import rather than silently connect unguarded if aiohttp renames the hook.
    raise ImportError("aiohttp.TCPConnector._resolve_host is gone; bot.net.guard must be updated")
