"""Accounting sessions in the database: idempotent upserts, NAS reboots, stale sessions.

Applying the same events twice, or in another order, leaves the same rows: counters and
times only move forward (max), the first known stop wins, descriptive fields keep their
first known value. That is what makes journal replays and NAS retransmissions safe.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from aaa.accounting.events import NAS_EVENTS, START, STOP, AcctEvent
from aaa.db.models import AcctSession
from aaa.log import log_event

NAS_REBOOT = "NAS-Reboot"
STALE = "Stale"
_CLOSE_CHUNK = 5_000
_KEEP_FIRST = ("acct_session_id", "nas_id", "nas_ip", "login", "service_id", "nas_port_id", "mac",
               "framed_ip", "ipv6_prefix", "delegated_ipv6_prefix")
_MAXIMA = ("updated_at", "session_time", "input_octets", "output_octets")


Row = tuple[Any, ...]  # the values of _COLUMNS, in that order

_COLUMNS = ("unique_id", *_KEEP_FIRST, "started_at", "updated_at", "stopped_at", "session_time",
            "input_octets", "output_octets", "terminate_cause")
_KEEP_AT = range(1, 1 + len(_KEEP_FIRST))
_STARTED, _UPDATED, _STOPPED, _SESSION_TIME, _INPUT, _OUTPUT, _CAUSE = range(11, 18)


def _row(event: AcctEvent) -> Row:
    at = event.at
    kind = event.kind
    return (event.unique_id, event.acct_session_id, event.nas_id, event.nas_ip, event.login,
            event.service_id, event.nas_port_id, event.mac, event.framed_ip, event.ipv6_prefix,
            event.delegated_ipv6_prefix,
            at if kind == START else at - timedelta(seconds=event.session_time),
            at, at if kind == STOP else None, event.session_time, event.input_octets,
            event.output_octets, event.terminate_cause)


def _merge(old: Row, new: Row) -> Row:
    """The same rule as the SQL upsert, for events of one batch with the same key."""
    merged = list(old)
    for i in _KEEP_AT:
        if merged[i] is None:
            merged[i] = new[i]
    for i in (_UPDATED, _SESSION_TIME, _INPUT, _OUTPUT):
        merged[i] = max(merged[i], new[i])
    merged[_STARTED] = min(merged[_STARTED], new[_STARTED])
    if merged[_STOPPED] is None:
        merged[_STOPPED] = new[_STOPPED]
        merged[_CAUSE] = merged[_CAUSE] or new[_CAUSE]
    return tuple(merged)


def fold(events: Iterable[AcctEvent]) -> list[Row]:
    """One row per session, sorted by unique id: concurrent writers of overlapping groups
    then lock their rows in the same order, so they wait for each other, never deadlock."""
    rows: dict[str, Row] = {}
    for event in events:
        row = _row(event)
        previous = rows.get(event.unique_id)
        rows[event.unique_id] = row if previous is None else _merge(previous, row)
    return [rows[key] for key in sorted(rows)]


def _update_clause(dialect: str) -> str:
    greatest, least = ("GREATEST", "LEAST") if dialect == "postgresql" else ("MAX", "MIN")
    current = "acct_sessions"
    updates = [f"{c} = COALESCE({current}.{c}, excluded.{c})" for c in _KEEP_FIRST]
    updates += [f"{c} = {greatest}({current}.{c}, excluded.{c})" for c in _MAXIMA]
    updates += [f"started_at = {least}({current}.started_at, excluded.started_at)",
                f"stopped_at = COALESCE({current}.stopped_at, excluded.stopped_at)",
                f"terminate_cause = COALESCE({current}.terminate_cause, excluded.terminate_cause)"]
    return f"ON CONFLICT (unique_id) DO UPDATE SET {', '.join(updates)}"


def _upsert_sql(dialect: str) -> str:
    """INSERT ... ON CONFLICT (unique_id) DO UPDATE with the merge rule, per dialect.

    PostgreSQL: one statement whatever the group's size, on one array per column
    ($1..$18, unnest), so that it is prepared once per connection and never planned
    again; SQLite: one row per execution (executemany)."""
    columns = ", ".join(_COLUMNS)
    if dialect == "postgresql":
        arrays = ", ".join(f"${i}::{_PG_TYPES[c]}[]" for i, c in enumerate(_COLUMNS, 1))
        return (f"INSERT INTO acct_sessions ({columns}) SELECT * FROM unnest({arrays}) "
                f"{_update_clause(dialect)}")
    return (f"INSERT INTO acct_sessions ({columns}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
            f"{_update_clause(dialect)}")


_PG_TYPES = {c: "text" for c in _COLUMNS} | {
    "nas_id": "integer", "service_id": "integer", "started_at": "timestamptz",
    "updated_at": "timestamptz", "stopped_at": "timestamptz", "session_time": "bigint",
    "input_octets": "bigint", "output_octets": "bigint"}
_PREPARED = "aaa_acct_upsert"
_ARRAY_ESCAPE = str.maketrans({"\\": "\\\\", '"': '\\"'})
_TIME_AT = frozenset((_STARTED, _UPDATED, _STOPPED))


def _pg_arrays(rows: list[Row]) -> list[str]:
    """Each column of `rows` as a PostgreSQL array literal ('{...}'): psycopg2 passes it
    as one quoted string, and the server reads it with array_in, without a parser or a
    planner per value as a VALUES list would need. Compiled when the extension is built
    (aaa/_speedups.c: ~7 us a record here, two thirds of it datetime.isoformat, on the
    committer thread holding the interpreter lock); `pg_arrays` is the reference."""
    if _compiled_arrays is not None:
        return _compiled_arrays(rows, _KINDS)
    return pg_arrays(rows)


def pg_arrays(rows: Sequence[Row]) -> list[str]:
    """`_pg_arrays` in Python: what the compiled version must give, cell for cell."""
    arrays = []
    for i, column in enumerate(zip(*rows, strict=True)):
        if None in column:
            arrays.append(_slow_array(i, column))
        elif i in _TIME_AT:
            arrays.append("{" + ",".join([v.isoformat() for v in column]) + "}")
        elif _PG_TYPES[_COLUMNS[i]] != "text":
            arrays.append("{" + ",".join(map(str, column)) + "}")
        else:
            body = '","'.join(column)
            # Only the separators' quotes, no backslash: nothing to escape (the usual case).
            if body.count('"') == 2 * (len(column) - 1) and "\\" not in body:
                arrays.append('{"' + body + '"}')
            else:
                arrays.append(_slow_array(i, column))
    return arrays


# Per column, for the compiled version: d(ate), t(ext) or n(umber), as pg_arrays formats them.
_KINDS = bytes(ord("d") if i in _TIME_AT else ord("t") if _PG_TYPES[c] == "text" else ord("n")
               for i, c in enumerate(_COLUMNS))
_compiled_arrays: Callable[[list[Row], bytes], list[str]] | None
try:
    from aaa._speedups import pg_array_literals as _compiled_arrays
except ImportError:  # built without a C compiler
    _compiled_arrays = None


def _slow_array(i: int, column: tuple[Any, ...]) -> str:
    if i in _TIME_AT:
        cells = ["NULL" if v is None else v.isoformat() for v in column]
    elif _PG_TYPES[_COLUMNS[i]] != "text":
        cells = ["NULL" if v is None else str(v) for v in column]
    else:
        cells = ["NULL" if v is None else '"' + v.translate(_ARRAY_ESCAPE) + '"' for v in column]
    return "{" + ",".join(cells) + "}"


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage form for SQLite DateTime


def _sqlite_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime(_SQLITE_TIME)


def upsert_sessions(session: Session, rows: Sequence[Row]) -> None:
    """The merge rule in one statement, on the session's own DBAPI connection.

    Hand-written SQL on purpose: compiling a multi-row ORM/Core upsert costs more than
    the database's work, and this is the accounting hot path.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    upsert_rows(session.connection().connection.driver_connection, dialect, rows)


