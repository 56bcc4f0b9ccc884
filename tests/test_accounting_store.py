"""Accounting sessions in a real database: idempotent, order-proof upserts; NAS reboot;
stale sessions; connection alarms; the journal and the group committer's outage path."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from aaa.accounting.committer import GroupCommitter, Pending
from aaa.accounting.events import AcctEvent
from aaa.accounting.index import OpenSessionIndex
from aaa.accounting.journal import Journal
from aaa.daemon.metrics import Metrics
from aaa.db.accounting import SessionWriter, apply_events
from aaa.db.engine import make_engine, session_factory
from aaa.db.models import AcctSession
from management import connections, variables
from management.context import Context, load_actor
from management.errors import RuleViolation
from tests.conftest import NOW, ZONE

T0 = NOW - timedelta(hours=1)


def ev(kind: str, minute: int, uid: str = "u1", nas_id: int = 1, **kw: Any) -> AcctEvent:
    base: dict[str, Any] = {"unique_id": uid, "acct_session_id": f"sess-{uid}", "login": "ana",
                            "service_id": 7, "session_time": minute * 60}
    if kind in ("nas_on", "nas_off"):
        base = {}
    return AcctEvent(kind, T0 + timedelta(minutes=minute), nas_id, "10.0.0.1", **{**base, **kw})


def rows(sessions: sessionmaker[Session]) -> dict[str, AcctSession]:
    with sessions() as session:
        return {r.unique_id: r for r in session.scalars(select(AcctSession))}


def test_start_interim_stop_make_one_row(sessions: sessionmaker[Session]) -> None:
    """Start, Interim and Stop of a session end in one row with the Stop's totals and cause."""
    apply_events(sessions, [ev("start", 0, framed_ip="10.9.0.2", mac="AA:BB:CC:DD:EE:FF")])
    apply_events(sessions, [ev("interim", 5, input_octets=100, output_octets=1000)])
    apply_events(sessions, [ev("stop", 10, input_octets=(1 << 32) + 5, output_octets=2000,
                               terminate_cause="User-Request")])
    row = rows(sessions)["u1"]
    assert (row.framed_ip, row.mac, row.session_time) == ("10.9.0.2", "AA:BB:CC:DD:EE:FF", 600)
    assert (row.input_octets, row.output_octets, row.terminate_cause) == ((1 << 32) + 5, 2000,
                                                                          "User-Request")
    assert row.started_at == T0 and row.stopped_at == T0 + timedelta(minutes=10)


def test_duplicates_and_reordering_never_double_count(sessions: sessionmaker[Session]) -> None:
    """Replaying every event twice, in reverse order, gives the same row as in order."""
    stream = [ev("start", 0), ev("interim", 5, input_octets=100), ev("interim", 9, input_octets=900),
              ev("stop", 10, input_octets=1000, terminate_cause="Lost-Carrier")]
    apply_events(sessions, list(reversed(stream)) + stream)  # one batch: folded in memory
    apply_events(sessions, stream)  # and again through SQL
    row = rows(sessions)["u1"]
    assert (row.input_octets, row.session_time, row.terminate_cause) == (1000, 600, "Lost-Carrier")
    assert row.stopped_at == T0 + timedelta(minutes=10) and row.started_at == T0
    late_interim = ev("interim", 12, input_octets=50)
    apply_events(sessions, [late_interim])
    row = rows(sessions)["u1"]
    assert row.stopped_at is not None and row.input_octets == 1000  # not reopened, not lowered


def test_interim_without_start_creates_the_session(sessions: sessionmaker[Session]) -> None:
    """An Interim whose Start was lost creates the session, started session-time before."""
    apply_events(sessions, [ev("interim", 30, uid="u9")])
    row = rows(sessions)["u9"]
    assert row.started_at == T0 and row.stopped_at is None


