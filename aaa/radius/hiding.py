"""Hidden attribute values: User-Password (RFC 2865 §5.2) and salt encryption
(RFC 2868 §3.5, RFC 2548 §2.4.2) used by Tunnel-Password and MS-MPPE-*-Key.

Both are MD5 stream ciphers chained on the previous ciphertext block.  The `authenticator`
is the Request Authenticator of the Access-Request (also for attributes in its reply).
"""

from __future__ import annotations

import os

from aaa.radius.digest import md5
from aaa.radius.errors import EncodeError, MalformedPacket

MAX_PASSWORD = 128


def _xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")


def _chain(data: bytes, secret: bytes, first: bytes, encrypt: bool) -> bytes:
    """XOR `data` (a multiple of 16 octets) with MD5(secret + previous ciphertext)."""
    out = []
    last = first
    for i in range(0, len(data), 16):
        block = data[i : i + 16]
        mixed = _xor16(block, md5(secret + last))
        out.append(mixed)
        # Each block chains on the *ciphertext*: our output when hiding, input when not.
        last = mixed if encrypt else block
    return b"".join(out)


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password value for `password` (NUL-padded to a multiple of 16 octets)."""
    if len(password) > MAX_PASSWORD:
        raise EncodeError(f"User-Password is {len(password)} octets; at most {MAX_PASSWORD}")
    pad = -len(password) % 16 if password else 16  # an empty password is one NUL block
    padded = password + b"\x00" * pad
    return _chain(padded, secret, authenticator, True)


def unhide_password(hidden: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """The password inside a User-Password value, trailing NUL padding removed."""
    size = len(hidden)
    if size == 16:  # the common case: one block, no loop
        plain = _xor16(hidden, md5(secret + authenticator))
    elif size == 0 or size % 16 or size > MAX_PASSWORD:
        raise MalformedPacket(f"User-Password of {size} octets is not 16..128 in steps of 16")
    else:
        plain = _chain(hidden, secret, authenticator, False)
    return plain.rstrip(b"\x00")


def new_salt() -> bytes:
    """A random salt; RFC 2868 requires its most significant bit set."""
    salt = os.urandom(2)
    return bytes((salt[0] | 0x80, salt[1]))


def salt_encrypt(plain: bytes, secret: bytes, authenticator: bytes, salt: bytes | None = None) -> bytes:
    """Salt + ciphertext of `plain` (the value is prefixed by its length, then padded)."""
    if len(plain) > 239:  # 1 length octet + 239 + padding, and salt and header, fill 255
        raise EncodeError(f"salt-encrypted value is {len(plain)} octets; at most 239")
    if salt is None:
        salt = new_salt()
    elif len(salt) != 2 or not salt[0] & 0x80:
        raise EncodeError("salt must be 2 octets with the high bit set")
    data = bytes((len(plain),)) + plain
    data += b"\x00" * (-len(data) % 16)
    return salt + _chain(data, secret, authenticator + salt, True)


def salt_decrypt(value: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """The plaintext of a salt-encrypted value (salt + ciphertext)."""
    if len(value) < 18 or (len(value) - 2) % 16:
        raise MalformedPacket(f"salt-encrypted value of {len(value)} octets has a bad length")
    salt = value[:2]
    plain = _chain(value[2:], secret, authenticator + salt, False)
    length = plain[0]
    if length > len(plain) - 1:
        raise MalformedPacket("salt-encrypted value claims more octets than it holds")
    return plain[1 : 1 + length]