def prepare_upsert(connection: Any) -> None:
    """PREPARE the PostgreSQL upsert on a DBAPI connection (once per connection)."""
    cursor = connection.cursor()
    try:
        cursor.execute(f"PREPARE {_PREPARED} AS {_upsert_sql('postgresql')}")
    finally:
        cursor.close()


def upsert_rows(connection: Any, dialect: str, rows: Sequence[Row], prepared: bool = False) -> None:
    """The upsert on a DBAPI connection (the caller commits). `prepared`: PostgreSQL only,
    the connection has the statement PREPAREd (`prepare_upsert`)."""
    if not rows:
        return
    cursor = connection.cursor()
    try:
        if dialect == "postgresql":
            cursor.execute(_PG_EXECUTE if prepared else _PG_PLAIN, _pg_arrays(list(rows)))
        else:
            tuples = [tuple(_sqlite_time(v) if i in _TIME_AT else v for i, v in enumerate(row))
                      for row in rows]
            cursor.executemany(_upsert_sql(dialect), tuples)
    finally:
        cursor.close()


_PG_PLAIN = re.sub(r"\$\d+", "%s", _upsert_sql("postgresql"))
_PG_EXECUTE = f"EXECUTE {_PREPARED}({', '.join(['%s'] * len(_COLUMNS))})"


