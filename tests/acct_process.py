"""Helpers for the accounting end-to-end tests: `aaa serve` with an accounting port, a
NAS-like accounting client, and the `aaa` CLI on a given database.

The daemon itself is run by `tests.daemon_process.running_daemon` (SIGTERM to its own
pid on exit); here we only add the accounting port and a data directory of the test's
own, so that the accounting journal (`<data_dir>/journal/accounting-0.jnl`) is private.

`AcctClient` behaves like a NAS: each Accounting-Request gets an identifier that is not
in flight, its octets are built once, and when no valid Accounting-Response arrives in
`timeout` seconds the very same octets are sent again, up to `retries` times. Several
requests are in flight at once (`window`), so a stream of hundreds of records takes a
few seconds, not minutes. Everything is bounded: the number of packets, the tries, and
an overall deadline.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aaa.radius import PacketCode, build_request, decode, encode_attributes, load_dictionary, verify_reply
from tests.conftest import CliResult
from tests.daemon_process import Daemon, running_daemon

DICT = load_dictionary()
BIND = "127.0.0.1"
SECRET = "testing123"

START, STOP, INTERIM, ACCOUNTING_ON, ACCOUNTING_OFF = 1, 2, 3, 7, 8
Attrs = list[tuple[str, object]]


def free_udp_port() -> int:
    """A UDP port free right now on 127.0.0.1 (kept across a daemon restart, like 1813)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((BIND, 0))
        return int(sock.getsockname()[1])


def acct_port(daemon: Daemon) -> int:
    return int(daemon.events("start")[0]["acct_port"])


