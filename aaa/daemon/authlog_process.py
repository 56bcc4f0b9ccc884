"""The auth-log writer in a process of its own.

Formatting and writing thousands of rows a second in a thread of the daemon makes the
answering thread wait for the interpreter lock after every reply it sends (measured: a
third of the throughput). Here the daemon appends each record to a deque and, every
`chunk` records, pickles a chunk itself (a fraction of a millisecond, on the thread that
answers, so no other thread competes for the interpreter lock with it); a small sender thread,
woken by each sealed chunk, only ships the bytes down a pipe (the write releases the
lock) and, every `interval`, seals what a quiet period left behind. Shipping chunk by
chunk keeps the child's and PostgreSQL's work smooth: shipped once per interval, 10,000
rows/s arrived as a burst of 2,500 every 250 ms, and the burst showed as latency spikes.
Chunks are small (64 rows: ~0.6 ms of PostgreSQL's work each, where the answers to the
requests that arrive meanwhile wait longer; p99 at 10,000/s 2.1 -> 1.6 ms against 256-row
chunks in alternated runs, window 16 unchanged): the child merges what waited for it, so
under load it writes fewer, longer COPYs on its own.
A child process writes the rows with the same `store` and reports back what it wrote.
When the child falls behind (database away), the pipe fills, the sender waits, the
buffer fills, and further records are dropped and counted — the answering never blocks.
"""

from __future__ import annotations

import contextlib
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
from aaa.log import Repeating, log_event

_STOP = b""


def _child(url: str, connection: Connection, merged_rows: int = 20_000) -> None:
    """The writer process: batches in, (rows written, seconds, rows refused) out; retries while
    the database is away.

    What arrived while the last batch was being written goes into the next one with the
    batch it follows (up to `merged_rows`): one COPY per chunk while the database keeps up,
    so its work comes in short pieces; fewer, longer COPYs when it falls behind, so the
    overhead per row shrinks as the load grows."""
    from aaa.daemon.authlog import Batch
    from aaa.db.authlog import RecordWriter
    from aaa.db.engine import make_engine, session_factory

    engine = make_engine(url)
    sessions = session_factory(engine)
    writer = RecordWriter(engine)
    failures = Repeating("authlog_write_failed")
    stopping = False
    while not stopping:
        rows: list[Any] = []  # AuthRecord order
        learned: dict[int, str] = {}
        while True:
            payload = connection.recv_bytes()
            if payload == _STOP:
                stopping = True
                break
            chunks, more = pickle.loads(payload)
            for chunk in chunks:
                rows.extend(pickle.loads(chunk))
            for service_id, mac in more.items():
                learned.setdefault(service_id, mac)  # the first MAC seen wins
            if len(rows) >= merged_rows or not connection.poll(0):
                break
        if not rows and not learned:
            continue
        batch = Batch(rows, learned)
        backoff = 0.5
        while True:
            started = time.perf_counter()
            try:
                batch.store(writer, sessions, datetime.now(UTC))
                break
            except Exception as exc:  # keep the batch; the parent's buffer absorbs the wait
                failures.failed(error=type(exc).__name__, rows=batch.size)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        failures.succeeded()
        connection.send((batch.size - batch.refused, time.perf_counter() - started, batch.refused))
    writer.close()
    engine.dispose()


