"""The fuzz target: one datagram through decode and through the whole request pipelines.

`Target.run(data)` feeds the octets to
- the decoder (`decode`), which may only return a Packet or raise MalformedPacket;
- `AuthHandler.handle` as if sent by a MikroTik NAS that requires Message-Authenticator,
  a Huawei NAS that does not, and an unknown address;
- `AcctHandler.handle` (then `finish`, so accepted events reach the index and the reply
  cache), from the same NAS;
- the CoA client's answer check (`read_answer`) against a fixed Disconnect-Request,
  which may only return an Answer or raise BadAnswer.
Anything else (another exception, a reply that is not bytes or not a valid packet) is a
crash. Each call uses a fresh source port and a later time, so the duplicate caches do
not short-cut the pipelines.

`Mutator` turns seed packets into hostile variants: bit flips, byte sets, truncation and
extension, lies in the Length field and in attribute lengths, attribute deletion,
duplication and insertion (Proxy-State floods, random VSAs for MikroTik, Huawei and
Microsoft, odd vendors), and re-signing (Message-Authenticator and the accounting
Request Authenticator recomputed after the mutation) so that mutated packets get past
the authenticator checks into the deeper stages.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import random
import struct
from pathlib import Path

from aaa.accounting.committer import Pending
from aaa.accounting.handler import AcctHandler
from aaa.accounting.index import OpenSessionIndex
from aaa.coa.requests import BadAnswer, read_answer
from aaa.daemon.handler import AuthHandler, HandlerSettings
from aaa.daemon.metrics import Metrics
from aaa.db.authlog import AuthRecord
from aaa.policy.view import NasFacts, PlanFacts, ServiceFacts, SubscriberView
from aaa.radius import (
    ACCESS_REPLIES,
    MalformedPacket,
    PacketCode,
    build_request,
    decode,
    encode_attributes,
    load_dictionary,
    verify_reply,
)
from aaa.radius.dictionary import Dictionary

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
CRASHERS = HERE / "crashers"

SECRET = b"fuzz-secret-123"
MK_IP, HW_IP, STRANGER = "10.9.0.1", "10.9.0.2", "192.0.2.77"
MK = NasFacts(1, "mk", MK_IP, "mikrotik", SECRET, require_message_authenticator=True)
HW = NasFacts(2, "hw", HW_IP, "huawei", SECRET, require_message_authenticator=False)
PLANS = [PlanFacts(1, "FIBRA", 100_000, 50_000, "pool-fibra"), PlanFacts(2, "LENTO", 2_000, 1_000, None)]
SERVICES = [
    ServiceFacts(1, "ana", "s3nha", "enabled", 1, mac_binding="learn"),
    ServiceFacts(2, "bia", "senha-bia", "suspended_debt", 1),
    ServiceFacts(3, "caio", "pw", "suspended_partial", 2, mac="AA:BB:CC:DD:EE:FF", mac_binding="strict"),
    ServiceFacts(4, "duda@isp", "x", "enabled", 2, ipv4="100.64.0.9", interface="vlan100"),
    ServiceFacts(5, "eva", "pw", "cancelled", 1),
]
VARIABLES = {"POOL_SUSPENSAO_TOTAL": "pool-bloqueio"}
# The Disconnect-Request whose answers the CoA client checks.
COA_REQUEST_AUTH_KEY = "coa-request"


class Crash(AssertionError):
    """The pipeline did something other than answer bytes, stay silent, or refuse."""


def dictionary() -> Dictionary:
    return load_dictionary()


def coa_request(dictionary: Dictionary, code: int = PacketCode.DISCONNECT_REQUEST) -> bytes:
    attrs = encode_attributes(dictionary, [("User-Name", "ana"), ("Acct-Session-Id", "81a00003"),
                                           ("NAS-IP-Address", MK_IP)])
    return build_request(code, 42, attrs, SECRET)


class Target:
    def __init__(self, dictionary: Dictionary | None = None) -> None:
        self.dictionary = dictionary or load_dictionary()
        self.view = SubscriberView.build(SERVICES, PLANS, [MK, HW], VARIABLES, 1)
        self.records = 0
        self.metrics = Metrics()
        self.auth = AuthHandler(self.dictionary, self.view, HandlerSettings(), self.metrics, self._sink,
                                open_sessions=lambda service_id: 0)
        self.pending: list[Pending] = []
        self.sent = 0
        self.acct = AcctHandler(self.dictionary, lambda: self.view, self._submit, OpenSessionIndex(),
                                self.metrics)
        self.acct.send = self._send
        self.coa = coa_request(self.dictionary)
        self.now = 1_800_000_000.0
        self.port = 1024
        self.calls = 0

    def _sink(self, record: AuthRecord, learn_mac: str | None) -> None:
        self.records += 1

    def _submit(self, pending: Pending) -> bool:
        self.pending.append(pending)
        return len(self.pending) < 10_000

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        self._check_reply(reply, "acct send")
        self.sent += 1

    def _check_reply(self, reply: object, where: str, request: bytes | None = None) -> None:
        """A reply must be a packet we can decode; an Access-* reply must carry
        Message-Authenticator first and verify against the request (BlastRADIUS)."""
        if reply is None:
            return
        if not isinstance(reply, bytes):
            raise Crash(f"{where} returned {type(reply).__name__}")
        try:
            packet = decode(reply, self.dictionary)
        except MalformedPacket as exc:
            raise Crash(f"{where} returned an undecodable reply: {exc}") from exc
        if request is not None and packet.code in ACCESS_REPLIES:
            if not packet.attributes or packet.attributes[0][0] != 80:
                raise Crash(f"{where}: Message-Authenticator is not the first attribute")
            if not verify_reply(packet, request[4:20], SECRET):
                raise Crash(f"{where}: the reply does not verify against the request")

    def run(self, data: bytes) -> None:
        """Raises Crash (or whatever escaped) when the pipeline misbehaves on `data`."""
        self.calls += 1
        self.now += 0.001
        self.port = 1024 + (self.port - 1023) % 60000
        with contextlib.suppress(MalformedPacket):
            decode(data, self.dictionary)
        for host in (MK_IP, HW_IP, STRANGER):
            self._check_reply(self.auth.handle(data, host, self.port, self.now), f"auth from {host}", data)
            self._check_reply(self.acct.handle(data, host, self.port, self.now), f"acct from {host}")
        if len(self.pending) >= 64:
            group, self.pending = self.pending, []
            self.acct.finish(group, self.calls % 7 != 0, self.now)
        with contextlib.suppress(BadAnswer):
            read_answer(data, self.coa, SECRET, self.dictionary)


# --- seeds ----------------------------------------------------------------------------------


def seeds(dictionary: Dictionary, rng: random.Random | None = None) -> dict[str, bytes]:
    """Realistic packets of every kind the server meets, by file name."""
    from aaa.radius import (
        build_reply,
        chap_response,
        mschap2_nt_response,
        nt_password_hash,
    )

    rng = rng or random.Random(1)

    def rand(n: int) -> bytes:
        return bytes(rng.getrandbits(8) for _ in range(n))

    out: dict[str, bytes] = {}

    def access(name: str, items: list[tuple[str, object]], ma: bool = True) -> None:
        auth = rand(16)
        attrs = encode_attributes(dictionary, items, secret=SECRET, authenticator=auth)
        out[name] = build_request(PacketCode.ACCESS_REQUEST, rng.randrange(256), attrs, SECRET,
                                  authenticator=auth, message_authenticator=ma)

    common: list[tuple[str, object]] = [
        ("NAS-IP-Address", MK_IP), ("NAS-Port", 15728643), ("NAS-Port-Type", "Ethernet"),
        ("Service-Type", "Framed-User"), ("Framed-Protocol", "PPP"),
        ("Calling-Station-Id", "AA:BB:CC:DD:EE:01"), ("NAS-Port-Id", "vlan100"),
    ]
    access("pap_mikrotik", [("User-Name", "ana"), ("User-Password", "s3nha"), *common,
                            ("Mikrotik-Realm", "isp"), ("Mikrotik-Host-IP", "10.1.1.1")])
    access("pap_wrong_password", [("User-Name", "ana"), ("User-Password", "nope"), *common])
    access("pap_unknown_login", [("User-Name", "zzz"), ("User-Password", "x")])
    access("pap_no_ma_huawei", [("User-Name", "caio"), ("User-Password", "pw"),
                                ("Calling-Station-Id", "aabb.ccdd.eeff"),
                                ("Huawei-Input-Average-Rate", 1000)], ma=False)
    access("pap_realm", [("User-Name", "duda@isp"), ("User-Password", "x"), *common])
    access("pap_proxy_state", [("User-Name", "ana"), ("User-Password", "s3nha"),
                               ("Proxy-State", b"\x01\x02\x03"), ("Proxy-State", b"proxy-two")])
    chap_auth = rand(16)
    chap = chap_response(7, b"s3nha", chap_auth)
    out["chap_mikrotik"] = build_request(
        PacketCode.ACCESS_REQUEST, 9, encode_attributes(dictionary, [("User-Name", "ana"),
                                                                     ("CHAP-Password", chap), *common]),
        SECRET, authenticator=chap_auth)
    challenge = rand(16)
    chap2 = chap_response(8, b"pw", challenge)
    out["chap_with_challenge"] = build_request(
        PacketCode.ACCESS_REQUEST, 10, encode_attributes(dictionary, [
            ("User-Name", "caio"), ("CHAP-Password", chap2), ("CHAP-Challenge", challenge)]), SECRET)
    auth_challenge, peer_challenge = rand(16), rand(16)
    nt = mschap2_nt_response(auth_challenge, peer_challenge, b"ana", nt_password_hash("s3nha"))
    access("mschapv2", [("User-Name", "ana"), ("MS-CHAP-Challenge", auth_challenge),
                        ("MS-CHAP2-Response", bytes((0x42, 0)) + peer_challenge + bytes(8) + nt), *common])
    access("mschapv1_garbage", [("User-Name", "ana"), ("MS-CHAP-Challenge", rand(8)),
                                ("MS-CHAP-Response", rand(50))])
    out["status_server"] = build_request(PacketCode.STATUS_SERVER, 3, b"", SECRET)

    def acct(name: str, status: str, extra: list[tuple[str, object]]) -> None:
        items: list[tuple[str, object]] = [
            ("User-Name", "ana"), ("Acct-Status-Type", status), ("Acct-Session-Id", "81a00003"),
            ("NAS-IP-Address", MK_IP), ("NAS-Port", 15728643), ("NAS-Port-Id", "vlan100"),
            ("Framed-IP-Address", "100.64.0.10"), ("Calling-Station-Id", "AA:BB:CC:DD:EE:01"), *extra]
        out[name] = build_request(PacketCode.ACCOUNTING_REQUEST, rng.randrange(256),
                                  encode_attributes(dictionary, items), SECRET)

    acct("acct_start", "Start", [("Acct-Authentic", "RADIUS"), ("Event-Timestamp", 1_800_000_000)])
    acct("acct_interim", "Interim-Update", [("Acct-Input-Octets", 123456), ("Acct-Output-Octets", 654321),
                                            ("Acct-Input-Gigawords", 1), ("Acct-Session-Time", 600),
                                            ("Acct-Delay-Time", 3)])
    acct("acct_stop", "Stop", [("Acct-Input-Octets", 10), ("Acct-Output-Octets", 20),
                               ("Acct-Session-Time", 3600), ("Acct-Terminate-Cause", "User-Request")])
    acct("acct_on", "Accounting-On", [])
    acct("acct_huawei_vsa", "Interim-Update", [("Huawei-Input-Peak-Rate", 1000),
                                               ("Huawei-Output-Average-Rate", 2000)])
    # CoA/Disconnect answers to the request Target checks against, and a forged one.
    request = decode(coa_request(dictionary), dictionary)
    out["disconnect_ack"] = build_reply(request, PacketCode.DISCONNECT_ACK, SECRET)
    out["disconnect_nak_503"] = build_reply(request, PacketCode.DISCONNECT_NAK, SECRET,
                                            encode_attributes(dictionary, [("Error-Cause", 503)]))
    out["coa_ack"] = build_reply(request, PacketCode.COA_ACK, SECRET)
    out["coa_nak_404"] = build_reply(request, PacketCode.COA_NAK, SECRET,
                                     encode_attributes(dictionary, [("Error-Cause", 404)]))
    out["disconnect_ack_forged"] = build_reply(request, PacketCode.DISCONNECT_ACK, b"other")
    # A reply of ours, as if reflected back at us.
    accept_request = decode(out["pap_mikrotik"], dictionary)
    out["accept_mikrotik"] = build_reply(accept_request, PacketCode.ACCESS_ACCEPT, SECRET,
                                         encode_attributes(dictionary, [("Mikrotik-Rate-Limit",
                                                                         "50000k/100000k"),
                                                                        ("Framed-Pool", "pool")]))
    return out


def load_corpus() -> list[tuple[str, bytes]]:
    return sorted((p.name, p.read_bytes()) for p in CORPUS.glob("*.bin"))


def load_crashers() -> list[tuple[str, bytes]]:
    return sorted((p.name, p.read_bytes()) for p in CRASHERS.glob("*.bin"))


# --- mutation -------------------------------------------------------------------------------

VENDORS = (14988, 2011, 311, 9, 0, 0xFFFFFFFF, 4874)


def _attr_offsets(data: bytes) -> list[int]:
    """Offsets of attributes while the framing holds (lenient: stops at the first lie)."""
    offsets = []
    pos = 20
    end = min(len(data), max(20, (data[2] << 8 | data[3]) if len(data) >= 4 else 0))
    while pos + 2 <= end:
        length = data[pos + 1]
        if length < 2 or pos + length > end:
            break
        offsets.append(pos)
        pos += length
    return offsets


def resign(data: bytes, secret: bytes = SECRET) -> bytes:
    """Recompute Message-Authenticator (if well placed) and, for accounting, the Request
    Authenticator, so the mutated packet passes the integrity checks."""
    if len(data) < 20:
        return data
    buf = bytearray(data)
    code = buf[0]
    hashed = code in (PacketCode.ACCOUNTING_REQUEST, PacketCode.COA_REQUEST, PacketCode.DISCONNECT_REQUEST)
    if hashed:
        buf[4:20] = bytes(16)
    for at in _attr_offsets(bytes(buf)):
        if buf[at] == 80 and buf[at + 1] == 18:
            buf[at + 2 : at + 18] = bytes(16)
            mac = hmac.new(secret, bytes(buf), hashlib.md5).digest()
            buf[at + 2 : at + 18] = mac
            break
    if hashed:
        buf[4:20] = hashlib.md5(bytes(buf) + secret).digest()
    return bytes(buf)


class Mutator:
    def __init__(self, seed_packets: list[bytes], rng: random.Random) -> None:
        self.seeds = seed_packets
        self.rng = rng
        self.ops = (self.flip_bits, self.set_bytes, self.truncate, self.extend, self.length_lie,
                    self.attr_length_lie, self.delete_attr, self.duplicate_attr, self.insert_vsa,
                    self.insert_attr, self.proxy_state_flood, self.fill_to_limit, self.splice, self.swap_code)

    def __call__(self) -> bytes:
        rng = self.rng
        data = rng.choice(self.seeds)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5))):
            data = rng.choice(self.ops)(data)
        if rng.random() < 0.5:
            data = resign(data)
        return data[:5000]

    def flip_bits(self, data: bytes) -> bytes:
        if not data:
            return data
        buf = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            i = self.rng.randrange(len(buf))
            buf[i] ^= 1 << self.rng.randrange(8)
        return bytes(buf)

    def set_bytes(self, data: bytes) -> bytes:
        if not data:
            return data
        buf = bytearray(data)
        for _ in range(self.rng.randint(1, 4)):
            choices = (0, 1, 2, 0x7F, 0x80, 0xFF, self.rng.randrange(256))
            buf[self.rng.randrange(len(buf))] = self.rng.choice(choices)
        return bytes(buf)

    def truncate(self, data: bytes) -> bytes:
        return data[: self.rng.randrange(len(data) + 1)]

    def extend(self, data: bytes) -> bytes:
        return data + self.rng.randbytes(self.rng.choice((1, 2, 3, 17, 255, 1000, 4096)))

    def length_lie(self, data: bytes) -> bytes:
        if len(data) < 4:
            return data
        value = self.rng.choice((0, 1, 19, 20, len(data) - 1, len(data) + 1, 4096, 4097, 65535,
                                 self.rng.randrange(65536)))
        return data[:2] + struct.pack("!H", max(0, min(65535, value))) + data[4:]

    def attr_length_lie(self, data: bytes) -> bytes:
        offsets = _attr_offsets(data)
        if not offsets:
            return data
        at = self.rng.choice(offsets)
        buf = bytearray(data)
        buf[at + 1] = self.rng.choice((0, 1, 2, 3, 255, (buf[at + 1] + 1) % 256, (buf[at + 1] - 1) % 256))
        if buf[at] == 26 and buf[at + 1] >= 8 and at + 7 < len(buf) and self.rng.random() < 0.5:
            buf[at + 7] = self.rng.choice((0, 1, 2, 255, (buf[at + 7] + 1) % 256))  # VSA sub-length
        return bytes(buf)

    def _with_length(self, data: bytes) -> bytes:
        if len(data) < 4:
            return data
        return data[:2] + struct.pack("!H", min(len(data), 65535)) + data[4:]

    def delete_attr(self, data: bytes) -> bytes:
        offsets = _attr_offsets(data)
        if not offsets:
            return data
        at = self.rng.choice(offsets)
        return self._with_length(data[:at] + data[at + data[at + 1]:])

    def duplicate_attr(self, data: bytes) -> bytes:
        offsets = _attr_offsets(data)
        if not offsets:
            return data
        at = self.rng.choice(offsets)
        attr = data[at : at + data[at + 1]]
        return self._with_length(data + attr * self.rng.choice((1, 1, 2, 10)))

    def _insert(self, data: bytes, attr: bytes) -> bytes:
        offsets = [*_attr_offsets(data), len(data)]
        at = self.rng.choice(offsets) if len(data) >= 20 else len(data)
        return self._with_length(data[:at] + attr + data[at:])

    def insert_vsa(self, data: bytes) -> bytes:
        rng = self.rng
        vendor = rng.choice(VENDORS)
        subs = b""
        for _ in range(rng.randint(0, 4)):
            value = rng.randbytes(rng.choice((0, 1, 4, 16, rng.randrange(60))))
            sub_len = len(value) + 2 if rng.random() < 0.8 else rng.randrange(256)
            subs += bytes((rng.randrange(1, 40), sub_len % 256)) + value
        body = struct.pack("!I", vendor) + subs
        body = body[:253]
        return self._insert(data, bytes((26, len(body) + 2)) + body)

    def insert_attr(self, data: bytes) -> bytes:
        rng = self.rng
        kind = rng.choice((1, 2, 3, 4, 5, 8, 18, 24, 25, 26, 31, 33, 40, 44, 60, 61, 79, 80, 87, 95, 101,
                           rng.randrange(256)))
        value = rng.randbytes(rng.choice((0, 1, 3, 4, 6, 16, 17, 18, 50, 253)))
        return self._insert(data, bytes((kind, len(value) + 2)) + value)

    def proxy_state_flood(self, data: bytes) -> bytes:
        rng = self.rng
        count = rng.choice((2, 8, 9, 20, 100))
        value = rng.randbytes(rng.choice((1, 16, 200, 253)))
        return self._with_length(data + (bytes((33, len(value) + 2)) + value) * count)

    def fill_to_limit(self, data: bytes) -> bytes:
        """Pad with Proxy-State (or another attribute) to just under or at 4096 octets, where
        the reply (our attributes plus the echoed Proxy-States) may not fit."""
        rng = self.rng
        kind = 33 if rng.random() < 0.8 else rng.choice((18, 26, 31, 44, 87))
        target = 4096 - rng.choice((0, 0, 1, 2, 10, 17, 18, 40, 100))
        out = data
        while len(out) < target - 2:
            size = min(255, target - len(out))
            if size < 2:
                break
            out += bytes((kind, size)) + rng.randbytes(size - 2)
        return self._with_length(out)

    def splice(self, data: bytes) -> bytes:
        other = self.rng.choice(self.seeds)
        if len(data) < 20 or len(other) < 20:
            return data
        offsets = _attr_offsets(other)
        if not offsets:
            return data
        start = self.rng.choice(offsets)
        return self._with_length(data + other[start:])

    def swap_code(self, data: bytes) -> bytes:
        if not data:
            return data
        code = self.rng.choice((1, 2, 3, 4, 5, 11, 12, 40, 41, 42, 43, 44, 45, 0, 255))
        return bytes((code,)) + data[1:]
