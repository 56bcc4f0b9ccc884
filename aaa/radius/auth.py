"""Password checks: PAP, CHAP (RFC 1994), MS-CHAPv1 (RFC 2433), MS-CHAPv2 (RFC 2759)
and the MPPE keys of MS-CHAPv2 (RFC 3079) with their RFC 2548 attribute encoding.

Every comparison of secret-derived octets is constant time.  MS-CHAP functions take the
NT password hash (MD4 of the UTF-16LE password) so a store may keep hashes only.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from hashlib import md5

from Crypto.Cipher import DES
from Crypto.Hash import MD4

from aaa.radius.hiding import salt_encrypt

# --- PAP ----------------------------------------------------------------------------------


def check_pap(given: bytes, expected: bytes) -> bool:
    """Compare the unhidden User-Password with the stored one."""
    return hmac.compare_digest(given, expected)


# --- CHAP ---------------------------------------------------------------------------------


def chap_response(ident: int, password: bytes, challenge: bytes) -> bytes:
    """CHAP-Password value: ident + MD5(ident + password + challenge)."""
    return bytes((ident,)) + md5(bytes((ident,)) + password + challenge).digest()


def check_chap(chap_password: bytes, challenge: bytes, password: bytes) -> bool:
    """Verify a CHAP-Password.  `challenge` is CHAP-Challenge if the request has one,
    otherwise its Request Authenticator (RFC 2865 §2.2)."""
    if len(chap_password) != 17:
        return False
    return hmac.compare_digest(chap_response(chap_password[0], password, challenge), chap_password)


# --- MS-CHAP common -----------------------------------------------------------------------


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash: MD4 of the UTF-16LE password (RFC 2759 §8.3)."""
    return MD4.new(password.encode("utf-16-le")).digest()


def _des_key(key7: bytes) -> bytes:
    # Spread 56 key bits over 8 octets, 7 bits each; DES ignores the low parity bit.
    bits = int.from_bytes(key7, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse (RFC 2759 §8.5): three DES encryptions of the 8-octet challenge."""
    key = password_hash.ljust(21, b"\x00")
    return b"".join(DES.new(_des_key(key[i : i + 7]), DES.MODE_ECB).encrypt(challenge) for i in (0, 7, 14))


# --- MS-CHAPv1 ----------------------------------------------------------------------------


def check_mschap1(challenge: bytes, response: bytes, nt_hash: bytes) -> bool:
    """Verify an MS-CHAP-Response (50 octets: ident, flags, LM-Response, NT-Response)
    against the 8-octet MS-CHAP-Challenge.  Only NT responses (flags = 1) are accepted:
    the LM hash is too weak to keep."""
    if len(response) != 50 or len(challenge) != 8 or response[1] != 1:
        return False
    return hmac.compare_digest(challenge_response(challenge, nt_hash), response[26:50])


# --- MS-CHAPv2 ----------------------------------------------------------------------------

_MAGIC1 = b"Magic server to client signing constant"
_MAGIC2 = b"Pad to make it do more than one iteration"
_KEY_MAGIC1 = b"This is the MPPE Master Key"
_KEY_MAGIC2 = b"On the client side, this is the send key; on the server side, it is the receive key."
_KEY_MAGIC3 = b"On the client side, this is the receive key; on the server side, it is the send key."
_SHS_PAD1 = b"\x00" * 40
_SHS_PAD2 = b"\xf2" * 40


def mschap2_challenge_hash(peer_challenge: bytes, auth_challenge: bytes, username: bytes) -> bytes:
    """ChallengeHash (RFC 2759 §8.2).  `username` is the name without any domain."""
    return hashlib.sha1(peer_challenge + auth_challenge + username).digest()[:8]


def mschap2_nt_response(
    auth_challenge: bytes, peer_challenge: bytes, username: bytes, nt_hash: bytes
) -> bytes:
    """GenerateNTResponse (RFC 2759 §8.1)."""
    challenge = mschap2_challenge_hash(peer_challenge, auth_challenge, username)
    return challenge_response(challenge, nt_hash)


def mschap2_authenticator_response(
    nt_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    auth_challenge: bytes,
    username: bytes,
) -> str:
    """GenerateAuthenticatorResponse (RFC 2759 §8.7): "S=" + 40 upper-case hex digits."""
    hash_hash = MD4.new(nt_hash).digest()
    digest = hashlib.sha1(hash_hash + nt_response + _MAGIC1).digest()
    challenge = mschap2_challenge_hash(peer_challenge, auth_challenge, username)
    return "S=" + hashlib.sha1(digest + challenge + _MAGIC2).hexdigest().upper()


def mppe_master_key(nt_hash: bytes, nt_response: bytes) -> bytes:
    """GetMasterKey (RFC 3079 §3.4)."""
    hash_hash = MD4.new(nt_hash).digest()
    return hashlib.sha1(hash_hash + nt_response + _KEY_MAGIC1).digest()[:16]


def mppe_start_key(master_key: bytes, is_send: bool, is_server: bool, length: int = 16) -> bytes:
    """GetAsymmetricStartKey (RFC 3079 §3.4)."""
    magic = _KEY_MAGIC3 if is_send == is_server else _KEY_MAGIC2
    return hashlib.sha1(master_key + _SHS_PAD1 + magic + _SHS_PAD2).digest()[:length]


@dataclass(frozen=True, slots=True)
class MsChap2Result:
    """What a server puts in an Access-Accept after a good MS-CHAPv2 response."""

    success: bytes  # MS-CHAP2-Success value: ident + b"S=..."
    send_key: bytes  # server MPPE send key -> MS-MPPE-Send-Key
    recv_key: bytes  # server MPPE receive key -> MS-MPPE-Recv-Key


def check_mschap2(
    auth_challenge: bytes, response: bytes, username: bytes, nt_hash: bytes
) -> MsChap2Result | None:
    """Verify an MS-CHAP2-Response (50 octets: ident, flags, peer challenge, 8 reserved,
    NT-Response) against the 16-octet MS-CHAP-Challenge; None if it does not match."""
    if len(response) != 50 or len(auth_challenge) != 16:
        return None
    ident, peer_challenge, nt_response = response[0], response[2:18], response[26:50]
    expected = mschap2_nt_response(auth_challenge, peer_challenge, username, nt_hash)
    if not hmac.compare_digest(expected, nt_response):
        return None
    auth_response = mschap2_authenticator_response(
        nt_hash, nt_response, peer_challenge, auth_challenge, username
    )
    master = mppe_master_key(nt_hash, nt_response)
    return MsChap2Result(
        success=bytes((ident,)) + auth_response.encode("ascii"),
        send_key=mppe_start_key(master, is_send=True, is_server=True),
        recv_key=mppe_start_key(master, is_send=False, is_server=True),
    )


def mppe_key_attribute_value(
    key: bytes, secret: bytes, request_authenticator: bytes, salt: bytes | None = None
) -> bytes:
    """The octets of MS-MPPE-Send-Key/Recv-Key (RFC 2548 §2.4.2): salt-encrypted key."""
    return salt_encrypt(key, secret, request_authenticator, salt)


def strip_domain(username: bytes) -> bytes:
    """The user part of "DOMAIN\\user", the name MS-CHAPv2 peers hash."""
    return username.rsplit(b"\\", 1)[-1]
