"""The common Access-Request's fast lane (aaa/radius/fastlane.py, compiled in
aaa/_radiuswire.c): the C code against its Python reference, and the reference against the
daemon's general pipeline.

- `parse_access_request`: the compiled and the Python one give the same answer on every
  input (signed requests, mutations of them, the fuzz corpus, arbitrary octets); and
  whatever the reference accepts, the general pipeline (decode, Message-Authenticator,
  Proxy-State limit, first values, unhiding) accepts with the same fields, so the daemon
  answers a request the same whichever lane it took.
- `sign_access_reply`: the same octets from both, and the same as `build_reply`.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aaa.radius import (
    MalformedPacket,
    PacketCode,
    build_reply,
    build_request,
    chap_response,
    decode,
    encode_attributes,
    fastlane,
    hide_password,
    load_dictionary,
    unhide_password,
    verify_message_authenticator,
    verify_reply,
)
from aaa.radius.fastlane import (
    MAX_PROXY_STATES,
    python_parse_access_request,
    python_sign_access_reply,
    sign_access_reply,
)
from tests.fuzz.harness import load_corpus, load_crashers

compiled_parse = fastlane._compiled_parse
compiled_sign = fastlane._compiled_sign
needs_it = pytest.mark.skipif(compiled_parse is None, reason="aaa._radiuswire not built")

DICT = load_dictionary()
SECRET = b"testing123"
LONG_SECRET = b"k" * 90  # longer than an HMAC block: hashed first (RFC 2104)
SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def attribute(kind: int, value: bytes) -> bytes:
    return bytes((kind, len(value) + 2)) + value


def request(body: bytes, secret: bytes = SECRET, authenticator: bytes | None = None,
            ident: int = 9, ma: bool = True) -> bytes:
    return build_request(PacketCode.ACCESS_REQUEST, ident, body, secret,
                         authenticator=authenticator or os.urandom(16), message_authenticator=ma)


def pap_body(password: bytes, authenticator: bytes, secret: bytes = SECRET, extra: bytes = b"") -> bytes:
    return (attribute(1, b"ana") + attribute(2, hide_password(password, secret, authenticator))
            + extra)


def both(data: bytes, secret: bytes = SECRET) -> object:
    """The two implementations' common answer (asserting they agree)."""
    expected = python_parse_access_request(data, secret)
    if compiled_parse is not None:
        assert compiled_parse(data, secret) == expected
    return expected


def agrees_with_general_pipeline(data: bytes, secret: bytes) -> None:
    """What the fast lane accepts, the general pipeline accepts with the same fields."""
    parsed = python_parse_access_request(data, secret)
    if parsed is None:
        return
    packet = decode(data, DICT)
    assert packet.code == PacketCode.ACCESS_REQUEST
    assert verify_message_authenticator(packet, secret)
    assert packet.proxy_state_count <= MAX_PROXY_STATES
    fields = packet.first_values()
    ident, authenticator, name, password, chap, challenge, calling, port, proxies = parsed
    assert (ident, authenticator) == (packet.identifier, packet.authenticator)
    assert name == fields[1] and name
    assert (calling, port) == (fields.get(31), fields.get(87))
    if password is not None:
        assert password == unhide_password(fields[2], secret, packet.authenticator)
        assert chap is None and challenge is None
    else:
        assert 2 not in fields and chap == fields[3] and challenge == fields.get(60)
    assert proxies == b"".join(attribute(33, raw) for key, raw in packet.attributes if key == 33)


def test_the_extension_is_built() -> None:
    """In CI (AAA_REQUIRE_SPEEDUPS=1) the package must have been built with this extension
    too (it needs OpenSSL's headers); elsewhere the Python reference runs and these skip."""
    if compiled_parse is None:
        if os.environ.get("AAA_REQUIRE_SPEEDUPS") == "1":
            pytest.fail("aaa._radiuswire is not built (AAA_REQUIRE_SPEEDUPS=1)")
        pytest.skip("aaa._radiuswire not built")
    assert fastlane.parse_access_request is compiled_parse and compiled_sign is not None


