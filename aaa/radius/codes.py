"""RADIUS packet codes (RFC 2865, 2866, 5176, 5997)."""

from __future__ import annotations

from enum import IntEnum


class PacketCode(IntEnum):
    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCOUNTING_REQUEST = 4
    ACCOUNTING_RESPONSE = 5
    ACCESS_CHALLENGE = 11
    STATUS_SERVER = 12
    DISCONNECT_REQUEST = 40
    DISCONNECT_ACK = 41
    DISCONNECT_NAK = 42
    COA_REQUEST = 43
    COA_ACK = 44
    COA_NAK = 45


# Replies that must carry Message-Authenticator as their first attribute (BlastRADIUS).
ACCESS_REPLIES = frozenset({PacketCode.ACCESS_ACCEPT, PacketCode.ACCESS_REJECT, PacketCode.ACCESS_CHALLENGE})

# Requests whose Request Authenticator is an MD5 over the packet (RFC 2866, RFC 5176),
# not a random nonce.
HASHED_REQUESTS = frozenset(
    {PacketCode.ACCOUNTING_REQUEST, PacketCode.DISCONNECT_REQUEST, PacketCode.COA_REQUEST}
)
