"""The compiled loops (aaa/_speedups.c) against the Python references they speed up.

- The attribute split: `decode` trusts the compiled answer and falls back to the Python
  loop only when it says None, so the two must agree on every input: the same (attributes,
  Message-Authenticator offset, Proxy-State count), and None exactly where the Python loop
  raises MalformedPacket.
- The accounting upsert's array literals: the same text, cell for cell, as `pg_arrays`
  (tests/test_accounting_store.py sends awkward values through PostgreSQL and back).
- The auth log's binary COPY: the same octets as `copy_binary` (tests/test_view_db.py
  sends awkward rows through PostgreSQL and back).
"""

from __future__ import annotations

import os
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aaa.db import accounting as accounting_db
from aaa.db import authlog as authlog_db
from aaa.radius import MalformedPacket, decode, load_dictionary
from aaa.radius import packet as packet_module
from aaa.radius.packet import split_attributes
from tests.fuzz.harness import VENDORS, load_corpus, load_crashers

compiled = packet_module._compiled_split
needs_it = pytest.mark.skipif(compiled is None, reason="aaa._speedups not built (no C compiler)")
arrays = accounting_db._compiled_arrays

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
            pytest.fail("aaa._speedups is not built (AAA_REQUIRE_SPEEDUPS=1)")
        pytest.skip("aaa._speedups not built (no C compiler)")
    assert compiled.__module__ == "aaa._speedups" and arrays is not None


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


# --- the accounting upsert's array literals -----------------------------------------------------

KINDS = accounting_db._KINDS
_zones = st.sampled_from([UTC, UTC, timezone(timedelta(hours=-3)), None])
_moment = st.builds(lambda d, tz: d.replace(tzinfo=tz), st.datetimes(), _zones)
_cell = {
    ord("t"): st.one_of(st.none(), st.text(max_size=12), st.sampled_from(['a"b', "c\\d", '\\"', "NULL", ""])),
    ord("d"): st.one_of(st.none(), _moment,
                        st.datetimes().map(lambda d: d.replace(microsecond=0, tzinfo=UTC))),
    ord("n"): st.one_of(st.none(), st.integers(), st.integers(-5, 5)),
}
_row = st.tuples(*(_cell[kind] for kind in KINDS))


def test_the_kinds_match_the_columns() -> None:
    """One kind per upsert column: the timestamps 'd', the numbers 'n', the rest text."""
    assert len(KINDS) == len(accounting_db._COLUMNS)
    named = dict(zip(accounting_db._COLUMNS, KINDS.decode(), strict=True))
    assert (named["started_at"], named["updated_at"], named["stopped_at"]) == ("d", "d", "d")
    assert (named["nas_id"], named["input_octets"], named["unique_id"], named["mac"]) == ("n", "n", "t", "t")


@needs_it
def test_array_literals_on_known_rows() -> None:
    """Pinned: quotes and backslashes escaped, NULLs, a UTC time with and without microseconds,
    another zone through its own isoformat, a text column without anything to escape."""
    assert arrays is not None
    at = datetime(2026, 11, 24, 5, 6, 7, 89, tzinfo=UTC)
    base: list[Any] = ["u", 'say "hi"', 1, "10.0.0.1", "back\\slash", None, "p", "m", None, None, None,
                       at, at.replace(microsecond=0), at.astimezone(timezone(timedelta(hours=-3))),
                       600, 2**40, 0, None]
    rows = [tuple(base), tuple(base)]
    literals = arrays(rows, KINDS)
    assert literals == accounting_db.pg_arrays(rows)
    assert literals[0] == '{"u","u"}'
    assert literals[1] == '{"say \\"hi\\"","say \\"hi\\""}'
    assert literals[4] == '{"back\\\\slash","back\\\\slash"}'
    assert literals[5] == "{NULL,NULL}"
    assert literals[11] == "{2026-11-24T05:06:07.000089+00:00,2026-11-24T05:06:07.000089+00:00}"
    assert literals[12] == "{2026-11-24T05:06:07+00:00,2026-11-24T05:06:07+00:00}"
    assert literals[13].startswith("{2026-11-24T02:06:07.000089-03:00,")
    assert arrays([], KINDS) == [] == accounting_db.pg_arrays([])
    with pytest.raises(ValueError):
        arrays([("too", "short")], KINDS)


