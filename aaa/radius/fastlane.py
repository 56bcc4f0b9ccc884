"""The common Access-Request in one step each way: checked and read, then its reply signed.

Most of what a NAS sends is one shape: an Access-Request signed with a
Message-Authenticator, carrying PAP or CHAP. `parse_access_request` checks such a request
(framing, the Message-Authenticator's HMAC-MD5, the User-Password's size) and reads the
few attributes the daemon needs in one pass; for anything else it answers None and the
daemon's general pipeline (decode, verify, ...) deals with it, errors and counters
included, so this module never decides on its own what is refused. `sign_access_reply`
builds the Access-Accept/Reject exactly as `build_reply` does.

The functions here are the specification; `aaa/_radiuswire.c` does the same work compiled
(the daemon uses it when built), and tests/test_radiuswire.py holds the two to the same
answers on every input.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable

from aaa.radius.digest import hmac_md5, md5
from aaa.radius.errors import EncodeError, MalformedPacket
from aaa.radius.hiding import MAX_PASSWORD, unhide_password
from aaa.radius.packet import MAX_LENGTH, MIN_LENGTH, split_attributes

# A request carrying more Proxy-State attributes than this is dropped (a proxy chain that
# long is a loop or an attack: RFC 2865 has each proxy add one); the C code holds 8 too.
MAX_PROXY_STATES = 8

# (Identifier, Request Authenticator, User-Name, the unhidden password or None,
#  CHAP-Password or None, CHAP-Challenge or None, Calling-Station-Id or None,
#  NAS-Port-Id or None, the Proxy-State attributes as sent, joined)
AccessRequest = tuple[int, bytes, bytes, bytes | None, bytes | None, bytes | None, bytes | None,
                      bytes | None, bytes]

_ACCESS_REQUEST = 1
_USER_NAME, _USER_PASSWORD, _CHAP_PASSWORD = 1, 2, 3
_CALLING_STATION_ID, _PROXY_STATE, _CHAP_CHALLENGE, _NAS_PORT_ID = 31, 33, 60, 87
_ZERO16 = bytes(16)
_MA_ZERO = b"\x50\x12" + _ZERO16
_HEADER = struct.Struct("!BBH")


def python_parse_access_request(data: bytes, secret: bytes) -> AccessRequest | None:
    """The common Access-Request's fields (each attribute's first occurrence), or None when
    `data` is anything else: not an Access-Request, malformed, without exactly one valid
    Message-Authenticator, without a User-Name, with a User-Password of a size that cannot
    be unhidden, with neither PAP nor CHAP, or with more than MAX_PROXY_STATES Proxy-States."""
    size = len(data)
    if not MIN_LENGTH <= size <= MAX_LENGTH or data[0] != _ACCESS_REQUEST:
        return None
    length = (data[2] << 8) | data[3]
    if not MIN_LENGTH <= length <= size:
        return None
    data = bytes(data[:length])
    try:
        attributes, ma_at, proxy_count = split_attributes(data, ())
    except MalformedPacket:
        return None
    if ma_at < 0 or data[ma_at + 1] != 18 or proxy_count > MAX_PROXY_STATES:
        return None
    fields = dict(reversed(attributes))
    name = fields.get(_USER_NAME)
    hidden = fields.get(_USER_PASSWORD)
    chap = fields.get(_CHAP_PASSWORD)
    if not name:
        return None
    if hidden is not None:
        if not hidden or len(hidden) % 16 or len(hidden) > MAX_PASSWORD:
            return None
    elif chap is None:
        return None  # MS-CHAP, or no method at all: the general pipeline's
    signed = data[: ma_at + 2] + _ZERO16 + data[ma_at + 18 :]
    if not hmac.compare_digest(hmac_md5(secret, signed), data[ma_at + 2 : ma_at + 18]):
        return None
    authenticator = data[4:20]
    proxy_states = b"".join(bytes((_PROXY_STATE, len(raw) + 2)) + raw
                            for key, raw in attributes if key == _PROXY_STATE)
    if hidden is not None:
        password = unhide_password(hidden, secret, authenticator)
        return (data[1], authenticator, name, password, None, None, fields.get(_CALLING_STATION_ID),
                fields.get(_NAS_PORT_ID), proxy_states)
    return (data[1], authenticator, name, None, chap, fields.get(_CHAP_CHALLENGE),
            fields.get(_CALLING_STATION_ID), fields.get(_NAS_PORT_ID), proxy_states)


def python_sign_access_reply(code: int, identifier: int, request_authenticator: bytes,
                             attributes: bytes, proxy_states: bytes, secret: bytes) -> bytes:
    """An Access-Accept/Reject/Challenge: Message-Authenticator first, then `attributes`, then
    the request's Proxy-States, signed with the Response Authenticator (RFC 2865 §3,
    RFC 3579 §3.2)."""
    body = attributes + proxy_states
    length = 38 + len(body)
    header = _HEADER.pack(code, identifier, length)
    mac = hmac_md5(secret, header + request_authenticator + _MA_ZERO + body)
    body = b"\x50\x12" + mac + body
    return header + md5(header + request_authenticator + body + secret) + body


_compiled_parse: Callable[[bytes, bytes], AccessRequest | None] | None
_compiled_sign: Callable[[int, int, bytes, bytes, bytes, bytes], bytes] | None
try:
    from aaa._radiuswire import parse_access_request as _compiled_parse
    from aaa._radiuswire import sign_access_reply as _compiled_sign
except ImportError:  # built without a C compiler or OpenSSL's headers: the Python above
    _compiled_parse = _compiled_sign = None

parse_access_request: Callable[[bytes, bytes], AccessRequest | None] = (
    _compiled_parse or python_parse_access_request)
_sign = _compiled_sign or python_sign_access_reply


def sign_access_reply(code: int, identifier: int, request_authenticator: bytes, attributes: bytes,
                      proxy_states: bytes, secret: bytes) -> bytes:
    """`python_sign_access_reply`, compiled when built; EncodeError past 4096 octets."""
    length = 38 + len(attributes) + len(proxy_states)
    if length > MAX_LENGTH:
        raise EncodeError(f"packet of {length} octets exceeds {MAX_LENGTH}")
    return _sign(code, identifier, request_authenticator, attributes, proxy_states, secret)
