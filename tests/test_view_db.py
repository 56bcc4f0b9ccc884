"""Loading the view from a real database, refreshing it from the change feed, auth-log writes."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from aaa.daemon.authlog import AuthLogWriter
from aaa.daemon.metrics import Metrics
from aaa.db import authlog
from aaa.db.authlog import AuthRecord, RecordWriter
from aaa.db.engine import make_engine
from aaa.db.models import AuthLogEntry, Service
from aaa.db.views import load_view, refresh_view
from aaa.policy.view import SubscriberView
from management import network, services, variables
from management.context import Context, load_actor
from tests import factories
from tests.conftest import NOW, ZONE


def act(sessions: sessionmaker[Session], work: object) -> None:
    """Run `work(ctx)` in its own committed transaction, as the CLI does."""
    with sessions() as session, session.begin():
        work(Context(session, load_actor(session, "admin"), NOW, ZONE))  # type: ignore[operator]


def setup(ctx: Context) -> None:
    factories.plan(ctx, "FIBRA", pool="pool-fibra")
    network.create_nas(ctx, "mk1", "10.0.0.1", "segredo", "mikrotik")
    factories.service(ctx, "ana", plan_name="FIBRA")
    factories.service(ctx, "bia", plan_name="FIBRA")


def test_view_loads_everything(sessions: sessionmaker[Session]) -> None:
    """The view holds live services by login, plans, NAS by IP with their secret, variables."""
    act(sessions, setup)
    act(sessions, lambda ctx: variables.set_variable(ctx, "POOL_SUSPENSAO_TOTAL", "bloqueados"))
    with sessions() as session:
        view = load_view(session)
    assert set(view.services_by_login) == {"ana", "bia"}
    assert view.nas_by_ip["10.0.0.1"].secret == b"segredo"
    assert view.variables == {"POOL_SUSPENSAO_TOTAL": "bloqueados"}
    assert view.seq > 0


def test_full_load_and_refresh_read_timestamps_alike(sessions: sessionmaker[Session]) -> None:
    """The start-up load and the refresh build the same facts: custom-navigation and
    trust-unlock ends as UTC-aware instants, whatever zone they were set in."""
    act(sessions, setup)
    until = datetime(2027, 1, 2, 3, 4, 5, tzinfo=ZONE)
    trust = datetime(2026, 12, 24, 18, 0, tzinfo=ZONE)

    def change(ctx: Context) -> None:
        services.set_navigation(ctx, "ana", 500_000, 250_000, until)
        service = ctx.session.scalars(select(Service).where(Service.login == "ana")).one()
        service.trust_unlock_until = trust

    act(sessions, change)
    with sessions() as session, session.begin():
        loaded = load_view(session).services_by_login["ana"]
        refreshed = refresh_view(session, SubscriberView()).services_by_login["ana"]
    assert loaded.nav_until == until and loaded.nav_until.tzinfo is UTC
    assert loaded.trust_unlock_until == trust and loaded.trust_unlock_until.tzinfo is UTC
    assert loaded == refreshed


def test_refresh_applies_only_new_changes(sessions: sessionmaker[Session]) -> None:
    """A committed suspension reaches the view through the change feed; nothing else moves."""
    act(sessions, setup)
    with sessions() as session:
        view = load_view(session)
        assert refresh_view(session, view) is view  # nothing new
    act(sessions, lambda ctx: services.suspend(ctx, "ana", "debt"))
    act(sessions, lambda ctx: services.migrate(ctx, "bia", "FIBRA"))
    with sessions() as session:
        fresh = refresh_view(session, view)
    assert fresh.seq > view.seq
    assert fresh.services_by_login["ana"].status == "suspended_debt"
    assert fresh.services_by_login["bia"].status == "enabled"
    assert fresh.services_by_login["bia"].id != view.services_by_login["bia"].id
    assert view.services_by_login["ana"].status == "enabled"  # the old view is untouched


def test_authlog_writer_batches_and_learns_mac(engine: Engine, sessions: sessionmaker[Session]) -> None:
    """Buffered records are written by the thread; a learn request stores the MAC with history."""
    act(sessions, setup)
    act(sessions, lambda ctx: services.edit_service(ctx, "ana", mac_binding="learn"))
    with sessions() as session:
        ana_id = session.scalar(select(Service.id).where(Service.login == "ana"))
    writer = AuthLogWriter(engine, sessions, Metrics(), lambda: datetime.now(UTC), interval=0.05)
    writer.start()
    record = AuthRecord(NOW.timestamp(), "ana", ana_id, 1, "10.0.0.1", "accept", "ok\ttab\nline",
                        "aa:bb:cc:dd:ee:ff", False, None, True, None, "pool-fibra", 1, 2)
    for _ in range(50):
        writer.submit(record, "AA:BB:CC:DD:EE:FF")
    writer.stop()
    with sessions() as session:
        logged = authlog.query(session, login="ana")
        ana = session.get(Service, ana_id)
        assert ana is not None and ana.mac == "AA:BB:CC:DD:EE:FF"
    assert len(logged) == 50 and logged[0].pool == "pool-fibra" and logged[0].at == NOW
    assert logged[0].reason == "ok\ttab\nline" and logged[0].interface_differs is True
    assert logged[0].interface is None and logged[0].upload_kbps == 2


def test_authlog_writer_drops_when_full(sessions: sessionmaker[Session]) -> None:
    """A full queue drops (and counts) instead of blocking the hot path."""
    metrics = Metrics()
    writer = AuthLogWriter(make_engine("sqlite://"), sessions, metrics, lambda: datetime.now(UTC),
                           capacity=3)
    record = AuthRecord(0.0, "x", None, None, "10.0.0.1", "reject", "", None, False, None, False,
                        None, None, None, None)
    for _ in range(10):
        writer.submit(record, None)  # never started: nothing drains, the 4th record on is dropped
    assert metrics.registry.get_sample_value("aaa_authlog_dropped_total") == 7


def test_authlog_process_writes_and_learns(engine: Engine, sessions: sessionmaker[Session],
                                           fresh_db_url: str) -> None:
    """The process writer stores every submitted record — whole chunks sealed by `submit`
    and the leftover sealed by the sender — and learns the MAC, like the thread writer,
    and reports what it wrote back to the daemon's metrics."""
    from aaa.daemon.authlog_process import AuthLogProcess

    act(sessions, setup)
    act(sessions, lambda ctx: services.edit_service(ctx, "bia", mac_binding="learn"))
    with sessions() as session:
        bia_id = session.scalar(select(Service.id).where(Service.login == "bia"))
    metrics = Metrics()
    writer = AuthLogProcess(fresh_db_url, metrics, interval=0.05)
    writer.start()
    record = AuthRecord(NOW.timestamp(), "bia", bia_id, 1, "10.0.0.1", "accept", "ok", None, False,
                        "vlan9", False, None, "pool-fibra", 3, 4)
    for _ in range(600):  # two chunks of 256 and a leftover of 88
        writer.submit(record, "AA:BB:CC:00:00:01")
    writer.stop(timeout=30)
    with sessions() as session:
        assert len(authlog.query(session, login="bia", limit=1000)) == 600
        bia = session.get(Service, bia_id)
        assert bia is not None and bia.mac == "AA:BB:CC:00:00:01"
    assert metrics.registry.get_sample_value("aaa_authlog_written_total") == 600


