"""The one thin Twisted transport: a datagram in, handed to a handler, its reply out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.protocol import DatagramProtocol

from aaa.log import log_event

Handle = Callable[[bytes, str, int, float], bytes | None]


class Clock(Protocol):
    """The reactor, or `twisted.internet.task.Clock` in tests."""

    def seconds(self) -> float: ...


class RadiusProtocol(DatagramProtocol):
    """Decoding, policy and encoding all live in `handle`; this only moves bytes.

    `handle(data, host, port, now)` returns the reply or None for silence. A handler bug
    is logged and counted through `on_error`, and the server keeps serving.
    """

    def __init__(self, handle: Handle, clock: Clock,
                 observe: Callable[[float], None] | None = None,
                 on_error: Callable[[], None] | None = None) -> None:
        self.handle = handle
        self.clock = clock
        self.observe = observe
        self.on_error = on_error

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
        host, port = addr[0], addr[1]
        now = self.clock.seconds()
        try:
            reply = self.handle(data, host, port, now)
        except Exception as exc:
            log_event("handler_error", error=type(exc).__name__, detail=str(exc)[:200])
            if self.on_error is not None:
                self.on_error()
            return
        if reply is not None and self.transport is not None:
            # Straight to the socket when there is one: Port.write re-validates the address
            # on every call (~3 us). Any error goes through Port.write, for Twisted's handling.
            sock = getattr(self.transport, "socket", None)
            try:
                if sock is None:
                    raise OSError("no socket")
                sock.sendto(reply, addr)
            except OSError:
                # zope-interface stubs confuse mypy about `self` in IUDPTransport.write
                self.transport.write(reply, addr)  # type: ignore[misc,arg-type,call-arg]
        if self.observe is not None:
            self.observe(self.clock.seconds() - now)
