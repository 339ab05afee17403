"""Address policy: what is blocked, what an allowance re-opens, and how the setting is parsed."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.net import BlockedAddress, InvalidUrl, NetworkPolicy, parse_allow_networks

DEFAULT = NetworkPolicy()

ipv4s = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)
ten_slash_8 = st.integers(min_value=0x0A000000, max_value=0x0AFFFFFF).map(ipaddress.IPv4Address)


def mapped(v4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(0xFFFF_0000_0000 | int(v4))


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.5",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.169.254",
        "169.254.1.1",
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "0.1.2.3",
        "100.64.0.1",
        "100.100.100.200",
        "100.127.255.255",
        "192.0.0.192",
        "198.18.0.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd00:ec2::254",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:db8::1",
    ],
)
def test_default_policy_blocks_non_public_addresses(address: str) -> None:
    assert DEFAULT.is_blocked(address) is True


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
        "64:ff9b::808:808",
    ],
)
def test_default_policy_allows_public_addresses(address: str) -> None:
    assert DEFAULT.is_blocked(address) is False


@given(ten_slash_8)
def test_any_10_slash_8_address_is_blocked_by_default(address: ipaddress.IPv4Address) -> None:
    assert DEFAULT.is_blocked(address)


@given(ten_slash_8, st.integers(min_value=8, max_value=32), ten_slash_8)
def test_an_allowance_reopens_exactly_its_own_addresses(
    address: ipaddress.IPv4Address, prefix: int, anchor: ipaddress.IPv4Address
) -> None:
    allowed = ipaddress.IPv4Network((anchor, prefix), strict=False)
    policy = NetworkPolicy(allow_networks=(allowed,))
    assert policy.is_blocked(address) is (address not in allowed)


@given(ipv4s, st.lists(st.sampled_from(["10.0.0.0/8", "127.0.0.1/32", "169.254.0.0/16", "8.8.8.0/24"]), max_size=3))
def test_ipv4_mapped_form_behaves_like_its_ipv4(address: ipaddress.IPv4Address, allow: list[str]) -> None:
    policy = NetworkPolicy(allow_networks=parse_allow_networks(",".join(allow)))
    assert policy.is_blocked(mapped(address)) is policy.is_blocked(address)


@given(ipv4s)
def test_a_6to4_address_embedding_a_blocked_ipv4_is_blocked(address: ipaddress.IPv4Address) -> None:
    six_to_four = ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80) | 1)
    if DEFAULT.is_blocked(address):
        assert DEFAULT.is_blocked(six_to_four)


@given(ipv4s)
def test_nat64_behaves_like_the_embedded_ipv4(address: ipaddress.IPv4Address) -> None:
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(address))
    assert DEFAULT.is_blocked(nat64) is DEFAULT.is_blocked(address)


def test_loopback_allowance_does_not_open_the_rest_of_loopback() -> None:
    policy = NetworkPolicy(allow_networks=parse_allow_networks("127.0.0.1/32"))
    assert policy.is_blocked("127.0.0.1") is False
    assert policy.is_blocked("::ffff:127.0.0.1") is False
    assert policy.is_blocked("127.0.0.2") is True
    assert policy.is_blocked("::1") is True


networks = st.one_of(
    st.builds(lambda a, p: ipaddress.IPv4Network((a, p), strict=False), ipv4s, st.integers(0, 32)),
    st.builds(
        lambda a, p: ipaddress.IPv6Network((a, p), strict=False),
        st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
        st.integers(0, 128),
    ).filter(lambda n: not n.subnet_of(ipaddress.IPv6Network("::ffff:0:0/96"))),
)
separators = st.sampled_from([",", ", ", " ", "\n", " ,\t"])


@given(st.lists(networks, max_size=5), separators, st.booleans())
def test_parse_allow_networks_round_trips(
    expected: list[ipaddress.IPv4Network | ipaddress.IPv6Network], sep: str, bare_hosts: bool
) -> None:
    items = [str(n.network_address) if bare_hosts and n.num_addresses == 1 else str(n) for n in expected]
    assert parse_allow_networks(" " + sep.join(items) + sep) == tuple(expected)


def test_parse_allow_networks_examples() -> None:
    assert parse_allow_networks("10.0.0.0/8, 192.168.1.5") == (
        ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv4Network("192.168.1.5/32"),
    )
    assert parse_allow_networks("") == ()
    assert parse_allow_networks("  ,  ") == ()
    assert parse_allow_networks("::ffff:10.0.0.0/104") == (ipaddress.IPv4Network("10.0.0.0/8"),)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz!#$%&*-_", min_size=1, max_size=20))
def test_parse_allow_networks_names_the_bad_item(junk: str) -> None:
    with pytest.raises(ValueError, match="FETCH_ALLOW_PRIVATE_NETWORKS") as info:
        parse_allow_networks(f"10.0.0.0/8, {junk}")
    assert repr(junk) in str(info.value)


def test_parse_allow_networks_suggests_the_network_for_host_bits() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.1/8' has host bits set; did you mean 10\.0\.0\.0/8\?"):
        parse_allow_networks("10.0.0.1/8")


@pytest.mark.parametrize(
    "host",
    [
        "metadata.google.internal",
        "METADATA.google.internal.",
        "169.254.169.254",
        "127.0.0.1",
        "::ffff:7f00:1",
        "[::1]",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "0",
    ],
)
def test_check_host_blocks_before_resolving(host: str) -> None:
    with pytest.raises(BlockedAddress):
        DEFAULT.check_host(host)


def test_check_host_refuses_odd_numeric_forms_of_public_addresses() -> None:
    with pytest.raises(InvalidUrl, match="usual dotted form"):
        DEFAULT.check_host("134744072")  # 8.8.8.8


@pytest.mark.parametrize("host", ["example.com", "files.slack.com", "8.8.8.8", "2606:4700:4700::1111", "1e100.net"])
def test_check_host_passes_public_literals_and_names(host: str) -> None:
    DEFAULT.check_host(host)


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254", "100.100.100.200"])
def test_metadata_addresses_and_names_stay_blocked_however_wide_the_allowance(address: str) -> None:
    policy = NetworkPolicy(allow_networks=parse_allow_networks("0.0.0.0/0,::/0"))
    assert policy.is_blocked(address)
    assert not policy.is_blocked("169.254.10.20")  # the rest of an allowed network is open, as asked
    with pytest.raises(BlockedAddress):
        policy.check_host(f"[{address}]" if ":" in address else address)
    with pytest.raises(BlockedAddress):
        policy.check_host("metadata.google.internal")