class AuthLogProcess:
    """Same interface as `AuthLogWriter` (submit, start, stop); the writing happens elsewhere."""

    def __init__(self, url: str, metrics: Metrics, capacity: int = 200_000, batch: int = 20_000,
                 interval: float = 0.25, chunk: int = 64) -> None:
        self._url = url
        self._metrics = metrics
        self._records: deque[AuthRecord] = deque()
        self._sealed: deque[tuple[int, bytes]] = deque()  # (rows, pickled rows) ready to ship
        self._sealed_rows = 0
        self._lock = threading.Lock()
        self._learn: deque[tuple[int, str]] = deque()
        self._capacity = capacity
        self._batch = batch
        self._interval = interval
        self._chunk = chunk
        self._stopping = threading.Event()
        self._wake = threading.Event()  # a chunk was sealed, or stop()
        self._thread = threading.Thread(target=self._run, name="authlog-sender", daemon=True)
        self._process: Any = None
        self._shipped = 0  # rows handed to the child ...
        self._written = 0  # ... and rows it reported written
        self._abandoned = 0  # rows whose hand-over stop() cut short
        self._connection: Connection | None = None
        metrics.authlog_depth.set_function(lambda: len(self._records) + self._sealed_rows)

    def submit(self, record: AuthRecord, learn_mac: str | None = None) -> None:
        records = self._records
        if len(records) + self._sealed_rows >= self._capacity:
            self._metrics.authlog_dropped.inc()
            return
        records.append(record)
        if learn_mac is not None and record.service_id is not None:
            self._learn.append((record.service_id, learn_mac))
        if len(records) >= self._chunk:
            self._seal(self._chunk)
            self._wake.set()  # ship it now: rows sent as they come keep the child's work smooth

    def _seal(self, limit: int) -> None:
        """Pickle up to `limit` buffered records into one chunk for the sender to ship.

        Called by the submitting thread (full chunks: the auth port's reader) and by the
        sender (leftovers): both only popleft, which a deque does atomically, so a record
        goes into exactly one chunk.
        """
        rows: list[tuple[Any, ...]] = []
        pop = self._records.popleft
        try:
            while len(rows) < limit:
                rows.append(tuple(pop()))
        except IndexError:
            pass
        if rows:
            payload = pickle.dumps(rows, pickle.HIGHEST_PROTOCOL)
            with self._lock:  # both threads seal; the count must not lose an update
                self._sealed_rows += len(rows)
                self._sealed.append((len(rows), payload))

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
        """Hand over what is buffered and let the child write it, for `timeout` seconds in
        all. With the database away the child cannot write, its pipe is full, and a stop
        (usually a restart) must not wait for it: what is not written by then is killed
        with the child, counted as dropped and logged (`authlog_lost_at_stop`)."""
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        self._stopping.set()
        self._wake.set()
        self._thread.join(left())
        if self._connection is not None and not self._thread.is_alive():
            # The STOP marker from a thread of its own: into a full pipe the write blocks.
            sender = threading.Thread(target=self._send_stop, name="authlog-stop", daemon=True)
            sender.start()
            sender.join(left())
            if not sender.is_alive():
                with contextlib.suppress(OSError, EOFError):
                    self._drain_acks(block_until_eof=True, timeout=left())
        if self._process is not None:
            self._process.join(left())
            if self._process.is_alive():
                self._process.kill()
                self._process.join(1.0)
                self._thread.join(1.0)  # its write into the dead pipe fails now
        lost = (self._shipped - self._written + self._abandoned + len(self._records)
                + self._sealed_rows)
        if lost > 0:
            self._metrics.authlog_dropped.add(lost)
            log_event("authlog_lost_at_stop", rows=lost)

    def _send_stop(self) -> None:
        assert self._connection is not None
        with contextlib.suppress(OSError, ValueError):
            self._connection.send_bytes(_STOP)

    def _take(self, leftovers: bool) -> tuple[list[bytes], int, dict[int, str]]:
        """Sealed chunks up to about `batch` rows, and MACs to learn; `leftovers`: first seal
        what is buffered below a chunk (after a quiet interval, or at stop: the submitting
        thread will not seal it). While chunks keep coming that thread seals them all."""
        if leftovers and len(self._records) < self._chunk:
            self._seal(self._chunk)
        chunks: list[bytes] = []
        rows = 0
        while self._sealed and rows < self._batch:
            count, payload = self._sealed.popleft()
            chunks.append(payload)
            rows += count
        learned: dict[int, str] = {}
        while self._learn:
            service_id, mac = self._learn.popleft()
            learned.setdefault(service_id, mac)
        return chunks, rows, learned

    def _drain_acks(self, block_until_eof: bool = False, timeout: float = 0.0) -> None:
        connection = self._connection
        assert connection is not None
        deadline = time.monotonic() + timeout
        while True:
            wait = max(0.0, deadline - time.monotonic()) if block_until_eof else 0.0
            if not connection.poll(wait):
                return
            try:
                written, seconds, refused = connection.recv()
            except EOFError:
                return
            self._written += written + refused  # refused rows are accounted for: not lost at stop
            self._metrics.authlog_written.inc(written)
            self._metrics.authlog_refused.inc(refused)
            self._metrics.authlog_write.observe(seconds)

    def _run(self) -> None:
        quiet = False  # the last wait timed out: no chunk was sealed for a whole interval
        while True:
            stopping = self._stopping.is_set()
            chunks, rows, learned = self._take(leftovers=quiet or stopping)
            if chunks or learned:
                try:
                    assert self._connection is not None
                    self._connection.send_bytes(pickle.dumps((chunks, learned), pickle.HIGHEST_PROTOCOL))
                    self._shipped += rows
                except (OSError, ValueError) as exc:  # the child died: start another
                    if self._stopping.is_set():
                        self._abandoned += rows  # killed by stop(), which counts them
                        return
                    log_event("authlog_child_lost", error=type(exc).__name__, rows=rows)
                    self._spawn()
                    self._stopping.wait(1.0)
                    continue
                finally:
                    with self._lock:
                        self._sealed_rows -= rows
            self._drain_acks()
            if stopping and not self._records and not self._sealed:
                return
            if chunks:
                quiet = False  # leftovers once per quiet interval, never in a loop of small chunks
            else:
                quiet = not self._wake.wait(self._interval)
                self._wake.clear()