# --- pinned cases --------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [SECRET, LONG_SECRET])
def test_a_pap_request_is_read_whole(secret: bytes) -> None:
    """PAP: the unhidden password without its NUL padding (two blocks here), the first
    Calling-Station-Id and NAS-Port-Id, the Proxy-States joined as sent, in order."""
    auth = os.urandom(16)
    extra = (attribute(31, b"AA-BB-CC-DD-EE-FF") + attribute(87, b"vlan100") + attribute(33, b"p1")
             + attribute(31, b"second") + attribute(33, b"p2"))
    data = request(pap_body(b"a" * 20, auth, secret, extra), secret, auth, ident=200)
    assert both(data, secret) == (200, auth, b"ana", b"a" * 20, None, None, b"AA-BB-CC-DD-EE-FF",
                                  b"vlan100", attribute(33, b"p1") + attribute(33, b"p2"))
    agrees_with_general_pipeline(data, secret)


def test_a_chap_request_is_read_with_its_challenge() -> None:
    """CHAP: the CHAP-Password and CHAP-Challenge as sent, no password; without a
    CHAP-Challenge the second is None (the daemon uses the Request Authenticator)."""
    auth = os.urandom(16)
    chap = bytes([5]) + chap_response(5, b"s3nha", b"c" * 16)
    data = request(attribute(1, b"ana") + attribute(3, chap) + attribute(60, b"c" * 16), authenticator=auth)
    assert both(data) == (9, auth, b"ana", None, chap, b"c" * 16, None, None, b"")
    data = request(attribute(1, b"ana") + attribute(3, chap), authenticator=auth)
    assert both(data) == (9, auth, b"ana", None, chap, None, None, None, b"")


def test_everything_else_is_left_to_the_general_pipeline() -> None:
    """None for: no Message-Authenticator, a wrong one, two of them, the wrong secret, no or
    an empty User-Name, a User-Password of 15 or 144 octets, MS-CHAPv2 (no PAP or CHAP),
    nine Proxy-States, Status-Server, an Accounting-Request, a cut attribute, a short
    packet; eight Proxy-States are still the fast lane's."""
    auth = os.urandom(16)
    ok_body = pap_body(b"s3nha", auth)
    assert both(request(ok_body, authenticator=auth)) is not None
    assert both(request(ok_body, authenticator=auth, ma=False)) is None
    signed = bytearray(request(ok_body, authenticator=auth))
    signed[-1] ^= 1  # the body changed after signing
    assert both(bytes(signed)) is None
    two = request(ok_body + attribute(80, bytes(16)), authenticator=auth)
    assert both(two) is None
    assert both(request(ok_body, authenticator=auth), b"other-secret") is None
    assert both(request(attribute(2, hide_password(b"x", SECRET, auth)), authenticator=auth)) is None
    assert both(request(attribute(1, b"") + attribute(2, hide_password(b"x", SECRET, auth)),
                        authenticator=auth)) is None
    assert both(request(attribute(1, b"ana") + attribute(2, b"x" * 15), authenticator=auth)) is None
    assert both(request(attribute(1, b"ana") + attribute(2, b"x" * 144), authenticator=auth)) is None
    mschap2 = encode_attributes(DICT, [("User-Name", "ana"), ("MS-CHAP-Challenge", b"c" * 16),
                                       ("MS-CHAP2-Response", bytes(50))])
    assert both(request(mschap2)) is None
    eight = b"".join(attribute(33, bytes([i])) for i in range(8))
    assert both(request(ok_body + eight, authenticator=auth)) is not None
    assert both(request(ok_body + eight + attribute(33, b"9"), authenticator=auth)) is None
    status = build_request(PacketCode.STATUS_SERVER, 1, attribute(1, b"ana"), SECRET)
    assert both(status) is None
    accounting = build_request(PacketCode.ACCOUNTING_REQUEST, 1, attribute(1, b"ana"), SECRET)
    assert both(accounting) is None
    whole = request(ok_body, authenticator=auth)
    assert both(whole[:-1]) is None  # Length now runs past the datagram
    assert both(whole[:19]) is None
    assert both(whole + b"padding") is not None  # octets past Length are ignored (RFC 2865 §3)