def test_accounting_on_closes_only_that_nas_sessions(sessions: sessionmaker[Session]) -> None:
    """Accounting-On closes a NAS's open sessions (NAS-Reboot); other NAS are untouched."""
    apply_events(sessions, [ev("start", 0, uid=f"a{i}") for i in range(12)] +
                 [ev("start", 0, uid="other", nas_id=2)])
    apply_events(sessions, [ev("nas_on", 20), ev("start", 21, uid="after")])
    table = rows(sessions)
    assert all(table[f"a{i}"].terminate_cause == "NAS-Reboot" for i in range(12))
    assert table["other"].stopped_at is None and table["after"].stopped_at is None


def test_stale_sessions_and_alarms(sessions: sessionmaker[Session]) -> None:
    """Silent sessions are closed as Stale; services reconnecting too often raise one alarm."""
    from tests import factories

    with sessions() as session, session.begin():
        ctx = Context(session, load_actor(session, "admin"), NOW, ZONE)
        factories.plan(ctx)
        svc = factories.service(ctx, "ana")
        service_id = svc.id
    apply_events(sessions, [ev("start", 0, uid="old", service_id=service_id),
                            ev("start", 55, uid="new", service_id=service_id)]
                 + [ev("stop", 1, uid=f"s{i}", service_id=service_id) for i in range(3)])
    with sessions() as session, session.begin():
        ctx = Context(session, load_actor(session, "admin"), NOW, ZONE)
        assert connections.close_stale(ctx, interim_interval=300, intervals=3) == 1
        with pytest.raises(RuleViolation):
            connections.raise_alarms(ctx)
        for key, value in (("ALARME_QUANTIDADE_CONEXOES_LIMITE_PERIODO", "4"),
                           ("ALARME_QUANTIDADE_CONEXOES_PERIODO_DIAS", "1"),
                           ("ALARME_CONEXAO_DIAS_EXPIRACAO", "2")):
            variables.set_variable(ctx, key, value)
        raised = connections.raise_alarms(ctx)
        assert [(a.login, a.sessions) for a in raised] == [("ana", 5)]
        assert connections.raise_alarms(ctx) == []  # one in force already
    table = rows(sessions)
    assert table["old"].terminate_cause == "Stale" and table["new"].stopped_at is None


def test_journal_cuts_torn_tail_and_reads_in_chunks(tmp_path: Path) -> None:
    """A crash mid-append leaves a torn line: it is cut on open; chunks come back in order."""
    path = tmp_path / "acct.jnl"
    journal = Journal(path, 10_000_000)
    journal.append([ev("start", i, uid=f"u{i}") for i in range(5)])
    journal.close()
    with open(path, "ab") as handle:
        handle.write(json.dumps(ev("start", 9).to_json()).encode()[:30])  # torn, never acked
    reopened = Journal(path, 10_000_000)
    assert reopened.records == 5
    chunks = list(reopened.chunks(2))
    assert [len(c) for c in chunks] == [2, 2, 1] and chunks[0][0] == ev("start", 0, uid="u0")


def test_committer_journals_during_outage_and_replays(tmp_path: Path,
                                                      sessions: sessionmaker[Session]) -> None:
    """With the database unreachable, groups are fsync'd to the journal and acknowledged;
    once it is back, the journal is replayed exactly once and emptied."""
    done: list[tuple[int, bool]] = []
    dead = session_factory(create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none",
                                         connect_args={"connect_timeout": 1}))
    journal = Journal(tmp_path / "acct.jnl", 10_000_000)
    committer = GroupCommitter(dead, journal, Metrics(), lambda g, ok: done.append((len(g), ok)))
    committer._commit([Pending(ev("start", 0, uid="x"), None), Pending(ev("interim", 5, uid="x",
                                                                             input_octets=7), None)])
    assert done == [(2, True)] and journal.records == 2
    committer._commit([Pending(ev("stop", 9, uid="x", input_octets=9), None)])  # journal first
    assert journal.records == 3
    assert committer.replay() is False  # still down
    committer._sessions = sessions  # the database is back
    assert committer.replay() is True and journal.records == 0
    assert committer.replay() is True  # nothing left: replaying again changes nothing
    row = rows(sessions)["x"]
    assert row.input_octets == 9 and row.stopped_at is not None


