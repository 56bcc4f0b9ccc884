"""Accounting durability under failure: "acknowledge only what is stored; nothing
acknowledged is lost, nothing counted twice" (RFC 2866 §2, issue 5).

- The database goes away: a PostgreSQL cluster of this module's own (the session-wide
  one is never touched) is stopped in the middle of a bounded stream of accounting
  records and started again; the daemon keeps acknowledging from its fsync'd journal and
  replays it when the database is back.
- The daemon dies: `kill -9` of the daemon's own pid in the middle of a stream (on
  SQLite and on the shared PostgreSQL), and once more while the journal holds records.

The stream comes from `tests.acct_process.AcctClient`, which behaves like a NAS: it
retransmits the same octets until it gets an Accounting-Response, to a fixed accounting
port, so its retries reach the restarted daemon. Every test is bounded in packets, tries
and time, talks only to 127.0.0.1, and ends only the processes it started, by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.acct_process import (
    AcctClient,
    Record,
    aaa_process,
    acct_daemon,
    check_exactly_once,
    free_udp_port,
    journal_records,
    poll,
    populate,
    session_stream,
    stored_sessions,
)
from tests.daemon_process import Daemon
from tests.pg import Cluster, PostgresUnavailable

LOGINS = [f"cliente{n:02d}" for n in range(10)]
ADMIN_PASSWORD = "outage-admin-password"


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster for this module alone: its tests stop and start it."""
    base = Path(tempfile.mkdtemp(prefix="aaa-acct-outage-"))
    base.chmod(0o755)  # the cluster runs as `postgres`
    try:
        cluster = Cluster(base / "cluster")
        cluster.start()
    except PostgresUnavailable as exc:
        shutil.rmtree(base, ignore_errors=True)
        if os.environ.get("AAA_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL required (AAA_REQUIRE_PG=1): {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def restart(cluster: Cluster) -> None:
    """`pg_ctl start` again on the same data directory, with Cluster.start's options."""
    options = (f"-p {cluster.port} -k {cluster.base} -c listen_addresses=127.0.0.1 "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
               "-c max_connections=200")
    result = cluster._run(str(cluster.bindir / "pg_ctl"), "-D", str(cluster.datadir), "-o", options,
                          "-l", str(cluster.base / "log"), "-w", "-t", "60", "start", timeout=90)
    assert result.returncode == 0, result.stderr
    cluster.wait_ready()


def ensure_running(cluster: Cluster) -> None:
    """Leave the module's cluster up for the next test even if this one failed midway."""
    if cluster._run(str(cluster.bindir / "pg_isready"), "-h", "127.0.0.1", "-p",
                    str(cluster.port)).returncode != 0:
        restart(cluster)


def new_database(cluster: Cluster, name: str, cwd: Path) -> str:
    """A database created and migrated by `aaa db init` (a process of its own), with the
    plan, NAS, customer and services set up through the CLI."""
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    url = cluster.url(name)
    result = aaa_process(url, cwd, "db", "init", env={"AAA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    assert result.returncode == 0, result.stderr
    populate(url, cwd, LOGINS)
    return url


class Stream:
    """A NAS-like client sending `records` in a thread of its own; `acked_at[i]` is the
    monotonic time record i was acknowledged (None: never)."""

    def __init__(self, port: int, records: list[Record], pace: float, retries: int,
                 deadline: float) -> None:
        self.records = records
        self.acked_at: list[float | None] = [None] * len(records)
        self.client = AcctClient(port, window=32, timeout=0.5, retries=retries, pace=pace)
        self.acked: list[bool] = []
        self.error: BaseException | None = None
        self._deadline = deadline
        self._thread = threading.Thread(target=self._run, name="acct-stream", daemon=True)

    def _on_ack(self, index: int) -> None:
        self.acked_at[index] = time.monotonic()

    def _run(self) -> None:
        try:
            self.acked = self.client.exchange([r.attrs for r in self.records], self._deadline,
                                              self._on_ack)
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            self.client.close()

    def start(self) -> Stream:
        self._thread.start()
        return self

    @property
    def count(self) -> int:
        return sum(1 for t in self.acked_at if t is not None)

    def wait_count(self, count: int, timeout: float) -> None:
        assert poll(lambda: self.count >= count, timeout, 0.02), \
            f"only {self.count} of {count} records acknowledged in {timeout}s"

    def join(self, timeout: float) -> list[bool]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not finish in time"
        if self.error is not None:
            raise self.error
        return self.acked

    def acked_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.acked_at if t is not None and start <= t <= end)

    def sessions_ending_between(self, start: float, end: float) -> int:
        """Sessions whose last acknowledged record was acknowledged in [start, end]: their
        final row depends on what was stored in that window alone."""
        last: dict[str, float] = {}
        for record, at in zip(self.records, self.acked_at, strict=True):
            if at is not None:
                last[record.session] = max(at, last.get(record.session, at))
        return sum(1 for at in last.values() if start <= at <= end)


def wait_drained(daemon: Daemon, timeout: float = 20.0) -> None:
    assert poll(lambda: journal_records(daemon) == 0, timeout, 0.1), \
        f"journal not drained in {timeout}s: {journal_records(daemon)} records"


def kill9(daemon: Daemon) -> None:
    """SIGKILL to the daemon's own pid (no graceful stop, no journal close)."""
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.process.wait(10)
    assert daemon.process.returncode == -signal.SIGKILL


# --- the database goes away -----------------------------------------------------------------------


def test_postgresql_outage_loses_nothing_counts_nothing_twice(own_cluster: Cluster,
                                                               tmp_path: Path) -> None:
    """1,500 records (300 staggered sessions: Start, 3 Interim-Updates with growing 64-bit
    counters, Stop) at about 100/s; after 300 are acknowledged the cluster is stopped (`pg_ctl -m
    fast`): records keep being acknowledged — from the journal, aaa_acct_journal_records
    > 0 — until it is started again; the journal then drains to 0 (replayed), and every
    acknowledged record is in the database exactly once: one row per session with the
    counters of its last acknowledged record, closed by its Stop. Many sessions begin and
    end during the outage, so a journaled record lost or replayed twice would show."""
    url = new_database(own_cluster, "acct_outage", tmp_path)
    records = session_stream(300, 3, LOGINS)
    data_dir = tmp_path / "data"
    try:
        port = free_udp_port()
        with acct_daemon(url, tmp_path, port=port, data_dir=data_dir) as daemon:
            stream = Stream(port, records, pace=0.01, retries=8, deadline=45).start()
            stream.wait_count(300, 15)
            own_cluster.stop("fast")
            down_at = time.monotonic()
            journaled = poll(lambda: journal_records(daemon), 10, 0.1)
            assert journaled > 0, "nothing went to the journal while the database was down"
            stream.wait_count(stream.count + 300, 15)
            assert journal_records(daemon) >= journaled
            up_at = time.monotonic()
            restart(own_cluster)
            acked = stream.join(30)
            wait_drained(daemon)
            # the outcome first; then that it came the way it should (journal, replay)
            assert all(acked), f"{acked.count(False)} records never acknowledged"
            rows = stored_sessions(url)
            check_exactly_once(rows, records, acked)
            assert len(rows) == 300
            assert stream.acked_between(down_at, up_at) >= 300
            assert stream.sessions_ending_between(down_at, up_at) >= 20
            assert daemon.sample("aaa_acct_replayed_total") >= journaled
            assert daemon.events("accounting_database_unavailable")
            assert daemon.events("accounting_replayed")
            assert sum(daemon.sample("aaa_acct_requests_total", nas="mk", status=s)
                       for s in ("start", "interim", "stop")) >= len(records)
        assert (data_dir / "journal" / "accounting-0.jnl").stat().st_size == 0
    finally:
        ensure_running(own_cluster)


def test_kill9_while_journaling_then_replay_at_restart(own_cluster: Cluster,
                                                        tmp_path: Path) -> None:
    """The database is down and the journal holds acknowledged records when the daemon
    is killed with SIGKILL; the database comes back and the daemon is started again on
    the same data directory: its start line counts the journal's records, it replays
    them, and with the NAS's retransmissions (same octets, same port) the stream finishes
    with every acknowledged record in the database exactly once."""
    url = new_database(own_cluster, "acct_kill_journal", tmp_path)
    records = session_stream(120, 2, LOGINS, prefix="k")
    data_dir, port = tmp_path / "data", free_udp_port()
    try:
        with acct_daemon(url, tmp_path, port=port, data_dir=data_dir) as daemon:
            stream = Stream(port, records, pace=0.01, retries=12, deadline=45).start()
            stream.wait_count(100, 15)
            own_cluster.stop("fast")
            down_at = time.monotonic()
            stream.wait_count(stream.count + 100, 15)
            assert journal_records(daemon) > 0
            kill9(daemon)
            killed_at = time.monotonic()
        restart(own_cluster)
        with acct_daemon(url, tmp_path, port=port, data_dir=data_dir) as daemon:
            [start] = daemon.events("start")
            assert int(start["journal_records"]) > 0
            acked = stream.join(40)
            wait_drained(daemon)
            assert all(acked), f"{acked.count(False)} records never acknowledged"
            rows = stored_sessions(url)
            check_exactly_once(rows, records, acked)
            assert len(rows) == 120
            assert stream.sessions_ending_between(down_at, killed_at) >= 10
            assert daemon.sample("aaa_acct_replayed_total") >= int(start["journal_records"])
    finally:
        ensure_running(own_cluster)


# --- the daemon dies ------------------------------------------------------------------------------


def test_kill9_mid_stream_loses_nothing_counts_nothing_twice(fresh_db_url: str,
                                                             tmp_path: Path) -> None:
    """`kill -9` of the daemon after 250 of 700 records (140 staggered sessions: Start, 3
    Interims, Stop) are acknowledged; it is started again on the same database, data directory and
    accounting port while the NAS keeps retransmitting; the stream finishes: every
    acknowledged record is present, none twice (one row per session, counters of the
    last acknowledged record, not a sum); SIGTERM then stops the restarted daemon
    gracefully (exit 0, `event=stop`)."""
    populate(fresh_db_url, tmp_path, LOGINS)
    records = session_stream(140, 3, LOGINS, prefix="c")
    data_dir, port = tmp_path / "data", free_udp_port()
    with acct_daemon(fresh_db_url, tmp_path, port=port, data_dir=data_dir) as daemon:
        stream = Stream(port, records, pace=0.005, retries=12, deadline=25).start()
        stream.wait_count(250, 10)
        kill9(daemon)
        killed_at = stream.count
    with acct_daemon(fresh_db_url, tmp_path, port=port, data_dir=data_dir) as daemon:
        [start] = daemon.events("start")
        assert int(start["open_sessions"]) > 0  # the index was rebuilt from the database
        acked = stream.join(25)
        assert daemon.stop() == 0, daemon.lines[-5:]  # SIGTERM: a graceful stop, exit 0
        assert daemon.events("stop")
    assert all(acked), f"{acked.count(False)} records never acknowledged"
    rows = stored_sessions(fresh_db_url)
    check_exactly_once(rows, records, acked)
    assert len(rows) == 140
    assert stream.count > killed_at
    assert stream.client.retransmitted > 0