@contextmanager
def acct_daemon(url: str, cwd: Path, port: int = 0, data_dir: Path | None = None,
                extra_args: tuple[str, ...] = ()) -> Iterator[Daemon]:
    """`aaa serve` with the accounting port `port` (0: the kernel picks) and
    AAA_DATA_DIR=`data_dir` (default `cwd/data`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AAA_DATA_DIR", str(data_dir or cwd / "data"))
        patch.delenv("AAA_DATABASE_URL", raising=False)
        with running_daemon(url, cwd, ("--acct-port", str(port), *extra_args)) as daemon:
            yield daemon


def journal_records(daemon: Daemon) -> float:
    return daemon.sample("aaa_acct_journal_records")


def poll(check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Call `check` until it returns something truthy or `timeout` passes; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- the CLI --------------------------------------------------------------------------------------


def aaa(url: str, cwd: Path, *args: str) -> CliResult:
    """`aaa ARGS` in-process on the database at `url` (as the `cli` fixture does)."""
    from aaa.cli import root
    from aaa.cliutil import run_cli

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AAA_DATABASE_URL", url)
        patch.delenv("AAA_CONFIG", raising=False)
        patch.delenv("AAA_OPERATOR", raising=False)
        patch.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            code = run_cli(root, list(args))
    return CliResult(code, out.getvalue(), err.getvalue())


def aaa_ok(url: str, cwd: Path, *args: str) -> Any:
    """`aaa --format json ARGS`, insisting on success; the parsed output."""
    result = aaa(url, cwd, "--format", "json", *args)
    assert result.code == 0, (args, result.err)
    return result.json if result.out.strip() else None


def aaa_process(url: str, cwd: Path, *args: str,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`aaa ARGS` as a process of its own."""
    full = {k: v for k, v in os.environ.items() if k not in ("AAA_CONFIG", "AAA_OPERATOR")}
    full.update(env or {})
    full["AAA_DATABASE_URL"] = url
    return subprocess.run([sys.executable, "-m", "aaa.cli", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120, check=False)


def populate(url: str, cwd: Path, logins: Sequence[str], password: str = "s3nh@Forte",
             nas: Sequence[tuple[str, str]] = (("mk", BIND),), cpf: str = "52998224725") -> None:
    """A plan, the NAS (MikroTik, secret `SECRET`, no Message-Authenticator required),
    one customer and a service per login."""
    aaa_ok(url, cwd, "plan", "add", "FIBRA-100", "--download", "100000", "--upload", "50000",
           "--price", "99.90")
    for name, ip in nas:
        aaa_ok(url, cwd, "nas", "add", name, "--ip", ip, "--secret", SECRET, "--vendor", "mikrotik",
               "--no-require-message-authenticator")
    aaa_ok(url, cwd, "customer", "add", "--name", "Cliente Acct", "--document", cpf)
    for login in logins:
        aaa_ok(url, cwd, "service", "add", "--customer", cpf, "--plan", "FIBRA-100",
               "--login", login, "--password", password)


# --- packets ----------------------------------------------------------------------------------------


def session_attrs(login: str, session_id: str, status: int, *, session_time: int = 0,
                  octets_in: int = 0, octets_out: int = 0, ip: str | None = "100.64.0.10",
                  mac: str | None = "AA:BB:CC:DD:EE:01", port_id: str | None = "vlan100",
                  cause: int | None = None, nas_ip: str = BIND) -> Attrs:
    """The attributes a MikroTik puts in a session's Accounting-Request (64-bit counters
    split into Octets and Gigawords)."""
    attrs: Attrs = [("Acct-Status-Type", status), ("User-Name", login),
                    ("Acct-Session-Id", session_id), ("NAS-IP-Address", nas_ip),
                    ("NAS-Port", 15728640), ("Acct-Session-Time", session_time),
                    ("Acct-Input-Octets", octets_in & 0xFFFFFFFF),
                    ("Acct-Input-Gigawords", octets_in >> 32),
                    ("Acct-Output-Octets", octets_out & 0xFFFFFFFF),
                    ("Acct-Output-Gigawords", octets_out >> 32)]
    if port_id is not None:
        attrs.append(("NAS-Port-Id", port_id))
    if ip is not None:
        attrs.append(("Framed-IP-Address", ip))
    if mac is not None:
        attrs.append(("Calling-Station-Id", mac))
    if cause is not None:
        attrs.append(("Acct-Terminate-Cause", cause))
    return attrs


def acct_request(attrs: Attrs, identifier: int, secret: str = SECRET) -> bytes:
    """An Accounting-Request with its RFC 2866 Request Authenticator."""
    return build_request(PacketCode.ACCOUNTING_REQUEST, identifier,
                         encode_attributes(DICT, attrs), secret.encode())


def is_response_to(raw: bytes, request: bytes, secret: str = SECRET) -> bool:
    """`raw` is a valid Accounting-Response to `request` (code, identifier, authenticator)."""
    try:
        reply = decode(raw, DICT)
    except Exception:
        return False
    return (reply.code == PacketCode.ACCOUNTING_RESPONSE and raw[1] == request[1]
            and verify_reply(reply, request[4:20], secret.encode()))


# --- a NAS-like client ---------------------------------------------------------------------------------


@dataclass
class _InFlight:
    index: int
    octets: bytes
    sent_at: float
    tries: int


@dataclass
class AcctClient:
    """Sends Accounting-Requests like a NAS: retransmits the same octets until answered."""

    port: int
    source: str = BIND
    secret: str = SECRET
    window: int = 32
    timeout: float = 0.5
    retries: int = 6
    pace: float = 0.0  # at least this many seconds between two new records (0: no pacing)
    sent: int = 0  # datagrams, retransmissions included
    retransmitted: int = 0
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.source, 0))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> AcctClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, octets: bytes) -> None:
        self.sock.sendto(octets, (BIND, self.port))
        self.sent += 1

    def exchange(self, records: Sequence[Attrs], deadline: float = 60.0,
                 on_ack: Callable[[int], None] | None = None) -> list[bool]:
        """Send every record (at most `window` in flight); which ones were acknowledged.
        `on_ack(i)` is called as record i is acknowledged."""
        acked = [False] * len(records)
        free_ids = list(range(256))
        flight: dict[int, _InFlight] = {}
        following = 0
        end = time.monotonic() + deadline
        next_new = time.monotonic()
        while (following < len(records) or flight) and time.monotonic() < end:
            while (following < len(records) and len(flight) < self.window
                   and time.monotonic() >= next_new):
                identifier = free_ids.pop(0)
                octets = acct_request(records[following], identifier, self.secret)
                flight[identifier] = _InFlight(following, octets, time.monotonic(), 1)
                self._send(octets)
                following += 1
                next_new = max(next_new + self.pace, time.monotonic() - 0.05) if self.pace else 0.0
            now = time.monotonic()
            for identifier, item in list(flight.items()):
                if now - item.sent_at < self.timeout:
                    continue
                if item.tries > self.retries:  # the NAS gives up on this record
                    del flight[identifier]
                    free_ids.append(identifier)
                    continue
                item.tries += 1
                item.sent_at = now
                self.retransmitted += 1
                self._send(item.octets)  # the very same octets: same identifier, same authenticator
            wait = min((item.sent_at + self.timeout for item in flight.values()),
                       default=now + 0.1) - now
            if following < len(records) and len(flight) < self.window:
                wait = min(wait, next_new - now)
            self.sock.settimeout(max(0.005, min(wait, 0.1)))
            try:
                raw = self.sock.recv(4096)
            except TimeoutError:
                continue
            if len(raw) < 20 or raw[1] not in flight:
                continue
            item = flight[raw[1]]
            if not is_response_to(raw, item.octets, self.secret):
                continue
            del flight[raw[1]]
            free_ids.append(raw[1])
            acked[item.index] = True
            if on_ack is not None:
                on_ack(item.index)
        return acked

    def one(self, attrs: Attrs) -> bool:
        return self.exchange([attrs], deadline=10.0)[0]


