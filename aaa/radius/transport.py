"""The thin transports: a datagram in, handed to a handler, its reply out.

`RadiusProtocol` holds the handler; it is read either by the reactor (`RadiusPort`: the
accounting port, whose replies wait for the database anyway) or by a thread of its own
(`ThreadedRadiusPort`: the auth port, where the reactor's turn per wake-up cost more than
the answer).

Replies are coalesced: those to the datagrams read in one reactor turn (one burst, on the
threaded port) leave together right after it, at most `MAX_HELD` at a time and none held
longer than `HOLD_LIMIT`. On a loopback
or a busy NIC each `sendto` that finds its peer asleep pays for waking it; sent in a row,
the replies of a burst wake it once (measured with two workers at a window of 16: ~25 %
less CPU per request, +7 to +30 % throughput over alternating runs). A lone request waits for nothing.

"Right after it": on a `RadiusPort` or a `ThreadedRadiusPort` the port flushes as its read
loop ends; on any other transport a `callLater(0)` flushes at the start of the next turn.
The port's flush saves a timed call and an extra zero-timeout poll per turn, which at a
fixed 10,000 requests/s (two or three per turn) showed in the tail: p50 2.4/1.1/3.1 ->
1.6/0.7/2.3 ms, p99 13/11/32 -> 11/8.5/17 ms in three alternated pairs of runs.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import udp
from twisted.internet.protocol import DatagramProtocol

from aaa.log import Repeating, log_event

Handle = Callable[[bytes, str, int, float], bytes | None]

# Under overload one reactor turn can read hundreds of datagrams: the first reply must not
# wait for all of them.
MAX_HELD = 32
# Nor wait longer than this (seconds) for the rest of its burst: a burst that came after a
# stall (the reader preempted, the machine busy) is answered as it is worked through, not
# 32 requests later. Measured with the auth log on, alternating short runs: p99 at
# 10,000/s -10 to -15 %, window-16 throughput unchanged (a burst of 16 is ~0.3 ms of work).
HOLD_LIMIT = 0.00025
READ_ERROR_PAUSE = 0.01  # seconds the threaded reader waits after a read that failed


class Clock(Protocol):
    """The reactor, or `twisted.internet.task.Clock` in tests."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any) -> Any: ...


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
        self._held: list[tuple[bytes, tuple[str, int]]] = []
        self._held_since = 0.0
        self._port_flushes = False  # the transport is a RadiusPort: no callLater needed

    def startProtocol(self) -> None:
        self._port_flushes = isinstance(self.transport, RadiusPort | ThreadedRadiusPort)

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
        held = self._held
        if reply is not None and self.transport is not None:
            if not held:
                self._held_since = now
                if not self._port_flushes:
                    self.clock.callLater(0, self.flush)
            held.append((reply, addr))
        done = self.clock.seconds()
        if held and (len(held) >= MAX_HELD or done - self._held_since >= HOLD_LIMIT):
            self.flush()
        if self.observe is not None:
            self.observe(done - now)

    def doStop(self) -> None:
        """The port is closing (graceful stop): what was answered still leaves, before
        Twisted takes the transport away."""
        self.flush()
        super().doStop()  # type: ignore[no-untyped-call]

    def flush(self) -> None:
        """Send the held replies, in the order their requests arrived."""
        held, self._held = self._held, []
        for reply, addr in held:
            self.send(reply, addr)

    def send(self, reply: bytes, addr: tuple[str, int]) -> None:
        """One datagram out now (the accounting replies, once durable, come this way)."""
        if self.transport is None:
            return
        # Straight to the socket when there is one: Port.write re-validates the address on
        # every call (~3 us). Any error goes through Port.write, for Twisted's handling.
        sock = getattr(self.transport, "socket", None)
        try:
            if sock is None:
                raise OSError("no socket")
            sock.sendto(reply, addr)
        except OSError:
            # zope-interface stubs confuse mypy about `self` in IUDPTransport.write
            self.transport.write(reply, addr)  # type: ignore[misc,arg-type,call-arg]