def close_nas_sessions(sessions: sessionmaker[Session], nas_id: int, at: datetime,
                       cause: str = NAS_REBOOT) -> int:
    """Close a NAS's open sessions last heard of before `at`, in short transactions."""
    closed = 0
    while True:
        with sessions() as session, session.begin():
            ids = session.scalars(
                select(AcctSession.id).where(AcctSession.nas_id == nas_id,
                                             AcctSession.stopped_at.is_(None),
                                             AcctSession.updated_at <= at)
                .limit(_CLOSE_CHUNK)).all()
            if not ids:
                return closed
            session.execute(update(AcctSession).where(AcctSession.id.in_(ids))
                            .values(stopped_at=at, terminate_cause=cause))
            closed += len(ids)


_FETCH_SLICE = 5_000
# A call on the committer's connection taking longer than this is a stuck database
# (the daemon's statement_timeout, 10 s, ends first the ones the server itself can end).
STALL_AFTER = 15.0
# The open-session index's rows; also run as plain SQL on the committer's own connection.
_OPEN_KEYS = (select(AcctSession.unique_id, AcctSession.service_id, AcctSession.nas_id)
              .where(AcctSession.stopped_at.is_(None)))


class SessionWriter:
    """The committer's own DBAPI connection, kept between groups: a group of session events
    costs one INSERT ... ON CONFLICT (PREPAREd once per connection on PostgreSQL) and one
    COMMIT, without a pool checkout, a pre-ping or an ORM session each time. Any error drops
    the connection; the next group opens another."""

    def __init__(self, engine: Engine, stall_after: float = STALL_AFTER) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._open_keys_sql = str(_OPEN_KEYS.compile(dialect=engine.dialect))
        self._connection: Any = None
        self._socket = -1  # the connection's socket, read on this thread when it is opened
        self._stall_after = stall_after
        self._call_started = 0.0  # monotonic start of the call under way (0: none)
        self._cut = False
        self._watcher: threading.Thread | None = None
        self._closed = threading.Event()

    def _driver(self) -> Any:
        if self._connection is None:
            self._connection = self._engine.raw_connection()
            if self._dialect == "postgresql":
                self._socket = self._connection.driver_connection.fileno()
                # One statement per group, committed by itself: one round trip instead of
                # three (BEGIN, the upsert, COMMIT).
                self._connection.driver_connection.autocommit = True
                prepare_upsert(self._connection.driver_connection)
        return self._connection.driver_connection

    @contextlib.contextmanager
    def _watched(self) -> Iterator[None]:
        """Cut the connection's socket if the call inside outlasts `stall_after` seconds.

        A database host whose kernel still answers while its server is stuck (frozen
        process, a proxy that stopped forwarding) defeats the other bounds: keepalives and
        tcp_user_timeout need the network to fail, statement_timeout needs the server.
        Without this the committer would wait for ever and no record would reach the
        journal; with it the call fails, the group is journaled, the connection dropped.
        One watcher thread per writer, started on first use: a call costs two stores."""
        if self._dialect != "postgresql":
            yield
            return
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="db-stall-watch", daemon=True)
            self._watcher.start()
        self._call_started = time.monotonic()
        try:
            yield
        finally:
            self._call_started = 0.0
            if self._cut:  # it may have finished just as the socket was cut
                self._cut = False
                self.close(broken=True)

    def _watch(self) -> None:
        period = min(1.0, self._stall_after / 4)
        while not self._closed.wait(period):
            started, fd = self._call_started, self._socket
            if not started or fd < 0 or time.monotonic() - started < self._stall_after:
                continue
            self._cut = True
            with contextlib.suppress(OSError):
                stuck = socket.socket(fileno=os.dup(fd))
                stuck.shutdown(socket.SHUT_RDWR)
                stuck.close()
            log_event("database_stalled", seconds=self._stall_after)
            self._call_started = 0.0

    def write(self, events: Sequence[AcctEvent]) -> None:
        try:
            postgresql = self._dialect == "postgresql"
            with self._watched():
                upsert_rows(self._driver(), self._dialect, fold(events), prepared=postgresql)
            if not postgresql:
                self._connection.commit()
        except BaseException:
            self.close(broken=True)
            raise

    def open_session_keys(self) -> list[tuple[str, int | None, int | None]]:
        """`open_session_keys` on this connection, as plain tuples (no ORM, no pool checkout:
        the committer's index reload, every few seconds, over every open session)."""
        try:
            with self._watched():
                return self._read_open_keys()
        except BaseException:
            self.close(broken=True)
            raise

    def _read_open_keys(self) -> list[tuple[str, int | None, int | None]]:
        cursor = self._driver().cursor()
        try:
            cursor.execute(self._open_keys_sql)
            # In slices: fetchall() of 100,000 rows builds them in one C call holding the
            # interpreter lock for ~60 ms (the reactor stalled); 5,000 at a time, ~3 ms.
            rows: list[tuple[str, int | None, int | None]] = []
            while chunk := cursor.fetchmany(_FETCH_SLICE):
                rows.extend(chunk)
        finally:
            cursor.close()
        if self._dialect != "postgresql":
            self._connection.commit()
        return rows

    def close(self, broken: bool = False) -> None:
        """Drop the connection (closed, never returned to the pool: it is in autocommit
        mode and has the upsert PREPAREd, which no other user of the pool expects); not
        broken: the writer is done, its watcher stops too."""
        if not broken:
            self._closed.set()
        if self._connection is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                self._connection.invalidate()
            self._connection = None
            self._socket = -1


