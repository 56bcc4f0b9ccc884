"""Routines (Rotinas): tasks run on cron-like fields, each run logged, never two at once.

Cron fields are judged in the provider's time zone: month 1-12, day 1-31, weekday 0-6
(0 or 7 = Sunday), hour 0-23, minute 0-59; each field takes `*`, numbers, ranges `a-b`,
lists `a,b` and steps `*/n` or `a-b/n`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from aaa.db.models import Invoice, Routine, RoutineRun, ScheduledTask, Service
from billing_bridge import bridge, trust
from billing_bridge.rules import MANAGED
from management import audit, connections
from management.context import Actor, Context
from management.errors import NotFound, RuleViolation
from management.services import change_status

ROUTINE_ACTOR = Actor(operator_id=None, login="routine", is_admin=True, permissions=frozenset())
_STALE_LOCK = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RoutineSettings:
    acct_interim_interval: int = 300
    stale_after_intervals: int = 3
    auth_log_retention_days: int = 90


@dataclass
class TaskResult:
    counts: dict[str, int] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)


def _changes(outcome: bridge.RoutineOutcome) -> TaskResult:
    return TaskResult(outcome.counts, [f"{c.login}: {c.from_status} -> {c.to_status} ({c.reason})"
                                       for c in outcome.changes])


def run_scheduled_tasks(ctx: Context, dry_run: bool) -> TaskResult:
    """Status changes and cancellations scheduled for today or before."""
    due = list(ctx.session.scalars(select(ScheduledTask).where(
        ScheduledTask.done_at.is_(None), ScheduledTask.run_on <= ctx.today).order_by(ScheduledTask.id)))
    result = TaskResult({"due": len(due), "applied": 0, "refused": 0})
    for task in due:
        service = ctx.session.get(Service, task.service_id)
        login = service.login if service else f"service {task.service_id}"
        result.details.append(f"{login}: {task.kind} -> {task.target_status} (task {task.id})")
        if dry_run or service is None:
            continue
        try:
            with ctx.session.begin_nested():
                change_status(ctx, service.login, task.target_status,
                              note=f"scheduled task {task.id} by {task.created_by}: {task.note or ''}")
            result.counts["applied"] += 1
        except RuleViolation as refused:
            result.counts["refused"] += 1
            result.details.append(f"  refused: {refused}")
        task.done_at = ctx.now
    return result


def _logins(kind: str, logins: list[str]) -> TaskResult:
    return TaskResult({kind: len(logins)}, logins)


TaskFunction = Callable[[Context, bool, RoutineSettings], TaskResult]
TASKS: dict[str, TaskFunction] = {
    "SUSPENSION": lambda ctx, dry, _: _changes(bridge.suspension_routine(ctx, dry)),
    "ENABLE": lambda ctx, dry, _: _changes(bridge.enable_routine(ctx, dry)),
    "SCHEDULED_TASKS": lambda ctx, dry, _: run_scheduled_tasks(ctx, dry),
    "NAVIGATION_EXPIRY": lambda ctx, dry, _: _logins("expired", trust.expire_navigation(ctx, dry)),
    "TRUST_UNLOCK_EXPIRY": lambda ctx, dry, _: _logins("expired", trust.expire_trust_unlocks(ctx, dry)),
    "STALE_SESSIONS": lambda ctx, dry, s: TaskResult(
        {"closed": 0 if dry else connections.close_stale(ctx, s.acct_interim_interval,
                                                         s.stale_after_intervals)}),
    "LOG_RETENTION": lambda ctx, dry, s: TaskResult(
        {"deleted": connections.purge_auth_log(ctx, s.auth_log_retention_days, dry)}),
    "CONNECTION_ALARMS": lambda ctx, dry, _: TaskResult(
        {"raised": 0 if dry else len(connections.raise_alarms(ctx))}),
}


# --- cron fields ------------------------------------------------------------------------

_LIMITS = {"month": (1, 12), "day": (1, 31), "weekday": (0, 7), "hour": (0, 23), "minute": (0, 59)}


def parse_field(name: str, text: str) -> frozenset[int]:
    low, high = _LIMITS[name]
    values: set[int] = set()
    for part in text.replace(" ", "").split(","):
        try:
            base, _, step_text = part.partition("/")
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = low, high
            elif "-" in base:
                start, end = (int(x) for x in base.split("-", 1))
            else:
                start = end = int(base)
        except ValueError:
            raise RuleViolation("routine.cron_invalid", f"{name}: cannot read {part!r}") from None
        if step < 1 or not low <= start <= end <= high:
            raise RuleViolation("routine.cron_invalid", f"{name}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    if name == "weekday" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def matches(routine: Routine, local: datetime) -> bool:
    """Whether the routine is due in this (local) minute."""
    weekday = (local.weekday() + 1) % 7  # cron: 0 = Sunday
    return (local.month in parse_field("month", routine.month)
            and local.day in parse_field("day", routine.day)
            and weekday in parse_field("weekday", routine.weekday)
            and local.hour in parse_field("hour", routine.hour)
            and local.minute in parse_field("minute", routine.minute))


# --- running ----------------------------------------------------------------------------


def get_routine(session: Session, name: str) -> Routine:
    routine = session.scalar(select(Routine).where(Routine.name == name))
    if routine is None:
        raise NotFound("routine", name)
    return routine


def _lock(sessions: sessionmaker[Session], routine_id: int, owner: str, now: datetime) -> bool:
    with sessions() as session, session.begin():
        taken = session.execute(update(Routine).where(
            Routine.id == routine_id,
            or_(Routine.locked_by.is_(None), Routine.locked_at < now - _STALE_LOCK),
        ).values(locked_by=owner, locked_at=now))
        return bool(taken.rowcount)  # type: ignore[attr-defined]


def _unlock(sessions: sessionmaker[Session], routine_id: int, owner: str, last_run: datetime | None) -> None:
    with sessions() as session, session.begin():
        values: dict[str, Any] = {"locked_by": None, "locked_at": None}
        if last_run is not None:
            values["last_run_at"] = last_run
        session.execute(update(Routine).where(Routine.id == routine_id, Routine.locked_by == owner)
                        .values(**values))


def run_routine(sessions: sessionmaker[Session], name: str, at: datetime, *, actor: Actor,
                owner: str, zone: Any, settings: RoutineSettings, dry_run: bool = False,
                wall: datetime | None = None) -> tuple[RoutineRun, TaskResult]:
    """Run one stored routine as of `at`, under its lock; the run is logged either way."""
    with sessions() as session:
        routine = get_routine(session, name)
        routine_id, task = routine.id, routine.task
    started = wall or at
    if not _lock(sessions, routine_id, owner, started):
        run = _log(sessions, routine_id, task, started, at, dry_run, actor, "skipped_locked", {}, None)
        return run, TaskResult()
    try:
        result, outcome, error = TaskResult(), "ok", None
        try:
            with sessions() as session:
                ctx = Context(session=session, actor=actor, now=at, zone=zone)
                try:
                    result = TASKS[task](ctx, dry_run, settings)
                except BaseException:
                    session.rollback()
                    raise
                if dry_run:
                    session.rollback()  # a dry run decides and writes nothing
                else:
                    session.commit()
        except RuleViolation as refused:
            outcome, error = "failed", str(refused)
        except Exception as exc:  # logged in the run, and the lock is released
            outcome, error = "failed", f"{type(exc).__name__}: {exc}"[:500]
        run = _log(sessions, routine_id, task, started, at, dry_run, actor, outcome, result.counts, error)
        return run, result
    finally:
        _unlock(sessions, routine_id, owner, None if dry_run else at)


def _log(sessions: sessionmaker[Session], routine_id: int | None, task: str, started: datetime,
         at: datetime, dry_run: bool, actor: Actor, result: str, counts: dict[str, int],
         error: str | None) -> RoutineRun:
    with sessions() as session, session.begin():
        run = RoutineRun(routine_id=routine_id, task=task, started_at=started, finished_at=started,
                         as_of=at, dry_run=dry_run, operator_login=actor.login, result=result,
                         counts=json.dumps(counts, sort_keys=True), error=error)
        session.add(run)
        session.flush()
        session.expunge(run)
    return run


def due_routines(session: Session, now: datetime, zone: Any) -> list[str]:
    """Names of enabled routines due this minute that have not run in it yet and that no
    other worker is running now (that one will log the run)."""
    local = now.astimezone(zone).replace(second=0, microsecond=0)
    minute_start = local.astimezone(now.tzinfo)
    return [r.name for r in session.scalars(select(Routine).where(Routine.enabled.is_(True))
                                            .order_by(Routine.id))
            if matches(r, local) and (r.last_run_at is None or r.last_run_at < minute_start)
            and (r.locked_by is None or r.locked_at is None or r.locked_at < now - _STALE_LOCK)]


def paid_since(session: Session, since: datetime) -> tuple[list[int], datetime | None]:
    """Suspended services whose invoices changed after `since` (the payment fast path)."""
    latest = session.scalar(select(func.max(Invoice.updated_at)).where(Invoice.updated_at > since))
    if latest is None:
        return [], None
    ids = list(session.scalars(
        select(Invoice.service_id).join(Service, Service.id == Invoice.service_id)
        .where(Invoice.updated_at > since, Invoice.updated_at <= latest,
               Service.status.in_(MANAGED - {"enabled"})).distinct()))
    return ids, latest


# --- managing the stored routines ---------------------------------------------------------

CRON_FIELDS = ("month", "day", "weekday", "hour", "minute")


def list_routines(session: Session) -> list[Routine]:
    return list(session.scalars(select(Routine).order_by(Routine.name)))


def add_routine(ctx: Context, name: str, task: str, month: str = "*", day: str = "*",
                weekday: str = "*", hour: str = "*", minute: str = "0") -> Routine:
    """Store a routine; its cron fields are checked now, not when it first runs."""
    ctx.require("routines.manage")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise RuleViolation("routine.name_invalid", "routine name: 1-100 characters")
    if task not in TASKS:
        raise RuleViolation("routine.task_unknown",
                            f"unknown task {task}; one of {', '.join(sorted(TASKS))}")
    if ctx.session.scalar(select(Routine.id).where(Routine.name == name)):
        raise RuleViolation("routine.duplicate", f"routine {name} already exists")
    fields = {"month": month, "day": day, "weekday": weekday, "hour": hour, "minute": minute}
    for key, text in fields.items():
        parse_field(key, text)
    routine = Routine(name=name, task=task, enabled=True, created_at=ctx.now,
                      **{k: v.replace(" ", "") for k, v in fields.items()})
    ctx.session.add(routine)
    ctx.session.flush()
    audit.record(ctx, "routine", routine.id, "create", {"task": [None, task], **{
        k: [None, getattr(routine, k)] for k in CRON_FIELDS}}, note=name)
    return routine


def remove_routine(ctx: Context, name: str) -> Routine:
    """Delete a routine; its past runs stay in the log (detached from it)."""
    ctx.require("routines.manage")
    routine = get_routine(ctx.session, name)
    if routine.locked_by is not None and routine.locked_at is not None \
            and routine.locked_at >= ctx.now - _STALE_LOCK:
        raise RuleViolation("routine.running", f"routine {name} is running ({routine.locked_by})")
    ctx.session.execute(update(RoutineRun).where(RoutineRun.routine_id == routine.id)
                        .values(routine_id=None))
    audit.record(ctx, "routine", routine.id, "remove", {"task": [routine.task, None]}, note=name)
    ctx.session.delete(routine)
    ctx.session.flush()
    return routine


def list_runs(session: Session, name: str | None = None, limit: int = 100) -> list[RoutineRun]:
    query = select(RoutineRun).order_by(RoutineRun.id.desc()).limit(limit)
    if name is not None:
        query = query.where(RoutineRun.routine_id == get_routine(session, name).id)
    return list(session.scalars(query))
