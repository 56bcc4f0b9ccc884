"""The auth-log writer in a process of its own.

Formatting and writing thousands of rows a second in a thread of the daemon makes the
reactor wait for the interpreter lock after every reply it sends (measured: a third of
the throughput). Here the daemon only appends to a deque (as with the thread writer);
a small sender thread pickles what accumulated every `interval` and pipes it to a child
process, which writes it with the same `store` and reports back what it wrote. When the
child falls behind (database away), the pipe fills, the sender waits, the deque fills,
and further records are dropped and counted — the reactor never blocks.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
from collections import deque
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from aaa.daemon.metrics import Metrics
from aaa.db.authlog import AuthRecord
from aaa.log import log_event

_STOP = b""


def _child(url: str, connection: Connection) -> None:
    """The writer process: batches in, (rows, seconds) out; retries while the database is away."""
    from aaa.daemon.authlog import store
    from aaa.db.engine import make_engine, session_factory

    engine = make_engine(url)
    sessions = session_factory(engine)
    while True:
        payload = connection.recv_bytes()
        if payload == _STOP:
            break
        rows, learned = pickle.loads(payload)
        records = [AuthRecord._make(row) for row in rows]
        backoff = 0.5
        while True:
            started = time.perf_counter()
            try:
                store(engine, sessions, records, learned, datetime.now(UTC))
                break
            except Exception as exc:  # keep the batch; the parent's buffer absorbs the wait
                log_event("authlog_write_failed", error=type(exc).__name__, rows=len(records))
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        connection.send((len(records), time.perf_counter() - started))
    engine.dispose()


class AuthLogProcess:
    """Same interface as `AuthLogWriter` (submit, start, stop); the writing happens elsewhere."""

    def __init__(self, url: str, metrics: Metrics, capacity: int = 200_000, batch: int = 20_000,
                 interval: float = 0.25) -> None:
        self._url = url
        self._metrics = metrics
        self._records: deque[AuthRecord] = deque()
        self._learn: deque[tuple[int, str]] = deque()
        self._capacity = capacity
        self._batch = batch
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="authlog-sender", daemon=True)
        self._process: Any = None
        self._connection: Connection | None = None
        metrics.authlog_depth.set_function(lambda: len(self._records))

    def submit(self, record: AuthRecord, learn_mac: str | None = None) -> None:
        if len(self._records) >= self._capacity:
            self._metrics.authlog_dropped.inc()
            return
        self._records.append(record)
        if learn_mac is not None and record.service_id is not None:
            self._learn.append((record.service_id, learn_mac))

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a running reactor
        parent, child = context.Pipe()
        self._process = context.Process(target=_child, args=(self._url, child),
                                        name="aaa-authlog", daemon=True)
        self._process.start()
        child.close()
        self._connection = parent

    def stop(self, timeout: float = 10.0) -> None:
        """Hand over what is buffered, let the child write it, then stop it."""
        self._stopping.set()
        self._thread.join(timeout)
        if self._connection is not None:
            try:
                self._connection.send_bytes(_STOP)
                self._drain_acks(block_until_eof=True, timeout=timeout)
            except (OSError, EOFError):
                pass
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.kill()

    def _take(self) -> tuple[list[tuple[Any, ...]], dict[int, str]]:
        rows: list[tuple[Any, ...]] = []
        pop = self._records.popleft
        try:
            while len(rows) < self._batch:
                rows.append(tuple(pop()))
        except IndexError:
            pass
        learned: dict[int, str] = {}
        while self._learn:
            service_id, mac = self._learn.popleft()
            learned.setdefault(service_id, mac)
        return rows, learned

    def _drain_acks(self, block_until_eof: bool = False, timeout: float = 0.0) -> None:
        connection = self._connection
        assert connection is not None
        deadline = time.monotonic() + timeout
        while True:
            wait = max(0.0, deadline - time.monotonic()) if block_until_eof else 0.0
            if not connection.poll(wait):
                return
            try:
                written, seconds = connection.recv()
            except EOFError:
                return
            self._metrics.authlog_written.inc(written)
            self._metrics.authlog_write.observe(seconds)

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            rows, learned = self._take()
            if rows or learned:
                try:
                    assert self._connection is not None
                    self._connection.send_bytes(pickle.dumps((rows, learned), pickle.HIGHEST_PROTOCOL))
                except (OSError, ValueError) as exc:  # the child died: start another
                    log_event("authlog_child_lost", error=type(exc).__name__, rows=len(rows))
                    self._spawn()
                    self._stopping.wait(1.0)
                    continue
            self._drain_acks()
            if stopping and not self._records:
                return
            if not rows:
                self._stopping.wait(self._interval)
