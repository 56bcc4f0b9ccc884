"""aaa_radius_receive_drops_total: what the kernel dropped on a full receive buffer
(overload shed before the daemon sees it), read from /proc/net/udp by socket inode."""

from __future__ import annotations

import os
import socket

from prometheus_client import generate_latest

from aaa.daemon.metrics import Metrics, udp_drops


def test_kernel_drops_of_a_full_receive_buffer_are_exported() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        receiver.bind(("127.0.0.1", 0))
        inode = os.fstat(receiver.fileno()).st_ino
        assert udp_drops(inode) == 0
        for _ in range(300):  # bounded: far more than 32 KiB of buffer holds
            sender.sendto(b"x" * 100, receiver.getsockname())
        dropped = udp_drops(inode)
        assert dropped is not None and dropped > 0
        metrics = Metrics()
        metrics.receive_drops.sockets["auth"] = inode
        text = generate_latest(metrics.registry).decode()
        assert f'aaa_radius_receive_drops_total{{port="auth"}} {float(dropped)}' in text


def test_unknown_socket_has_no_sample() -> None:
    metrics = Metrics()
    metrics.receive_drops.sockets["auth"] = 1  # no socket has inode 1
    assert 'aaa_radius_receive_drops_total{' not in generate_latest(metrics.registry).decode()
