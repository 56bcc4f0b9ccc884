"""Interoperability with FreeRADIUS's radclient: capture what it sends on a real UDP
socket, verify it with our codec, answer with our reply builder, and check radclient
accepts the answer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from aaa.radius import (
    PacketCode,
    build_reply,
    check_chap,
    decode,
    encode_attributes,
    load_dictionary,
    verify_message_authenticator,
)
from aaa.radius.packet import Packet

DICT = load_dictionary()
SECRET = b"radclient-secret"
PASSWORD = b"s3nh@-Fort3"
RADCLIENT = shutil.which("radclient")


@pytest.fixture
def radclient() -> str:
    if RADCLIENT is None:
        if os.environ.get("AAA_REQUIRE_RADCLIENT") == "1":
            pytest.fail("radclient is required (AAA_REQUIRE_RADCLIENT=1) but not installed")
        pytest.skip("radclient (Debian freeradius-utils) is not installed")
    return RADCLIENT


@pytest.fixture
def server() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock
    sock.close()


def exchange(
    radclient: str, server: socket.socket, attributes: str, reply_attributes: bytes = b""
) -> tuple[Packet, str]:
    """Run radclient once; return the request it sent (decoded) and its output."""
    port = server.getsockname()[1]
    process = subprocess.Popen(
        [radclient, "-x", "-t", "2", "-r", "1", f"127.0.0.1:{port}", "auth", SECRET.decode()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdin is not None
        process.stdin.write(attributes + "\n")
        process.stdin.close()
        process.stdin = None  # communicate() must not flush the closed pipe
        datagram, peer = server.recvfrom(4096)
        request = decode(datagram, DICT)
        reply = build_reply(request, PacketCode.ACCESS_ACCEPT, SECRET, reply_attributes)
        server.sendto(reply, peer)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "Received Access-Accept" in output, output
    return request, output


def test_radclient_pap(radclient: str, server: socket.socket) -> None:
    """radclient's User-Password unhides to what we gave it, and it accepts our reply
    (Response Authenticator and Message-Authenticator first)."""
    reply_attrs = encode_attributes(DICT, [("Framed-Pool", "pool-a"), ("Mikrotik-Rate-Limit", "10M/20M")])
    request, output = exchange(
        radclient,
        server,
        f'User-Name = "ana", User-Password = "{PASSWORD.decode()}", NAS-Port = 7',
        reply_attrs,
    )
    assert request.get("User-Name") == "ana"
    assert request.get("NAS-Port") == 7
    assert request.user_password(SECRET) == PASSWORD
    assert "pool-a" in output


def test_radclient_chap(radclient: str, server: socket.socket) -> None:
    """radclient's CHAP-Password verifies against the Request Authenticator."""
    request, _ = exchange(radclient, server, f'User-Name = "bia", CHAP-Password = "{PASSWORD.decode()}"')
    chap = request.get_raw("CHAP-Password")
    assert chap is not None
    challenge = request.get_raw("CHAP-Challenge") or request.authenticator
    assert check_chap(chap, challenge, PASSWORD)
    assert not check_chap(chap, challenge, PASSWORD + b"x")


def test_radclient_message_authenticator(radclient: str, server: socket.socket) -> None:
    """A Message-Authenticator radclient computes verifies with ours (and not with a
    wrong secret)."""
    request, _ = exchange(
        radclient,
        server,
        f'User-Name = "caio", User-Password = "{PASSWORD.decode()}", Message-Authenticator = 0x00',
    )
    assert request.has_message_authenticator
    assert verify_message_authenticator(request, SECRET)
    assert not verify_message_authenticator(request, SECRET + b"!")
    assert request.user_password(SECRET) == PASSWORD
