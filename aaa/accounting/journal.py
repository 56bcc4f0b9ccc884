"""The local accounting journal: where acknowledged records wait while the database is away.

Append-only JSON lines, fsync'd per group before any of the group is acknowledged. A
crash can leave a torn last line; it belongs to a group that was never acknowledged, so
it is cut off when the journal is opened. Only the committer thread touches the file.

One daemon per journal: opening it takes an exclusive lock (`flock` on `<journal>.lock`,
which holds the owner's PID; the kernel drops it when the process dies, even by kill -9).
A second `aaa serve` on the same data directory would otherwise cut the first one's
append in flight as a "torn tail", or replay and clear records the first acknowledged.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from aaa.accounting.events import AcctEvent
from aaa.db.engine import error_detail
from aaa.log import log_event


class JournalInUse(Exception):
    """Another process holds the journal."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"the accounting journal {path} is in use by another aaa serve"
                         + (f" (pid {holder})" if holder else ""))
        self.path = path
        self.holder = holder


class Journal:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = self._take_lock()
        self.rejected = 0  # lines set aside by chunks() since the start
        self._rejected_lines: set[int] = set()
        self._repair()
        self._file = open(path, "ab")  # noqa: SIM115 - held open for the daemon's life
        with open(path, "rb") as existing:
            self.records = sum(1 for _ in existing)

    def _take_lock(self) -> IO[str]:
        lock = open(self.path.with_name(self.path.name + ".lock"), "a+")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip()
            lock.close()
            raise JournalInUse(self.path, holder) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        return lock

    def _repair(self) -> None:
        if not self.path.exists():
            self.path.touch()
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut != len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(cut)
                handle.flush()
                os.fsync(handle.fileno())

    @property
    def size(self) -> int:
        return self._file.tell()

    def has_room(self, events: Sequence[AcctEvent]) -> bool:
        return self.size + 400 * len(events) <= self.max_bytes

    def append(self, events: Sequence[AcctEvent]) -> None:
        """Write and fsync; only then may the events be acknowledged.

        A write that fails (the disk full) raises after cutting the journal back to where
        it was: no torn line is left in the middle for the records that follow."""
        payload = b"".join(json.dumps(e.to_json(), separators=(",", ":")).encode() + b"\n" for e in events)
        before = self._file.tell()
        try:
            self._file.write(payload)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError:
            self._cut_back(before)
            raise
        self.records += len(events)

    def _cut_back(self, size: int) -> None:
        try:
            self._file.flush()
        except OSError:  # the buffered rest cannot go either: drop it with the file object
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = open(self.path, "ab")  # noqa: SIM115 - replaces the broken handle
        os.truncate(self.path, size)
        self._file.seek(size)

    def chunks(self, size: int) -> Iterator[list[AcctEvent]]:
        """The journal's events in order, `size` at a time (memory stays bounded).

        A line this version cannot read (written by another version, or damaged) must not
        block every record behind it forever: it is copied to `<journal>.rejected` for a
        person to look at, logged, and skipped."""
        chunk: list[AcctEvent] = []
        with open(self.path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    chunk.append(AcctEvent.from_json(json.loads(line)))
                except (ValueError, TypeError, KeyError) as exc:
                    self._reject(number, line, exc)
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk

    def _reject(self, number: int, line: bytes, exc: Exception) -> None:
        if number in self._rejected_lines:  # read again by a replay retried: set aside once
            return
        self._rejected_lines.add(number)
        rejected = self.path.with_name(self.path.name + ".rejected")
        with open(rejected, "ab") as out:
            out.write(line if line.endswith(b"\n") else line + b"\n")
            out.flush()
            os.fsync(out.fileno())
        self.rejected += 1
        log_event("accounting_journal_line_rejected", journal=str(self.path), line=number,
                  error=type(exc).__name__, kept_in=str(rejected))

    def set_aside(self, event: AcctEvent, exc: Exception) -> None:
        """A record the database refuses for its content goes where unreadable lines go,
        `<journal>.rejected` (fsync'd: it may have been acknowledged), for a person to look
        at; the records behind it carry on."""
        rejected = self.path.with_name(self.path.name + ".rejected")
        with open(rejected, "ab") as out:
            out.write(json.dumps(event.to_json()).encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        self.rejected += 1
        log_event("accounting_record_refused", unique_id=event.unique_id, login=event.login,
                  error=type(getattr(exc, "orig", None) or exc).__name__, detail=error_detail(exc),
                  kept_in=str(rejected))

    def clear(self) -> None:
        self._rejected_lines.clear()
        self._file.truncate(0)
        self._file.seek(0)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records = 0

    def close(self) -> None:
        self._file.close()
        self._lock.close()  # releases the flock