# --- a bounded stream of session records ------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    session: str  # Acct-Session-Id
    login: str
    step: int  # 0: Start, 1..interims: Interim-Update, interims + 1: Stop
    session_time: int
    octets_in: int
    octets_out: int
    stop: bool
    attrs: Attrs


def session_stream(sessions: int, interims: int, logins: Sequence[str], prefix: str = "s",
                   gap: int = 25) -> list[Record]:
    """`sessions` sessions, each a Start, `interims` Interim-Updates with growing counters
    (crossing 2**32 at the second, so Gigawords matter) and a Stop, staggered the way a
    NAS's sessions overlap: session n's step k is sent at slot n + k * gap. Sessions begin
    and end all along the stream, so whatever part of it is lost (say, what went to the
    journal) is the last word of some sessions and shows in the final rows."""
    slots = []
    for number in range(sessions):
        session = f"{prefix}{number:05d}"
        login = logins[number % len(logins)]
        for step in range(interims + 2):
            stop = step == interims + 1
            session_time = 60 * step
            octets_in = step * (3 << 30) + number
            octets_out = step * 1_000_003 + number
            attrs = session_attrs(login, session, STOP if stop else (INTERIM if step else START),
                                  session_time=session_time, octets_in=octets_in,
                                  octets_out=octets_out, ip=f"100.64.{number // 250}.{number % 250 + 1}",
                                  mac=f"02:00:00:00:{number // 256:02X}:{number % 256:02X}",
                                  cause=1 if stop else None)
            slots.append((number + step * gap, step, Record(session, login, step, session_time,
                                                            octets_in, octets_out, stop, attrs)))
    slots.sort(key=lambda slot: (slot[0], slot[1]))
    return [record for _, _, record in slots]


def stored_sessions(url: str) -> list[dict[str, Any]]:
    """Every row of acct_sessions, straight from the database."""
    from sqlalchemy import text

    from aaa.db.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(text(
                "SELECT unique_id, acct_session_id, login, input_octets, output_octets, "
                "session_time, stopped_at, terminate_cause, framed_ip, mac FROM acct_sessions"))]
    finally:
        engine.dispose()


def check_exactly_once(rows: Sequence[dict[str, Any]], records: Sequence[Record],
                       acked: Sequence[bool]) -> None:
    """Every acknowledged record is in the database, none twice: one row per session that
    had a record acknowledged, whose counters are those of its last acknowledged record
    (counters grow, so a sum or a lost record would show), closed when its Stop was.
    (A later record stored but never acknowledged — the NAS gave up — may be ahead.)"""
    by_session: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_session.setdefault(row["acct_session_id"], []).append(row)
    duplicated = {session: len(found) for session, found in by_session.items() if len(found) > 1}
    assert not duplicated, f"sessions stored more than once: {list(duplicated.items())[:5]}"
    last: dict[str, Record] = {}
    for record, ok in zip(records, acked, strict=True):
        if ok and (record.session not in last or record.step > last[record.session].step):
            last[record.session] = record
    missing = sorted(set(last) - set(by_session))
    assert not missing, f"{len(missing)} acknowledged sessions missing, e.g. {missing[:5]}"

    def values(record: Record) -> tuple[object, ...]:
        return (record.login, record.octets_in, record.octets_out, record.session_time,
                record.stop, "User-Request" if record.stop else None)

    wrong = []
    for session, record in last.items():
        [row] = by_session[session]
        got = (row["login"], row["input_octets"], row["output_octets"], row["session_time"],
               row["stopped_at"] is not None, row["terminate_cause"])
        allowed = [values(r) for r in records if r.session == session and r.step >= record.step]
        if got != values(record) and got not in allowed[1:]:
            wrong.append((session, got, values(record)))
    assert not wrong, f"{len(wrong)} sessions with wrong values (got, want), e.g. {wrong[:3]}"
