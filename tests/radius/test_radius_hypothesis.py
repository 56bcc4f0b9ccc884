"""Property tests: agreement with pyrad both ways, and robustness on arbitrary bytes."""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary as PyradDictionary

from aaa.radius import (
    MalformedPacket,
    PacketCode,
    build_reply,
    decode,
    encode_attributes,
    encode_packet,
    load_dictionary,
    verify_message_authenticator,
    verify_reply,
)
from aaa.radius.dictionary import BUILTIN_DICTIONARY
from aaa.radius.packet import Packet

DICT = load_dictionary()
PYRAD_DICT = PyradDictionary(str(BUILTIN_DICTIONARY))
SECRET = b"hypothesis-secret"
AUTH = bytes(range(100, 116))
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_text = st.text(min_size=1, max_size=60).filter(lambda s: len(s.encode()) <= 200)
_octets = st.binary(min_size=1, max_size=80).filter(lambda b: not b.startswith(b"0x"))
_u32 = st.integers(0, 2**32 - 1)
_ipv6_prefix = st.builds(
    lambda addr, plen: str(ipaddress.IPv6Network((addr, plen), strict=False)),
    st.ip_addresses(v=6),
    st.integers(0, 128),
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "User-Name": _text,
    "Reply-Message": _text,
    "Class": _octets,
    "State": _octets,
    "Framed-IP-Address": st.ip_addresses(v=4).map(str),
    "NAS-IPv6-Address": st.ip_addresses(v=6).map(str),
    "Framed-IPv6-Prefix": _ipv6_prefix,
    "Session-Timeout": _u32,
    "Service-Type": st.integers(1, 11),
    "NAS-Port-Type": st.integers(0, 19),
    "Event-Timestamp": _u32,
    "Mikrotik-Rate-Limit": _text,
    "Mikrotik-Address-List": _text,
    "Huawei-Input-Average-Rate": _u32,
    "Huawei-Framed-IPv6-Address": st.ip_addresses(v=6).map(str),
    "MS-CHAP-Challenge": _octets,
}


@st.composite
def attribute_lists(draw: st.DrawFn) -> list[tuple[str, Any]]:
    names = draw(st.lists(st.sampled_from(sorted(VALUES)), unique=True, max_size=10))
    return [(name, draw(VALUES[name])) for name in names]


def _pyrad_value(name: str, value: object) -> object:
    # pyrad returns the VALUE name of enumerated integers; map it back to the number.
    if isinstance(value, str) and DICT[name].values:
        return DICT[name].values.get(value, value)
    return value


def _pyrad_encode(attributes: list[tuple[str, Any]]) -> bytes:
    request = pyrad_packet.AuthPacket(
        code=pyrad_packet.AccessRequest, id=17, secret=SECRET, authenticator=AUTH, dict=PYRAD_DICT
    )
    for name, value in attributes:
        request[name] = value
    return bytes(request.RequestPacket())


@SETTINGS
@given(attribute_lists())
def test_pyrad_encodes_we_decode_and_reencode_byte_exact(
    attributes: list[tuple[str, Any]],
) -> None:
    """What pyrad encodes we decode to the same values, and our encoding of the same
    attribute list is byte-identical."""
    raw = _pyrad_encode(attributes)
    packet = decode(raw, DICT)
    assert packet.identifier == 17 and packet.authenticator == AUTH
    for name, value in attributes:
        assert packet.get(name) == value, name
    ours = encode_packet(1, 17, AUTH, encode_attributes(DICT, attributes))
    assert ours == raw


@SETTINGS
@given(attribute_lists())
def test_we_encode_pyrad_decodes(attributes: list[tuple[str, Any]]) -> None:
    """What we encode pyrad decodes to the same values."""
    raw = encode_packet(1, 33, AUTH, encode_attributes(DICT, attributes))
    request = pyrad_packet.AuthPacket(packet=raw, dict=PYRAD_DICT, secret=SECRET)
    for name, value in attributes:
        assert [_pyrad_value(name, v) for v in request[name]] == [value], name


@SETTINGS
@given(attribute_lists(), st.binary(min_size=1, max_size=40))
def test_our_replies_verify_with_pyrad(attributes: list[tuple[str, Any]], state: bytes) -> None:
    """pyrad accepts our Access-Accept (Response Authenticator and Message-Authenticator)."""
    request_raw = encode_packet(
        1, 5, AUTH, encode_attributes(DICT, [("User-Name", "u"), ("Proxy-State", state)])
    )
    request = decode(request_raw, DICT)
    reply_raw = build_reply(request, PacketCode.ACCESS_ACCEPT, SECRET, encode_attributes(DICT, attributes))
    assert verify_reply(decode(reply_raw, DICT), AUTH, SECRET)
    sent = pyrad_packet.AuthPacket(packet=request_raw, secret=SECRET, dict=PYRAD_DICT)
    received = pyrad_packet.AuthPacket(packet=reply_raw, secret=SECRET, dict=PYRAD_DICT)
    assert sent.VerifyReply(received, reply_raw, enforce_ma=True)


def _full_access(packet: Packet) -> None:
    """Touch everything a server could read."""
    for definition, _value in packet.items():
        packet.get(definition)
        packet.get_all(definition)
        if definition.encrypt:
            packet.reveal(definition, SECRET)
    packet.user_password(SECRET)
    verify_message_authenticator(packet, SECRET)
    verify_message_authenticator(packet, SECRET, AUTH)


def _decode_or_malformed(data: bytes) -> None:
    try:
        packet = decode(data, DICT)
    except MalformedPacket:
        return
    with contextlib.suppress(MalformedPacket):
        _full_access(packet)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_malformed(data: bytes) -> None:
    """Random octets either decode (and every typed read works) or raise MalformedPacket."""
    _decode_or_malformed(data)


_tlv = st.builds(
    lambda kind, value, fudge: bytes((kind, max(0, min(255, len(value) + 2 + fudge)))) + value,
    st.sampled_from([1, 2, 4, 8, 26, 27, 55, 64, 69, 79, 80, 95, 96, 97, 123, 200]),
    st.binary(max_size=40),
    st.sampled_from([0, 0, 0, 0, -1, 1, -3]),
)
_vsa = st.builds(
    lambda vendor, subs: bytes((26, min(255, 6 + len(subs)))) + vendor.to_bytes(4, "big") + subs,
    st.sampled_from([311, 14988, 2011, 9]),
    st.lists(
        st.builds(
            lambda kind, value: bytes((kind, len(value) + 2)) + value,
            st.integers(1, 40),
            st.binary(max_size=20),
        ),
        max_size=4,
    ).map(b"".join),
)


@SETTINGS
@given(st.sampled_from([1, 2, 4, 11, 43]), st.lists(st.one_of(_tlv, _vsa), max_size=8))
def test_structured_packets_whole_and_truncated(code: int, tlvs: list[bytes]) -> None:
    """Packets of plausible attributes, whole and cut at every length, either decode with
    working typed access or raise MalformedPacket."""
    body = b"".join(tlvs)[:4000]
    data = encode_packet(code, 1, AUTH, body)
    for cut in range(len(data) + 1):
        _decode_or_malformed(data[:cut])
        # a Length field claiming the whole packet over a truncated datagram
        _decode_or_malformed(data[:4] + data[4:cut])
