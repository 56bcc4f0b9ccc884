"""RadiusProtocol: replies to one reactor turn's datagrams leave together, in order; the
threaded port (the auth port's reader) does the same per burst and stops promptly.

Time is `twisted.internet.task.Clock`; the replies go out through a real UDP socket on
127.0.0.1 and are read back by another. The RadiusPort tests put Twisted's own UDP port
on such a socket, with Twisted's MemoryReactorClock standing in for the event loop: the
test calls `doRead` where the reactor would on a readable socket.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from aaa.radius.transport import (
    HOLD_LIMIT,
    MAX_HELD,
    READ_ERROR_PAUSE,
    RadiusPort,
    RadiusProtocol,
    ThreadedRadiusPort,
    adopt_radius_port,
)


class SocketTransport:
    """What RadiusProtocol uses of Twisted's udp.Port: its socket, and write() as fallback."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.socket = sock
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setblocking(False)
    yield server, client
    server.close()
    client.close()


def received(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


def echo(data: bytes, host: str, port: int, now: float) -> bytes | None:
    return b"re:" + data if not data.startswith(b"quiet") else None


def protocol_on(server: socket.socket, clock: Clock, handle=echo, **kwargs) -> RadiusProtocol:  # type: ignore[no-untyped-def]
    protocol = RadiusProtocol(handle, clock, **kwargs)
    protocol.makeConnection(SocketTransport(server))  # type: ignore[arg-type]
    return protocol


def test_replies_of_one_turn_leave_together_after_it(pair: tuple[socket.socket, socket.socket]) -> None:
    """Nothing is sent while the turn lasts; then every reply, in the order of the requests."""
    server, client = pair
    clock = Clock()
    protocol = protocol_on(server, clock)
    addr = client.getsockname()
    for n in range(3):
        protocol.datagramReceived(b"req%d" % n, addr)
    assert received(client) == []
    assert len(clock.getDelayedCalls()) == 1  # one flush for the burst, not one per reply
    clock.advance(0)
    assert received(client) == [b"re:req0", b"re:req1", b"re:req2"]
    assert clock.getDelayedCalls() == []


def test_a_long_burst_does_not_hold_its_first_replies(pair: tuple[socket.socket, socket.socket]) -> None:
    """At MAX_HELD replies the protocol sends at once: under overload the first answers do
    not wait for the whole turn."""
    server, client = pair
    clock = Clock()
    protocol = protocol_on(server, clock)
    addr = client.getsockname()
    for n in range(MAX_HELD + 2):
        protocol.datagramReceived(b"r%d" % n, addr)
    assert received(client) == [b"re:r%d" % n for n in range(MAX_HELD)]
    clock.advance(0)
    assert received(client) == [b"re:r%d" % MAX_HELD, b"re:r%d" % (MAX_HELD + 1)]


def test_a_reply_waits_for_its_burst_no_longer_than_the_hold_limit(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """A burst worked through slowly (each request taking 40 % of HOLD_LIMIT) does not hold
    its first reply for the whole turn: the replies leave as soon as the oldest held one
    has waited HOLD_LIMIT, in order, and the rest at the turn's end."""
    server, client = pair
    clock = Clock()
    step = HOLD_LIMIT * 0.4

    def slow(data: bytes, host: str, port: int, now: float) -> bytes:
        clock.rightNow += step  # time passes inside the turn; its flush is not run yet
        return b"re:" + data

    protocol = protocol_on(server, clock, handle=slow)
    addr = client.getsockname()
    batches = []
    for n in range(7):
        protocol.datagramReceived(b"r%d" % n, addr)
        batches.append(received(client))
    # held at 0.4 and 0.8 of the limit; the third reply brings the oldest to 1.2: sent.
    assert batches == [[], [], [b"re:r0", b"re:r1", b"re:r2"], [], [], [b"re:r3", b"re:r4", b"re:r5"], []]
    clock.advance(0)
    assert received(client) == [b"re:r6"]


def test_silence_schedules_nothing(pair: tuple[socket.socket, socket.socket]) -> None:
    """A request the handler drops holds no reply and schedules no flush."""
    server, client = pair
    clock = Clock()
    protocol = protocol_on(server, clock)
    protocol.datagramReceived(b"quiet", client.getsockname())
    assert clock.getDelayedCalls() == []
    clock.advance(0)
    assert received(client) == []


def test_a_handler_error_is_counted_and_the_others_are_answered(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """A handler bug drops that one request (counted); the burst's other replies still leave."""
    server, client = pair
    clock = Clock()
    errors: list[int] = []

    def handle(data: bytes, host: str, port: int, now: float) -> bytes | None:
        if data == b"boom":
            raise ValueError("bug")
        return b"ok:" + data

    protocol = protocol_on(server, clock, handle, on_error=lambda: errors.append(1))
    addr = client.getsockname()
    for data in (b"a", b"boom", b"b"):
        protocol.datagramReceived(data, addr)
    clock.advance(0)
    assert received(client) == [b"ok:a", b"ok:b"]
    assert errors == [1]


def test_without_a_socket_replies_go_through_the_transport() -> None:
    """A transport with no socket (or a failing sendto) gets the reply through write()."""
    clock = Clock()
    transport = SocketTransport(None)
    protocol = RadiusProtocol(echo, clock)
    protocol.makeConnection(transport)  # type: ignore[arg-type]
    protocol.datagramReceived(b"x", ("127.0.0.1", 1812))
    clock.advance(0)
    assert transport.written == [(b"re:x", ("127.0.0.1", 1812))]


def test_latency_is_observed_per_request(pair: tuple[socket.socket, socket.socket]) -> None:
    """Each answered request reports its handling time to the histogram's observer."""
    server, client = pair
    clock = Clock()
    seen: list[float] = []
    protocol = protocol_on(server, clock, observe=seen.append)
    protocol.datagramReceived(b"a", client.getsockname())
    protocol.datagramReceived(b"b", client.getsockname())
    assert seen == [0.0, 0.0]


def test_send_goes_out_at_once(pair: tuple[socket.socket, socket.socket]) -> None:
    """send() (the accounting replies, once durable) does not wait for the end of the turn."""
    server, client = pair
    clock = Clock()
    protocol = protocol_on(server, clock)
    protocol.send(b"durable", client.getsockname())
    assert received(client) == [b"durable"]
    assert clock.getDelayedCalls() == []


def test_replies_held_when_the_port_stops_still_leave(pair: tuple[socket.socket, socket.socket]) -> None:
    """A graceful stop (the port closing calls doStop, which drops the transport) still
    sends what this turn answered."""
    server, client = pair
    clock = Clock()
    protocol = protocol_on(server, clock)
    protocol.datagramReceived(b"last", client.getsockname())
    protocol.doStop()
    assert received(client) == [b"re:last"]


def radius_port_on(server: socket.socket, handle=echo) -> tuple[RadiusPort, MemoryReactorClock]:  # type: ignore[no-untyped-def]
    reactor = MemoryReactorClock()
    server.setblocking(False)
    protocol = RadiusProtocol(handle, reactor)
    port = adopt_radius_port(reactor, server, protocol)
    return port, reactor


def test_a_radius_port_flushes_as_its_read_ends(pair: tuple[socket.socket, socket.socket]) -> None:
    """On a RadiusPort the replies to one read leave when the read loop ends, in order,
    with no timed call scheduled (a callLater(0) per turn costs an extra poll)."""
    server, client = pair
    port, reactor = radius_port_on(server)
    try:
        assert port in reactor.getReaders()
        for n in range(3):
            client.sendto(b"req%d" % n, server.getsockname())
        port.doRead()
        assert reactor.getDelayedCalls() == []
        assert received(client) == [b"re:req0", b"re:req1", b"re:req2"]
    finally:
        port.connectionLost(None)


def test_a_radius_port_still_caps_what_it_holds(pair: tuple[socket.socket, socket.socket]) -> None:
    """Inside one long read the first MAX_HELD replies leave without waiting for its end;
    the rest at the end of the read."""
    server, client = pair
    sent: list[int] = []

    def handle(data: bytes, host: str, port: int, now: float) -> bytes | None:
        sent.append(len(received(client)))  # replies the client had when this one was handled
        return b"re:" + data

    port, _ = radius_port_on(server, handle)
    try:
        for n in range(MAX_HELD + 2):
            client.sendto(b"r%d" % n, server.getsockname())
        port.doRead()
        assert sent[MAX_HELD - 1] == 0 and sent[MAX_HELD] == MAX_HELD
        assert received(client) == [b"re:r%d" % MAX_HELD, b"re:r%d" % (MAX_HELD + 1)]
    finally:
        port.connectionLost(None)


# --- the threaded port (the auth port's reader) -------------------------------------------


def threaded_port_on(server: socket.socket, handle=echo, **kwargs) -> ThreadedRadiusPort:  # type: ignore[no-untyped-def]
    return ThreadedRadiusPort(server, RadiusProtocol(handle, Clock(), **kwargs))


def wait_for(client: socket.socket, count: int, timeout: float = 5.0) -> list[bytes]:
    """The replies the client has once it has `count` of them (or the timeout passed)."""
    client.settimeout(timeout)
    try:
        return [client.recv(4096) for _ in range(count)]
    finally:
        client.setblocking(False)


def test_a_threaded_port_sends_a_bursts_replies_together_after_it(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """Datagrams waiting together are one burst: no reply leaves while it is read, then
    all of them, in order (the reader flushes when a non-blocking read finds nothing)."""
    server, client = pair
    seen: list[int] = []
    done = threading.Event()

    def handle(data: bytes, host: str, port: int, now: float) -> bytes | None:
        seen.append(len(received(client)))  # replies the client had when this one was handled
        if len(seen) == 3:
            done.set()
        return b"re:" + data

    for n in range(3):
        client.sendto(b"req%d" % n, server.getsockname())
    port = threaded_port_on(server, handle)
    port.startListening()
    try:
        assert done.wait(5)
        assert wait_for(client, 3) == [b"re:req0", b"re:req1", b"re:req2"]
        assert seen == [0, 0, 0]
    finally:
        port.stopListening()


def test_a_threaded_port_still_caps_what_it_holds(pair: tuple[socket.socket, socket.socket]) -> None:
    """Within one long burst the first MAX_HELD replies leave without waiting for its end."""
    server, client = pair
    seen: list[int] = []
    done = threading.Event()

    def handle(data: bytes, host: str, port: int, now: float) -> bytes | None:
        seen.append(len(received(client)))
        if len(seen) == MAX_HELD + 2:
            done.set()
        return b"re:" + data

    for n in range(MAX_HELD + 2):
        client.sendto(b"r%d" % n, server.getsockname())
    port = threaded_port_on(server, handle)
    port.startListening()
    try:
        assert done.wait(5)
        assert wait_for(client, 2) == [b"re:r%d" % MAX_HELD, b"re:r%d" % (MAX_HELD + 1)]
        assert seen[MAX_HELD - 1] == 0 and seen[MAX_HELD] == MAX_HELD
    finally:
        port.stopListening()


def test_a_threaded_port_hands_on_an_empty_datagram_and_survives_a_handler_bug(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """A zero-length datagram is input like any other (the handler drops and counts it),
    not the stop signal; a handler that raises is counted and the reader reads on."""
    server, client = pair
    errors: list[int] = []

    def handle(data: bytes, host: str, port: int, now: float) -> bytes | None:
        if data == b"boom":
            raise RuntimeError("handler bug")
        return b"re:" + data

    port = threaded_port_on(server, handle, on_error=lambda: errors.append(1))
    port.startListening()
    try:
        for data in (b"", b"boom", b"after"):
            client.sendto(data, server.getsockname())
        assert wait_for(client, 2) == [b"re:", b"re:after"]
        assert errors == [1]
    finally:
        port.stopListening()


def test_stopping_a_threaded_port_wakes_its_reader_and_sends_what_was_answered(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """stopListening wakes a reader asleep in recvfrom at once; a request being answered
    when the stop came still gets its reply; then the socket is closed."""
    server, client = pair
    inside, release = threading.Event(), threading.Event()

    def handle(data: bytes, host: str, port: int, now: float) -> bytes | None:
        inside.set()
        release.wait(5)
        return b"re:" + data

    idle = threaded_port_on(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    idle.socket.bind(("127.0.0.1", 0))
    idle.startListening()
    started = time.monotonic()
    idle.stopListening()
    assert time.monotonic() - started < 1.0 and not idle._thread.is_alive()
    assert idle.socket.fileno() == -1

    port = threaded_port_on(server, handle)
    port.startListening()
    client.sendto(b"last", server.getsockname())
    assert inside.wait(5)
    stopper = threading.Thread(target=port.stopListening)
    stopper.start()
    while not port._stopping:
        time.sleep(0.001)
    release.set()
    stopper.join(5)
    assert not stopper.is_alive() and not port._thread.is_alive()
    assert wait_for(client, 1) == [b"re:last"]


def test_a_threaded_port_whose_socket_fails_does_not_spin(pair: tuple[socket.socket, socket.socket]) -> None:
    """A read error that repeats (here the descriptor closed underneath) is counted and
    logged once, the reader pauses between attempts instead of spinning a core, and the
    port still stops."""
    server, client = pair
    errors: list[int] = []
    address = server.getsockname()
    port = threaded_port_on(server, on_error=lambda: errors.append(1))
    port.startListening()
    os.close(server.fileno())  # the blocked read still returns the next datagram, then EBADF
    client.sendto(b"wake", address)
    time.sleep(0.3)
    port.stopListening()
    assert not port._thread.is_alive()
    assert 1 <= len(errors) <= 0.3 / READ_ERROR_PAUSE + 5