@needs_it
@SETTINGS
@given(st.lists(_row, max_size=8))
def test_array_literals_match_the_python_reference(rows: list[tuple[Any, ...]]) -> None:
    """Any mix of text (quotes, backslashes, any Unicode), NULLs, numbers and timestamps
    (UTC with and without microseconds, naive, another zone) gives the reference's text."""
    assert arrays is not None
    assert arrays(rows, KINDS) == accounting_db.pg_arrays(rows)


# --- the auth log's binary COPY -----------------------------------------------------------------

copy_compiled = authlog_db._compiled_copy
_copy_cell = {
    ord("t"): st.one_of(st.none(), st.floats(0, 4e9, allow_nan=False),
                        st.integers(1_700_000_000_000_000, 1_800_000_000_000_000).map(lambda m: m / 1e6),
                        st.integers(1_700_000_000, 1_800_000_000).map(lambda s: s + 0.0000005)),
    ord("i"): st.one_of(st.none(), st.integers(-2**31, 2**31 - 1), st.just(True)),
    ord("b"): st.one_of(st.none(), st.booleans()),
    ord("s"): st.one_of(st.none(), st.text(max_size=80), st.just("M" * 300), st.just("São 😀\t\n\\")),
}
_copy_row = st.tuples(*(_copy_cell[kind] for kind in authlog_db.KINDS))


def test_the_copy_kinds_and_limits_follow_the_table() -> None:
    """One kind and one limit per auth_log column, read from the model: the time 't', the
    numbers 'i', the flags 'b', text 's' with varchar's length (reason: unlimited)."""
    named = dict(zip(authlog_db.COLUMNS, zip(authlog_db.KINDS.decode(), authlog_db.LIMITS, strict=True),
                     strict=True))
    assert named["at"] == ("t", 0) and named["service_id"] == ("i", 0) and named["mac_differs"] == ("b", 0)
    assert named["mac"] == ("s", 64) and named["login"] == ("s", 253) and named["reason"] == ("s", 0)


@needs_it
@SETTINGS
@given(st.lists(_copy_row, max_size=6))
def test_binary_copy_is_the_same_from_both(rows: list[tuple[Any, ...]]) -> None:
    """Any rows of the auth log's shape (times that round half-way, int4's ends, long and
    awkward text, NULLs everywhere): the same octets."""
    assert copy_compiled is not None
    assert copy_compiled(rows, authlog_db.KINDS, authlog_db.LIMITS) == authlog_db.copy_binary(rows)


@needs_it
def test_binary_copy_refuses_the_same_values() -> None:
    """An int past int4, a str in an int column, an int in a text column, a short row, an
    unknown kind: the same error type from both (the batch fails loudly, not garbled)."""
    assert copy_compiled is not None
    good = (1.7e9, "u", 1, None, "ip", "accept", "r", None, False, None, False, None, None, None, None)
    cases: list[tuple[list[tuple[Any, ...]], bytes, type[Exception]]] = [
        ([(*good[:2], 2 ** 31, *good[3:])], authlog_db.KINDS, OverflowError),
        ([(*good[:2], "x", *good[3:])], authlog_db.KINDS, TypeError),
        ([(*good[:1], 5, *good[2:])], authlog_db.KINDS, TypeError),
        ([good[:-1]], authlog_db.KINDS, ValueError),
        ([good], b"x" + authlog_db.KINDS[1:], ValueError),
    ]
    for rows, kinds, error in cases:
        with pytest.raises(error):
            copy_compiled(rows, kinds, authlog_db.LIMITS)
        with pytest.raises(error):
            authlog_db.copy_binary(rows, kinds)
    assert copy_compiled([], authlog_db.KINDS, authlog_db.LIMITS) == authlog_db.copy_binary([])