def test_committer_refuses_when_journal_full(tmp_path: Path) -> None:
    """When the journal's budget is spent the group is reported not durable (no answer)."""
    done: list[bool] = []
    dead = session_factory(create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none",
                                         connect_args={"connect_timeout": 1}))
    committer = GroupCommitter(dead, Journal(tmp_path / "j", 500), Metrics(),
                               lambda g, ok: done.append(ok))
    committer._commit([Pending(ev("start", 0, uid=f"u{i}"), None) for i in range(10)])
    assert done == [False]


def test_open_session_index() -> None:
    """Starts open, Stops close, a late Interim does not reopen, Accounting-On clears a NAS."""
    index = OpenSessionIndex()
    index.apply(ev("start", 0, uid="a"))
    index.apply(ev("start", 0, uid="b"))
    index.apply(ev("start", 0, uid="c", nas_id=2))
    assert index.count(7) == 3
    index.apply(ev("stop", 1, uid="a"))
    index.apply(ev("interim", 2, uid="a"))
    assert index.count(7) == 2
    index.apply(ev("nas_on", 3))
    assert index.count(7) == 1 and index.of_service(7) == frozenset({"c"})


def test_index_changes_are_computed_apart_and_applied_alone() -> None:
    """The diff against the database's open sessions leaves the index untouched until it
    is applied; applying it closes what the database closed, opens what another worker
    opened (with its service and NAS), and never reopens a session seen stopping."""
    index = OpenSessionIndex()
    index.apply(ev("start", 0, uid="kept"))
    index.apply(ev("start", 0, uid="closed-elsewhere"))
    index.apply(ev("start", 0, uid="late"))
    index.apply(ev("stop", 1, uid="late"))  # stopped here; the database has not caught up
    database = [("kept", 7, 1), ("other-worker", 8, 2), ("late", 7, 1)]
    changes = index.changes(database)
    assert changes.closed == frozenset({"closed-elsewhere"})
    assert changes.opened == {"other-worker": (8, 2), "late": (7, 1)}
    assert index.of_service(7) == frozenset({"kept", "closed-elsewhere"})  # untouched so far
    index.apply_changes(changes)
    assert index.of_service(7) == frozenset({"kept"})
    assert index.of_service(8) == frozenset({"other-worker"}) and len(index) == 2
    # Nothing left to do but the stopped session the database still shows (refused again).
    assert index.changes(database) == (frozenset(), {"late": (7, 1)})


def test_index_changes_of_a_large_index_are_few() -> None:
    """With 100,000 sessions open and one change, the reactor is handed that one change."""
    index = OpenSessionIndex()
    rows = [(f"s{i}", i, 1) for i in range(100_000)]
    index.load(rows)
    changes = index.changes(rows[1:])
    assert changes.closed == frozenset({"s0"}) and changes.opened == {}
    index.apply_changes(changes)
    assert len(index) == 99_999 and index.count(0) == 0


def test_writer_stores_awkward_text_and_nulls_exactly(engine: Engine,
                                                      sessions: sessionmaker[Session]) -> None:
    """The committer's writer (PostgreSQL: one array literal per column) stores text with
    quotes, backslashes, braces, commas, the word NULL, accents and empty strings as is,
    and a missing service as NULL, next to plain rows of the same group."""
    awkward = ['with "quotes"', "back\\slash", "{braces}, commas", "NULL", "ação ✓", ""]
    writer = SessionWriter(engine)
    try:
        writer.write([ev("start", 0, uid=f"w{i}", acct_session_id=value, nas_port_id=value,
                         mac=None if i % 2 else value, service_id=None if i == 1 else 7)
                      for i, value in enumerate(awkward)] + [ev("start", 0, uid="plain")])
    finally:
        writer.close()
    stored = rows(sessions)
    for i, value in enumerate(awkward):
        row = stored[f"w{i}"]
        assert (row.acct_session_id, row.nas_port_id) == (value, value)
        assert row.mac == (None if i % 2 else value)
        assert row.service_id == (None if i == 1 else 7)
    assert stored["plain"].acct_session_id == "sess-plain" and stored["plain"].nas_port_id is None


