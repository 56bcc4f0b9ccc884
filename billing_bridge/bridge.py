"""The suspension and enable routines: invoices → service statuses, set-based.

One aggregate query over the invoices gives each service's overdue debt; the pure rules
decide; the changes are written in bulk (statuses, history, change feed, CoA jobs for the
services online) in the caller's transaction. A dry run decides and writes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import func, or_, select, text, update

from aaa.db.models import Invoice, PaymentMethod, Service
from billing_bridge.rules import (
    MANAGED,
    RANK,
    Change,
    Debt,
    MethodRule,
    ServiceDebt,
    debt_status,
    targets,
)
from management import audit, coa
from management.context import Context

OPEN_STATUSES = ("open", "partially_paid")
_CHUNK = 1000


@dataclass
class RoutineOutcome:
    examined: int = 0
    changes: list[Change] = field(default_factory=list)
    coa_jobs: int = 0

    @property
    def counts(self) -> dict[str, int]:
        by_status = Counter(change.to_status for change in self.changes)
        return {"examined": self.examined, "changed": len(self.changes), **by_status,
                "coa_jobs": self.coa_jobs}


def method_rules(ctx: Context) -> dict[int, MethodRule]:
    return {m.id: MethodRule(m.name, m.allows_partial, m.partial_after_days, m.allows_total,
                             m.total_after_days, m.min_open_amount)
            for m in ctx.session.scalars(select(PaymentMethod))}


def _money(value: object) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def load_debts(ctx: Context, today: date, service_ids: Sequence[int] | None = None) -> list[ServiceDebt]:
    """Every debt-managed service (or those given, with their associated services) and the
    verdict of its own overdue invoices."""
    overdue = (select(Invoice.service_id,
                      func.min(Invoice.due_date).label("oldest"),
                      func.sum(Invoice.amount - Invoice.amount_paid).label("open_amount"),
                      func.min(Invoice.payment_method_id).label("invoice_method"))
               .where(Invoice.status.in_(OPEN_STATUSES), Invoice.due_date < today)
               .group_by(Invoice.service_id).subquery())
    query = (select(Service.id, Service.login, Service.status, Service.associated_service_id,
                    Service.trust_unlock_until, Service.payment_method_id, overdue.c.oldest,
                    overdue.c.open_amount, overdue.c.invoice_method)
             .outerjoin(overdue, overdue.c.service_id == Service.id)
             .where(Service.status.in_(MANAGED)))
    if service_ids is not None:
        ids = list(service_ids)
        partners = select(Service.associated_service_id).where(Service.id.in_(ids))
        query = query.where(or_(Service.id.in_(ids), Service.associated_service_id.in_(ids),
                                Service.id.in_(partners)))
    methods = method_rules(ctx)
    debts = []
    nothing = debt_status(Debt.none(), None, today)  # shared by every service owing nothing
    for (service_id, login, status, associated, trust_until, method_id, oldest, open_amount,
         invoice_method) in ctx.session.execute(query.execution_options(yield_per=10_000)):
        if oldest is None:
            verdict = nothing
        else:
            if isinstance(oldest, str):  # SQLite aggregates come back as text
                oldest = date.fromisoformat(oldest)
            method = methods.get(method_id or invoice_method or -1)
            verdict = debt_status(Debt(oldest, _money(open_amount)), method, today)
        debts.append(ServiceDebt(service_id, login, status, associated,
                                 trust_until is not None and trust_until > ctx.now, verdict))
    return debts


def apply(ctx: Context, changes: Sequence[Change], action_note: str) -> int:
    """Write status changes in bulk with history, change feed and CoA jobs; CoA job count."""
    if not changes:
        return 0
    if ctx.session.get_bind().dialect.name == "postgresql":
        return _apply_postgresql(ctx, changes, action_note)
    customer_of: dict[int, int] = {}
    ids = [c.service_id for c in changes]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        customer_of.update(ctx.session.execute(
            select(Service.id, Service.customer_id).where(Service.id.in_(chunk))).all())
    by_target: dict[str, list[int]] = {}
    for change in changes:
        by_target.setdefault(change.to_status, []).append(change.service_id)
    for status, service_ids in by_target.items():
        for start in range(0, len(service_ids), _CHUNK):
            ctx.session.execute(update(Service).where(Service.id.in_(service_ids[start:start + _CHUNK]))
                                .values(status=status, updated_at=ctx.now, trust_unlock_until=None))
    audit.record_many(ctx, [
        {"object_type": "service", "object_id": c.service_id, "customer_id": customer_of.get(c.service_id),
         "action": f"status:{c.to_status}", "changes": {"status": [c.from_status, c.to_status]},
         "note": f"{action_note}: {c.reason}"}
        for c in changes])
    audit.publish_many(ctx, "service", ids)
    return coa.enqueue_many(ctx, ids, coa.DISCONNECT, action_note)


# PostgreSQL: the same writes as `apply`, each one statement over arrays (unnest), so that
# tens of thousands of changes cost a handful of round trips instead of ORM bulk inserts.
_PG_STATUS = text("""
    UPDATE services AS s SET status = c.to_status, updated_at = :now, trust_unlock_until = NULL
    FROM unnest(CAST(:ids AS bigint[]), CAST(:tos AS text[])) AS c(id, to_status)
    WHERE s.id = c.id""")
_PG_HISTORY = text("""
    INSERT INTO history (at, operator_id, operator_login, object_type, object_id, customer_id,
                         action, changes, note)
    SELECT :now, :operator_id, :operator_login, 'service', c.id::text, s.customer_id,
           'status:' || c.to_status, c.changes, c.note
    FROM unnest(CAST(:ids AS bigint[]), CAST(:tos AS text[]), CAST(:diffs AS text[]),
                CAST(:notes AS text[])) WITH ORDINALITY AS c(id, to_status, changes, note, n)
    JOIN services AS s ON s.id = c.id
    ORDER BY c.n""")
_PG_FEED = text("""
    INSERT INTO change_feed (object_type, object_id, at)
    SELECT 'service', c.id::text, :now
    FROM unnest(CAST(:ids AS bigint[])) WITH ORDINALITY AS c(id, n) ORDER BY c.n""")


def _apply_postgresql(ctx: Context, changes: Sequence[Change], action_note: str) -> int:
    session = ctx.session
    ids = [c.service_id for c in changes]
    actor = {"operator_id": ctx.actor.operator_id, "operator_login": ctx.actor.login}
    session.execute(_PG_STATUS, {"now": ctx.now, "ids": ids, "tos": [c.to_status for c in changes]})
    session.execute(_PG_HISTORY, {
        "now": ctx.now, **actor, "ids": ids, "tos": [c.to_status for c in changes],
        "diffs": [json.dumps({"status": [c.from_status, c.to_status]}) for c in changes],
        "notes": [f"{action_note}: {c.reason}" for c in changes]})
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": audit.FEED_LOCK_KEY})
    session.execute(_PG_FEED, {"now": ctx.now, "ids": ids})
    session.execute(text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": audit.NOTIFY_CHANNEL, "payload": "service:bulk"})
    count = coa.enqueue_many(ctx, ids, coa.DISCONNECT, action_note)
    session.expire_all()  # ORM objects loaded before must see the new statuses
    return count


def _run(ctx: Context, stricter: bool, dry_run: bool, note: str,
         service_ids: Iterable[int] | None = None) -> RoutineOutcome:
    debts = load_debts(ctx, ctx.today, list(service_ids) if service_ids is not None else None)
    wanted = [c for c in targets(debts)
              if (RANK[c.to_status] > RANK[c.from_status]) == stricter]
    outcome = RoutineOutcome(examined=len(debts), changes=wanted)
    if not dry_run:
        outcome.coa_jobs = apply(ctx, wanted, note)
    return outcome


def suspension_routine(ctx: Context, dry_run: bool = False) -> RoutineOutcome:
    """Services with overdue invoices past their method's thresholds are suspended."""
    ctx.require("services.suspend")
    return _run(ctx, stricter=True, dry_run=dry_run, note="suspension routine")


def enable_routine(ctx: Context, dry_run: bool = False,
                   service_ids: Iterable[int] | None = None) -> RoutineOutcome:
    """Suspended services whose debt no longer calls for it go back (to enabled, or from
    total to partial suspension)."""
    ctx.require("services.enable")
    return _run(ctx, stricter=False, dry_run=dry_run, note="enable routine", service_ids=service_ids)
