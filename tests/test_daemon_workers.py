"""`aaa serve --workers 2`: two processes share the ports and split the requests."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from aaa.radius import (
    PacketCode,
    build_request,
    decode,
    encode_attributes,
    load_dictionary,
    new_authenticator,
)
from tests.conftest import CliResult
from tests.daemon_process import Daemon, running_daemon
from tests.factories import cpf

DICT = load_dictionary()
SECRET = b"workers-secret"


def _access_request(identifier: int) -> tuple[bytes, bytes]:
    authenticator = new_authenticator()
    attributes = encode_attributes(DICT, [("User-Name", "wanda"), ("User-Password", b"pw-wanda")],
                                   secret=SECRET, authenticator=authenticator)
    return build_request(PacketCode.ACCESS_REQUEST, identifier, attributes, SECRET,
                         authenticator=authenticator), authenticator


def _subscriber(cli: Callable[..., CliResult]) -> None:
    for args in (("plan", "add", "W-100", "--download", "100000", "--upload", "50000", "--price", "9",
                  "--pool", "pool-w"),
                 ("nas", "add", "w-mk", "--ip", "127.0.0.1", "--secret", SECRET.decode(),
                  "--vendor", "mikrotik", "--no-require-message-authenticator"),
                 ("customer", "add", "--name", "Cliente W", "--document", document := cpf()),
                 ("service", "add", "--customer", document, "--plan", "W-100", "--login", "wanda",
                  "--password", "pw-wanda")):
        assert cli(*args).code == 0, args


def _wait_for(daemon: Daemon, event: str, count: int, timeout: float = 30.0) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    while len(daemon.events(event)) < count:
        assert time.monotonic() < deadline, "\n".join(daemon.lines[-10:])
        time.sleep(0.05)
    return sorted(daemon.events(event), key=lambda e: e["worker"])


def test_two_workers_share_the_ephemeral_port_and_both_answer(
        cli: Callable[..., CliResult], tmp_path: Path) -> None:
    """Worker 1 binds the port worker 0 got from the kernel (`--auth-port 0`), the
    requests of one source port are spread over both by their authenticators, and every
    request gets its Access-Accept, counted by the worker that answered it."""
    _subscriber(cli)
    with running_daemon(cli.url, tmp_path, ("--workers", "2")) as daemon:  # type: ignore[attr-defined]
        _wait_for(daemon, "start", 2)
        starts = sorted(daemon.events("start"), key=lambda e: e["worker"])
        assert [s["worker"] for s in starts] == ["0", "1"]
        assert {s["auth_port"] for s in starts} == {str(daemon.auth_port)}
        assert {s["auth_spread"] for s in starts} == {"authenticator"}
        answered = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(3.0)
            for identifier in range(40):
                packet, _ = _access_request(identifier)
                sock.sendto(packet, ("127.0.0.1", daemon.auth_port))
                reply = decode(sock.recv(4096), DICT)
                assert (reply.code, reply.identifier) == (PacketCode.ACCESS_ACCEPT, identifier)
                answered += 1
        per_worker = []
        for index, start in enumerate(starts):
            metrics_port = int(start["metrics_port"])
            assert metrics_port == daemon.metrics_port + index
            daemon.metrics_port = metrics_port
            per_worker.append(daemon.sample("aaa_radius_requests_total", nas="w-mk", method="pap",
                                            result="accept"))
        assert sum(per_worker) == answered == 40
        assert min(per_worker) >= 5, per_worker  # 40 random authenticators: both get a share


def _interim_intervals(port: int, count: int = 24) -> set[int]:
    """The Acct-Interim-Interval of `count` Accepts (random authenticators: both workers answer)."""
    seen: set[int] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(3.0)
        for identifier in range(count):
            packet, _ = _access_request(identifier)
            sock.sendto(packet, ("127.0.0.1", port))
            reply = decode(sock.recv(4096), DICT)
            assert (reply.code, reply.identifier) == (PacketCode.ACCESS_ACCEPT, identifier)
            seen.add(int(reply.get("Acct-Interim-Interval")))  # type: ignore[arg-type]
    return seen


def test_sighup_reloads_every_worker_and_names_what_needs_a_restart(
        cli: Callable[..., CliResult], tmp_path: Path) -> None:
    """SIGHUP to the daemon's pid reloads its configuration in worker 0 and, passed on, in
    worker 1: every Accept then carries the new Acct-Interim-Interval, whichever worker
    answers. A changed port cannot be applied live: the reload line names it
    (`restart_needed=radius.auth_port`). A broken file is refused (`reload_failed`, in each
    worker) and the last good configuration keeps answering."""
    _subscriber(cli)
    config = tmp_path / "aaa.toml"
    config.write_text("[radius]\nacct_interim_interval = 300\n")
    with running_daemon(cli.url, tmp_path, ("--workers", "2"), config=config) as daemon:  # type: ignore[attr-defined]
        _wait_for(daemon, "start", 2)
        assert _interim_intervals(daemon.auth_port) == {300}
        config.write_text("[radius]\nacct_interim_interval = 600\nauth_port = 11812\n")
        os.kill(daemon.pid, signal.SIGHUP)
        reloads = _wait_for(daemon, "reload", 2)
        assert [r["worker"] for r in reloads] == ["0", "1"]
        assert {r["restart_needed"] for r in reloads} == {"radius.auth_port"}
        assert _interim_intervals(daemon.auth_port) == {600}
        config.write_text("[radius\nacct_interim_interval = 900\n")
        os.kill(daemon.pid, signal.SIGHUP)
        failures = _wait_for(daemon, "reload_failed", 2)
        assert [f["worker"] for f in failures] == ["0", "1"]
        assert _interim_intervals(daemon.auth_port) == {600}
        assert daemon.process.poll() is None
