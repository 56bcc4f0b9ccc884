"""RadiusProtocol: replies to one reactor turn's datagrams leave together, in order.

Time is `twisted.internet.task.Clock`; the replies go out through a real UDP socket on
127.0.0.1 and are read back by another. The RadiusPort tests put Twisted's own UDP port
on such a socket, with Twisted's MemoryReactorClock standing in for the event loop: the
test calls `doRead` where the reactor would on a readable socket.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from aaa.radius.transport import MAX_HELD, RadiusPort, RadiusProtocol, adopt_radius_port


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
