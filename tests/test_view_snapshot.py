"""The view snapshot on disk (aaa.daemon.snapshot) and the refresher's catch-up from it.

Real files in tmp_path; the refresher tests run on the real databases (SQLite and
PostgreSQL) through `fresh_db_url`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from aaa.daemon import snapshot as snapshot_module
from aaa.daemon.metrics import Metrics
from aaa.daemon.refresher import ViewRefresher
from aaa.daemon.snapshot import SealingKey, SnapshotError, ViewSnapshot, load_snapshot
from aaa.db.models import ChangeFeedEntry, Service
from aaa.db.views import FeedDiverged, load_view, read_changes
from aaa.policy.view import NasFacts, PlanFacts, ServiceFacts, SubscriberView, ViewChanges, apply_changes
from management import services
from tests.test_view_db import act, setup

DATABASE = "postgresql+psycopg2://aaa:***@127.0.0.1:5432/aaa"
KEY = SealingKey(bytes(range(32)), "k1")


def service(n: int, status: str = "enabled", password: str = "senha") -> ServiceFacts:
    return ServiceFacts(n, f"cliente{n}", f"{password}{n}", status, 1, mac="02:00:00:00:00:01")


def base_view(count: int = 12) -> SubscriberView:
    return SubscriberView.build(
        [service(n) for n in range(1, count + 1)], [PlanFacts(1, "FIBRA", 100_000, 50_000, "fibra")],
        [NasFacts(1, "mk", "10.0.0.1", "mikrotik", b"segredo")], {"POOL_SUSPENSAO_TOTAL": "bloq"}, seq=40)


def changes(seq: int, *, services: Sequence[ServiceFacts] = (), removed: Iterable[int] = (),
            plans: list[PlanFacts] | None = None) -> ViewChanges:
    return ViewChanges(list(services), set(removed), plans, None, None, seq)


def test_base_and_appended_changes_load_back_as_the_view_they_led_to(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A base split over several frames plus two appended changes (a service changed, one
    removed, one added, plans replaced) loads back equal to the view the refresher built."""
    monkeypatch.setattr(snapshot_module, "_SLICE", 5)  # 12 services: three frames
    path = tmp_path / "view.snapshot"
    view = base_view()
    writer = ViewSnapshot(path, DATABASE)
    writer.write_base(view)
    first = changes(41, services=[service(3, "suspended_debt"), service(50)], removed={7})
    view = apply_changes(view, first)
    writer.append(first, view)
    second = changes(44, plans=[PlanFacts(1, "FIBRA", 200_000, 100_000, "fibra")])
    view = apply_changes(view, second)
    writer.append(second, view)
    writer.close()
    loaded = load_snapshot(path, DATABASE)
    assert loaded == view
    assert loaded.seq == 44 and 7 not in loaded.services_by_id
    assert loaded.services_by_login["cliente3"].status == "suspended_debt"
    assert loaded.plans[1].download_kbps == 200_000


def test_a_torn_last_frame_is_ignored(tmp_path: Path) -> None:
    """A crash in the middle of an append leaves a partial frame: the snapshot loads up to
    the last complete change."""
    path = tmp_path / "view.snapshot"
    view = base_view()
    writer = ViewSnapshot(path, DATABASE)
    writer.write_base(view)
    change = changes(41, services=[service(2, "cancelled")])
    writer.append(change, apply_changes(view, change))
    writer.append(changes(42, removed={1}), view)
    writer.close()
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    loaded = load_snapshot(path, DATABASE)
    assert loaded.seq == 41 and 1 in loaded.services_by_id
    assert loaded.services_by_id[2].status == "cancelled"


