"""Duplicate detection and reply cache (RFC 5080 §2.2.2).

A retransmitted request (same NAS address and port, Identifier and Request
Authenticator) gets the very reply sent the first time, and a request still being worked
on is not started twice.  Time comes in as an argument; every operation is O(1), with a
bounded worst case: entries sit in insertion order, which is also expiry order, so
expired ones are dropped from the front, a few per insert.
"""

from __future__ import annotations

import struct
from collections import deque
from enum import Enum

from aaa.radius.packet import Packet

# The key and everything stored are bytes and floats, which the cyclic collector never
# tracks: a dict holding tuples is tracked again at the next insert after each full
# collection untracked it, and the young collection that then walks its 65,536 entries
# held the reader 30-47 ms (measured in the daemon at 10,000 requests/s). Nor is a
# tuple made per insert: each lived the window out as a young object while the expired
# one freed beside it kept the collector's count level, so young collections came
# seldom and found ~20,000 of them (10-23 ms).
CacheKey = bytes
EXPIRED_PER_INSERT = 8  # expired entries forgotten per insert, at most
_PENDING = b""  # stored for a request in progress (a reply is never empty)
_pack_identity = struct.Struct("!BH").pack


class Pending(Enum):
    """The request was seen and has no reply yet: drop the retransmission."""

    IN_PROGRESS = "in-progress"


IN_PROGRESS = Pending.IN_PROGRESS


def cache_key(nas_address: str, source_port: int, identifier: int, authenticator: bytes) -> CacheKey:
    """The RFC 5080 identity of a request (NAS address and port, Identifier, Request
    Authenticator) as bytes: the 16-octet authenticator, Identifier and port in 3 octets,
    then the address."""
    return authenticator + _pack_identity(identifier, source_port) + nas_address.encode()


def request_key(nas_address: str, source_port: int, request: Packet) -> CacheKey:
    """The RFC 5080 identity of a decoded request."""
    return cache_key(nas_address, source_port, request.identifier, request.authenticator)


class DuplicateCache:
    """Bounded map of request identity -> reply octets, forgotten after `window` seconds.

    Two plain dicts hold the entries (reply, expiry) and two deques their expiry order
    (times, keys); an item whose entry was since replaced or forgotten is stale and
    skipped when it reaches the front.
    """

    __slots__ = ("_expires", "_order_keys", "_order_times", "_replies", "max_entries", "window")

    def __init__(self, window: float = 5.0, max_entries: int = 65536) -> None:
        if window <= 0 or max_entries <= 0:
            raise ValueError("window and max_entries must be positive")
        self.window = window
        self.max_entries = max_entries
        self._replies: dict[CacheKey, bytes] = {}  # reply, or _PENDING
        self._expires: dict[CacheKey, float] = {}
        self._order_times: deque[float] = deque()
        self._order_keys: deque[CacheKey] = deque()

    def __len__(self) -> int:
        return len(self._expires)

    def _drop_front(self) -> None:
        """Forget the entry at the front of the order (if it is still the live one)."""
        expires_at, key = self._order_times.popleft(), self._order_keys.popleft()
        if self._expires.get(key) == expires_at:
            del self._expires[key]
            del self._replies[key]

    def lookup(self, key: CacheKey, now: float) -> bytes | Pending | None:
        """The cached reply, `IN_PROGRESS`, or None for a request not seen in the window.

        A None answer registers the key as in progress: call `store` with the reply
        (or `forget` if no reply will be sent).
        """
        expires_at = self._expires.get(key)
        if expires_at is not None and expires_at > now:
            return self._replies[key] or IN_PROGRESS
        self._insert(key, _PENDING, now)
        return None

    def get(self, key: CacheKey, now: float) -> bytes | Pending | None:
        """Like `lookup` but without registering anything."""
        expires_at = self._expires.get(key)
        if expires_at is None or expires_at <= now:
            return None
        return self._replies[key] or IN_PROGRESS

    def store(self, key: CacheKey, reply: bytes, now: float) -> None:
        """Remember the reply sent for `key` for the next `window` seconds."""
        self._insert(key, reply, now)

    def forget(self, key: CacheKey) -> None:
        self._expires.pop(key, None)
        self._replies.pop(key, None)

    def _insert(self, key: CacheKey, value: bytes, now: float) -> None:
        times = self._order_times
        # Expired entries sit at the front; forget a few per insert, never all at once:
        # after a busy minute and a quiet moment, tens of thousands had expired, and
        # dropping them in one go held the next request 30-50 ms. Until they go they are
        # invisible (lookups check the time) and still bounded by max_entries.
        for _ in range(EXPIRED_PER_INSERT):
            if not times or times[0] > now:
                break
            self._drop_front()
        expires = self._expires
        if key not in expires:
            while len(expires) >= self.max_entries:  # the oldest goes first
                self._drop_front()
        while len(times) >= 2 * self.max_entries:  # stale items too are bounded
            self._drop_front()
        expires_at = now + self.window
        expires[key] = expires_at
        self._replies[key] = value
        times.append(expires_at)
        self._order_keys.append(key)
