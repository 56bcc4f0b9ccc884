"""MD5 and HMAC-MD5 for the hot path.

hashlib's OpenSSL-backed md5 and hmac.digest look the algorithm up on every call, which
costs more than hashing a RADIUS packet.  CPython's built-in `_md5` does not, and HMAC is
two MD5s over the secret's precomputed pads (RFC 2104), cached per secret.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class _Hash(Protocol):
    def digest(self) -> bytes: ...


try:
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover - CPython without the built-in module
    from hashlib import md5 as _md5

_new: Callable[[bytes], _Hash] = _md5


class _HexHash(_Hash, Protocol):
    def hexdigest(self) -> str: ...


new_md5: Callable[[bytes], _HexHash] = _md5  # a hash object, for hexdigest()

_PADS: dict[bytes, tuple[bytes, bytes]] = {}
_MAX_SECRETS = 4096  # one per NAS secret; a bound keeps a misuse from growing forever


def md5(data: bytes) -> bytes:
    return _new(data).digest()


def _pads(secret: bytes) -> tuple[bytes, bytes]:
    key = _new(secret).digest() if len(secret) > 64 else secret
    key = key.ljust(64, b"\x00")
    pads = (bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key))
    if len(_PADS) >= _MAX_SECRETS:
        _PADS.clear()
    _PADS[secret] = pads
    return pads


def hmac_md5(secret: bytes, data: bytes) -> bytes:
    pads = _PADS.get(secret) or _pads(secret)
    return _new(pads[1] + _new(pads[0] + data).digest()).digest()