def test_writer_reconnects_after_losing_its_connection(engine: Engine,
                                                       sessions: sessionmaker[Session]) -> None:
    """A writer whose connection died raises for that group (the committer journals it);
    the next group opens and prepares a new connection and is stored."""
    writer = SessionWriter(engine)
    try:
        writer.write([ev("start", 0, uid="r1")])
        if engine.dialect.name == "postgresql":
            with engine.connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE pid <> pg_backend_pid() AND datname = current_database()"))
                admin.commit()
        else:
            writer._connection.driver_connection.close()  # SQLite: the same failure, by hand
        with pytest.raises(Exception):  # noqa: B017 - whichever DBAPI error the driver raises
            writer.write([ev("interim", 5, uid="r1", input_octets=5)])
        writer.write([ev("interim", 6, uid="r1", input_octets=6)])
    finally:
        writer.close()
    assert rows(sessions)["r1"].input_octets == 6


def test_closed_writer_leaves_no_autocommit_connection_in_the_pool(engine: Engine) -> None:
    """The writer's connection runs in autocommit with the upsert prepared: it is closed,
    never handed back to the pool, so a later transaction on the engine still rolls back."""
    writer = SessionWriter(engine)
    writer.write([ev("start", 0, uid="p1")])
    writer.close()
    for _ in range(3):  # whichever pooled connection comes back
        with engine.connect() as connection:
            connection.execute(text("DELETE FROM acct_sessions"))
            connection.rollback()
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM acct_sessions")) == 1