class RadiusPort(udp.Port):
    """Twisted's UDP port, flushing its RadiusProtocol's held replies as each read ends."""

    protocol: RadiusProtocol

    def doRead(self) -> None:
        try:
            super().doRead()  # type: ignore[no-untyped-call]
        finally:
            self.protocol.flush()


def adopt_radius_port(reactor: Any, sock: socket.socket, protocol: RadiusProtocol) -> RadiusPort:
    """Listen on a bound, non-blocking UDP socket, as `reactor.adoptDatagramPort` does but
    with a `RadiusPort` (Twisted's own classmethod for adopting a descriptor; the reactor
    keeps a duplicate of it, so the caller may close `sock`)."""
    port: RadiusPort = RadiusPort._fromListeningDescriptor(  # type: ignore[no-untyped-call]
        reactor, sock.fileno(), sock.family, protocol, maxPacketSize=8192)
    port.startListening()  # type: ignore[no-untyped-call]
    return port


class ThreadedRadiusPort:
    """A RADIUS port read by a thread of its own, asleep in a blocking `recvfrom` between
    bursts; how the daemon listens for Access-Requests.

    Per wake-up the reactor spends an `epoll_wait`, a turn of its Python loop, its logging
    context and a `recvfrom` that ends in EAGAIN; a bare Twisted responder costs ~33 us of
    CPU per request at 10,000/s against ~12 us for a blocking loop, measured here. Read
    this way, two workers answered 20,100-23,100 Access-Requests/s at a window of 16
    against 18,100-20,800/s through the reactor (alternated runs, same machine).

    The reactor keeps everything else (accounting, CoA, metrics, view swaps); the handler
    runs on this thread, so whatever it shares with the reactor thread is swapped whole
    (the view, the settings) or thread-safe (the auth-log buffer, the counters). The
    replies to one burst still leave together: a non-blocking read that finds nothing
    flushes them before the thread sleeps.
    """

    def __init__(self, sock: socket.socket, protocol: RadiusProtocol, name: str = "radius-reader") -> None:
        sock.setblocking(True)
        self.socket = sock
        self.protocol = protocol
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def startListening(self) -> None:
        self.protocol.transport = self  # type: ignore[assignment]
        self.protocol.startProtocol()
        self._thread.start()

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        """RadiusProtocol.send's fallback: a send that fails is logged, never raised."""
        try:
            self.socket.sendto(data, addr)
        except OSError as exc:
            log_event("send_failed", error=type(exc).__name__, detail=str(exc)[:200])

    def _run(self) -> None:
        recvfrom, received, flush = self.socket.recvfrom, self.protocol.datagramReceived, self.protocol.flush
        dontwait = socket.MSG_DONTWAIT
        failures = Repeating("reader_error")  # one line, then one a minute while it lasts
        failing = False
        while not self._stopping:
            try:
                try:
                    data, addr = recvfrom(8192, dontwait)
                except BlockingIOError:
                    flush()  # the burst is over: its replies leave together
                    data, addr = recvfrom(8192)  # asleep, without the interpreter lock
                if failing:
                    failing = False
                    failures.succeeded()
                if addr is None:  # woken by stopListening's shutdown
                    continue
                received(data, addr)
            except Exception as exc:  # the reader must not die: log, count, read on
                failing = True
                with contextlib.suppress(Exception):  # not even of a failing log or counter
                    failures.failed(error=type(exc).__name__, detail=str(exc)[:200])
                    if self.protocol.on_error is not None:
                        self.protocol.on_error()
                time.sleep(READ_ERROR_PAUSE)  # an error that repeats must not spin a core

    def stopListening(self) -> None:
        """Stop reading (within one request), send what was answered, close the socket."""
        self._stopping = True
        # Wakes a blocked recvfrom with (b"", None); raises ENOTCONN on an unconnected UDP
        # socket after doing so.
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RD)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        self.protocol.flush()
        with contextlib.suppress(OSError):
            self.socket.close()
