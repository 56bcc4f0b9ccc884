"""A UDP load generator for RADIUS Access-Requests (PAP or CHAP), with its own ceiling.

It sends distinct Access-Requests (a fresh Request Authenticator in every packet, so a
server's RFC 5080 duplicate cache is never hit) for N subscribers to host:port, keeping
either a WINDOW of requests outstanding (closed loop: maximum throughput) or a fixed
RATE (open loop: latency at a given load). Every reply is validated: Identifier known,
Response Authenticator = MD5(code+id+length + Request Authenticator + attributes +
secret) (this covers the whole reply, Message-Authenticator included), and the code is
the expected one (Access-Accept by default). Throughput and p50/p95/p99/max latency are
printed, the last line is JSON.

How it stays lean enough to load a server from Python:
- packets are built before timing starts (Message-Authenticator and the hidden
  User-Password depend on the fresh authenticator, so each one is built once), in the
  client processes themselves, in parallel;
- several connected, non-blocking UDP sockets per process, Identifiers cycling 0..255
  per socket, so (source port, Identifier) never collides inside the window;
- `select` over those sockets, draining each readable socket until it would block,
  and refilling its share of the window from the same loop;
- optionally several client processes (`--procs`), started together on a shared
  monotonic deadline, whose latency samples are merged.

`--self-test` runs the very same generator against a trivial in-process responder
(a subprocess that only computes a Response Authenticator), which is the generator's own
ceiling: a server measured near that figure is limited by the generator, not itself.
`--responder twisted` does the same with a bare Twisted DatagramProtocol, the floor
any Twisted server pays.

    .venv/bin/python benchmarks/radload.py --port 1812 --secret s3cr3t \\
        --subscribers 10000 --login 'bench{:05d}' --password 'pw-{:05d}' --window 16
    .venv/bin/python benchmarks/radload.py --self-test --window 16
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import select
import socket
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aaa.radius import encode_attributes, load_dictionary
from aaa.radius.digest import hmac_md5, md5

ACCESS_REQUEST = 1
ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
ACCOUNTING_REQUEST = 4
ACCOUNTING_RESPONSE = 5
_MA_ZERO = b"\x50\x12" + bytes(16)


@dataclass(frozen=True)
class Subscriber:
    login: str
    password: str
    mac: str = "02:00:00:00:00:01"


@dataclass(frozen=True)
class LoadConfig:
    host: str
    port: int
    secret: bytes
    window: int = 16  # requests outstanding (window mode), or the cap in rate mode
    rate: float = 0.0  # requests/s in total; 0 = window mode (as fast as replies come)
    duration: float = 10.0  # seconds of sending
    count: int = 0  # requests in total; 0 = enough for `duration` at `expect_rate`
    expect_rate: float = 40_000.0  # only to size `count` in window mode
    procs: int = 1
    sockets: int = 4  # per process
    chap: bool = False
    message_authenticator: bool = True
    expect_code: int = ACCESS_ACCEPT
    timeout: float = 2.0
    nas_ip: str = "127.0.0.1"
    port_id: str = "vlan100"
    # "auth": Access-Requests; "start": Accounting Start per subscriber; "interim":
    # Interim-Updates of those sessions with counters that grow every round.
    accounting: str = ""
    keep_latencies: bool = False  # LoadResult.latencies: every reply's, for pooling runs


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    wrong_code: int = 0
    bad_authenticator: int = 0
    stray: int = 0  # unknown Identifier, or a late reply to a timed-out request
    timeouts: int = 0
    skipped: int = 0  # rate mode: scheduled slots not sent (cap reached, Identifier still out)
    elapsed: float = 0.0
    throughput: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    mean_ms: float = 0.0
    send_lag_p99_ms: float = 0.0  # rate mode: how late the generator sent vs. its schedule
    mode: str = "window"
    window: int = 0
    rate: float = 0.0
    procs: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, sorted (keep_latencies)

    @property
    def errors(self) -> int:
        return self.wrong_code + self.bad_authenticator + self.stray + self.timeouts

    def summary(self) -> str:
        mode = (f"window {self.window}" if self.mode == "window"
                else f"rate {self.rate:,.0f}/s (cap {self.window})")
        errors = self.wrong_code + self.bad_authenticator + self.stray + self.timeouts
        return (f"{mode}, {self.procs} proc: {self.ok:,} ok of {self.sent:,} sent in "
                f"{self.elapsed:.2f} s = {self.throughput:,.0f} req/s; latency ms "
                f"p50 {self.p50_ms:.3f} p95 {self.p95_ms:.3f} p99 {self.p99_ms:.3f} "
                f"max {self.max_ms:.3f}"
                + (f"; send lag p99 {self.send_lag_p99_ms:.3f} ms, {self.skipped:,} slots skipped"
                   if self.mode == "rate" else "")
                + (f"; ERRORS wrong_code={self.wrong_code} bad_auth={self.bad_authenticator} "
                   f"stray={self.stray} timeouts={self.timeouts}" if errors else ""))


# --- packets ------------------------------------------------------------------------------


def _static_attributes(dictionary: Any, sub: Subscriber, index: int, config: LoadConfig) -> bytes:
    """What a MikroTik PPPoE Access-Request carries besides the password."""
    return encode_attributes(dictionary, [
        ("User-Name", sub.login),
        ("Service-Type", "Framed-User"),
        ("Framed-Protocol", "PPP"),
        ("NAS-Port", 15_728_640 + index),
        ("NAS-Port-Type", "Ethernet"),
        ("Calling-Station-Id", sub.mac),
        ("Called-Station-Id", "pppoe-service"),
        ("NAS-Port-Id", config.port_id),
        ("NAS-Identifier", "bench-mikrotik"),
        ("NAS-IP-Address", config.nas_ip),
    ])


def _hide(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    padded = password + b"\x00" * (-len(password) % 16 if password else 16)
    out = []
    last = authenticator
    for i in range(0, len(padded), 16):
        key = md5(secret + last)
        block = (int.from_bytes(padded[i:i + 16], "big") ^ int.from_bytes(key, "big")).to_bytes(16, "big")
        out.append(block)
        last = block
    return b"".join(out)


def _accounting_packet(dictionary: Any, sub: Subscriber, index: int, round_: int, ident: int,
                       config: LoadConfig) -> bytes:
    """An Accounting-Request (Start or Interim-Update) of subscriber `index`'s session."""
    status = "Start" if config.accounting == "start" else "Interim-Update"
    items: list[tuple[str, object]] = [
        ("User-Name", sub.login), ("Acct-Status-Type", status),
        ("Acct-Session-Id", f"bench-{index:08x}"), ("NAS-IP-Address", config.nas_ip),
        ("NAS-Port", 15_728_640 + index), ("NAS-Port-Id", config.port_id),
        ("Calling-Station-Id", sub.mac), ("Framed-IP-Address", f"100.64.{index >> 8 & 255}.{index & 255}"),
    ]
    if status != "Start":
        items += [("Acct-Session-Time", 300 * (round_ + 1)), ("Acct-Input-Octets", 1_000_000 * (round_ + 1)),
                  ("Acct-Output-Octets", 9_000_000 * (round_ + 1))]
    body = encode_attributes(dictionary, items)
    length = 20 + len(body)
    header = bytes((ACCOUNTING_REQUEST, ident, length >> 8, length & 0xFF))
    return header + md5(header + bytes(16) + body + config.secret) + body


