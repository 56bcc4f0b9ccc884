"""Keeps the handler's view fresh from the change feed, in a thread of its own.

On PostgreSQL a LISTEN connection wakes it as soon as a change commits; everywhere it
also polls every `interval` seconds (the only mechanism on SQLite). A refresh that fails
(database away) keeps the old view — authentication goes on answering from memory — and
is retried on the next tick. Each change applied is also appended to the view snapshot
(`aaa.daemon.snapshot`) when there is one. Each refresh also checks that the feed row the
view was last brought to is still there, unchanged: when it is not (the database
restored from an older backup, the feed pruned past a view that came from the snapshot
after a long outage) the view is loaded whole instead of missing changes.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aaa.daemon.metrics import Metrics
from aaa.daemon.snapshot import ViewSnapshot
from aaa.db.views import catch_up
from aaa.log import Repeating, log_event
from aaa.policy.view import SubscriberView, ViewChanges
from management.audit import NOTIFY_CHANNEL


class ViewRefresher:
    def __init__(self, engine: Engine, sessions: sessionmaker[Session],
                 current: Callable[[], SubscriberView], publish: Callable[[SubscriberView], None],
                 metrics: Metrics, interval: float = 1.0,
                 open_password: Callable[[str], str] = lambda stored: stored,
                 snapshot: ViewSnapshot | None = None, from_snapshot: bool = False) -> None:
        self._engine = engine
        self._sessions = sessions
        self._current = current
        self._publish = publish  # hands the new view to the reactor thread
        self._metrics = metrics
        self._interval = interval
        self._open_password = open_password
        self._snapshot = snapshot
        self._from_snapshot = from_snapshot  # not yet checked against the database
        self._snapshot_failing = False
        self._refresh_failures = Repeating("view_refresh_failed")
        self._listen_failures = Repeating("view_listen_failed")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="view-refresher", daemon=True)
        self._listener: Any = None
        self._last_ok = time.monotonic()
        metrics.view_age.set_function(lambda: time.monotonic() - self._last_ok)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._close_listener()
        if self._snapshot is not None:
            self._snapshot.close()

    def refresh_once(self) -> bool:
        """Apply pending changes now; True when the view changed."""
        view = self._current()
        with self._sessions() as session, session.begin():
            fresh, changes, diverged = catch_up(session, view, self._open_password)
        self._last_ok = time.monotonic()
        if diverged:
            log_event("view_reloaded", reason="change feed diverged", seq_before=view.seq, seq=fresh.seq,
                      services=len(fresh.services_by_id))
        if self._from_snapshot:
            self._from_snapshot = False
            self._metrics.view_from_snapshot.set(0)
            log_event("view_caught_up", seq=fresh.seq, services=len(fresh.services_by_id),
                      reloaded=diverged)
        if fresh is view:
            return False
        self._save(changes, fresh)
        self._metrics.view_services.set(len(fresh.services_by_id))
        self._metrics.view_seq.set(fresh.seq)
        self._publish(fresh)
        return True

    def _save(self, changes: ViewChanges | None, fresh: SubscriberView) -> None:
        """Keep the snapshot in step; a failure (disk full) is counted, logged once, never raised."""
        if self._snapshot is None:
            return
        try:
            if changes is None:
                self._snapshot.write_base(fresh)
            else:
                self._snapshot.append(changes, fresh)
        except OSError as exc:
            self._metrics.view_snapshot_errors.inc()
            if not self._snapshot_failing:
                log_event("view_snapshot_failed", path=str(self._snapshot.path),
                          error=exc.strerror or type(exc).__name__)
            self._snapshot_failing = True
            self._snapshot.close()  # the next save starts a new base
        else:
            self._snapshot_failing = False

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.refresh_once()
            except Exception as exc:
                self._metrics.view_errors.inc()
                self._refresh_failures.failed(error=type(exc).__name__)
                self._close_listener()
            else:
                self._refresh_failures.succeeded()
            self._wait()

    def _wait(self) -> None:
        """Sleep until the interval passes or a NOTIFY arrives (PostgreSQL)."""
        if self._engine.dialect.name != "postgresql":
            self._stopping.wait(self._interval)
            return
        try:
            listener = self._listen()
            ready, _, _ = select.select([listener], [], [], self._interval)
            self._listen_failures.succeeded()
            if ready:
                listener.poll()
                listener.notifies.clear()
        except Exception as exc:
            self._listen_failures.failed(error=type(exc).__name__)
            self._close_listener()
            self._stopping.wait(self._interval)

    def _listen(self) -> Any:
        if self._listener is None:
            raw = self._engine.raw_connection()
            connection: Any = raw.driver_connection
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self._listener = connection
            self._raw = raw
        return self._listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._raw.invalidate()
            self._listener = None