def apply_events(sessions: sessionmaker[Session], events: Sequence[AcctEvent],
                 writer: SessionWriter | None = None) -> None:
    """Store events in order: session events of a run in one transaction, NAS reboots chunked."""
    run: list[AcctEvent] = []

    def flush() -> None:
        if run:
            if writer is not None:
                writer.write(run)
            else:
                with sessions() as session, session.begin():
                    upsert_sessions(session, fold(run))
            run.clear()

    for event in events:
        if event.kind in NAS_EVENTS:
            flush()
            close_nas_sessions(sessions, event.nas_id, event.at)
        else:
            run.append(event)
    flush()


def open_sessions(session: Session, nas_id: int | None = None, visible: Any = None) -> list[AcctSession]:
    """Open sessions, oldest first; `visible`: an extra WHERE clause (an operator's cities)."""
    query = select(AcctSession).where(AcctSession.stopped_at.is_(None)).order_by(AcctSession.started_at)
    if nas_id is not None:
        query = query.where(AcctSession.nas_id == nas_id)
    if visible is not None:
        query = query.where(visible)
    return list(session.scalars(query))


def open_session_keys(session: Session) -> list[tuple[str, int | None, int | None]]:
    """(unique_id, service_id, nas_id) of every open session: what the index holds."""
    return [(u, s, n) for u, s, n in session.execute(_OPEN_KEYS)]


def open_index_rows(engine: Engine) -> list[tuple[str, int | None, int | None]]:
    with Session(engine) as session:
        return open_session_keys(session)


def close_stale(session: Session, before: datetime, now: datetime) -> int:
    """Close open sessions not updated since `before` (the NAS lost power, say)."""
    result = session.execute(
        update(AcctSession).where(AcctSession.stopped_at.is_(None), AcctSession.updated_at < before)
        .values(stopped_at=now, terminate_cause=STALE))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def connections(session: Session, login: str | None = None, since: datetime | None = None,
                until: datetime | None = None, nas_id: int | None = None,
                limit: int = 1000, visible: Any = None) -> list[AcctSession]:
    query = select(AcctSession).order_by(AcctSession.started_at.desc()).limit(limit)
    if visible is not None:
        query = query.where(visible)
    if login:
        query = query.where(AcctSession.login == login)
    if since:
        query = query.where((AcctSession.stopped_at.is_(None)) | (AcctSession.stopped_at >= since))
    if until:
        query = query.where(AcctSession.started_at < until)
    if nas_id is not None:
        query = query.where(AcctSession.nas_id == nas_id)
    return list(session.scalars(query))