def build_packets(subscribers: Sequence[Subscriber], config: LoadConfig, count: int, sockets: int,
                  offset: int = 0) -> list[list[bytes]]:
    """`count` distinct Access-Requests dealt round-robin to `sockets` lists; in each
    list the Identifiers run 0, 1, ... 255, 0, ...  Subscribers are used in turn from
    `offset`."""
    dictionary = load_dictionary()
    secret = config.secret
    statics = {}
    per_socket: list[list[bytes]] = [[] for _ in range(sockets)]
    randomness = os.urandom(16 * count)
    nsubs = len(subscribers)
    for k in range(count):
        index = (offset + k) % nsubs
        sub = subscribers[index]
        if config.accounting:
            target = per_socket[k % sockets]
            target.append(_accounting_packet(dictionary, sub, index, (offset + k) // nsubs,
                                             len(target) & 0xFF, config))
            continue
        static = statics.get(index)
        if static is None:
            static = statics[index] = (_static_attributes(dictionary, sub, index, config),
                                       sub.password.encode())
        attrs, password = static
        auth = randomness[16 * k:16 * k + 16]
        if config.chap:
            chap_id = k & 0xFF
            response = md5(bytes((chap_id,)) + password + auth)
            secret_part = bytes((3, 19, chap_id)) + response
        else:
            hidden = _hide(password, secret, auth)
            secret_part = bytes((2, len(hidden) + 2)) + hidden
        body = attrs + secret_part
        target = per_socket[k % sockets]
        ident = len(target) & 0xFF
        length = 20 + len(body) + (18 if config.message_authenticator else 0)
        header = bytes((ACCESS_REQUEST, ident, length >> 8, length & 0xFF))
        if config.message_authenticator:
            mac = hmac_md5(secret, header + auth + _MA_ZERO + body)
            body = b"\x50\x12" + mac + body
        target.append(header + auth + body)
    return per_socket


