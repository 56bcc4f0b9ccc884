"""Worker selection by Request Authenticator on the authentication port (real sockets)."""

from __future__ import annotations

import socket
import struct

import pytest

from aaa.daemon.spread import authenticator_program, spread_by_authenticator


def _group(size: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    port = 0
    for _ in range(size):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        port = sock.getsockname()[1]
        sock.settimeout(2.0)
        socks.append(sock)
    return socks


def _request(tail: int) -> bytes:
    """An Access-Request header whose authenticator ends in `tail` (big-endian)."""
    return b"\x01\x07\x00\x14" + bytes(12) + struct.pack("!I", tail)


def test_the_program_is_three_instructions_taking_the_authenticator_tail_modulo_workers() -> None:
    """Load word at payload offset 16, modulo the worker count, return it: 8 octets each."""
    program = authenticator_program(3)
    assert len(program) == 24
    assert struct.unpack("=HBBI", program[8:16]) == (0x94, 0, 0, 3)
    with pytest.raises(ValueError):
        authenticator_program(0)


def test_requests_reach_the_worker_their_authenticator_names_and_retransmissions_the_same_one() -> None:
    """With the program attached, the socket index is the authenticator's last 4 octets
    modulo the group size — whichever source port sends — so one NAS's load spreads over
    every worker and a retransmission reaches the worker that answered it first."""
    socks = _group(2)
    try:
        assert spread_by_authenticator(socks[0], 2)
        port = socks[0].getsockname()[1]
        senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        for tail in range(8):
            for sender in senders:  # two source ports: the kernel's own hash would differ
                sender.sendto(_request(tail), ("127.0.0.1", port))
        received: list[list[int]] = [[], []]
        for index, sock in enumerate(socks):
            sock.settimeout(0.5)
            try:
                while True:
                    data = sock.recv(64)
                    received[index].append(struct.unpack("!I", data[16:20])[0])
            except TimeoutError:
                pass
        assert sorted(received[0]) == [0, 0, 2, 2, 4, 4, 6, 6]
        assert sorted(received[1]) == [1, 1, 3, 3, 5, 5, 7, 7]
        for sender in senders:
            sender.close()
    finally:
        for sock in socks:
            sock.close()
