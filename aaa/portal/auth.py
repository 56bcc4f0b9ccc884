"""Login rate limits and portal sessions, both in memory and driven by an injected clock.

Both are used from the reactor thread only (no locks). Sessions live in the one process
that serves the portal (worker 0 of `aaa serve`); a restart logs everybody out.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class RateLimiter:
    """At most `limit` failures per key within `window` seconds; beyond that the key is
    blocked until its oldest failure leaves the window."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float],
                 max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        cutoff = self.clock() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def retry_after(self, key: str) -> float | None:
        """Seconds until `key` may try again, or None when it may try now."""
        failures = self._recent(key)
        if failures is None or len(failures) < self.limit:
            return None
        return max(0.0, failures[-self.limit] + self.window - self.clock())

    def failure(self, key: str) -> None:
        if len(self._failures) >= self.max_keys:
            self.prune()
        self._failures.setdefault(key, deque()).append(self.clock())

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)

    def prune(self) -> None:
        for key in list(self._failures):
            self._recent(key)


@dataclass(frozen=True, slots=True)
class PortalSession:
    token: str
    customer_id: int
    expires_at: float  # clock seconds


class SessionStore:
    """Random bearer tokens that expire `ttl` seconds after the login."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.clock = clock
        self._sessions: dict[str, PortalSession] = {}

    def create(self, customer_id: int) -> PortalSession:
        self.prune()
        session = PortalSession(secrets.token_urlsafe(32), customer_id, self.clock() + self.ttl)
        self._sessions[session.token] = session
        return session

    def get(self, token: str) -> PortalSession | None:
        session = self._sessions.get(token)
        if session is None:
            return None
        if session.expires_at <= self.clock():
            del self._sessions[token]
            return None
        return session

    def drop(self, token: str) -> None:
        self._sessions.pop(token, None)

    def prune(self) -> None:
        now = self.clock()
        for token in [t for t, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[token]

    def __len__(self) -> int:
        return len(self._sessions)