# --- the client loop ------------------------------------------------------------------------


def _client(config: LoadConfig, subscribers: Sequence[Subscriber], count: int, proc: int,
            start_at: Any, ready: Any, out: Any) -> None:
    """One client process: build, wait for the common start, drive, report through `out`."""
    nsock = max(1, min(config.sockets, count))
    packets = build_packets(subscribers, config, count, nsock, offset=proc * 7919)
    socks = []
    for _ in range(nsock):
        sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET,
                             socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.connect((config.host, config.port))
        sock.setblocking(False)
        socks.append(sock)
    ready.set()
    while start_at.value == 0.0:
        time.sleep(0.001)
    begin = start_at.value
    while time.perf_counter() < begin:
        pass
    try:
        drive = _drive_rate if config.rate > 0 else _drive
        result = drive(config, socks, packets, begin)
    finally:
        for sock in socks:
            sock.close()
    out.send(result)
    out.close()


STRAY, FORGED = -1, -2  # what _claim_reply says of a reply that answers nothing of ours


def _claim_reply(data: bytes, pending: list[bytes | None], secret: bytes) -> int:
    """The Identifier of the outstanding request `data` validly answers, now freed; STRAY
    (too short, or no request out under that Identifier) or FORGED (bad Response
    Authenticator: not ours to trust, so the request stays outstanding)."""
    if len(data) < 20:
        return STRAY
    ident = data[1]
    request = pending[ident]
    if request is None:
        return STRAY
    if md5(data[:4] + request[4:20] + data[20:] + secret) != data[4:20]:
        return FORGED
    pending[ident] = None
    return ident


def _expire(pending: list[bytes | None], sent_at: Sequence[float], limit: float) -> int:
    """Give up the requests of one socket sent before `limit`; how many there were."""
    expired = 0
    for ident in range(256):
        if pending[ident] is not None and sent_at[ident] < limit:
            pending[ident] = None
            expired += 1
    return expired


