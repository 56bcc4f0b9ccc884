"""Crash with CoA: `kill -9` of `aaa serve` while it dispatches a batch of CoA jobs, then
a restart. On SQLite and on PostgreSQL.

A test NAS of our own (a real UDP listener on 127.0.0.7, registered with its port as the
NAS's CoA port) keeps every request with its arrival time and answers each one with a
CoA-ACK after a delay of its own, so the batch of JOBS jobs is acknowledged over ~3 s.
The daemon is killed (SIGKILL to its pid) once a third of the jobs are recorded done;
the jobs still `sending` carry the dead process's claim ("HOST:PID"). The restarted
daemon puts those back in the queue at once (their claimer process is gone) instead of
waiting out the five-minute reclaim, and sends them.

Asserted: every job ends done, every login got its CoA-Request (none lost), and no job
whose ACK was recorded before the kill is sent again after it. A job ACKed by the NAS but
not yet recorded when the process died is sent once more after the restart: CoA is
idempotent, and recording before sending is impossible.
"""

from __future__ import annotations

import heapq
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, select

from aaa.db.models import CoaJob
from aaa.radius import PacketCode, build_reply, decode, load_dictionary, verify_request_authenticator
from tests.acct_process import START, AcctClient, aaa_ok, acct_daemon, acct_port, poll, session_attrs
from tests.conftest import Database
from tests.daemon_process import Daemon

DICT = load_dictionary()
NAS_IP = "127.0.0.7"
SECRET = "crash-coa-secret"
JOBS = 30
LOGINS = [f"crash{i:02d}" for i in range(JOBS)]
PASSWORD = "s3nh@Forte"


@dataclass
class Seen:
    login: str
    code: int
    at: float  # time.monotonic()


