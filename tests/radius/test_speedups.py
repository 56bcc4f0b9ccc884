"""The compiled attribute split (aaa/radius/_speedups.c) against the Python loop it speeds up.

`decode` trusts the compiled answer and falls back to the Python loop only when it says
None, so the two must agree on every input: the same (attributes, Message-Authenticator
offset, Proxy-State count), and None exactly where the Python loop raises MalformedPacket.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aaa.radius import MalformedPacket, decode, load_dictionary
from aaa.radius import packet as packet_module
from aaa.radius.packet import split_attributes
from tests.fuzz.harness import VENDORS, load_corpus, load_crashers

compiled = packet_module._compiled_split
needs_it = pytest.mark.skipif(compiled is None, reason="aaa.radius._speedups not built (no C compiler)")

DICT = load_dictionary()
ODD = DICT.odd_vendor_formats
SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def python_split(data: bytes, odd: object = ODD) -> object:
    try:
        return split_attributes(data, odd)  # type: ignore[arg-type]
    except MalformedPacket:
        return None


def assert_same(data: bytes, odd: object = ODD) -> None:
    assert compiled is not None
    assert compiled(data, odd) == python_split(data, odd)  # type: ignore[arg-type]


def framed(body: bytes, code: int = 1) -> bytes:
    """A header whose Length is the packet's size (what decode hands over), then `body`."""
    return struct.pack("!BBH", code, 7, 20 + len(body)) + bytes(16) + body


def test_the_extension_is_built() -> None:
    """In CI (AAA_REQUIRE_SPEEDUPS=1) the package must have been built with its extension;
    elsewhere a machine without a C compiler runs the Python loop and skips these tests."""
    if compiled is None:
        if os.environ.get("AAA_REQUIRE_SPEEDUPS") == "1":
            pytest.fail("aaa.radius._speedups is not built (AAA_REQUIRE_SPEEDUPS=1)")
        pytest.skip("aaa.radius._speedups not built (no C compiler)")
    assert compiled.__module__ == "aaa.radius._speedups"


@needs_it
def test_the_corpus_and_every_saved_crasher_split_the_same() -> None:
    """Every seed packet (PAP, CHAP, MS-CHAPv2, accounting, CoA, the vendors' VSAs) and every
    input that once crashed a decoder gets the same answer from both."""
    packets = load_corpus() + load_crashers()
    assert len(packets) >= 20
    for _, data in packets:
        length = struct.unpack("!H", data[2:4])[0] if len(data) >= 4 else 0
        if 20 <= length <= len(data):
            assert_same(data[:length])


@needs_it
def test_decode_gives_the_same_packet_with_and_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """decode's Packet (attributes, MA offset, Proxy-State count) does not depend on which
    split ran; a malformed packet raises the same message either way."""
    packets = [data for _, data in load_corpus()]
    fast = [decode(data, DICT) for data in packets]
    monkeypatch.setattr(packet_module, "_compiled_split", None)
    slow = [decode(data, DICT) for data in packets]
    assert [(p.attributes, p.message_authenticator_at, p.proxy_state_count) for p in fast] == \
        [(p.attributes, p.message_authenticator_at, p.proxy_state_count) for p in slow]
    monkeypatch.undo()
    broken = framed(b"\x01\x01x")  # an attribute of length 1
    with pytest.raises(MalformedPacket, match="has length < 2"):
        decode(broken, DICT)


@needs_it
def test_its_answers_on_known_shapes() -> None:
    """Pinned cases: a VSA split into (vendor, type) keys; one with a bad sub-length kept raw
    under 26; a duplicate Message-Authenticator; Proxy-States counted; a cut-off header."""
    assert compiled is not None
    mikrotik = struct.pack("!BBI", 26, 6 + 2 + 4, 14988) + b"\x08\x06" + b"10M/"
    ma = b"\x50\x12" + bytes(16)
    body = b"\x01\x05ana" + mikrotik + ma + b"\x21\x03a\x21\x03b"
    attributes, ma_at, proxy_states = compiled(framed(body), ODD)  # type: ignore[misc]
    assert attributes == ((1, b"ana"), ((14988, 8), b"10M/"), (80, bytes(16)), (33, b"a"), (33, b"b"))
    assert ma_at == 20 + 5 + len(mikrotik) and proxy_states == 2
    bad_vsa = struct.pack("!BBI", 26, 6 + 3, 14988) + b"\x08\x09x"
    assert compiled(framed(bad_vsa), ODD) == (((26, bad_vsa[2:]),), -1, 0)
    assert compiled(framed(ma + ma), ODD)[1] == -2  # type: ignore[index]
    assert compiled(framed(b"\x01"), ODD) is None
    assert compiled(b"\x01" * 19, ODD) is None
    with pytest.raises(TypeError):
        compiled(bytearray(framed(b"")), ODD)  # type: ignore[arg-type]


# --- properties ------------------------------------------------------------------------------

_value = st.binary(max_size=40)
_sub = st.tuples(st.integers(0, 255), _value).map(lambda t: bytes((t[0], len(t[1]) + 2)) + t[1])
_bad_sub = st.tuples(st.integers(0, 255), st.integers(0, 255), _value).map(
    lambda t: bytes((t[0], t[1])) + t[2])  # any length octet: often wrong
# Payloads of small octets: sub-attribute lengths of 0, 1, 2... that just fit, or just do not.
_tight = st.lists(st.integers(0, 6), max_size=10).map(bytes)
_vsa = st.tuples(st.sampled_from(VENDORS),
                 st.one_of(st.lists(st.one_of(_sub, _bad_sub), max_size=4).map(b"".join), _tight)).map(
    lambda t: struct.pack("!I", t[0]) + t[1])
_attribute = st.one_of(
    st.tuples(st.integers(0, 255), _value),
    st.tuples(st.sampled_from([26]), _vsa),
    st.tuples(st.sampled_from([80]), st.binary(min_size=16, max_size=16)),
    st.tuples(st.sampled_from([33]), _value),
).filter(lambda t: len(t[1]) <= 253).map(lambda t: bytes((t[0], len(t[1]) + 2)) + t[1])


@needs_it
@SETTINGS
@given(st.lists(_attribute, max_size=12), st.binary(max_size=6))
def test_structured_packets_split_the_same(attributes: list[bytes], tail: bytes) -> None:
    """Well-formed attribute lists (VSAs of known, odd and unknown vendors with valid and
    broken sub-attributes, MAs, Proxy-States), with or without trailing junk."""
    assert_same(framed(b"".join(attributes)))
    assert_same(framed(b"".join(attributes) + tail))


@needs_it
@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bodies_split_the_same(body: bytes) -> None:
    """Any octets after a header: the compiled split refuses exactly what the loop refuses."""
    assert_same(framed(body))


@needs_it
@SETTINGS
@given(st.lists(_attribute, min_size=1, max_size=6), st.frozensets(st.sampled_from(VENDORS)))
def test_the_odd_vendor_set_is_honoured(attributes: list[bytes], odd: frozenset[int]) -> None:
    """A vendor in the odd-format set is never split, whatever set the dictionary has."""
    assert_same(framed(b"".join(attributes)), odd)