def test_interims_are_hot_updates_on_postgresql(engine: Engine) -> None:
    """PostgreSQL updates an Interim's row in place (HOT: no index entries), also when the
    Interim moves started_at earlier: no index covers a column an Interim changes, and
    the table keeps room on its pages (migration 0010). The first round after the Starts
    may still move rows to other pages; from then on every Interim is HOT (in groups of
    the committer's size: one statement updating a whole page's rows needs twice its room)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("HOT updates are PostgreSQL's")
    query = text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                 "WHERE relname = 'acct_sessions'")

    def counters(expected_updates: int) -> tuple[int, int]:
        deadline = time.monotonic() + 10  # a backend reports its statistics within a second or so
        with engine.connect() as connection:
            while True:
                connection.execute(text("SELECT pg_stat_clear_snapshot()"))
                updated, hot = connection.execute(query).one()
                if updated >= expected_updates or time.monotonic() > deadline:
                    return int(updated), int(hot)
                time.sleep(0.1)

    def interims(minute: int) -> None:  # session_time grows faster than the clock: started_at moves
        writer = SessionWriter(engine)
        try:
            for first in range(0, 200, 10):  # groups of 10, as the committer's under load
                writer.write([ev("interim", minute, uid=f"h{i}", session_time=3600 * minute,
                                 input_octets=minute) for i in range(first, first + 10)])
        finally:
            writer.close()  # its backend reports its statistics as it exits

    writer = SessionWriter(engine)
    writer.write([ev("start", 10, uid=f"h{i}") for i in range(200)])
    writer.close()
    interims(11)
    updated, hot = counters(200)
    for minute in (12, 13, 14):
        interims(minute)
    assert counters(updated + 600) == (updated + 600, hot + 600)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM acct_sessions WHERE started_at = "
                                      "(SELECT min(started_at) FROM acct_sessions)")) == 200


def test_committer_queue_is_bounded_and_keeps_arrival_order(tmp_path: Path,
                                                            sessions: sessionmaker[Session]) -> None:
    """submit() refuses past the queue's capacity (the handler then drops: the NAS retries);
    what was accepted is stored and reported durable exactly once, in arrival order,
    including records submitted while the committer sleeps on an empty queue."""
    done: list[tuple[str, bool]] = []
    committer = GroupCommitter(sessions, Journal(tmp_path / "j", 10_000_000), Metrics(),
                               lambda g, ok: done.extend((p.token, ok) for p in g), capacity=3)
    accepted = [committer.submit(Pending(ev("start", 0, uid=f"q{i}"), f"q{i}")) for i in range(5)]
    assert accepted == [True, True, True, False, False]
    committer.start()
    try:
        deadline = time.monotonic() + 10
        while len(done) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # asleep on the empty queue by now: a new record must wake it
        assert committer.submit(Pending(ev("interim", 1, uid="q0", input_octets=5), "late"))
        while len(done) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        committer.stop()
    assert done == [("q0", True), ("q1", True), ("q2", True), ("late", True)]
    assert rows(sessions)["q0"].input_octets == 5 and "q3" not in rows(sessions)


def test_commit_interval_gathers_a_burst_and_stores_a_lone_record_at_once(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """With a commit interval, records arriving while one group was just taken wait for the
    interval and go together in the next group; a record after a quiet spell longer than
    the interval is stored at once (it waits for nothing)."""
    groups: list[tuple[list[object], float]] = []
    committer = GroupCommitter(sessions, Journal(tmp_path / "j", 10_000_000), Metrics(),
                               lambda g, ok: groups.append(([p.token for p in g], time.monotonic())),
                               commit_interval=0.5)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(groups) < count and time.monotonic() < deadline:
            time.sleep(0.005)

    committer.start()
    try:
        time.sleep(0.6)  # a quiet spell longer than the interval
        submitted = time.monotonic()
        committer.submit(Pending(ev("start", 0, uid="lone"), "lone"))
        wait_for(1)
        for n in range(3):  # within the interval of the group just taken
            committer.submit(Pending(ev("start", 0, uid=f"b{n}"), f"b{n}"))
            time.sleep(0.02)
        wait_for(2)
    finally:
        committer.stop()
    assert [tokens for tokens, _ in groups] == [["lone"], ["b0", "b1", "b2"]]
    assert groups[0][1] - submitted < 0.4  # not held for the interval
    assert groups[1][1] - submitted >= 0.5  # the burst waited for the interval
    assert set(rows(sessions)) == {"lone", "b0", "b1", "b2"}


def test_index_reload_reads_open_sessions_on_the_writer_connection(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """The committer's index reload (on its own kept connection, without the ORM) hands
    over exactly the open sessions, with service and NAS; a session closed elsewhere (here
    stale) is gone from the next reload."""
    handed: list[list[tuple[str, int | None, int | None]]] = []
    committer = GroupCommitter(sessions, Journal(tmp_path / "j", 10_000_000), Metrics(),
                               lambda g, ok: None, open_sessions=handed.append)
    committer._commit([Pending(ev("start", 0, uid="a"), None), Pending(ev("start", 0, uid="b",
                                                                          nas_id=2), None),
                       Pending(ev("start", 0, uid="c", service_id=None), None),
                       Pending(ev("stop", 1, uid="c"), None)])
    committer.reload_index()
    with sessions() as session, session.begin():
        session.execute(update(AcctSession).where(AcctSession.unique_id == "a")
                        .values(stopped_at=T0, terminate_cause="Stale"))
    committer.reload_index()
    assert committer._writer is not None  # the path under test: the writer's connection
    committer._writer.close()
    assert sorted(handed[0]) == [("a", 7, 1), ("b", 7, 2)]
    assert handed[1] == [("b", 7, 2)]


def test_index_reload_reads_every_slice_of_a_large_set_of_open_sessions(
        tmp_path: Path, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    """The reload fetches open sessions in slices (so the interpreter lock is let go
    between them): with 2,503 open sessions and slices of 500, all 2,503 arrive, once each."""
    from aaa.db import accounting

    monkeypatch.setattr(accounting, "_FETCH_SLICE", 500)
    handed: list[list[tuple[str, int | None, int | None]]] = []
    committer = GroupCommitter(sessions, Journal(tmp_path / "j", 10_000_000), Metrics(),
                               lambda g, ok: None, open_sessions=handed.append)
    committer._commit([Pending(ev("start", 0, uid=f"s{n}", service_id=n), None) for n in range(2_503)])
    committer.reload_index()
    assert committer._writer is not None
    committer._writer.close()
    assert sorted(handed[0]) == sorted((f"s{n}", n, 1) for n in range(2_503))


def test_journal_is_held_by_one_owner_at_a_time(tmp_path: Path) -> None:
    """A second opening of a journal while it is held is refused, naming the holder's pid
    (nothing read, nothing cut); once the holder closes it, it opens again."""
    import os

    from aaa.accounting.journal import JournalInUse

    path = tmp_path / "acct.jnl"
    holder = Journal(path, 10_000_000)
    holder.append([ev("start", 0)])
    with pytest.raises(JournalInUse) as refused:
        Journal(path, 10_000_000)
    assert refused.value.holder == str(os.getpid())
    assert holder.records == 1 and path.read_bytes().endswith(b"\n")
    holder.close()
    assert Journal(path, 10_000_000).records == 1


def test_a_full_disk_leaves_the_journal_whole_and_the_committer_alive(tmp_path: Path) -> None:
    """The database away and the disk full mid-write: that group is not durable (no answer,
    the NAS retries), the half-written line is cut back, and once space returns the next
    group is journaled behind intact lines, every one of them readable for the replay."""
    import errno

    done: list[tuple[int, bool]] = []
    dead = session_factory(create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none",
                                         connect_args={"connect_timeout": 1}))
    journal = Journal(tmp_path / "acct.jnl", 10_000_000)
    committer = GroupCommitter(dead, journal, Metrics(), lambda g, ok: done.append((len(g), ok)))
    committer._commit([Pending(ev("start", 0, uid="a"), None)])

    class FullDisk:
        def __init__(self, real: Any) -> None:
            self.real = real

        def write(self, data: bytes) -> int:
            self.real.write(data[:10])  # a torn write reaches the disk
            self.real.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    real = journal._file
    journal._file = FullDisk(real)  # type: ignore[assignment]
    committer._commit([Pending(ev("start", 1, uid="b"), None), Pending(ev("start", 1, uid="c"), None)])
    assert done == [(1, True), (2, False)] and journal.records == 1
    journal._file = real  # space again
    committer._commit([Pending(ev("start", 2, uid="d"), None)])
    assert done[-1] == (1, True) and journal.records == 2
    assert [e.unique_id for chunk in journal.chunks(10) for e in chunk] == ["a", "d"]


def test_an_unreadable_journal_line_is_set_aside_not_blocking_the_replay(
        tmp_path: Path, sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]) -> None:
    """A line this version cannot read (another version's fields, damage) goes to
    `<journal>.rejected` once, however often the replay reads it, is logged, and the
    records around it are replayed and the journal emptied."""
    path = tmp_path / "acct.jnl"
    journal = Journal(path, 10_000_000)
    journal.append([ev("start", 0, uid="a")])
    with open(path, "ab") as handle:
        handle.write(b'{"kind": "start", "field_of_another_version": 1}\n')
    journal.close()
    journal = Journal(path, 10_000_000)
    journal.append([ev("start", 1, uid="b")])
    assert [e.unique_id for chunk in journal.chunks(10) for e in chunk] == ["a", "b"]
    committer = GroupCommitter(sessions, journal, Metrics(), lambda g, ok: None)
    assert committer.replay() is True and journal.records == 0
    assert set(rows(sessions)) == {"a", "b"}
    rejected = (tmp_path / "acct.jnl.rejected").read_bytes()
    assert rejected == b'{"kind": "start", "field_of_another_version": 1}\n'
    assert journal.rejected == 1
    assert capsys.readouterr().err.count("event=accounting_journal_line_rejected") == 1


def test_a_forgotten_lock_sends_accounting_to_the_journal_not_into_a_wait(
        fresh_db_url: str, tmp_path: Path) -> None:
    """PostgreSQL: another connection holds a session's row in an open transaction. With a
    statement timeout (the daemon's is 10 s; 1 s here) the committer's write gives up, the
    group goes to the journal and is acknowledged; once the lock is released the replay
    stores it."""
    if not fresh_db_url.startswith("postgresql"):
        pytest.skip("statement_timeout is PostgreSQL's (SQLite waits busy_timeout, then fails)")
    bounded = make_engine(fresh_db_url, statement_timeout=1.0)
    other = make_engine(fresh_db_url)
    try:
        sessions = session_factory(bounded)
        apply_events(sessions, [ev("start", 0, uid="x")])
        done: list[tuple[int, bool]] = []
        committer = GroupCommitter(sessions, Journal(tmp_path / "j", 10_000_000), Metrics(),
                                   lambda g, ok: done.append((len(g), ok)))
        with other.connect() as holder:
            holder.execute(update(AcctSession).where(AcctSession.unique_id == "x")
                           .values(terminate_cause="held"))  # a transaction left open
            writing = threading.Thread(target=committer._commit, daemon=True,
                                       args=([Pending(ev("interim", 5, uid="x", input_octets=5), None)],))
            writing.start()
            writing.join(10)  # without the timeout it would wait for the lock as long as it is held
            stuck = writing.is_alive()
            holder.rollback()
            writing.join(10)
            assert not stuck, "the write waited on the lock instead of timing out"
            assert done == [(1, True)] and committer.journal.records == 1
        assert committer.replay() is True
        assert rows(sessions)["x"].input_octets == 5
        if committer._writer is not None:
            committer._writer.close()
    finally:
        bounded.dispose()
        other.dispose()


def test_a_stuck_database_sends_accounting_to_the_journal(fresh_db_url: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """PostgreSQL behind a proxy that stops forwarding without closing (the host's kernel
    answers, its server does not): neither keepalives nor statement_timeout can end the
    wait, so the committer cuts its own connection after `stall_after` (1 s here, 15 s in
    the daemon) and journals the group, acknowledged; once the database answers again the
    replay stores it."""
    from sqlalchemy.engine import make_url

    from tests.tcp_proxy import FreezableProxy

    if not fresh_db_url.startswith("postgresql"):
        pytest.skip("the committer's own connection watch is for PostgreSQL's socket")
    url = make_url(fresh_db_url)
    with FreezableProxy(int(url.port or 5432), url.host or "127.0.0.1") as proxy:
        engine = make_engine(url.set(port=proxy.port).render_as_string(hide_password=False))
        try:
            sessions = session_factory(engine)
            done: list[tuple[int, bool]] = []
            committer = GroupCommitter(sessions, Journal(tmp_path / "j", 10_000_000), Metrics(),
                                       lambda g, ok: done.append((len(g), ok)), stall_after=1.0)
            committer._commit([Pending(ev("start", 0, uid="x"), None)])
            assert done == [(1, True)] and committer.journal.records == 0  # stored
            proxy.freeze()
            writing = threading.Thread(target=committer._commit, daemon=True,
                                       args=([Pending(ev("interim", 5, uid="x", input_octets=5), None)],))
            writing.start()
            writing.join(15)
            assert not writing.is_alive(), "the committer waited on the stuck database"
            assert done[-1] == (1, True) and committer.journal.records == 1
            assert "event=database_stalled" in capsys.readouterr().err
            proxy.thaw()
            assert committer.replay() is True
            assert rows(sessions)["x"].input_octets == 5
            assert committer._writer is not None
            committer._writer.close()
        finally:
            engine.dispose()


def test_a_long_calling_station_id_is_cut_not_refused(sessions: sessionmaker[Session]) -> None:
    """A Calling-Station-Id that is no MAC and longer than acct_sessions.mac (a circuit
    description of 200 characters) is stored cut to the column's 64: were it refused, the
    whole group would go to the journal and every replay would fail on it, keeping all
    accounting out of the database."""
    from aaa.accounting.events import MAC_LENGTH, event_from_packet
    from aaa.policy.view import NasFacts
    from aaa.radius import PacketCode, build_request, decode, encode_attributes, load_dictionary

    dictionary = load_dictionary()
    circuit = "circuit-" + "x" * 192
    data = build_request(PacketCode.ACCOUNTING_REQUEST, 1, encode_attributes(dictionary, [
        ("User-Name", "ana"), ("Acct-Status-Type", "Start"), ("Acct-Session-Id", "long-1"),
        ("Calling-Station-Id", circuit)]), b"s")
    nas = NasFacts(1, "mk1", "10.0.0.1", "mikrotik", b"s")
    event = event_from_packet(decode(data, dictionary), nas, "10.0.0.1", NOW, 7, "ana")
    assert event.mac == circuit[:64] and AcctSession.__table__.c.mac.type.length == MAC_LENGTH
    apply_events(sessions, [event])
    assert [row.mac for row in rows(sessions).values()] == [circuit[:64]]


def test_a_record_the_database_refuses_is_set_aside_and_the_rest_stored(
        tmp_path: Path, sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]) -> None:
    """A record the database refuses for its content (no login: NOT NULL) is found by
    storing its group one record at a time and set aside in `<journal>.rejected`; the rest
    of the group is stored, the group answered, nothing journaled. The same in a replay: a
    journal holding such a record is emptied instead of failing for ever."""
    done: list[tuple[int, bool]] = []
    metrics = Metrics()
    journal = Journal(tmp_path / "acct.jnl", 10_000_000)
    committer = GroupCommitter(sessions, journal, metrics, lambda g, ok: done.append((len(g), ok)))
    poison = ev("start", 0, uid="bad", login=None)
    committer._commit([Pending(ev("start", 0, uid="a"), None), Pending(poison, None),
                       Pending(ev("stop", 3, uid="a", input_octets=5), None)])
    assert done == [(3, True)] and journal.records == 0
    assert set(rows(sessions)) == {"a"} and rows(sessions)["a"].stopped_at is not None
    rejected = (tmp_path / "acct.jnl.rejected").read_text().splitlines()
    assert [json.loads(line)["unique_id"] for line in rejected] == ["bad"]
    assert metrics.registry.get_sample_value("aaa_acct_refused_total") == 1
    assert "event=accounting_record_refused" in capsys.readouterr().err

    journal.append([ev("start", 0, uid="b"), poison, ev("interim", 2, uid="b", input_octets=9)])
    assert committer.replay() is True and journal.records == 0
    assert rows(sessions)["b"].input_octets == 9
    assert len((tmp_path / "acct.jnl.rejected").read_text().splitlines()) == 2


def test_refused_tells_a_refusal_from_an_outage() -> None:
    """DataError and IntegrityError (any driver's, wrapped or not) are refusals; a lost
    connection is not."""
    import sqlite3

    import psycopg2
    from sqlalchemy.exc import IntegrityError, OperationalError

    from aaa.db.engine import refused

    assert refused(psycopg2.errors.StringDataRightTruncation())
    assert refused(IntegrityError("INSERT", {}, sqlite3.IntegrityError("NOT NULL")))
    assert not refused(OperationalError("SELECT 1", {}, psycopg2.OperationalError("gone")))
    assert not refused(ConnectionResetError())
