"""Packet authenticators and Message-Authenticator, and the request/reply builders.

- Access-Request / Status-Server: the Request Authenticator is a random nonce.
- Accounting-, CoA- and Disconnect-Request: MD5 over the packet with a zero
  authenticator and the secret (RFC 2866 §3, RFC 5176 §2.3).
- Replies: Response Authenticator = MD5(header + Request Authenticator + attributes
  + secret) (RFC 2865 §3).
- Message-Authenticator: HMAC-MD5 keyed by the secret over the packet with its own value
  zeroed (RFC 3579 §3.2); the authenticator field holds the request's authenticator for
  Access packets and replies, zeros for the hashed requests.  In our Access-Accept,
  -Reject and -Challenge it is always the first attribute (BlastRADIUS).
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Iterable

from aaa.radius.codes import ACCESS_REPLIES, HASHED_REQUESTS, PacketCode
from aaa.radius.digest import hmac_md5 as _hmac_md5
from aaa.radius.digest import md5
from aaa.radius.errors import EncodeError
from aaa.radius.fastlane import sign_access_reply
from aaa.radius.packet import MAX_LENGTH, Packet

ZERO16 = bytes(16)
_MA_ZERO = b"\x50\x12" + ZERO16
_HEADER = struct.Struct("!BBH")
PROXY_STATE = 33


def new_authenticator() -> bytes:
    """A Request Authenticator for Access-Request/Status-Server (unpredictable)."""
    return os.urandom(16)


# --- verification -------------------------------------------------------------------------


def verify_message_authenticator(
    packet: Packet, secret: bytes, request_authenticator: bytes | None = None
) -> bool:
    """True if the packet has exactly one valid Message-Authenticator.

    For a reply pass the `request_authenticator` of the request it answers.
    """
    at = packet.message_authenticator_at
    if at < 0:
        return False
    raw = packet.raw
    if raw[at + 1] != 18:
        return False
    if request_authenticator is not None:
        data = b"".join((raw[:4], request_authenticator, raw[20 : at + 2], ZERO16, raw[at + 18 :]))
    elif packet.code in HASHED_REQUESTS:
        data = b"".join((raw[:4], ZERO16, raw[20 : at + 2], ZERO16, raw[at + 18 :]))
    else:  # Access-Request, Status-Server: the authenticator field is signed as sent
        data = b"".join((raw[: at + 2], ZERO16, raw[at + 18 :]))
    return hmac.compare_digest(_hmac_md5(secret, data), raw[at + 2 : at + 18])


def verify_request_authenticator(packet: Packet, secret: bytes) -> bool:
    """Check the hashed Request Authenticator of an Accounting/CoA/Disconnect-Request."""
    if packet.code not in HASHED_REQUESTS:
        raise ValueError(f"code {packet.code} carries a random Request Authenticator")
    raw = packet.raw
    expected = md5(raw[:4] + ZERO16 + raw[20:] + secret)
    return hmac.compare_digest(expected, raw[4:20])


def verify_reply(reply: Packet, request_authenticator: bytes, secret: bytes) -> bool:
    """Check a reply's Response Authenticator and, if present, its Message-Authenticator."""
    raw = reply.raw
    expected = md5(raw[:4] + request_authenticator + raw[20:] + secret)
    if not hmac.compare_digest(expected, raw[4:20]):
        return False
    if reply.has_message_authenticator:
        return verify_message_authenticator(reply, secret, request_authenticator)
    return True


# --- building -----------------------------------------------------------------------------


def _join(attributes: bytes | Iterable[bytes]) -> bytes:
    return attributes if isinstance(attributes, bytes) else b"".join(attributes)


def _check_length(length: int) -> None:
    if length > MAX_LENGTH:
        raise EncodeError(f"packet of {length} octets exceeds {MAX_LENGTH}")


def build_request(
    code: int,
    identifier: int,
    attributes: bytes | Iterable[bytes],
    secret: bytes,
    *,
    authenticator: bytes | None = None,
    message_authenticator: bool | None = None,
) -> bytes:
    """A signed request.  Message-Authenticator, when added, is the first attribute.

    For Access-Request/Status-Server pass the `authenticator` used to hide
    User-Password (a random one is made otherwise); Message-Authenticator defaults on
    for them and off for the hashed requests.
    """
    body = _join(attributes)
    if code in HASHED_REQUESTS:
        with_ma = bool(message_authenticator)
        length = 20 + len(body) + (18 if with_ma else 0)
        _check_length(length)
        header = _HEADER.pack(code, identifier, length)
        if with_ma:
            mac = _hmac_md5(secret, header + ZERO16 + _MA_ZERO + body)
            body = b"\x50\x12" + mac + body
        auth = md5(header + ZERO16 + body + secret)
        return header + auth + body
    if code not in (PacketCode.ACCESS_REQUEST, PacketCode.STATUS_SERVER):
        raise ValueError(f"code {code} is not a request")
    auth = authenticator if authenticator is not None else new_authenticator()
    if len(auth) != 16:
        raise EncodeError("the authenticator must be 16 octets")
    with_ma = message_authenticator is None or message_authenticator
    length = 20 + len(body) + (18 if with_ma else 0)
    _check_length(length)
    header = _HEADER.pack(code, identifier, length)
    if with_ma:
        mac = _hmac_md5(secret, header + auth + _MA_ZERO + body)
        body = b"\x50\x12" + mac + body
    return header + auth + body


def proxy_states(request: Packet) -> bytes:
    """The request's Proxy-State attributes, in order, ready to append to a reply."""
    return b"".join(
        bytes((PROXY_STATE, len(raw) + 2)) + raw for key, raw in request.attributes if key == PROXY_STATE
    )


def build_reply(
    request: Packet,
    code: int,
    secret: bytes,
    attributes: bytes | Iterable[bytes] = b"",
    *,
    message_authenticator: bool | None = None,
) -> bytes:
    """The reply to `request`: Message-Authenticator first, then `attributes`, then the
    request's Proxy-States, signed with the Response Authenticator, in one pass.

    Message-Authenticator is always added to Access-Accept/Reject/Challenge; to other
    replies when `message_authenticator` is true or (if None) the request carried one.
    """
    if code in ACCESS_REPLIES:
        echoed = proxy_states(request) if request.proxy_state_count else b""
        return sign_access_reply(code, request.identifier, request.authenticator, _join(attributes),
                                 echoed, secret)
    body = _join(attributes)
    if request.proxy_state_count:
        body += proxy_states(request)
    with_ma = request.has_message_authenticator if message_authenticator is None else message_authenticator
    request_auth = request.authenticator
    if with_ma:
        length = 38 + len(body)
        _check_length(length)
        header = _HEADER.pack(code, request.identifier, length)
        mac = _hmac_md5(secret, header + request_auth + _MA_ZERO + body)
        body = b"\x50\x12" + mac + body
    else:
        length = 20 + len(body)
        _check_length(length)
        header = _HEADER.pack(code, request.identifier, length)
    return header + md5(header + request_auth + body + secret) + body