def test_authlog_child_merges_what_waited_into_one_batch(engine: Engine, sessions: sessionmaker[Session],
                                                          fresh_db_url: str) -> None:
    """The writer process puts what arrived while it was busy into one batch (one COPY), up
    to `merged_rows`: six shipments of 10 rows already waiting are written as two batches
    of 30, every row once; of two MACs to learn for one service the first seen wins; the
    stop marker behind them ends it after they are written."""
    import multiprocessing
    import pickle

    from aaa.daemon.authlog_process import _STOP, _child

    act(sessions, setup)
    act(sessions, lambda ctx: services.edit_service(ctx, "bia", mac_binding="learn"))
    with sessions() as session:
        bia_id = session.scalar(select(Service.id).where(Service.login == "bia"))
    assert bia_id is not None
    parent, child = multiprocessing.Pipe()
    for n in range(6):
        rows = [tuple(AuthRecord(NOW.timestamp(), f"m{n}", None, 1, "10.0.0.1", "accept", "ok", None, False,
                                 None, False, None, None, None, None)) for _ in range(10)]
        learned = {bia_id: f"AA:BB:CC:00:00:0{n}"} if n in (0, 1) else {}
        parent.send_bytes(pickle.dumps(([pickle.dumps(rows)], learned)))
    parent.send_bytes(_STOP)
    _child(fresh_db_url, child, merged_rows=25)
    acks = []
    while parent.poll(0):
        acks.append(parent.recv())
    assert [(written, refused) for written, _seconds, refused in acks] == [(30, 0), (30, 0)]
    with sessions() as session:
        assert [len(authlog.query(session, login=f"m{n}")) for n in range(6)] == [10] * 6
        bia = session.get(Service, bia_id)
        assert bia is not None and bia.mac == "AA:BB:CC:00:00:00"


