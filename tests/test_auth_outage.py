"""Authentication through a PostgreSQL outage (issue 10, "Database outage").

The module's own cluster (tests/test_accounting_outage.py's `own_cluster`; the
session-wide one is never touched) is stopped for OUTAGE seconds while
- a NAS-like client authenticates the known subscribers continuously (PAP with
  Message-Authenticator, every reply checked: Access-Accept, Response Authenticator and
  Message-Authenticator valid): 0 failures;
- an accounting stream runs (tests/test_accounting_outage.Stream): acknowledged from the
  journal while the database is down, replayed after, each record stored exactly once;
- a management command fails with one clear line on stderr, exit 1, no traceback;
then the cluster comes back and the daemon reconnects by itself: a change made after the
restart (a service cancelled) reaches the view and the next answer.

The long version (60 s outage, more load) is `benchmarks/auth_outage.py`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from aaa.radius import PacketCode, build_request, decode, encode_attributes, load_dictionary, verify_reply
from tests import test_accounting_outage
from tests.acct_process import (
    BIND,
    SECRET,
    aaa_process,
    acct_daemon,
    check_exactly_once,
    free_udp_port,
    journal_records,
    poll,
    session_stream,
    stored_sessions,
)
from tests.pg import Cluster
from tests.test_accounting_outage import (
    LOGINS,
    Stream,
    ensure_running,
    new_database,
    restart,
    wait_drained,
)

own_cluster = test_accounting_outage.own_cluster  # the module-scoped cluster fixture, reused

DICT = load_dictionary()
PASSWORD = "s3nh@Forte"  # tests.acct_process.populate's
OUTAGE = float(os.environ.get("AAA_AUTH_OUTAGE_SECONDS", "10"))
CHANGED = LOGINS[-1]  # cancelled after the restart
# Accounting sessions on some logins, authentication on others (simultaneous-use: a login
# with an open session would be refused a second one).
ACCT_LOGINS, AUTH_LOGINS = LOGINS[:5], LOGINS[5:-1]


class AuthLoad:
    """Sequential PAP Access-Requests for `logins`, round robin, each retried like a NAS
    (3 tries, `timeout` apart); every reply validated."""

    def __init__(self, port: int, logins: list[str], timeout: float = 1.0) -> None:
        self.port, self.logins, self.timeout = port, logins, timeout
        self.answered = 0
        self.failures: list[str] = []
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((BIND, 0))
        self.thread = threading.Thread(target=self._run, name="auth-load", daemon=True)

    def ask(self, login: str, identifier: int) -> tuple[int | None, str]:
        auth = os.urandom(16)
        attrs = encode_attributes(DICT, [("User-Name", login), ("User-Password", PASSWORD),
                                         ("NAS-IP-Address", BIND)], secret=SECRET.encode(),
                                  authenticator=auth)
        request = build_request(PacketCode.ACCESS_REQUEST, identifier, attrs, SECRET.encode(),
                                authenticator=auth)
        self.sock.settimeout(self.timeout)
        for _ in range(3):
            self.sock.sendto(request, (BIND, self.port))
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                try:
                    data = self.sock.recv(4096)
                except TimeoutError:
                    break
                reply = decode(data, DICT)
                if reply.identifier != identifier:
                    continue  # a late answer to an earlier request
                if not verify_reply(reply, auth, SECRET.encode()) or reply.attributes[0][0] != 80:
                    return None, "reply does not verify"
                message = reply.get("Reply-Message")
                return reply.code, str(message or "")
        return None, "no answer after 3 tries"

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            login = self.logins[n % len(self.logins)]
            started = time.monotonic()
            code, why = self.ask(login, n % 256)
            if code == PacketCode.ACCESS_ACCEPT:
                self.answered += 1
                self.latencies.append(time.monotonic() - started)
            else:
                self.failures.append(f"{login}: {code} {why}")
            n += 1
            time.sleep(0.005)

    def start(self) -> AuthLoad:
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.sock.close()


def test_authentication_survives_a_postgresql_outage(own_cluster: Cluster, tmp_path: Path) -> None:
    url = new_database(own_cluster, "auth_outage", tmp_path)
    records = session_stream(int((OUTAGE + 15) / 0.02 / 5), 3, ACCT_LOGINS, prefix="o")
    try:
        port = free_udp_port()
        with acct_daemon(url, tmp_path, port=port) as daemon:
            load = AuthLoad(daemon.auth_port, AUTH_LOGINS).start()
            stream = Stream(port, records, pace=0.02, retries=20, deadline=OUTAGE + 60).start()
            stream.wait_count(40, 15)
            assert poll(lambda: load.answered >= 20, 10), load.failures[:3]
            before = load.answered
            own_cluster.stop("fast")
            down_at = time.monotonic()
            # A management command while the database is down: one clear line, exit 1.
            refused = aaa_process(url, tmp_path, "service", "suspend", LOGINS[0], "--mode", "debt")
            assert refused.returncode == 1, (refused.returncode, refused.stderr)
            lines = refused.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in refused.stderr
            assert lines[0].startswith("aaa: database unavailable"), lines
            assert poll(lambda: journal_records(daemon) > 0, 10), "accounting did not go to the journal"
            time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
            during = load.answered - before
            acked_during = stream.acked_between(down_at, time.monotonic())
            restart(own_cluster)
            up_at = time.monotonic()
            # The daemon reconnects by itself: a change made now reaches the view.
            changed = aaa_process(url, tmp_path, "service", "cancel", CHANGED)
            assert changed.returncode == 0, changed.stderr
            probe = AuthLoad(daemon.auth_port, [CHANGED])
            try:
                assert poll(lambda: probe.ask(CHANGED, 7)[0] == PacketCode.ACCESS_REJECT, 30, 0.5), \
                    "a change made after the restart did not reach the view"
            finally:
                probe.sock.close()
            reconnected_in = time.monotonic() - up_at
            acked = stream.join(OUTAGE + 60)
            load.finish()
            wait_drained(daemon, 30)
            assert load.failures == [], load.failures[:5]
            assert during >= OUTAGE * 5, f"only {during} answers during a {OUTAGE:.0f} s outage"
            assert all(acked), f"{acked.count(False)} accounting records never acknowledged"
            assert acked_during > 0
            check_exactly_once(stored_sessions(url), records, acked)
            assert daemon.sample("aaa_acct_replayed_total") > 0
            # Failing every second for the whole outage, said in a few lines, then recovery.
            for failing in ("view_refresh_failed", "accounting_replay_failed", "authlog_write_failed"):
                assert 1 <= len(daemon.events(failing)) <= 2 + OUTAGE // 60, failing
            assert daemon.events("view_refresh_recovered") and daemon.events("accounting_replay_recovered")
            assert poll(lambda: daemon.events("authlog_write_recovered"), 30)
            latencies = sorted(load.latencies)
            print(f"\nauth answers {load.answered} ({during} during the {OUTAGE:.0f} s outage), "
                  f"0 failures, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms; "
                  f"accounting {len(records)} records, {acked_during} acknowledged during the "
                  f"outage; change after restart in the view after {reconnected_in:.1f} s")
    finally:
        ensure_running(own_cluster)


def test_daemon_started_during_an_outage_answers_from_its_view_snapshot(own_cluster: Cluster,
                                                                       tmp_path: Path) -> None:
    """A daemon restarted while PostgreSQL is down (a deploy, a crash, a host reboot at the
    wrong moment) starts from the view snapshot its predecessor kept in the data directory:
    its start line says `view_source=snapshot`, `aaa_view_from_snapshot` is 1, it accepts
    the known subscribers, refuses the one cancelled before the outage (a change appended
    to the snapshot, not in its base), and acknowledges accounting from the journal. When
    the cluster comes back it catches up from the change feed (`view_caught_up`, the
    metric back to 0), a change made then reaches the next answer, and every acknowledged
    accounting record is in the database exactly once."""
    url = new_database(own_cluster, "snapshot_start", tmp_path)
    data_dir, port = tmp_path / "data", free_udp_port()
    cancelled_before, cancelled_after = LOGINS[6], LOGINS[7]
    records = session_stream(60, 2, ACCT_LOGINS, prefix="n")
    try:
        with acct_daemon(url, tmp_path, port=port, data_dir=data_dir) as daemon:
            [start] = daemon.events("start")
            assert start["view_source"] == "database"
            probe = AuthLoad(daemon.auth_port, [])
            try:
                assert probe.ask(cancelled_before, 1)[0] == PacketCode.ACCESS_ACCEPT
                assert aaa_process(url, tmp_path, "service", "cancel", cancelled_before).returncode == 0
                assert poll(lambda: probe.ask(cancelled_before, 2)[0] == PacketCode.ACCESS_REJECT, 10, 0.2)
            finally:
                probe.sock.close()
        assert (data_dir / "view.snapshot").stat().st_mode & 0o777 == 0o600
        own_cluster.stop("fast")
        with acct_daemon(url, tmp_path, port=port, data_dir=data_dir) as daemon:
            [start] = daemon.events("start")
            assert start["view_source"] == "snapshot", start
            assert daemon.events("view_from_snapshot")
            assert daemon.sample("aaa_view_from_snapshot") == 1
            probe = AuthLoad(daemon.auth_port, [])
            try:
                for n, login in enumerate(AUTH_LOGINS):
                    if login != cancelled_before:
                        assert probe.ask(login, n)[0] == PacketCode.ACCESS_ACCEPT, login
                code, message = probe.ask(cancelled_before, 99)
                assert code == PacketCode.ACCESS_REJECT and "cancel" in message.lower(), message
                stream = Stream(port, records, pace=0.01, retries=30, deadline=60).start()
                stream.wait_count(40, 15)
                assert journal_records(daemon) > 0
                restart(own_cluster)
                assert poll(lambda: daemon.events("view_caught_up"), 15, 0.2)
                assert daemon.sample("aaa_view_from_snapshot") == 0
                assert aaa_process(url, tmp_path, "service", "cancel", cancelled_after).returncode == 0
                assert poll(lambda: probe.ask(cancelled_after, 3)[0] == PacketCode.ACCESS_REJECT, 15, 0.2), \
                    "a change made after the database came back did not reach the view"
            finally:
                probe.sock.close()
            acked = stream.join(60)
            wait_drained(daemon, 30)
            assert all(acked), f"{acked.count(False)} accounting records never acknowledged"
            check_exactly_once(stored_sessions(url), records, acked)
    finally:
        ensure_running(own_cluster)


def _burst(port: int, logins: list[str], count: int, window: int = 64) -> int:
    """`count` PAP Access-Requests, `window` at a time, from one socket; the Accepts."""
    accepted = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((BIND, 0))
        sock.settimeout(2.0)
        for start in range(0, count, window):
            batch = min(window, count - start)
            for n in range(batch):
                auth = os.urandom(16)
                attrs = encode_attributes(DICT, [("User-Name", logins[(start + n) % len(logins)]),
                                                 ("User-Password", PASSWORD), ("NAS-IP-Address", BIND)],
                                          secret=SECRET.encode(), authenticator=auth)
                sock.sendto(build_request(PacketCode.ACCESS_REQUEST, n, attrs, SECRET.encode(),
                                          authenticator=auth), (BIND, port))
            for _ in range(batch):
                try:
                    accepted += decode(sock.recv(4096), DICT).code == PacketCode.ACCESS_ACCEPT
                except TimeoutError:
                    break
    return accepted


def test_a_stop_during_an_outage_does_not_wait_for_the_database(own_cluster: Cluster,
                                                                tmp_path: Path) -> None:
    """SIGTERM while PostgreSQL is down and thousands of authentication-log rows wait for
    it (the writer's pipe full): the daemon stops within its bounds instead of hanging
    until killed (it used to: a restart during an outage took systemd's 90 s), and the
    rows it could not write are counted and logged (`authlog_lost_at_stop`)."""
    url = new_database(own_cluster, "stop_outage", tmp_path)
    try:
        with acct_daemon(url, tmp_path) as daemon:
            own_cluster.stop("fast")
            answered = _burst(daemon.auth_port, AUTH_LOGINS, 8_000)
            assert answered >= 7_000
            started = time.monotonic()
            code = daemon.stop(timeout=60)
            took = time.monotonic() - started
            assert code == 0 and took < 30, (code, took)
            [lost] = daemon.events("authlog_lost_at_stop")
            assert 0 < int(lost["rows"]) <= answered
    finally:
        ensure_running(own_cluster)
