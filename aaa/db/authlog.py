"""Writing and reading the authentication log.

Writes are the daemon's busiest: rows arrive as plain tuples and go in with COPY on
PostgreSQL and one executemany on SQLite, on a raw connection (no ORM per row).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime
from io import StringIO
from typing import Any, NamedTuple

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from aaa.db.models import AuthLogEntry


class AuthRecord(NamedTuple):
    """One decision as the hot path hands it over (time as a POSIX float)."""

    at: float
    login: str
    service_id: int | None
    nas_id: int | None
    nas_ip: str
    result: str
    reason: str
    mac: str | None
    mac_differs: bool
    interface: str | None
    interface_differs: bool
    ip: str | None
    pool: str | None
    download_kbps: int | None
    upload_kbps: int | None


COLUMNS = AuthRecord._fields
_NULLABLE = ("service_id", "nas_id", "mac", "interface", "ip", "pool", "download_kbps", "upload_kbps")
# CSV through the C csv module: quoted empty strings in the nullable columns mean NULL.
_COPY = (f"COPY auth_log ({', '.join(COLUMNS)}) FROM STDIN "
         f"WITH (FORMAT csv, FORCE_NULL ({', '.join(_NULLABLE)}))")
_INSERT = f"INSERT INTO auth_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


class _IsoStamps:
    """POSIX time -> ISO 8601 UTC text, as `datetime.isoformat` writes it, with the
    date-and-time part computed once per second: a batch's decisions share a few seconds,
    and formatting a datetime per row was a third of the writer's time."""

    def __init__(self) -> None:
        self._seconds: dict[int, str] = {}

    def __call__(self, at: float) -> str:
        micros = round(at * 1_000_000)
        second, fraction = divmod(micros, 1_000_000)
        prefix = self._seconds.get(second)
        if prefix is None:
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._seconds[second] = prefix
        return f"{prefix}.{fraction:06d}+00:00"


def write_records(engine: Engine, records: Sequence[AuthRecord | tuple[Any, ...]]) -> None:
    """Insert records (AuthRecords, or plain tuples in their field order) in one
    transaction on a raw DBAPI connection."""
    if not records:
        return
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        if engine.dialect.name == "postgresql":
            buffer = StringIO()
            writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
            iso = _IsoStamps()
            writer.writerows((iso(r[0]), *r[1:]) for r in records)
            buffer.seek(0)
            cursor.copy_expert(_COPY, buffer)
        else:
            # SQLAlchemy's SQLite DateTime form (naive UTC), so the ORM reads these back.
            stamp = datetime.fromtimestamp
            cursor.executemany(_INSERT, [(stamp(r[0], UTC).isoformat(" ")[:-6], *r[1:])
                                         for r in records])
        cursor.close()
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()


def query(
    session: Session, login: str | None = None, since: datetime | None = None,
    until: datetime | None = None, result: str | None = None, mac_differs: bool = False,
    interface_differs: bool = False, limit: int = 1000, visible: Any = None,
) -> list[AuthLogEntry]:
    """Newest first; `visible`: an extra WHERE clause (an operator's cities)."""
    q = select(AuthLogEntry).order_by(AuthLogEntry.at.desc(), AuthLogEntry.id.desc()).limit(limit)
    if visible is not None:
        q = q.where(visible)
    if login:
        q = q.where(AuthLogEntry.login == login)
    if since:
        q = q.where(AuthLogEntry.at >= since)
    if until:
        q = q.where(AuthLogEntry.at < until)
    if result:
        q = q.where(AuthLogEntry.result == result)
    if mac_differs:
        q = q.where(AuthLogEntry.mac_differs.is_(True))
    if interface_differs:
        q = q.where(AuthLogEntry.interface_differs.is_(True))
    return list(session.scalars(q))
