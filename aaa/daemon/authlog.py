"""The auth-log writer: a bounded queue drained in batches by one thread.

The hot path only calls `submit`, which never blocks: when the queue is full the row is
dropped and counted. Rows asking to learn a MAC are applied through the management
layer (history and change feed included) in the same pass.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from aaa.daemon.metrics import Metrics
from aaa.db import authlog
from aaa.log import log_event
from management.context import Actor, Context
from management.services import learn_mac

RADIUS_ACTOR = Actor(operator_id=None, login="radius", is_admin=True, permissions=frozenset())


class AuthLogWriter:
    def __init__(self, sessions: sessionmaker[Session], metrics: Metrics,
                 clock: Callable[[], Any], capacity: int = 100_000, batch: int = 2_000,
                 interval: float = 0.2) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._clock = clock  # () -> aware datetime, for the learned MAC's history row
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=capacity)
        self._batch = batch
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="authlog-writer", daemon=True)
        metrics.authlog_depth.set_function(self._queue.qsize)

    def submit(self, row: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self._metrics.authlog_dropped.inc()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._stopping.set()
        self._thread.join(timeout)

    def _take(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        try:
            rows.append(self._queue.get(timeout=self._interval))
        except queue.Empty:
            return rows
        while len(rows) < self._batch:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return rows

    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        backoff = 0.5
        while True:
            if not pending:
                pending = self._take()
                if not pending:
                    if self._stopping.is_set():
                        return
                    continue
            started = time.perf_counter()
            try:
                self._write(pending)
            except Exception as exc:  # the database may be away: keep the batch, retry
                log_event("authlog_write_failed", error=type(exc).__name__, rows=len(pending))
                if self._stopping.is_set():
                    return
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            self._metrics.authlog_write.observe(time.perf_counter() - started)
            self._metrics.authlog_written.inc(len(pending))
            pending = []
            backoff = 0.5

    def _write(self, rows: list[dict[str, Any]]) -> None:
        learned = [(r["service_id"], r["learn_mac"]) for r in rows if r.get("learn_mac")]
        records = [{k: v for k, v in r.items() if k != "learn_mac"} for r in rows]
        with self._sessions() as session, session.begin():
            authlog.write_batch(session, records)
        if learned:
            with self._sessions() as session, session.begin():
                ctx = Context(session=session, actor=RADIUS_ACTOR, now=self._clock())
                for service_id, mac in dict(learned).items():
                    learn_mac(ctx, service_id, mac)