def test_an_incomplete_base_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A base cut short (its services do not all load) is no view: SnapshotError, not a
    view missing subscribers."""
    monkeypatch.setattr(snapshot_module, "_SLICE", 5)
    path = tmp_path / "view.snapshot"
    ViewSnapshot(path, DATABASE).write_base(base_view())
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 10])
    with pytest.raises(SnapshotError, match="base incomplete"):
        load_snapshot(path, DATABASE)


def test_a_snapshot_of_another_database_or_key_is_refused(tmp_path: Path) -> None:
    """The header names the database and the key: a snapshot taken elsewhere, or sealed with
    another key, or none at all, is a SnapshotError with a readable reason."""
    path = tmp_path / "view.snapshot"
    with pytest.raises(SnapshotError, match="no view snapshot"):
        load_snapshot(path, DATABASE)
    ViewSnapshot(path, DATABASE, KEY).write_base(base_view())
    with pytest.raises(SnapshotError, match="another database"):
        load_snapshot(path, DATABASE.replace("/aaa", "/other"), KEY)
    with pytest.raises(SnapshotError, match="another key"):
        load_snapshot(path, DATABASE, SealingKey(bytes(32), "k2"))
    with pytest.raises(SnapshotError, match="another key"):
        load_snapshot(path, DATABASE, None)
    path.write_bytes(b"something else")
    with pytest.raises(SnapshotError, match="not a view snapshot"):
        load_snapshot(path, DATABASE)


def test_sealed_snapshot_holds_no_clear_password_and_is_owner_only(tmp_path: Path) -> None:
    """With a key the frames are AES-GCM sealed: neither a subscriber password nor the NAS
    secret appears in the file; a flipped byte inside a frame is refused, not unpickled;
    the file is 0600 either way."""
    path = tmp_path / "view.snapshot"
    view = base_view()
    ViewSnapshot(path, DATABASE, KEY).write_base(view)
    data = path.read_bytes()
    assert b"senha1" not in data and b"segredo" not in data
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_snapshot(path, DATABASE, KEY) == view
    plain = tmp_path / "plain.snapshot"
    ViewSnapshot(plain, DATABASE).write_base(view)
    assert b"senha1" in plain.read_bytes()  # what the key protects against
    assert plain.stat().st_mode & 0o777 == 0o600


def test_changes_outgrowing_the_base_rewrite_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the appended changes weigh more than the base (and MIN_REWRITE_BYTES), the next
    append writes a new base of the current view instead: the file stays bounded."""
    monkeypatch.setattr(snapshot_module, "MIN_REWRITE_BYTES", 0)
    path = tmp_path / "view.snapshot"
    view = base_view(3)
    writer = ViewSnapshot(path, DATABASE)
    writer.write_base(view)
    sizes = []
    for seq in range(41, 61):
        change = changes(seq, services=[service(seq, password="x" * 100)])
        view = apply_changes(view, change)
        writer.append(change, view)
        sizes.append(path.stat().st_size)
    writer.close()
    assert any(later < earlier for earlier, later in pairwise(sizes)), sizes
    assert load_snapshot(path, DATABASE) == view


# --- the refresher catching up from a snapshot's view ---------------------------------------------


def refresher_from(engine: Engine, sessions: sessionmaker[Session], view: SubscriberView,
                   snapshot: ViewSnapshot | None) -> tuple[ViewRefresher, list[SubscriberView], Metrics]:
    published: list[SubscriberView] = []
    metrics = Metrics()
    metrics.view_from_snapshot.set(1)
    refresher = ViewRefresher(engine, sessions, lambda: published[-1] if published else view,
                              published.append, metrics, snapshot=snapshot, from_snapshot=True)
    return refresher, published, metrics


def test_view_from_snapshot_catches_up_from_the_change_feed(engine: Engine, sessions: sessionmaker[Session],
                                                            tmp_path: Path) -> None:
    """A view taken earlier (the snapshot's) is brought up to date by the feed rows after its
    seq — a suspension made meanwhile is in the published view — the snapshot gets that
    change appended, and the metric says the view is no longer the snapshot's."""
    act(sessions, setup)
    with sessions() as session:
        old = load_view(session)
    path = tmp_path / "view.snapshot"
    writer = ViewSnapshot(path, "db")
    writer.write_base(old)
    act(sessions, lambda ctx: services.suspend(ctx, "ana", "debt"))
    refresher, published, metrics = refresher_from(engine, sessions, old, writer)
    assert old.feed_mark[0] == old.seq
    assert refresher.refresh_once()
    assert published[-1].services_by_login["ana"].status == "suspended_debt"
    assert metrics.view_from_snapshot._value.get() == 0
    writer.close()
    assert load_snapshot(path, "db") == published[-1]


