"""Group commit: everything that arrived while the previous transaction ran is stored in
the next one. A group is taken no sooner than `commit_interval` (5 ms by default) after
the previous one was stored: under load records gather for that long, so groups are
several times bigger and PostgreSQL's work per record drops by a third (acct_bench, two
workers, alternated: 10-11 -> 68-71 records per commit, 40-44 -> 26-27 µs of PostgreSQL
CPU per record, 11,028-12,134 -> 13,139-13,829 records/s). A record arriving after a
quiet spell is stored at once.

The committer thread owns the database writes and the journal. An event is reported
done (and only then acknowledged to the NAS) once it is in the database or fsync'd in
the journal. While the journal holds anything, new groups are journaled too, so that the
replay applies everything in arrival order; the replay is retried every second.

A record the database refuses for its content (not for being away), which no retry would
store, is found by applying its group one record at a time and set aside in
`<journal>.rejected` (`Journal.set_aside`); the rest of the group is stored and answered.
Without that, one such record sent the group to the journal and failed every replay,
keeping all accounting out of the database.

Every few seconds (while the journal is empty) it also reads the open sessions back
from the database and hands them to the open-session index: sessions closed elsewhere
(`aaa sessions close-stale`, another daemon or worker) must stop counting against
simultaneous use. Reading them on this thread, between groups, keeps the order right:
the index gets the rows after every group they include and before any they do not.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aaa.accounting.events import AcctEvent
from aaa.accounting.journal import Journal
from aaa.daemon.metrics import Metrics
from aaa.db.accounting import STALL_AFTER, SessionWriter, apply_events, open_session_keys
from aaa.db.engine import error_detail, refused
from aaa.log import Repeating, log_event

_REPLAY_CHUNK = 5_000


class Pending(NamedTuple):
    event: AcctEvent
    token: object  # the caller's: what it needs to answer once the event is durable


Done = Callable[[list[Pending], bool], None]
OpenRows = list[tuple[str, int | None, int | None]]


class GroupCommitter:
    def __init__(self, sessions: sessionmaker[Session], journal: Journal, metrics: Metrics,
                 done: Done, capacity: int = 50_000, max_group: int = 5_000,
                 commit_interval: float = 0.0, retry_interval: float = 1.0,
                 open_sessions: Callable[[OpenRows], None] | None = None,
                 index_interval: float = 5.0, stall_after: float = STALL_AFTER) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        self._writer = SessionWriter(bind, stall_after) if isinstance(bind, Engine) else None
        self.journal = journal
        self._metrics = metrics
        self._done = done
        # The reactor appends and the committer pops: no lock and no wake-up per record;
        # the committer is woken (once) only when it sleeps on an empty queue.
        self._queue: collections.deque[Pending] = collections.deque()
        self._capacity = capacity
        self._wake = threading.Event()
        self._sleeping = False
        self._max_group = max_group
        self._commit_interval = commit_interval
        self._group_done = 0.0  # monotonic time the last group was stored
        self._retry_interval = retry_interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="acct-committer", daemon=True)
        self._last_replay = 0.0
        self._open_sessions = open_sessions
        self._index_interval = index_interval
        self._last_index = time.monotonic()
        self._journal_since: float | None = time.monotonic() if journal.records else None
        self._replay_failures = Repeating("accounting_replay_failed")
        self._reload_failures = Repeating("accounting_index_reload_failed")
        metrics.acct_queue.set_function(lambda: len(self._queue))
        metrics.acct_journal_records.set_function(lambda: self.journal.records)
        metrics.acct_journal_age.set_function(
            lambda: 0.0 if self._journal_since is None else time.monotonic() - self._journal_since)

    def submit(self, pending: Pending) -> bool:
        if len(self._queue) >= self._capacity:
            return False
        self._queue.append(pending)
        if self._sleeping:
            self._wake.set()
        return True

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Finish what is queued (to the database or the journal), then stop."""
        self._stopping.set()
        self._thread.join(timeout)
        if self._writer is not None:
            self._writer.close()

    def _take(self) -> list[Pending]:
        """What is queued, up to max_group; waits up to 0.1 s for a first record, then until
        `commit_interval` has passed since the previous group was stored."""
        pending = self._queue
        if not pending:
            self._sleeping = True
            # Checked again once the flag is up: either submit() sees the flag and wakes
            # us, or we see its record here.
            if not pending:
                self._wake.wait(0.1)
            self._sleeping = False
            self._wake.clear()
            if not pending:
                return []
        if self._commit_interval > 0:
            wait = self._group_done + self._commit_interval - time.monotonic()
            if wait > 0 and len(pending) < self._max_group:
                time.sleep(wait)  # one sleep: no waking the interpreter lock in between
        popleft = pending.popleft
        return [popleft() for _ in range(min(len(pending), self._max_group))]

    def _run(self) -> None:
        while True:
            group = self._take()
            if group:
                self._commit(group)
                self._group_done = time.monotonic()
            elif self._stopping.is_set():
                return
            if self.journal.records and time.monotonic() - self._last_replay >= self._retry_interval:
                self.replay()
            if (self._open_sessions is not None and not self.journal.records
                    and time.monotonic() - self._last_index >= self._index_interval):
                self.reload_index()

    def reload_index(self) -> None:
        """Hand the database's open sessions to the index (skipped when the database is away)."""
        assert self._open_sessions is not None
        self._last_index = time.monotonic()
        try:
            if self._writer is not None:
                rows = self._writer.open_session_keys()
            else:
                with self._sessions() as session:
                    rows = open_session_keys(session)
        except Exception as exc:
            self._reload_failures.failed(error=type(exc).__name__)
            return
        self._reload_failures.succeeded()
        self._open_sessions(rows)

    def _commit(self, group: list[Pending]) -> None:
        events = [p.event for p in group]
        self._metrics.acct_group_size.observe(len(group))
        if not self.journal.records:
            started = time.perf_counter()
            try:
                self._apply(events, self._writer)
            except Exception as exc:
                log_event("accounting_database_unavailable", error=type(exc).__name__,
                          detail=error_detail(exc))
            else:
                self._metrics.acct_commit.observe(time.perf_counter() - started)
                self._done(group, True)
                return
        if not self.journal.has_room(events):
            self._metrics.drop("journal_full", "any")
            self._done(group, False)  # no answer: the NAS will retry
            return
        try:
            self.journal.append(events)
        except OSError as exc:  # the disk full or failing: not durable, so no answer
            log_event("accounting_journal_failed", error=exc.strerror or type(exc).__name__,
                      records=len(events))
            self._metrics.drop("journal_error", "any")
            self._done(group, False)
            return
        if self._journal_since is None:
            self._journal_since = time.monotonic()
        self._done(group, True)

    def _apply(self, events: list[AcctEvent], writer: SessionWriter | None = None) -> None:
        """apply_events; when the database refuses the content, the events again one at a
        time (storing is idempotent), the refused ones set aside. Anything else raises."""
        try:
            apply_events(self._sessions, events, writer)
        except Exception as exc:
            if not refused(exc):
                raise
            for event in events:
                try:
                    apply_events(self._sessions, [event], writer)
                except Exception as one:
                    if not refused(one):
                        raise
                    self.journal.set_aside(event, one)
                    self._metrics.acct_refused.inc()

    def replay(self) -> bool:
        """Apply the journal to the database; True when it is empty afterwards."""
        self._last_replay = time.monotonic()
        applied = 0
        try:
            for chunk in self.journal.chunks(_REPLAY_CHUNK):
                self._apply(chunk)
                applied += len(chunk)
        except Exception as exc:
            self._replay_failures.failed(error=type(exc).__name__, applied=applied)
            return False
        self._replay_failures.succeeded()
        self.journal.clear()
        self._journal_since = None
        self._metrics.acct_replayed.inc(applied)
        log_event("accounting_replayed", records=applied)
        return True
