"""The CoA/Disconnect client: one UDP port, requests matched to answers by NAS and Identifier.

A request is retransmitted unchanged after each timeout (RFC 5176 §2.3 / RFC 5080); the
Deferred fires with the first answer that `accept` vouches for (so a forged packet from
the network is ignored, counted by the caller), or None when every try timed out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol

from aaa.radius.transport import Clock


class Scheduler(Clock, Protocol):
    def callLater(self, delay: float, f: Callable[..., Any], *args: Any) -> Any: ...


@dataclass
class Exchange:
    """The outcome of one request: the answer (or None), how many times it was sent, when."""

    answer: bytes | None
    sent_at: list[float] = field(default_factory=list)
    answered_at: float | None = None


@dataclass
class _Pending:
    packet: bytes
    address: tuple[str, int]
    timeouts: Sequence[float]
    accept: Callable[[bytes], bool]
    deferred: Deferred[Exchange]
    exchange: Exchange
    timer: Any = None


class CoaClient(DatagramProtocol):
    def __init__(self, clock: Scheduler, on_rejected: Callable[[], None] | None = None) -> None:
        self.clock = clock
        self.on_rejected = on_rejected
        self._pending: dict[tuple[str, int, int], _Pending] = {}
        self._next: dict[tuple[str, int], int] = {}

    def identifier(self, host: str, port: int) -> int | None:
        """A free Identifier towards this NAS, or None when 256 are in flight."""
        start = self._next.get((host, port), 0)
        for offset in range(256):
            candidate = (start + offset) % 256
            if (host, port, candidate) not in self._pending:
                self._next[(host, port)] = (candidate + 1) % 256
                return candidate
        return None

    def exchange(self, packet: bytes, host: str, port: int, timeouts: Sequence[float],
                 accept: Callable[[bytes], bool]) -> Deferred[Exchange]:
        key = (host, port, packet[1])
        if key in self._pending:
            raise ValueError("identifier already in flight")
        pending = _Pending(packet, (host, port), timeouts, accept, Deferred(), Exchange(None))
        self._pending[key] = pending
        self._send(key, pending)
        return pending.deferred

    def _send(self, key: tuple[str, int, int], pending: _Pending) -> None:
        tries = len(pending.exchange.sent_at)
        pending.exchange.sent_at.append(self.clock.seconds())
        if self.transport is not None:
            self.transport.write(pending.packet, pending.address)  # type: ignore[misc,arg-type,call-arg]
        pending.timer = self.clock.callLater(pending.timeouts[tries], self._timeout, key)

    def _timeout(self, key: tuple[str, int, int]) -> None:
        pending = self._pending.get(key)
        if pending is None:
            return
        if len(pending.exchange.sent_at) < len(pending.timeouts):
            self._send(key, pending)
            return
        del self._pending[key]
        pending.deferred.callback(pending.exchange)

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 20:
            return
        key = (addr[0], addr[1], data[1])
        pending = self._pending.get(key)
        if pending is None or not pending.accept(data):
            if self.on_rejected is not None:
                self.on_rejected()
            return
        del self._pending[key]
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.exchange.answer = data
        pending.exchange.answered_at = self.clock.seconds()
        pending.deferred.callback(pending.exchange)
