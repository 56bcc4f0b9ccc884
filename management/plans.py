"""Plans (Serviços/Planos): speeds in kbit/s, price, default pool, association flag."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from aaa.db.enums import ServiceStatus
from aaa.db.models import Plan, Service
from management import audit, coa
from management.context import Context
from management.errors import NotFound, RuleViolation

FIELDS = ("name", "download_kbps", "upload_kbps", "price", "technology", "pool",
          "allows_association")


def parse_money(raw: str | Decimal | int) -> Decimal:
    try:
        value = Decimal(str(raw).replace(",", "."))
    except InvalidOperation:
        raise RuleViolation("money.invalid", f"invalid amount: {raw}") from None
    if not value.is_finite() or value < 0:
        raise RuleViolation("money.invalid", f"invalid amount: {raw}")
    return value.quantize(Decimal("0.01"))


def get_plan(session: Session, name: str) -> Plan:
    plan = session.scalar(select(Plan).where(Plan.name == name))
    if plan is None:
        raise NotFound("plan", name)
    return plan


def _check_speeds(download: int, upload: int) -> None:
    if download <= 0 or upload <= 0:
        raise RuleViolation("plan.speed_invalid", "download and upload must be positive kbit/s")


def create_plan(
    ctx: Context, name: str, download_kbps: int, upload_kbps: int,
    price: Decimal | str = "0", technology: str | None = None, pool: str | None = None,
    allows_association: bool = False,
) -> Plan:
    ctx.require("plans.edit")
    if not name.strip():
        raise RuleViolation("plan.name_required", "plan name is required")
    _check_speeds(download_kbps, upload_kbps)
    if ctx.session.scalar(select(Plan.id).where(Plan.name == name)):
        raise RuleViolation("plan.name_duplicate", f"plan {name} already exists")
    plan = Plan(name=name, download_kbps=download_kbps, upload_kbps=upload_kbps,
                price=parse_money(price), technology=technology, pool=pool,
                allows_association=allows_association, created_at=ctx.now)
    ctx.session.add(plan)
    ctx.session.flush()
    audit.record(ctx, "plan", plan.id, "create", audit.diff({}, audit.snapshot(plan, FIELDS)))
    audit.publish(ctx, "plan", plan.id)
    return plan


def clone_plan(ctx: Context, source_name: str, new_name: str) -> Plan:
    source = get_plan(ctx.session, source_name)
    return create_plan(ctx, new_name, source.download_kbps, source.upload_kbps, source.price,
                       source.technology, source.pool, source.allows_association)


def list_plans(session: Session) -> list[Plan]:
    return list(session.scalars(select(Plan).order_by(Plan.name)))


def mass_change(ctx: Context, from_name: str, to_name: str, update_price: bool = False) -> list[Service]:
    """Move every live service of plan `from` to plan `to`, one history row each.

    Without `update_price` each subscriber keeps paying what he paid (his old price becomes
    an override); with it, the new plan's price applies.
    """
    ctx.require("plans.edit")
    source = get_plan(ctx.session, from_name)
    target = get_plan(ctx.session, to_name)
    if source.id == target.id:
        raise RuleViolation("plan.same", "source and target plans are the same")
    services = list(ctx.session.scalars(
        select(Service).where(Service.plan_id == source.id,
                              Service.status != ServiceStatus.CANCELLED.value).order_by(Service.id)))
    for service in services:
        before = {"plan": source.name, "price_override": service.price_override}
        service.plan_id = target.id
        service.plan = target
        if update_price:
            service.price_override = None
        elif service.price_override is None:
            service.price_override = source.price
        service.updated_at = ctx.now
        after = {"plan": target.name, "price_override": service.price_override}
        audit.record(ctx, "service", service.id, "mass_plan_change",
                     audit.diff(before, after), customer_id=service.customer_id,
                     note=f"mass change {source.name} -> {target.name}")
        audit.publish(ctx, "service", service.id)
        coa.enqueue(ctx, service, coa.COA, f"mass plan change {source.name} -> {target.name}")
    return services
