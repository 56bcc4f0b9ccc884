"""CoA jobs in the database: claiming them (safely across daemons), their targets, results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from aaa.db.models import AcctSession, CoaAttempt, CoaJob

PENDING, SENDING, DONE, FAILED = "pending", "sending", "done", "failed"
_RECLAIM_AFTER = timedelta(minutes=5)  # a claim older than this belonged to a dead daemon


def claim(session: Session, claimer: str, now: datetime, limit: int = 200) -> list[CoaJob]:
    """Mark due jobs as ours and return them; other daemons skip rows we hold (PostgreSQL)."""
    due = (select(CoaJob.id)
           .where(or_(
               (CoaJob.status == PENDING) & (CoaJob.next_attempt_at <= now),
               (CoaJob.status == SENDING) & (CoaJob.claimed_at < now - _RECLAIM_AFTER)))
           .order_by(CoaJob.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(session.scalars(due))
    if not ids:
        return []
    session.execute(update(CoaJob).where(CoaJob.id.in_(ids))
                    .values(status=SENDING, claimed_by=claimer, claimed_at=now))
    return list(session.scalars(select(CoaJob).where(CoaJob.id.in_(ids)).order_by(CoaJob.id)))


def release_dead_claims(session: Session, host: str, alive: Callable[[int], bool]) -> list[int]:
    """Put back to pending the jobs a daemon on this host ("HOST:PID" claims) held when its
    process died (kill -9, a crash): they need not wait for _RECLAIM_AFTER. A claim whose
    process is still alive, or of another host, is left alone. The ids released."""
    rows = session.execute(select(CoaJob.id, CoaJob.claimed_by).where(
        CoaJob.status == SENDING, CoaJob.claimed_by.like(f"{host}:%")))
    dead = []
    for job_id, claimed_by in rows:
        claimed_host, _, pid = (claimed_by or "").rpartition(":")
        if claimed_host == host and pid.isdigit() and not alive(int(pid)):
            dead.append(job_id)
    if dead:
        session.execute(update(CoaJob).where(CoaJob.id.in_(dead), CoaJob.status == SENDING)
                        .values(status=PENDING, claimed_by=None, claimed_at=None))
    return dead


def open_sessions_of(session: Session, service_id: int) -> list[AcctSession]:
    return list(session.scalars(select(AcctSession).where(
        AcctSession.service_id == service_id, AcctSession.stopped_at.is_(None))))


def has_open_session(session: Session, service_id: int) -> bool:
    return bool(session.scalar(select(func.count()).select_from(AcctSession).where(
        AcctSession.service_id == service_id, AcctSession.stopped_at.is_(None))))


def finish(session: Session, job_id: int, status: str, result: str, now: datetime,
           attempts: Sequence[dict[str, Any]]) -> None:
    if attempts:
        session.execute(insert(CoaAttempt), list(attempts))
    session.execute(update(CoaJob).where(CoaJob.id == job_id).values(
        status=status, result=result, finished_at=now))


def pending_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(CoaJob).where(
        CoaJob.status.in_((PENDING, SENDING)))) or 0


def history(session: Session, service_ids: Sequence[int], limit: int = 500) -> list[CoaAttempt]:
    return list(session.scalars(select(CoaAttempt).where(CoaAttempt.service_id.in_(service_ids))
                                .order_by(CoaAttempt.at.desc(), CoaAttempt.id.desc()).limit(limit)))