def test_authlog_process_ships_a_sealed_chunk_at_once(engine: Engine, sessions: sessionmaker[Session],
                                                      fresh_db_url: str) -> None:
    """A full chunk sealed by `submit` wakes the sender: its rows reach the database well
    before the sender's interval (here 30 s) would have come round — rows shipped as they
    come keep the writer's work smooth instead of a burst per interval."""
    from aaa.daemon.authlog_process import AuthLogProcess

    act(sessions, setup)
    metrics = Metrics()
    writer = AuthLogProcess(fresh_db_url, metrics, interval=30.0, chunk=256)
    writer.start()
    try:
        record = AuthRecord(NOW.timestamp(), "bia", None, 1, "10.0.0.1", "reject", "unknown", None,
                            False, None, False, None, None, None, None)
        time.sleep(0.5)  # the sender is asleep on its interval by now
        for _ in range(256):  # exactly one chunk
            writer.submit(record, None)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with sessions() as session:
                if len(authlog.query(session, login="bia", limit=1000)) == 256:
                    break
            time.sleep(0.05)
        with sessions() as session:
            assert len(authlog.query(session, login="bia", limit=1000)) == 256
    finally:
        writer.stop(timeout=30)


def test_authlog_rows_come_back_as_written(engine: Engine, sessions: sessionmaker[Session]) -> None:
    """Written (binary COPY on PostgreSQL) and read back: the instant `datetime.fromtimestamp`
    gives, to the microsecond with its rounding, across second boundaries; awkward text
    (tab, newline, backslash, quotes, accents, an emoji) as sent; NULLs as NULL; a
    Calling-Station-Id longer than the column's 64 characters cut to fit instead of
    failing the whole batch (and every later one with it)."""
    stamps = (1795460000.0, 1795460000.123456, 1795460000.9999996, 1795460001.5,
              1795460000.000001, 1795460059.999999, 1795460000.0000005)
    odd = 'tab\there\nnew "q" back\\slash São Paulo 😀'
    records = [AuthRecord(at, f"u{i}", None, None, "10.0.0.1", "reject", odd, "M" * 100 if i == 0 else None,
                          i % 2 == 0, odd if i == 1 else None, True, None, None, None, 2_147_483_647)
               for i, at in enumerate(stamps)]
    authlog.write_records(engine, records)
    with sessions() as session:
        rows = {row.login: row for row in authlog.query(session, limit=100)}
    assert len(rows) == len(stamps)
    for i, at in enumerate(stamps):
        row = rows[f"u{i}"]
        assert row.at == datetime.fromtimestamp(at, UTC), at
        assert row.reason == odd and row.service_id is None and row.upload_kbps == 2_147_483_647
        assert row.mac_differs is (i % 2 == 0) and row.interface_differs is True
    assert rows["u0"].mac == "M" * 64 and rows["u1"].mac is None and rows["u1"].interface == odd


def test_a_batch_the_database_refuses_is_dropped_once_not_retried_forever(
        engine: Engine, sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]) -> None:
    """A row the database refuses (no login: NOT NULL) fails its batch's write: the batch is
    counted as refused and logged, and `store` returns, so the writer moves on instead of
    retrying it forever with the log blocked behind it; a MAC a rule refuses is skipped
    and logged while the others in the batch are learned; storing again writes nothing
    twice."""
    from aaa.daemon.authlog import Batch

    act(sessions, setup)
    for login in ("ana", "bia"):
        act(sessions, lambda ctx, login=login: services.edit_service(ctx, login, mac_binding="learn"))
    with sessions() as session:
        ids = {login: service_id for login, service_id in session.execute(select(Service.login, Service.id))}
    good = AuthRecord(NOW.timestamp(), "bia", None, 1, "10.0.0.1", "reject", "unknown", None,
                      False, None, False, None, None, None, None)
    batch = Batch([good, good._replace(login=None)],
                  {ids["bia"]: "not-a-mac", ids["ana"]: "AA:BB:CC:00:00:07"})
    writer = RecordWriter(engine)
    batch.store(writer, sessions, NOW)
    assert batch.refused == 2 and batch.size == 2
    batch.store(writer, sessions, NOW)  # a retry after success: nothing again
    logged = capsys.readouterr().err
    assert "event=authlog_batch_refused" in logged and "rows=2" in logged
    assert "event=mac_not_learned" in logged and "rule=service.mac_invalid" in logged
    with sessions() as session:
        assert authlog.query(session, login="bia") == []
        assert session.get(Service, ids["ana"]).mac == "AA:BB:CC:00:00:07"  # type: ignore[union-attr]
        assert session.get(Service, ids["bia"]).mac is None  # type: ignore[union-attr]
    written = Batch([good], {})
    written.store(writer, sessions, NOW)
    written.store(writer, sessions, NOW)
    with sessions() as session:
        assert written.refused == 0 and len(authlog.query(session, login="bia")) == 1