def test_view_from_snapshot_is_reloaded_whole_when_the_feed_no_longer_reaches_it(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    """When the feed rows up to the snapshot's seq are gone (pruned, or a database restored
    from an older backup) reading "after seq" could miss changes: the refresher loads the
    view whole instead."""
    act(sessions, setup)
    with sessions() as session:
        old = load_view(session)
    act(sessions, lambda ctx: services.suspend(ctx, "bia", "debt"))
    with sessions() as session, session.begin():
        session.execute(delete(ChangeFeedEntry))  # the feed pruned: nothing reaches old.seq
    with sessions() as session, pytest.raises(FeedDiverged):
        read_changes(session, old)
    stale = apply_changes(old, changes(old.seq, removed={old.services_by_login["ana"].id})
                          ._replace(feed_mark=old.feed_mark))
    refresher, published, _ = refresher_from(engine, sessions, stale, None)
    assert refresher.refresh_once()
    fresh = published[-1]
    assert set(fresh.services_by_login) == {"ana", "bia"}  # the whole view, not a delta
    assert fresh.services_by_login["bia"].status == "suspended_debt"


def test_a_snapshot_that_cannot_be_written_never_stops_the_refresh(
        engine: Engine, sessions: sessionmaker[Session], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The snapshot's directory unusable (here its parent is a file): each refresh still
    publishes its view; every failed write is counted, the failure logged once."""
    act(sessions, setup)
    with sessions() as session:
        view = load_view(session)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    published: list[SubscriberView] = []
    metrics = Metrics()
    refresher = ViewRefresher(engine, sessions, lambda: published[-1] if published else view,
                              published.append, metrics,
                              snapshot=ViewSnapshot(blocker / "view.snapshot", "db"))
    act(sessions, lambda ctx: services.suspend(ctx, "ana", "debt"))
    assert refresher.refresh_once()
    act(sessions, lambda ctx: services.suspend(ctx, "bia", "debt"))
    assert refresher.refresh_once()
    assert published[-1].services_by_login["bia"].status == "suspended_debt"
    assert metrics.view_snapshot_errors._value.get() == 2
    assert capsys.readouterr().err.count("event=view_snapshot_failed") == 1


def test_a_database_restored_from_an_older_backup_is_reloaded_whole(
        engine: Engine, sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]) -> None:
    """The view saw a suspension (feed row N); the database is then restored from a backup
    taken before it (the suspension gone, the feed's numbering back where it was) and a new
    change reuses number N. Reading "after N" would miss the new change and keep the lost
    one; the refresher sees that row N is not the one it applied and loads the view whole:
    the restored state and the new change, nothing else."""
    act(sessions, setup)
    with sessions() as session:
        backup = load_view(session)
    refresher, published, _ = refresher_from(engine, sessions, backup, None)
    refresher._from_snapshot = False
    act(sessions, lambda ctx: services.suspend(ctx, "ana", "debt"))
    assert refresher.refresh_once()
    assert published[-1].services_by_login["ana"].status == "suspended_debt"
    with sessions() as session, session.begin():  # the restore
        session.execute(update(Service).where(Service.login == "ana").values(status="enabled"))
        session.execute(delete(ChangeFeedEntry).where(ChangeFeedEntry.seq > backup.seq))
        if engine.dialect.name == "postgresql":
            session.execute(text("SELECT setval(pg_get_serial_sequence('change_feed', 'seq'), :seq)"),
                            {"seq": backup.seq})
    act(sessions, lambda ctx: services.suspend(ctx, "bia", "debt"))
    with sessions() as session:
        assert max(session.scalars(select(ChangeFeedEntry.seq))) == published[-1].seq  # number reused
    assert refresher.refresh_once()
    fresh = published[-1]
    assert fresh.services_by_login["ana"].status == "enabled"
    assert fresh.services_by_login["bia"].status == "suspended_debt"
    assert "event=view_reloaded" in capsys.readouterr().err


def test_a_snapshot_of_another_version_or_with_an_unreadable_frame_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After an upgrade that changed the view's facts the old snapshot is refused by its
    header; a frame intact on disk (CRC right) that this version cannot decode is a
    SnapshotError too, never a traceback at start."""
    import struct
    import zlib

    path = tmp_path / "view.snapshot"
    ViewSnapshot(path, DATABASE).write_base(base_view())
    monkeypatch.setattr(snapshot_module, "SCHEMA", "0" * 16)
    with pytest.raises(SnapshotError, match="another version"):
        load_snapshot(path, DATABASE)
    monkeypatch.undo()
    garbage = b"\x80\x05not a pickle"
    with path.open("ab") as f:
        f.write(struct.pack(">II", len(garbage), zlib.crc32(garbage)) + garbage)
    with pytest.raises(SnapshotError, match="cannot be read"):
        load_snapshot(path, DATABASE)
