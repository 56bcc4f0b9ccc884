"""Writing and reading the authentication log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from aaa.db.models import AuthLogEntry


def write_batch(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(AuthLogEntry), list(rows))


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