def test_the_reply_is_build_reply_octet_for_octet() -> None:
    """An Accept with attributes and echoed Proxy-States, and a bare Reject: both
    implementations give build_reply's octets, which verify against the request."""
    auth = os.urandom(16)
    data = request(pap_body(b"s3nha", auth, extra=attribute(33, b"state")), authenticator=auth)
    packet = decode(data, DICT)
    attrs = encode_attributes(DICT, [("Framed-Pool", "pool-fibra"), ("Acct-Interim-Interval", 300)])
    for code, body in ((PacketCode.ACCESS_ACCEPT, attrs), (PacketCode.ACCESS_REJECT, b"")):
        expected = build_reply(packet, code, SECRET, body)
        assert python_sign_access_reply(code, 9, auth, body, attribute(33, b"state"), SECRET) == expected
        assert sign_access_reply(code, 9, auth, body, attribute(33, b"state"), SECRET) == expected
        assert verify_reply(decode(expected, DICT), auth, SECRET)


def test_a_reply_past_4096_octets_is_an_encode_error() -> None:
    """The length limit holds on the fast lane too (the daemon then stays silent)."""
    from aaa.radius import EncodeError

    with pytest.raises(EncodeError):
        sign_access_reply(2, 1, bytes(16), b"x" * 4000, b"y" * 60, SECRET)
    assert len(sign_access_reply(2, 1, bytes(16), b"x" * 4000, b"y" * 58, SECRET)) == 4096


