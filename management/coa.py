"""Queueing CoA/Disconnect jobs when a write changes what a live session should get.

Called inside the writing transaction, so the job commits (or not) with the change. Only
services with an open accounting session get a job; the daemon's dispatcher sends it.
"""

from __future__ import annotations

from sqlalchemy import select, text

from aaa.db.coa import PENDING, has_open_session
from aaa.db.enums import ServiceStatus
from aaa.db.models import CoaJob, Service
from management.audit import NOTIFY_CHANNEL
from management.context import Context
from management.errors import RuleViolation

DISCONNECT, COA = "disconnect", "coa"


def _partners(ctx: Context, service: Service) -> list[Service]:
    """Services whose answer follows this one's (association goes both ways)."""
    query = select(Service).where(Service.associated_service_id == service.id,
                                  Service.status != ServiceStatus.CANCELLED.value)
    partners = list(ctx.session.scalars(query))
    if service.associated_service_id is not None:
        other = ctx.session.get(Service, service.associated_service_id)
        if other is not None:
            partners.append(other)
    return partners


def enqueue(ctx: Context, service: Service, kind: str, reason: str,
            with_partners: bool = True) -> list[CoaJob]:
    """A job for the service (and its associated services) when it has an open session."""
    targets = [service, *(_partners(ctx, service) if with_partners else [])]
    jobs = []
    for target in targets:
        if not has_open_session(ctx.session, target.id):
            continue
        job = CoaJob(created_at=ctx.now, service_id=target.id, login=target.login, kind=kind,
                     reason=reason, operator_login=ctx.actor.login, fallback_disconnect=True,
                     status=PENDING, next_attempt_at=ctx.now)
        ctx.session.add(job)
        jobs.append(job)
    if jobs:
        ctx.session.flush()
        if ctx.session.get_bind().dialect.name == "postgresql":
            ctx.session.execute(text("SELECT pg_notify(:channel, :payload)"),
                                {"channel": NOTIFY_CHANNEL, "payload": "coa"})
    return jobs


def request(ctx: Context, login: str, kind: str, reason: str) -> list[CoaJob]:
    """An operator's explicit Disconnect or speed update (`aaa coa disconnect|update`)."""
    from management.services import find_service

    ctx.require("coa.send")
    service = find_service(ctx.session, login, actor=ctx.actor)
    jobs = enqueue(ctx, service, kind, reason, with_partners=False)
    if not jobs:
        raise RuleViolation("coa.no_open_session", f"{login} has no open session to act on")
    return jobs


def enqueue_many(ctx: Context, service_ids: list[int], kind: str, reason: str) -> int:
    """Bulk version for routines: one job per service that has an open session, written by
    set-based INSERT ... SELECT statements; returns how many jobs were queued."""
    from sqlalchemy import Boolean, exists, insert, literal

    from aaa.db.models import AcctSession

    online = exists().where(AcctSession.service_id == Service.id, AcctSession.stopped_at.is_(None))
    columns = ["created_at", "service_id", "login", "kind", "reason", "operator_login",
               "fallback_disconnect", "status", "next_attempt_at"]
    queued = 0
    for start in range(0, len(service_ids), 1000):
        chunk = sorted(service_ids[start:start + 1000])
        rows = select(literal(ctx.now, CoaJob.created_at.type), Service.id, Service.login,
                      literal(kind), literal(reason), literal(ctx.actor.login),
                      literal(True, Boolean()), literal(PENDING),
                      literal(ctx.now, CoaJob.next_attempt_at.type)
                      ).where(Service.id.in_(chunk), online).order_by(Service.id)
        result = ctx.session.execute(insert(CoaJob).from_select(columns, rows))
        queued += int(result.rowcount or 0)  # type: ignore[attr-defined]
    if queued and ctx.session.get_bind().dialect.name == "postgresql":
        ctx.session.execute(text("SELECT pg_notify(:channel, :payload)"),
                            {"channel": NOTIFY_CHANNEL, "payload": "coa"})
    return queued
