"""Accounting sessions in the database: idempotent upserts, NAS reboots, stale sessions.

Applying the same events twice, or in another order, leaves the same rows: counters and
times only move forward (max), the first known stop wins, descriptive fields keep their
first known value. That is what makes journal replays and NAS retransmissions safe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from aaa.accounting.events import NAS_EVENTS, STOP, AcctEvent
from aaa.db.models import AcctSession

NAS_REBOOT = "NAS-Reboot"
STALE = "Stale"
_CLOSE_CHUNK = 5_000
_UPSERT_CHUNK = 1_000  # 18 columns: well under PostgreSQL's 65,535 parameters
_KEEP_FIRST = ("acct_session_id", "nas_id", "nas_ip", "login", "service_id", "nas_port_id", "mac",
               "framed_ip", "ipv6_prefix", "delegated_ipv6_prefix")
_MAXIMA = ("updated_at", "session_time", "input_octets", "output_octets")


def _row(event: AcctEvent) -> dict[str, Any]:
    return {
        "unique_id": event.unique_id, "acct_session_id": event.acct_session_id,
        "nas_id": event.nas_id, "nas_ip": event.nas_ip, "login": event.login,
        "service_id": event.service_id, "nas_port_id": event.nas_port_id, "mac": event.mac,
        "framed_ip": event.framed_ip, "ipv6_prefix": event.ipv6_prefix,
        "delegated_ipv6_prefix": event.delegated_ipv6_prefix, "started_at": event.started_at,
        "updated_at": event.at, "stopped_at": event.at if event.kind == STOP else None,
        "session_time": event.session_time, "input_octets": event.input_octets,
        "output_octets": event.output_octets, "terminate_cause": event.terminate_cause,
    }


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The same rule as the SQL upsert, for events of one batch with the same key."""
    merged = dict(old)
    for name in _KEEP_FIRST:
        if merged[name] is None:
            merged[name] = new[name]
    for name in _MAXIMA:
        merged[name] = max(merged[name], new[name])
    merged["started_at"] = min(merged["started_at"], new["started_at"])
    if merged["stopped_at"] is None:
        merged["stopped_at"] = new["stopped_at"]
        merged["terminate_cause"] = merged["terminate_cause"] or new["terminate_cause"]
    return merged


def fold(events: Iterable[AcctEvent]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        row = _row(event)
        previous = rows.get(event.unique_id)
        rows[event.unique_id] = row if previous is None else _merge(previous, row)
    return list(rows.values())


_COLUMNS = ("unique_id", *_KEEP_FIRST, "started_at", "updated_at", "stopped_at", "session_time",
            "input_octets", "output_octets", "terminate_cause")


def _upsert_sql(dialect: str) -> str:
    """INSERT ... ON CONFLICT (unique_id) DO UPDATE with the merge rule, per dialect."""
    greatest, least = ("GREATEST", "LEAST") if dialect == "postgresql" else ("MAX", "MIN")
    current = "acct_sessions"
    updates = [f"{c} = COALESCE({current}.{c}, excluded.{c})" for c in _KEEP_FIRST]
    updates += [f"{c} = {greatest}({current}.{c}, excluded.{c})" for c in _MAXIMA]
    updates += [f"started_at = {least}({current}.started_at, excluded.started_at)",
                f"stopped_at = COALESCE({current}.stopped_at, excluded.stopped_at)",
                f"terminate_cause = COALESCE({current}.terminate_cause, excluded.terminate_cause)"]
    values = "%s" if dialect == "postgresql" else f"({', '.join('?' * len(_COLUMNS))})"
    return (f"INSERT INTO acct_sessions ({', '.join(_COLUMNS)}) VALUES {values} "
            f"ON CONFLICT (unique_id) DO UPDATE SET {', '.join(updates)}")


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage form for SQLite DateTime


def _sqlite_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime(_SQLITE_TIME)


def upsert_sessions(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """The merge rule in one statement per chunk, on the session's own DBAPI connection.

    Hand-written SQL on purpose: compiling a multi-row ORM/Core upsert costs more than
    the database's work, and this is the accounting hot path.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    upsert_rows(session.connection().connection.driver_connection, dialect, rows)


def upsert_rows(connection: Any, dialect: str, rows: Sequence[dict[str, Any]]) -> None:
    """The upsert on a DBAPI connection (the caller commits)."""
    cursor = connection.cursor()
    try:
        if dialect == "postgresql":
            from psycopg2.extras import execute_values

            tuples = [tuple(row[c] for c in _COLUMNS) for row in rows]
            execute_values(cursor, _upsert_sql(dialect), tuples, page_size=_UPSERT_CHUNK)
        else:
            times = {"started_at", "updated_at", "stopped_at"}
            tuples = [tuple(_sqlite_time(row[c]) if c in times else row[c] for c in _COLUMNS)
                      for row in rows]
            cursor.executemany(_upsert_sql(dialect), tuples)
    finally:
        cursor.close()


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


class SessionWriter:
    """The committer's own DBAPI connection, kept between groups: a group of session events
    costs one INSERT ... ON CONFLICT and one COMMIT, without a pool checkout, a pre-ping or an
    ORM session each time. Any error drops the connection; the next group opens another."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Any = None

    def write(self, events: Sequence[AcctEvent]) -> None:
        if self._connection is None:
            self._connection = self._engine.raw_connection()
        try:
            upsert_rows(self._connection.driver_connection, self._engine.dialect.name, fold(events))
            self._connection.commit()
        except BaseException:
            self.close(broken=True)
            raise

    def close(self, broken: bool = False) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                if broken:
                    self._connection.invalidate()
                else:
                    self._connection.close()
            self._connection = None


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


def open_sessions(session: Session, nas_id: int | None = None) -> list[AcctSession]:
    query = select(AcctSession).where(AcctSession.stopped_at.is_(None)).order_by(AcctSession.started_at)
    if nas_id is not None:
        query = query.where(AcctSession.nas_id == nas_id)
    return list(session.scalars(query))


def open_session_keys(session: Session) -> list[tuple[str, int | None, int | None]]:
    """(unique_id, service_id, nas_id) of every open session: what the index holds."""
    return [(u, s, n) for u, s, n in session.execute(
        select(AcctSession.unique_id, AcctSession.service_id, AcctSession.nas_id)
        .where(AcctSession.stopped_at.is_(None)))]


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
                limit: int = 1000) -> list[AcctSession]:
    query = select(AcctSession).order_by(AcctSession.started_at.desc()).limit(limit)
    if login:
        query = query.where(AcctSession.login == login)
    if since:
        query = query.where((AcctSession.stopped_at.is_(None)) | (AcctSession.stopped_at >= since))
    if until:
        query = query.where(AcctSession.started_at < until)
    if nas_id is not None:
        query = query.where(AcctSession.nas_id == nas_id)
    return list(session.scalars(query))