def test_the_record_writer_keeps_one_connection_and_recovers_from_errors(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    """The writers' RecordWriter: batches after batches land whole; on PostgreSQL they go
    over one server session (no new connection per batch); a batch the database refuses
    raises and writes nothing, and the next one is written; so is the one after the
    writer's server session was killed (a database restart) — the failed write raises
    for the writer's retry. Its autocommit connection never reaches the pool: a
    transaction on the engine afterwards still rolls back."""
    def rows(login: str, count: int) -> list[AuthRecord]:
        return [AuthRecord(1795460000.0 + i, login, i, None, "10.0.0.1", "accept", "ok", None, False,
                           None, False, None, None, None, None) for i in range(count)]

    def stored(login: str) -> int:
        with sessions() as session:
            return len(authlog.query(session, login=login, limit=10_000))

    postgres = engine.dialect.name == "postgresql"

    def writer_sessions() -> set[int]:
        with engine.connect() as connection:
            return set(connection.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND query LIKE 'COPY auth_log%'")).scalars())

    writer = RecordWriter(engine)
    for n in range(3):
        writer.write(rows(f"w{n}", 300))
    assert [stored(f"w{n}") for n in range(3)] == [300, 300, 300]
    if postgres:
        assert len(writer_sessions()) == 1
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error type
        writer.write([*rows("bad", 5), rows("bad", 1)[0]._replace(login=None)])
    assert stored("bad") == 0
    writer.write(rows("after-refusal", 7))
    assert stored("after-refusal") == 7
    if postgres:
        (pid,) = writer_sessions()
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(Exception):  # noqa: B017
            writer.write(rows("lost", 3))
        writer.write(rows("after-restart", 4))
        assert stored("after-restart") == 4 and writer_sessions() != {pid}
    writer.close()
    for _ in range(3):  # whichever pooled connection each session gets
        with sessions() as session:
            session.add(AuthLogEntry(at=NOW, login="never", nas_ip="10.0.0.1", result="reject", reason="x"))
            session.flush()
            session.rollback()
    assert stored("never") == 0


def test_the_record_writer_replaces_a_connection_left_idle(engine: Engine,
                                                           sessions: sessionmaker[Session]) -> None:
    """A connection idle for longer than `max_idle` is replaced before the next batch: its
    server session killed meanwhile (a restart, an idle-session timeout) costs no failed
    write. Within `max_idle` the same session is used."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps no connection")
    now = [1000.0]
    writer = RecordWriter(engine, max_idle=60.0, clock=lambda: now[0])
    row = AuthRecord(1795460000.0, "idle", None, None, "10.0.0.1", "accept", "ok", None, False,
                     None, False, None, None, None, None)

    def writer_sessions() -> set[int]:
        with engine.connect() as connection:
            return set(connection.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND query LIKE 'COPY auth_log%'")).scalars())

    writer.write([row])
    (first,) = writer_sessions()
    now[0] += 59.0
    writer.write([row])
    assert writer_sessions() == {first}
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    now[0] += 61.0
    writer.write([row])  # no error: a fresh connection
    writer.close()
    with sessions() as session:
        assert len(authlog.query(session, login="idle")) == 3


def test_a_batch_longer_than_a_piece_is_written_whole(engine: Engine,
                                                      sessions: sessionmaker[Session]) -> None:
    """A batch is formatted for COPY 256 rows at a time (the interpreter lock is handed back
    between pieces): 257 and 600 rows arrive whole, in order, each row intact."""
    for count in (256, 257, 600):
        records = [AuthRecord(1795460000.0 + i, f"p{count}", i, None, "10.0.0.1", "accept", "ok", None, False,
                              None, False, None, "pool", i, None) for i in range(count)]
        authlog.write_records(engine, records)
        with sessions() as session:
            stored = authlog.query(session, login=f"p{count}", limit=1000)
        assert sorted(row.service_id for row in stored) == list(range(count))
        assert all(row.download_kbps == row.service_id and row.pool == "pool" for row in stored)
