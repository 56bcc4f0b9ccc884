"""Trust unlock (Desbloqueio em Confiança) and the expiries that routines apply."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from aaa.db.models import Service, TrustUnlock
from billing_bridge.rules import DEBT, PARTIAL
from management import audit, coa
from management.context import Context
from management.errors import RuleViolation
from management.services import FIELDS, find_service

UNLOCKABLE = (DEBT, PARTIAL)
SELF_SERVICE_DURATION = timedelta(days=1)


def _unlock(ctx: Context, service: Service, until: datetime, note: str, self_service: bool) -> TrustUnlock:
    if service.status not in UNLOCKABLE:
        raise RuleViolation("trust.not_suspended",
                            f"{service.login} is {service.status}; only services suspended for debt"
                            " or partially can be unlocked in trust")
    if until <= ctx.now:
        raise RuleViolation("trust.until_past", f"trust unlock end {until.isoformat()} is not in the future")
    before = audit.snapshot(service, FIELDS)
    service.trust_unlock_until = until
    service.updated_at = ctx.now
    unlock = TrustUnlock(service_id=service.id, started_at=ctx.now, until=until,
                         self_service=self_service, operator_login=ctx.actor.login, note=note)
    ctx.session.add(unlock)
    ctx.session.flush()
    audit.record(ctx, "service", service.id, "trust_unlock_self" if self_service else "trust_unlock",
                 audit.diff(before, audit.snapshot(service, FIELDS)), customer_id=service.customer_id,
                 note=note)
    audit.publish(ctx, "service", service.id)
    coa.enqueue(ctx, service, coa.DISCONNECT, f"trust unlock until {until.isoformat()}")
    return unlock


def trust_unlock(ctx: Context, login: str, until: datetime, note: str) -> TrustUnlock:
    """By an operator: an end date and a note are required."""
    ctx.require("services.trust_unlock")
    if not note or not note.strip():
        raise RuleViolation("trust.note_required", "a note is required for a trust unlock")
    return _unlock(ctx, find_service(ctx.session, login, actor=ctx.actor), until, note.strip(),
                   self_service=False)


def self_service_unlock(ctx: Context, login: str) -> TrustUnlock:
    """By the subscriber (portal): one day, at most once per calendar month (provider's zone)."""
    service = find_service(ctx.session, login)
    local = ctx.now.astimezone(ctx.zone)
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    used = ctx.session.scalar(select(func.count()).select_from(TrustUnlock).where(
        TrustUnlock.service_id == service.id, TrustUnlock.self_service.is_(True),
        TrustUnlock.started_at >= month_start))
    if used:
        raise RuleViolation("trust.monthly_limit",
                            f"{login} already used its self-service trust unlock this month")
    return _unlock(ctx, service, ctx.now + SELF_SERVICE_DURATION,
                   "self-service trust unlock (subscriber portal)", self_service=True)


def _expire(ctx: Context, ends: Any, clear: tuple[str, ...], action: str, live_change: str | None,
            dry_run: bool) -> list[str]:
    """Services whose `ends` moment passed: clear `clear`, with history, change feed and,
    for a subscriber online, a CoA job (`live_change`)."""
    due = list(ctx.session.scalars(select(Service).where(ends.is_not(None), ends <= ctx.now)))
    if dry_run:
        return [s.login for s in due]
    for service in due:
        before = audit.snapshot(service, FIELDS)
        for name in clear:
            setattr(service, name, None)
        service.updated_at = ctx.now
        ctx.session.flush()
        audit.record(ctx, "service", service.id, action,
                     audit.diff(before, audit.snapshot(service, FIELDS)), customer_id=service.customer_id)
        audit.publish(ctx, "service", service.id)
        if live_change is not None:
            coa.enqueue(ctx, service, live_change, action.replace("_", " "))
    return [s.login for s in due]


def expire_trust_unlocks(ctx: Context, dry_run: bool = False) -> list[str]:
    """Trust unlocks whose end passed: the service answers by its debt status again."""
    ctx.require("services.suspend")
    return _expire(ctx, Service.trust_unlock_until, ("trust_unlock_until",), "trust_unlock_expired",
                   coa.DISCONNECT, dry_run)


def expire_navigation(ctx: Context, dry_run: bool = False) -> list[str]:
    """Custom navigation whose end passed is removed; live sessions get the plan's speed."""
    ctx.require("services.edit")
    return _expire(ctx, Service.nav_until, ("nav_download_kbps", "nav_upload_kbps", "nav_until"),
                   "navigation_expired", coa.COA, dry_run)
