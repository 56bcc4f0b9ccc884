"""Writing and reading the authentication log.

Writes are the daemon's busiest: rows arrive as plain tuples and go in with COPY on
PostgreSQL and one executemany on SQLite, on a raw connection (no ORM per row).
"""

from __future__ import annotations

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
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    return str(value).translate(_ESCAPES)


def write_records(engine: Engine, records: Sequence[AuthRecord]) -> None:
    """Insert records in one transaction on a raw DBAPI connection."""
    if not records:
        return
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        if engine.dialect.name == "postgresql":
            buffer = StringIO()
            for record in records:
                values = [datetime.fromtimestamp(record.at, UTC).isoformat(), *record[1:]]
                buffer.write("\t".join(map(_copy_value, values)))
                buffer.write("\n")
            buffer.seek(0)
            cursor.copy_expert(f"COPY auth_log ({', '.join(COLUMNS)}) FROM STDIN", buffer)
        else:
            # SQLAlchemy's SQLite DateTime format, naive UTC, so the ORM reads these back.
            rows = [(datetime.fromtimestamp(r.at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), *r[1:])
                    for r in records]
            marks = ", ".join("?" * len(COLUMNS))
            cursor.executemany(f"INSERT INTO auth_log ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
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
    interface_differs: bool = False, limit: int = 1000,
) -> list[AuthLogEntry]:
    q = select(AuthLogEntry).order_by(AuthLogEntry.at.desc(), AuthLogEntry.id.desc()).limit(limit)
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