class SlowNas:
    """A NAS's CoA port that ACKs every request after `delay(login)` seconds."""

    def __init__(self, ip: str, secret: str) -> None:
        self.secret = secret.encode()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.settimeout(0.01)
        self.port = int(self.sock.getsockname()[1])
        self.delay: Callable[[str], float] = lambda login: 0.0
        self.seen: list[Seen] = []
        self.bad = 0
        self._due: list[tuple[float, int, bytes, tuple[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="slow-nas", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        serial = 0
        while not self._stop.is_set():
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, _, reply, source = heapq.heappop(self._due)
                self.sock.sendto(reply, source)
            try:
                data, source = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            packet = decode(data, DICT)
            if not verify_request_authenticator(packet, self.secret):
                self.bad += 1
                continue
            login = str(packet.get("User-Name"))
            self.seen.append(Seen(login, packet.code, time.monotonic()))
            ack = (PacketCode.COA_ACK if packet.code == PacketCode.COA_REQUEST
                   else PacketCode.DISCONNECT_ACK)
            serial += 1
            heapq.heappush(self._due, (time.monotonic() + self.delay(login), serial,
                                       build_reply(packet, ack, self.secret), source))

    def requests(self, login: str, after: float = 0.0) -> int:
        return sum(1 for s in list(self.seen) if s.login == login and s.at > after)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def statuses(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {login: status for login, status in conn.execute(
                select(CoaJob.login, CoaJob.status).order_by(CoaJob.id))}
    finally:
        engine.dispose()


def kill9(daemon: Daemon) -> None:
    os.kill(daemon.pid, signal.SIGKILL)  # the daemon's own pid
    daemon.process.wait(10)
    assert daemon.process.returncode == -signal.SIGKILL


def test_kill9_while_dispatching_coa_jobs(template_db: Database, tmp_path: Path) -> None:
    url = template_db.make_copy()
    # One try with a long timeout: a request is sent again only after the restart.
    (tmp_path / "aaa.toml").write_text("[coa]\ntimeouts = [8.0]\npoll_interval = 0.2\n")
    nas = SlowNas(NAS_IP, SECRET)
    try:
        aaa_ok(url, tmp_path, "plan", "add", "FIBRA-100", "--download", "100000", "--upload",
               "50000", "--price", "99.90")
        aaa_ok(url, tmp_path, "plan", "add", "FIBRA-300", "--download", "300000", "--upload",
               "150000", "--price", "149.90")
        aaa_ok(url, tmp_path, "nas", "add", "crash-mk", "--ip", NAS_IP, "--secret", SECRET,
               "--vendor", "mikrotik", "--no-require-message-authenticator",
               "--coa-port", str(nas.port))
        aaa_ok(url, tmp_path, "customer", "add", "--name", "Cliente Crash", "--document",
               "52998224725")
        for login in LOGINS:
            aaa_ok(url, tmp_path, "service", "add", "--customer", "52998224725", "--plan",
                   "FIBRA-100", "--login", login, "--password", PASSWORD)
        # Every login online (Accounting Start from the NAS), then the daemon stops.
        with acct_daemon(url, tmp_path) as daemon:
            starts = [session_attrs(login, f"crash-{i:04d}", START, nas_ip=NAS_IP,
                                    ip=f"100.64.7.{i + 1}", mac=None)
                      for i, login in enumerate(LOGINS)]
            with AcctClient(acct_port(daemon), source=NAS_IP, secret=SECRET) as client:
                assert all(client.exchange(starts, deadline=30.0))
        # A batch of CoA jobs (plan change) queued while no daemon runs.
        for login in LOGINS:
            aaa_ok(url, tmp_path, "coa", "update", login, "--reason", "crash test")
        assert set(statuses(url).values()) == {"pending"}

        # The NAS ACKs job i after 0.1 * (i + 1) s: the batch is acknowledged over 3 s.
        nas.delay = lambda login: 0.1 * (LOGINS.index(login) + 1)
        with acct_daemon(url, tmp_path) as daemon:
            done_enough = poll(lambda: sum(s == "done" for s in statuses(url).values()) >= JOBS // 3,
                               30.0, 0.02)
            assert done_enough, f"jobs not dispatched: {statuses(url)}"
            kill9(daemon)
            killed_at = time.monotonic()
        before = statuses(url)
        recorded = {login for login, status in before.items() if status == "done"}
        in_flight = {login for login, status in before.items() if status == "sending"}
        assert recorded and in_flight, before  # killed in the middle of the batch
        assert set(before.values()) <= {"done", "sending"}

        nas.delay = lambda login: 0.0
        with acct_daemon(url, tmp_path) as daemon:
            restarted_at = time.monotonic()
            settled = poll(lambda: set(statuses(url).values()) == {"done"}, 20.0, 0.1)
            assert settled, f"jobs not finished {time.monotonic() - restarted_at:.1f} s after the " \
                            f"restart: {statuses(url)}"
            released = daemon.events("coa_released")
            assert released and int(released[0]["jobs"]) == len(in_flight)

        assert nas.bad == 0
        for login in LOGINS:
            assert nas.requests(login) >= 1, f"{login}: its job was never sent"
        for login in recorded:  # ACK recorded before the kill: never sent again
            assert nas.requests(login, after=killed_at) == 0, login
            assert nas.requests(login) == 1, login
        for login in in_flight:  # sent once more after the restart, not more
            assert nas.requests(login, after=killed_at) == 1, login
    finally:
        nas.close()


def test_live_claims_are_not_released(template_db: Database, tmp_path: Path) -> None:
    """Only a claim of this host whose process is gone goes back to pending."""
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from aaa.db import coa as jobs_db

    url = template_db.make_copy()
    aaa_ok(url, tmp_path, "plan", "add", "FIBRA-100", "--download", "100000", "--upload", "50000",
           "--price", "99.90")
    aaa_ok(url, tmp_path, "customer", "add", "--name", "Cliente Crash", "--document", "52998224725")
    service = aaa_ok(url, tmp_path, "service", "add", "--customer", "52998224725", "--plan",
                     "FIBRA-100", "--login", "claims", "--password", PASSWORD)
    engine = create_engine(url)
    now = datetime.now(UTC)
    try:
        with Session(engine) as session, session.begin():
            for claimed_by in ("here:101", "here:102", "there:101", "here:x", None):
                session.add(CoaJob(created_at=now, service_id=service["id"], login=str(claimed_by),
                                   kind="coa", reason="r", operator_login="admin",
                                   fallback_disconnect=True, next_attempt_at=now,
                                   status="sending" if claimed_by else "pending",
                                   claimed_by=claimed_by, claimed_at=now if claimed_by else None))
        with Session(engine) as session, session.begin():
            released = jobs_db.release_dead_claims(session, "here", lambda pid: pid == 101)
        with Session(engine) as session:
            rows = {job.login: (job.status, job.claimed_by)
                    for job in session.scalars(select(CoaJob))}
        assert len(released) == 1
        assert rows == {"here:101": ("sending", "here:101"), "here:102": ("pending", None),
                        "there:101": ("sending", "there:101"), "here:x": ("sending", "here:x"),
                        "None": ("pending", None)}
    finally:
        engine.dispose()
