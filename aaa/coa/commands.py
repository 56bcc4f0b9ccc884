"""`aaa coa ...`: Disconnect or re-send the speed of a live session by hand, the PoD/CoD
history (Histórico PoD/CoD) and the job queue.

The jobs are sent by the dispatcher of `aaa serve`; `--wait` follows a job until it is
settled. Exit code 1 when the job failed or was not settled in time (the job is printed
all the same).
"""

from __future__ import annotations

import time
from typing import Any

import click
from sqlalchemy import select

from aaa.cliutil import AppState, format_option, pass_state, render
from aaa.coa.errors import describe
from aaa.coa.requests import COA, DISCONNECT
from aaa.db import coa as jobs_db
from aaa.db.models import CoaAttempt, CoaJob, Nas, Service
from management import coa
from management.errors import NotFound, RuleViolation

WAIT_STEP = 0.2
MAX_WAIT = 600.0
STATUSES = (jobs_db.PENDING, jobs_db.SENDING, jobs_db.DONE, jobs_db.FAILED)


def _moment(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def job_row(job: CoaJob) -> dict[str, Any]:
    return {
        "id": job.id, "login": job.login, "kind": job.kind, "status": job.status,
        "reason": job.reason, "operator": job.operator_login, "created_at": _moment(job.created_at),
        "finished_at": _moment(job.finished_at), "result": job.result,
    }


def attempt_row(attempt: CoaAttempt, nas_names: dict[int, str]) -> dict[str, Any]:
    cause = describe(attempt.error_cause)
    return {
        "time": _moment(attempt.at),
        "nas": nas_names.get(attempt.nas_id, attempt.nas_ip) if attempt.nas_id else attempt.nas_ip,
        "nas_ip": attempt.nas_ip, "login": attempt.login, "session": attempt.acct_session_id,
        "type": attempt.request_type, "attempt": attempt.attempt, "result": attempt.result,
        "error_cause": attempt.error_cause, "error_name": cause.name if cause else None,
        "meaning": cause.meaning if cause else None, "meaning_pt": cause.meaning_pt if cause else None,
        "latency_ms": attempt.latency_ms, "operator": attempt.operator_login,
        "reason": attempt.reason, "job": attempt.job_id,
    }


@click.group("coa")
def coa_group() -> None:
    """Change of Authorization and Disconnect (RFC 5176) for live sessions."""


def _send(state: AppState, login: str, kind: str, reason: str, wait: float | None) -> None:
    with state.context() as ctx:
        jobs = coa.request(ctx, login, kind, reason)
        ids = [job.id for job in jobs]
        rows = [job_row(job) for job in jobs]
    if wait:
        deadline = time.monotonic() + min(wait, MAX_WAIT)
        while True:
            with state.reading() as session:
                found = list(session.scalars(select(CoaJob).where(CoaJob.id.in_(ids))
                                             .order_by(CoaJob.id)))
                rows = [job_row(job) for job in found]
            settled = all(row["status"] in (jobs_db.DONE, jobs_db.FAILED) for row in rows)
            if settled or time.monotonic() >= deadline:
                break
            time.sleep(WAIT_STEP)
    render(state, rows[0] if len(rows) == 1 else rows)
    if wait:
        failed = [row for row in rows if row["status"] == jobs_db.FAILED]
        waiting = [row for row in rows if row["status"] not in (jobs_db.DONE, jobs_db.FAILED)]
        if failed:
            raise RuleViolation("coa.failed", f"job {failed[0]['id']} failed: {failed[0]['result']}")
        if waiting:
            raise RuleViolation("coa.not_settled", f"job {waiting[0]['id']} still {waiting[0]['status']} "
                                f"after {wait:g}s (is `aaa serve` running?)")


_reason = click.option("--reason", default=None, help="Why (kept in the history).")
_wait = click.option("--wait", type=click.FloatRange(0, MAX_WAIT), default=None,
                     help="Wait up to this many seconds for the NAS's answer.")


@coa_group.command("disconnect")
@click.argument("login")
@_reason
@_wait
@format_option
@pass_state
def disconnect(state: AppState, login: str, reason: str | None, wait: float | None) -> None:
    """Disconnect LOGIN's open sessions (the subscriber re-dials and gets the current answer)."""
    _send(state, login, DISCONNECT, reason or "operator: disconnect", wait)


@coa_group.command("update")
@click.argument("login")
@_reason
@_wait
@format_option
@pass_state
def update(state: AppState, login: str, reason: str | None, wait: float | None) -> None:
    """Re-send LOGIN's current speed to its open sessions (CoA-Request)."""
    _send(state, login, COA, reason or "operator: update", wait)


@coa_group.command("history")
@click.argument("login")
@click.option("--limit", type=click.IntRange(1, 100_000), default=500, show_default=True)
@format_option
@pass_state
def history(state: AppState, login: str, limit: int) -> None:
    """Every CoA/Disconnect sent for LOGIN (every service that had it), newest first."""
    with state.reading() as session:
        service_ids = set(session.scalars(select(Service.id).where(Service.login == login)))
        service_ids |= set(session.scalars(select(CoaAttempt.service_id)
                                           .where(CoaAttempt.login == login).distinct()))
        service_ids |= set(session.scalars(select(CoaJob.service_id)
                                           .where(CoaJob.login == login).distinct()))
        if not service_ids:
            raise NotFound("service", login)
        names = {nas_id: name for nas_id, name in session.execute(select(Nas.id, Nas.name))}
        rows = [attempt_row(a, names) for a in jobs_db.history(session, sorted(service_ids), limit)]
    render(state, rows)


@coa_group.command("jobs")
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--login", default=None)
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@format_option
@pass_state
def jobs(state: AppState, status: str | None, login: str | None, limit: int) -> None:
    """CoA/Disconnect jobs, newest first."""
    query = select(CoaJob).order_by(CoaJob.id.desc()).limit(limit)
    if status:
        query = query.where(CoaJob.status == status)
    if login:
        query = query.where(CoaJob.login == login)
    with state.reading() as session:
        render(state, [job_row(job) for job in session.scalars(query)])


COMMANDS = [coa_group]
