"""Spread Access-Requests over the `--workers` processes by Request Authenticator.

With SO_REUSEPORT alone the kernel picks a worker by hashing the source address and
port, so all of one NAS's requests land on one worker (a NAS sends from one port): with
a few busy NAS the workers are unevenly loaded. A classic BPF program attached to the
port group picks the worker from the request's own Request Authenticator instead: its
last four octets modulo the number of workers. The authenticator is random per request
(RFC 2865 §3), so the load spreads evenly, and a retransmission carries the same one, so
it reaches the worker whose duplicate cache holds the reply (RFC 5080).

Linux only (SO_ATTACH_REUSEPORT_CBPF, 4.5+); elsewhere the kernel's hash stays in force.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_REUSEPORT_CBPF = 51  # asm-generic/socket.h

# struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}. For a UDP reuseport group the
# program sees the datagram's payload from offset 0: the RADIUS packet itself.
_BPF_LD_W_ABS = 0x20  # A <- 32-bit word at offset k (a short packet ends the program: 0)
_BPF_ALU_MOD_K = 0x94  # A <- A % k
_BPF_RET_A = 0x16  # the index of the socket in the group
_AUTHENTICATOR_TAIL = 16  # octets 16..19: the last four of the Request Authenticator


def authenticator_program(workers: int) -> bytes:
    """The filter as the kernel reads it: worker index = authenticator tail % workers."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    return b"".join(struct.pack("=HBBI", code, 0, 0, k) for code, k in (
        (_BPF_LD_W_ABS, _AUTHENTICATOR_TAIL), (_BPF_ALU_MOD_K, workers), (_BPF_RET_A, 0)))


def spread_by_authenticator(sock: socket.socket, workers: int) -> bool:
    """Attach the program to `sock`'s reuseport group; False where the kernel has no such option."""
    program = authenticator_program(workers)
    filters = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", len(program) // 8, ctypes.addressof(filters))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError:
        return False
    return True
