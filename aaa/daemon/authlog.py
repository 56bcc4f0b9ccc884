"""The auth-log writer: a bounded buffer drained in batches by one thread.

The hot path only calls `submit`: a length check and a deque append, no lock taken and
never blocking; when the buffer is full the record is dropped and counted. The thread
wakes every `interval`, writes what is there in one COPY/executemany, and applies the
MACs to learn through the management layer (history and change feed included); see
`Batch` for what is retried and what is dropped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aaa.daemon.metrics import Metrics
from aaa.db.authlog import AuthRecord, RecordWriter
from aaa.db.engine import error_detail, refused
from aaa.log import Repeating, log_event
from management.context import Actor, Context
from management.errors import RuleViolation
from management.services import learn_mac

RADIUS_ACTOR = Actor(operator_id=None, login="radius", is_admin=True, permissions=frozenset())


class AuthLogWriter:
    def __init__(self, engine: Engine, sessions: sessionmaker[Session], metrics: Metrics,
                 clock: Callable[[], datetime], capacity: int = 200_000, batch: int = 20_000,
                 interval: float = 0.25) -> None:
        self._writer = RecordWriter(engine)
        self._sessions = sessions
        self._metrics = metrics
        self._clock = clock  # aware datetime, for a learned MAC's history row
        self._records: deque[AuthRecord] = deque()
        self._learn: deque[tuple[int, str]] = deque()
        self._capacity = capacity
        self._batch = batch
        self._interval = interval
        self._stopping = threading.Event()
        self._failures = Repeating("authlog_write_failed")
        self._thread = threading.Thread(target=self._run, name="authlog-writer", daemon=True)
        metrics.authlog_depth.set_function(lambda: len(self._records))

    def submit(self, record: AuthRecord, learn_mac: str | None = None) -> None:
        if len(self._records) >= self._capacity:
            self._metrics.authlog_dropped.inc()
            return
        self._records.append(record)
        if learn_mac is not None and record.service_id is not None:
            self._learn.append((record.service_id, learn_mac))

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is buffered, then stop."""
        self._stopping.set()
        self._thread.join(timeout)

    def _take(self) -> list[AuthRecord]:
        records: list[AuthRecord] = []
        pop = self._records.popleft
        try:
            while len(records) < self._batch:
                records.append(pop())
        except IndexError:
            pass
        return records

    def _run(self) -> None:
        batch: Batch | None = None
        backoff = 0.5
        while True:
            if batch is None:
                records = self._take()
                if not records and not self._learn:
                    if self._stopping.is_set():
                        self._writer.close()
                        return
                    self._stopping.wait(self._interval)
                    continue
                batch = Batch(records, self._take_learned())
            started = time.perf_counter()
            try:
                batch.store(self._writer, self._sessions, self._clock())
            except Exception as exc:  # the database may be away: keep the batch, retry
                self._failures.failed(error=type(exc).__name__, rows=batch.size)
                if self._stopping.is_set():
                    self._writer.close()
                    return
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            self._failures.succeeded()
            if batch.size:
                self._metrics.authlog_write.observe(time.perf_counter() - started)
                self._metrics.authlog_written.inc(batch.size - batch.refused)
                self._metrics.authlog_refused.inc(batch.refused)
            batch = None
            backoff = 0.5

    def _take_learned(self) -> dict[int, str]:
        learned: dict[int, str] = {}
        while self._learn:
            service_id, mac = self._learn.popleft()
            learned.setdefault(service_id, mac)  # the first MAC seen wins
        return learned


# A row that cannot even be formatted (a number past its column's range, a wrong type):
# no retry would write it either.
_UNWRITABLE = (ValueError, TypeError, OverflowError)


class Batch:
    """One batch of the auth log: its rows and the MACs to learn, each stored once however
    often `store` is retried.

    `store` raises when trying again may help (the database away); what the database or a
    business rule refuses for its content is dropped, counted in `refused` and logged, so
    one bad row or MAC cannot block the log forever (nor be written twice by a retry).
    """

    def __init__(self, records: Sequence[AuthRecord | tuple[Any, ...]], learned: dict[int, str]) -> None:
        self.records = records
        self.learned = learned
        self.size = len(records)
        self.refused = 0  # rows the database refused

    def store(self, writer: RecordWriter, sessions: sessionmaker[Session], now: datetime) -> None:
        if self.records:
            try:
                writer.write(self.records)
            except Exception as exc:
                if not (refused(exc) or isinstance(exc, _UNWRITABLE)):
                    raise
                self.refused = self.size
                log_event("authlog_batch_refused", error=type(exc).__name__, rows=self.size,
                          detail=error_detail(exc))
            self.records = ()
        if self.learned:
            learn_macs(sessions, self.learned, now)
            self.learned = {}


def learn_macs(sessions: sessionmaker[Session], learned: dict[int, str], now: datetime) -> None:
    """The MACs to learn, through the management layer (history and change feed included),
    in one transaction; one a rule refuses is logged and skipped."""
    with sessions() as session, session.begin():
        ctx = Context(session=session, actor=RADIUS_ACTOR, now=now)
        for service_id, mac in learned.items():
            try:
                with session.begin_nested():
                    learn_mac(ctx, service_id, mac)
            except RuleViolation as exc:
                log_event("mac_not_learned", service_id=service_id, mac=mac[:64], rule=exc.rule)