@needs_it
def test_the_compiled_functions_refuse_wrong_types() -> None:
    """Only bytes (not bytearray or str), and octet-sized code and identifier."""
    assert compiled_parse is not None and compiled_sign is not None
    with pytest.raises(TypeError):
        compiled_parse(bytearray(20), SECRET)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        compiled_sign(2, 1, bytes(16), "x", b"", SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        compiled_sign(2, 256, bytes(16), b"", b"", SECRET)
    with pytest.raises(ValueError):
        compiled_sign(2, 1, bytes(15), b"", b"", SECRET)


# --- properties ------------------------------------------------------------------------------------

_text = st.binary(max_size=24)
_optional = st.one_of(st.none(), _text)
_password = st.one_of(st.binary(max_size=130), st.binary(min_size=1, max_size=16).map(lambda b: b * 3))
_other = st.tuples(st.integers(4, 255).filter(lambda k: k not in (31, 33, 60, 80, 87)), _text)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Access-Requests as NAS send them and as they should not: any mix of the attributes
    the fast lane reads, hidden passwords of every size, raw (unhideable) values, CHAP,
    Proxy-States around the limit, foreign attributes, with or without a (valid) MA."""
    secret = draw(st.sampled_from([SECRET, LONG_SECRET, b"", b"s"]))
    auth = draw(st.binary(min_size=16, max_size=16))
    parts: list[bytes] = []
    name = draw(st.one_of(st.binary(min_size=1, max_size=24), st.binary(min_size=1, max_size=24),
                          st.none(), st.just(b"")))
    if name is not None:
        parts.append(attribute(1, name))
    method = draw(st.sampled_from(["pap", "pap", "pap", "chap", "chap", "raw-pap", "none"]))
    if method == "pap":
        password = draw(_password.filter(lambda p: len(p) <= 128))
        parts.append(attribute(2, hide_password(password, secret, auth)))
    elif method == "raw-pap":
        parts.append(attribute(2, draw(st.binary(max_size=140))))
    elif method == "chap":
        parts.append(attribute(3, draw(st.binary(min_size=0, max_size=20))))
        if draw(st.booleans()):
            parts.append(attribute(60, draw(_text)))
    for kind, value in draw(st.lists(st.one_of(
            st.tuples(st.sampled_from([1, 2, 3, 31, 60, 87]), _text), _other), max_size=4)):
        parts.append(attribute(kind, value))
    for value in draw(st.one_of(st.lists(_text, max_size=3), st.lists(_text, min_size=7, max_size=10))):
        parts.append(attribute(33, value))
    for value in (draw(_optional), draw(_optional)):
        if value is not None:
            parts.append(attribute(draw(st.sampled_from([31, 87])), value))
    parts = draw(st.permutations(parts))
    ma = draw(st.sampled_from(["valid"] * 6 + ["none", "bogus"]))
    body = b"".join(parts)
    if ma == "bogus":
        body += attribute(80, draw(st.binary(min_size=16, max_size=16)))
    code = draw(st.sampled_from([1] * 7 + [12]))
    if 20 + len(body) + 18 > 4096:
        body = body[:1000]
    data = build_request(code, draw(st.integers(0, 255)), body, secret, authenticator=auth,
                         message_authenticator=ma == "valid")
    return data + draw(st.sampled_from([b"", b"", b"\x00junk"])), secret


@SETTINGS
@given(requests())
def test_requests_get_the_same_answer_from_both(case: tuple[bytes, bytes]) -> None:
    """Every generated request: the same tuple or the same None from C and Python, and
    what is accepted is what the general pipeline would accept."""
    data, secret = case
    both(data, secret)
    agrees_with_general_pipeline(data, secret)


@SETTINGS
@given(requests(), st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=3))
def test_mutated_requests_get_the_same_answer_from_both(case: tuple[bytes, bytes],
                                                        flips: list[tuple[int, int]]) -> None:
    """Octets overwritten anywhere (header, lengths, the MA, values): still the same answer."""
    data, secret = case
    mutated = bytearray(data)
    for position, value in flips:
        mutated[position % len(mutated)] = value
    both(bytes(mutated), secret)
    agrees_with_general_pipeline(bytes(mutated), secret)


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_octets_get_the_same_answer_from_both(data: bytes) -> None:
    """Garbage after a plausible Access-Request header, and garbage alone."""
    both(data)
    framed = struct.pack("!BBH", 1, 1, 20 + len(data)) + bytes(16) + data
    both(framed)
    agrees_with_general_pipeline(framed, SECRET)


def test_the_corpus_and_every_saved_crasher_get_the_same_answer() -> None:
    """The fuzz seeds (PAP, CHAP, MS-CHAPv2, accounting, CoA) and past crashers, under the
    corpus secret and another."""
    packets = load_corpus() + load_crashers()
    assert len(packets) >= 20
    for _, data in packets:
        for secret in (SECRET, b"other"):
            both(data, secret)
            agrees_with_general_pipeline(data, secret)


@SETTINGS
@given(st.sampled_from([2, 3, 11]), st.integers(0, 255), st.binary(min_size=16, max_size=16),
       st.lists(st.tuples(st.integers(1, 255).filter(lambda k: k != 80), _text), max_size=12),
       st.lists(_text, max_size=8),
       st.binary(max_size=80))
def test_replies_are_the_same_from_both(code: int, ident: int, auth: bytes,
                                        pairs: list[tuple[int, bytes]], proxies: list[bytes],
                                        secret: bytes) -> None:
    """Any code, identifier, authenticator, attributes, Proxy-States and secret."""
    attrs = b"".join(attribute(kind, value) for kind, value in pairs)
    joined = b"".join(attribute(33, p) for p in proxies)
    expected = python_sign_access_reply(code, ident, auth, attrs, joined, secret)
    assert sign_access_reply(code, ident, auth, attrs, joined, secret) == expected
    assert verify_reply(decode(expected, DICT), auth, secret)


def test_unhidden_passwords_are_what_was_hidden() -> None:
    """The reference itself, on passwords of 1..128 octets (NULs inside kept, padding not)."""
    for size in (1, 15, 16, 17, 31, 32, 100, 128):
        password = (b"p\x00q" * 50)[:size].rstrip(b"\x00") or b"p"
        auth = os.urandom(16)
        data = request(pap_body(password, auth), authenticator=auth)
        parsed = both(data)
        assert parsed is not None and parsed[3] == password  # type: ignore[index]


def test_a_malformed_packet_raises_in_decode_not_here() -> None:
    """The fast lane never raises on bad input: decode is where the precise error comes from."""
    broken = struct.pack("!BBH", 1, 1, 23) + bytes(16) + b"\x01\x01x"
    assert both(broken) is None
    with pytest.raises(MalformedPacket):
        decode(broken, DICT)