def _drive(config: LoadConfig, socks: list[socket.socket], packets: list[list[bytes]],
           begin: float) -> dict[str, Any]:
    """Closed loop: each socket keeps its share of the window out, each reply refills it."""
    secret = config.secret
    expect_code = config.expect_code
    perf = time.perf_counter
    nsock = len(socks)
    fds = {sock.fileno(): i for i, sock in enumerate(socks)}
    # Per socket: the request octets outstanding by Identifier (None = free) and when sent.
    pending: list[list[bytes | None]] = [[None] * 256 for _ in range(nsock)]
    sent_at: list[list[float]] = [[0.0] * 256 for _ in range(nsock)]
    position = [0] * nsock  # next packet index per socket
    sizes = [len(p) for p in packets]
    latencies = array("d")
    sent = ok = wrong_code = bad_auth = stray = timeouts = 0
    deadline = begin + config.duration
    first_send = 0.0
    last_recv = begin
    total = sum(sizes)
    cap = max(1, config.window)
    # Each socket keeps its share of the window (at most 255 outstanding).
    shares = [min(255, cap // nsock + (1 if i < cap % nsock else 0)) for i in range(nsock)]
    next_scan = begin + 0.1
    total_out = 0
    sending = True

    def send(i: int, now: float) -> bool:
        nonlocal sent, total_out, first_send
        pos = position[i]
        if pos >= sizes[i]:
            return False
        pkt = packets[i][pos]
        ident = pkt[1]
        if pending[i][ident] is not None:  # that Identifier is still out: wait for it
            return False
        try:
            socks[i].send(pkt)
        except BlockingIOError:
            return False
        pending[i][ident] = pkt
        sent_at[i][ident] = now
        position[i] = pos + 1
        total_out += 1
        sent += 1
        if not first_send:
            first_send = now
        return True

    now = perf()
    for i in range(nsock):
        for _ in range(shares[i]):
            if not send(i, now):
                break
    while True:
        now = perf()
        if sending and (now >= deadline or sent >= total):
            sending = False
        if not sending and total_out == 0:
            break
        if not sending and now >= deadline + config.timeout:
            timeouts += total_out
            break
        if now >= next_scan:  # expire requests that never got a reply
            next_scan = now + 0.1
            for i in range(nsock):
                expired = _expire(pending[i], sent_at[i], now - config.timeout)
                total_out -= expired
                timeouts += expired
                for _ in range(expired if sending else 0):
                    send(i, now)
        for sock in select.select(socks, (), (), 0.05)[0]:
            i = fds[sock.fileno()]
            recv = sock.recv
            pend = pending[i]
            times = sent_at[i]
            while True:
                try:
                    data = recv(4096)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:  # ICMP port unreachable: nobody listening
                    break
                got = perf()
                ident = _claim_reply(data, pend, secret)
                if ident < 0:
                    stray += ident == STRAY
                    bad_auth += ident == FORGED
                    continue
                total_out -= 1
                last_recv = got
                if data[0] == expect_code:
                    ok += 1
                    latencies.append(got - times[ident])
                else:
                    wrong_code += 1
                if sending:
                    send(i, got)
    return {"sent": sent, "ok": ok, "wrong_code": wrong_code, "bad_authenticator": bad_auth,
            "stray": stray, "timeouts": timeouts, "skipped": 0, "first_send": first_send,
            "last_recv": last_recv, "latencies": latencies.tobytes(), "lags": b""}


# Rate mode sleeps between sends rather than waking for every reply: at least this long
# (a few packets leave together at 10,000/s), so the generator's own CPU stays small and
# does not compete with the server it measures on a machine with few cores.
RATE_MIN_SLEEP = 0.0002
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_CMSG_SPACE = socket.CMSG_SPACE(16)
# Send stamps from the kernel too (linux/net_tstamp.h): the software timestamp taken as the
# request leaves for the loopback device, returned on the socket's error queue tagged with
# the socket's send counter (OPT_ID), without the packet (TSONLY).
_SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)
_TX_STAMPS = (1 << 1) | (1 << 4) | (1 << 7) | (1 << 11)  # TX_SOFTWARE|SOFTWARE|OPT_ID|OPT_TSONLY
_SO_EE_ORIGIN_TIMESTAMPING = 4
_ERRQUEUE_CMSG_SPACE = socket.CMSG_SPACE(48) + socket.CMSG_SPACE(64)


def _kernel_stamp(value: bytes) -> int:
    """Nanoseconds of the first timespec of a SO_TIMESTAMPNS / SO_TIMESTAMPING message."""
    return (int.from_bytes(value[:8], sys.byteorder) * 1_000_000_000
            + int.from_bytes(value[8:16], sys.byteorder))


def _read_send_stamps(sock: socket.socket, order: Sequence[int], stamps: list[int]) -> None:
    """Drain `sock`'s error queue of send stamps into stamps[Identifier]; `order` maps the
    socket's send counter (mod 65,536) to the Identifier that send carried."""
    while True:
        try:
            _, ancdata, _, _ = sock.recvmsg(1, _ERRQUEUE_CMSG_SPACE, socket.MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            return
        stamp = counter = -1
        for level, kind, value in ancdata:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPING:
                stamp = _kernel_stamp(value)
            elif len(value) >= 16 and value[4] == _SO_EE_ORIGIN_TIMESTAMPING:  # sock_extended_err
                counter = int.from_bytes(value[12:16], sys.byteorder)
        if stamp > 0 and counter >= 0:
            stamps[order[counter & 0xFFFF]] = stamp


def _drive_rate(config: LoadConfig, socks: list[socket.socket], packets: list[list[bytes]],
                begin: float) -> dict[str, Any]:
    """Open loop: request k leaves at begin + k/rate (a skipped slot is never waited for).

    Replies are collected when the generator wakes to send. The latency is the kernel's
    stamp of the reply's arrival (SO_TIMESTAMPNS) minus the kernel's stamp of the request's
    departure (SO_TIMESTAMPING): neither a reply read late nor a request whose sender was
    preempted between its clock reading and its send counts against the server. Where the
    kernel gives no send stamp, the wall clock read just before the send stands in.
    """
    secret = config.secret
    expect_code = config.expect_code
    perf = time.perf_counter
    wall = time.time_ns
    nsock = len(socks)
    send_stamps = True
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPING, _TX_STAMPS)
        except OSError:
            send_stamps = False
    pending: list[list[bytes | None]] = [[None] * 256 for _ in range(nsock)]
    sent_ns: list[list[int]] = [[0] * 256 for _ in range(nsock)]
    # Per socket: the Identifier carried by each send, by the socket's send counter.
    send_order: list[list[int]] = [[0] * 65536 for _ in range(nsock)]
    send_count = [0] * nsock
    sent_perf: list[list[float]] = [[0.0] * 256 for _ in range(nsock)]
    position = [0] * nsock
    sizes = [len(p) for p in packets]
    total = sum(sizes)
    latencies = array("d")
    lags = array("d")
    sent = ok = wrong_code = bad_auth = stray = timeouts = skipped = 0
    first_send = 0.0
    last_recv = begin
    cap = max(1, config.window)
    interval = 1.0 / config.rate
    deadline = begin + config.duration
    next_k = 0
    outstanding = 0
    next_scan = begin + 0.1

    def drain(now: float) -> None:
        nonlocal ok, wrong_code, bad_auth, stray, outstanding, last_recv
        for sock in select.select(socks, (), (), 0)[0]:
            i = socks.index(sock)
            pend, stamps = pending[i], sent_ns[i]
            if send_stamps:  # before the replies: each reply's request is stamped by now
                _read_send_stamps(sock, send_order[i], stamps)
            while True:
                try:
                    data, ancdata, _, _ = sock.recvmsg(4096, _CMSG_SPACE)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                ident = _claim_reply(data, pend, secret)
                if ident < 0:
                    stray += ident == STRAY
                    bad_auth += ident == FORGED
                    continue
                outstanding -= 1
                last_recv = now
                if data[0] != expect_code:
                    wrong_code += 1
                    continue
                ok += 1
                arrived = wall()
                for level, kind, value in ancdata:
                    if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                        arrived = _kernel_stamp(value)
                latencies.append((arrived - stamps[ident]) / 1e9)

    while True:
        now = perf()
        sending = now < deadline and sent < total
        if not sending and outstanding == 0:
            break
        if not sending and now >= deadline + config.timeout:
            timeouts += outstanding
            break
        if sending:
            due = begin + next_k * interval
            while due <= now and next_k < total:
                i = next_k % nsock
                pos = position[i]
                ident = packets[i][pos][1] if pos < sizes[i] else -1
                if outstanding < cap and ident >= 0 and pending[i][ident] is None:
                    pkt = packets[i][pos]
                    sent_ns[i][ident] = wall()
                    try:
                        socks[i].send(pkt)
                    except BlockingIOError:
                        skipped += 1
                    else:
                        send_order[i][send_count[i] & 0xFFFF] = ident
                        send_count[i] += 1
                        pending[i][ident] = pkt
                        sent_perf[i][ident] = now
                        position[i] = pos + 1
                        outstanding += 1
                        sent += 1
                        if not first_send:
                            first_send = now
                        lags.append(now - due)
                else:
                    skipped += 1  # over the cap, or that Identifier still unanswered
                    if ident >= 0 and outstanding < cap:
                        # Past the unanswered one: a single lost reply must not hold
                        # this socket's every slot until it times out (2 s).
                        position[i] = pos + 1
                next_k += 1
                due = begin + next_k * interval
        if now >= next_scan:  # expire requests that never got a reply
            next_scan = now + 0.1
            for i in range(nsock):
                expired = _expire(pending[i], sent_perf[i], now - config.timeout)
                outstanding -= expired
                timeouts += expired
        wake = (begin + next_k * interval) if sending else now + 0.005
        time.sleep(max(RATE_MIN_SLEEP, wake - perf()))
        drain(perf())
    return {"sent": sent, "ok": ok, "wrong_code": wrong_code, "bad_authenticator": bad_auth,
            "stray": stray, "timeouts": timeouts, "skipped": skipped, "first_send": first_send,
            "last_recv": last_recv, "latencies": latencies.tobytes(), "lags": lags.tobytes()}


def cpu_probe_ms(loops: int = 1_000_000, repeat: int = 3) -> float:
    """Milliseconds of a fixed pure-Python loop, best of `repeat`: how fast this machine
    runs Python right now. The project's VMs drift by up to ~1.8x within an hour (the
    host's other tenants), so a figure means little without this beside it."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        total = 0
        for i in range(loops):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run_load(config: LoadConfig, subscribers: Sequence[Subscriber]) -> LoadResult:
    """Drive the load described by `config` with `config.procs` client processes."""
    if not subscribers:
        raise ValueError("no subscribers")
    total = config.count or int(
        (config.rate if config.rate > 0 else config.expect_rate) * config.duration * 1.02) + 1
    procs = max(1, config.procs)
    ctx = multiprocessing.get_context("fork")
    start_at = ctx.Value("d", 0.0, lock=False)
    workers = []
    windows = [config.window // procs + (1 if p < config.window % procs else 0) for p in range(procs)]
    for p in range(procs):
        share = total // procs + (1 if p < total % procs else 0)
        part = LoadConfig(**{**asdict(config), "rate": config.rate / procs,
                             "window": max(1, windows[p]), "procs": 1})
        ready = ctx.Event()
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_client, args=(part, subscribers, share, p, start_at, ready, sender),
                           daemon=True)
        proc.start()
        sender.close()
        workers.append((proc, ready, receiver))
    try:
        for proc, ready, _ in workers:
            while not ready.wait(1.0):
                if not proc.is_alive():
                    raise RuntimeError("a load-generator process died while building packets")
        start_at.value = time.perf_counter() + 0.2
        parts = []
        for _proc, _, receiver in workers:
            if not receiver.poll(config.duration + config.timeout + 60):
                raise RuntimeError("a load-generator process did not report")
            parts.append(receiver.recv())
    finally:
        for proc, _, receiver in workers:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            receiver.close()
    return merge(parts, config)


def merge(parts: list[dict[str, Any]], config: LoadConfig) -> LoadResult:
    result = LoadResult(mode="rate" if config.rate > 0 else "window", window=config.window,
                        rate=config.rate, procs=max(1, config.procs))
    latencies = array("d")
    lags = array("d")
    for part in parts:
        for name in ("sent", "ok", "wrong_code", "bad_authenticator", "stray", "timeouts", "skipped"):
            setattr(result, name, getattr(result, name) + part[name])
        chunk = array("d")
        chunk.frombytes(part["latencies"])
        latencies.extend(chunk)
        chunk = array("d")
        chunk.frombytes(part["lags"])
        lags.extend(chunk)
    starts = [p["first_send"] for p in parts if p["first_send"]]
    ends = [p["last_recv"] for p in parts if p["ok"]]
    if starts and ends:
        result.elapsed = max(ends) - min(starts)
    if result.elapsed > 0:
        result.throughput = result.ok / result.elapsed
    ordered = sorted(latencies)
    if ordered:
        result.p50_ms = percentile(ordered, 0.50) * 1000
        result.p95_ms = percentile(ordered, 0.95) * 1000
        result.p99_ms = percentile(ordered, 0.99) * 1000
        result.max_ms = ordered[-1] * 1000
        result.mean_ms = sum(ordered) / len(ordered) * 1000
    if lags:
        result.send_lag_p99_ms = percentile(sorted(lags), 0.99) * 1000
    if config.keep_latencies:
        result.latencies = ordered
    return result


# --- the trivial responders (the generator's ceiling) ---------------------------------------


def _plain_responder(sock: socket.socket, secret: bytes) -> None:
    """Reply Access-Accept (no attributes) with a correct Response Authenticator."""
    recvfrom = sock.recvfrom
    sendto = sock.sendto
    while True:
        data, addr = recvfrom(4096)
        header = b"\x02" + data[1:2] + b"\x00\x14"
        sendto(header + md5(header + data[4:20] + secret), addr)


def _twisted_responder(sock: socket.socket, secret: bytes) -> None:
    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol

    class Responder(DatagramProtocol):
        def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
            header = b"\x02" + data[1:2] + b"\x00\x14"
            self.transport.write(header + md5(header + data[4:20] + secret), addr)

    sock.setblocking(False)
    reactor.adoptDatagramPort(sock.fileno(), sock.family, Responder())  # type: ignore[attr-defined]
    reactor.run(installSignalHandlers=False)  # type: ignore[attr-defined]


class Responder:
    """A trivial RADIUS responder in a child process (`kind`: plain or twisted)."""

    def __init__(self, secret: bytes, kind: str = "plain", host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind((host, 0))
        self.host = host
        self.port = self.sock.getsockname()[1]
        target = _twisted_responder if kind == "twisted" else _plain_responder
        self.process = multiprocessing.get_context("fork").Process(
            target=target, args=(self.sock, secret), daemon=True)

    def __enter__(self) -> Responder:
        self.process.start()
        self.sock.close()
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()  # our own child, by its PID
        self.process.join(5)


def measure_ceiling(config: LoadConfig, subscribers: Sequence[Subscriber],
                    kind: str = "plain") -> LoadResult:
    """The same load against a trivial responder: what the generator itself can do."""
    with Responder(config.secret, kind, config.host if config.host else "127.0.0.1") as responder:
        probe = LoadConfig(**{**asdict(config), "port": responder.port})
        return run_load(probe, subscribers)


# --- command line -------------------------------------------------------------------------


def subscribers_from(args: argparse.Namespace) -> list[Subscriber]:
    if args.users_file:
        out = []
        for n, line in enumerate(Path(args.users_file).read_text().splitlines()):
            if line.strip() and not line.startswith("#"):
                login, _, password = line.partition(":")
                out.append(Subscriber(login.strip(), password.strip(), mac_for(n)))
        return out
    return [Subscriber(args.login.format(i), args.password.format(i), mac_for(i))
            for i in range(args.subscribers)]


def mac_for(n: int) -> str:
    return "02:00:" + ":".join(f"{(n >> s) & 0xFF:02X}" for s in (24, 16, 8, 0))


def add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window", type=int, default=16, help="outstanding requests (default 16)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="fixed rate in requests/s (0: window mode)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--count", type=int, default=0, help="requests in total (0: auto)")
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    parser.add_argument("--sockets", type=int, default=4, help="UDP sockets per process")
    parser.add_argument("--chap", action="store_true", help="CHAP instead of PAP")
    parser.add_argument("--no-message-authenticator", action="store_true")
    parser.add_argument("--timeout", type=float, default=2.0)


def config_from(args: argparse.Namespace, port: int) -> LoadConfig:
    return LoadConfig(
        host=args.host, port=port, secret=args.secret.encode(), window=args.window,
        rate=args.rate, duration=args.duration, count=args.count, procs=args.procs,
        sockets=args.sockets, chap=args.chap,
        message_authenticator=not args.no_message_authenticator, timeout=args.timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1812)
    parser.add_argument("--secret", default="s3cr3t")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--login", default="bench{:05d}", help="format of the N logins")
    parser.add_argument("--password", default="pw-{:05d}", help="format of the N passwords")
    parser.add_argument("--users-file", help="login:password lines instead of the formats")
    parser.add_argument("--self-test", action="store_true",
                        help="only measure the generator against a trivial responder")
    parser.add_argument("--responder", choices=("plain", "twisted"), default="plain")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the ceiling measurement after the real run")
    parser.add_argument("--ceiling-duration", type=float, default=3.0)
    add_load_options(parser)
    args = parser.parse_args(argv)
    subscribers = subscribers_from(args)
    config = config_from(args, args.port)
    report: dict[str, Any] = {}
    if not args.self_test:
        result = run_load(config, subscribers)
        print("server:  " + result.summary(), flush=True)
        report.update({k: v for k, v in asdict(result).items() if k not in ("extra", "latencies")})
    if args.self_test or not args.no_ceiling:
        probe = LoadConfig(**{**asdict(config), "duration": min(args.duration, args.ceiling_duration),
                              "expect_rate": 150_000.0})
        ceiling = measure_ceiling(probe, subscribers, args.responder)
        print(f"ceiling ({args.responder} responder): " + ceiling.summary(), flush=True)
        report["ceiling_throughput"] = round(ceiling.throughput)
        report["ceiling_p99_ms"] = round(ceiling.p99_ms, 3)
        if args.self_test:
            report.update({k: v for k, v in asdict(ceiling).items() if k not in ("extra", "latencies")})
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in report.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
