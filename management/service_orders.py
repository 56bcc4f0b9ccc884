"""Service orders (Ordens de Serviço): opened from a ticket when a technician must act,
closed with a closing reason (Motivo de Fechamento) from a configurable list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aaa.db.models import Customer, Service
from aaa.db.models_tickets import ORDER_STATUSES, ServiceOrder, ServiceOrderReason, Ticket
from management import audit
from management.context import Context
from management.errors import NotFound, RuleViolation
from management.tickets import AWAITING, DRAFT, FINISHED, PENDING, get_ticket

OPEN, CLOSED = ORDER_STATUSES
FIELDS = ("status", "kind", "technician", "description", "closed_at", "closed_by_login",
          "closing_reason_id", "closing_description")


# --- closing reasons ---------------------------------------------------------------------

def get_reason(session: Session, name: str) -> ServiceOrderReason:
    found = session.scalar(select(ServiceOrderReason).where(ServiceOrderReason.name == name.strip()))
    if found is None:
        raise NotFound("closing_reason", name)
    return found


def create_reason(ctx: Context, name: str) -> ServiceOrderReason:
    ctx.require("tickets.configure")
    name = name.strip()
    if not name or len(name) > 100:
        raise RuleViolation("closing_reason.name_invalid", "a closing reason has 1-100 characters")
    if ctx.session.scalar(select(ServiceOrderReason.id).where(ServiceOrderReason.name == name)):
        raise RuleViolation("closing_reason.duplicate", f"closing reason {name} already exists")
    reason = ServiceOrderReason(name=name, active=True, created_at=ctx.now)
    ctx.session.add(reason)
    ctx.session.flush()
    audit.record(ctx, "closing_reason", reason.name, "create", {"name": [None, name]})
    return reason


def list_reasons(session: Session) -> list[ServiceOrderReason]:
    return list(session.scalars(select(ServiceOrderReason).order_by(ServiceOrderReason.name)))


def reason_dict(r: ServiceOrderReason) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "active": r.active, "created_at": r.created_at.isoformat()}


# --- orders ------------------------------------------------------------------------------

def get_order(session: Session, order_id: int) -> ServiceOrder:
    order = session.get(ServiceOrder, order_id)
    if order is None:
        raise NotFound("service_order", order_id)
    return order


def order_dict(session: Session, o: ServiceOrder) -> dict[str, Any]:
    ticket = session.get(Ticket, o.ticket_id)
    service = session.get(Service, o.service_id)
    customer = session.get(Customer, o.customer_id)
    reason = session.get(ServiceOrderReason, o.closing_reason_id) if o.closing_reason_id else None
    return {
        "id": o.id, "ticket": ticket.protocol if ticket else None, "customer_id": o.customer_id,
        "customer": customer.name if customer else None, "login": service.login if service else None,
        "kind": o.kind, "status": o.status, "technician": o.technician, "description": o.description,
        "opened_by": o.opened_by_login, "opened_at": o.opened_at.isoformat(),
        "closed_at": o.closed_at.isoformat() if o.closed_at else None, "closed_by": o.closed_by_login,
        "closing_reason": reason.name if reason else None, "closing_description": o.closing_description,
    }


def _clean(value: str | None, what: str, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise RuleViolation("service_order.text_too_long", f"{what} is longer than {limit} characters")
    return value or None


def open_order(ctx: Context, protocol: str, kind: str, description: str,
               technician: str | None = None) -> ServiceOrder:
    """Open an order from a ticket; a ticket awaiting analysis becomes pending."""
    ctx.require("orders.open")
    ticket = get_ticket(ctx.session, protocol)
    if ticket.status == DRAFT:
        raise RuleViolation("ticket.draft", f"ticket {protocol} is a draft: complete it first")
    if ticket.status == FINISHED:
        raise RuleViolation("ticket.finished", f"ticket {protocol} is finished")
    kind_text = _clean(kind, "kind", 100)
    text = _clean(description, "description", 10_000)
    if not kind_text:
        raise RuleViolation("service_order.kind_required", "a service order needs a kind (type of O.S.)")
    if not text:
        raise RuleViolation("service_order.description_required", "a service order needs a description")
    order = ServiceOrder(
        ticket_id=ticket.id, customer_id=ticket.customer_id, service_id=ticket.service_id,
        kind=kind_text, status=OPEN, technician=_clean(technician, "technician", 100),
        description=text, opened_by_login=ctx.actor.login, opened_at=ctx.now)
    ctx.session.add(order)
    ctx.session.flush()
    audit.record(ctx, "service_order", order.id, "open", audit.diff({}, audit.snapshot(order, FIELDS)),
                 customer_id=order.customer_id, note=f"from ticket {ticket.protocol}")
    if ticket.status == AWAITING:
        ticket.status, ticket.updated_at = PENDING, ctx.now
        audit.record(ctx, "ticket", ticket.protocol, "edit", {"status": [AWAITING, PENDING]},
                     customer_id=ticket.customer_id, note=f"service order {order.id} opened")
    return order


def close_order(ctx: Context, order_id: int, reason: str, description: str | None = None) -> ServiceOrder:
    """Close an open order with one of the configured closing reasons."""
    ctx.require("orders.close")
    order = get_order(ctx.session, order_id)
    if order.status != OPEN:
        raise RuleViolation("service_order.closed", f"service order {order_id} is already closed")
    if not (reason or "").strip():
        raise RuleViolation("service_order.reason_required", "a closing reason is required")
    chosen = get_reason(ctx.session, reason)
    if not chosen.active:
        raise RuleViolation("closing_reason.inactive", f"closing reason {reason} is inactive")
    before = audit.snapshot(order, FIELDS)
    order.status, order.closing_reason_id = CLOSED, chosen.id
    order.closing_description = _clean(description, "closing description", 10_000)
    order.closed_at, order.closed_by_login = ctx.now, ctx.actor.login
    ctx.session.flush()
    audit.record(ctx, "service_order", order.id, "close", audit.diff(before, audit.snapshot(order, FIELDS)),
                 customer_id=order.customer_id, note=f"reason: {chosen.name}")
    return order


def list_orders(
    session: Session, reason: str | None = None, status: str | None = None,
    since: datetime | None = None, until: datetime | None = None, protocol: str | None = None,
    login: str | None = None, customer_id: int | None = None, limit: int = 1000,
) -> list[ServiceOrder]:
    """Newest first; the period is the opening time; `reason` is the closing reason's name."""
    query = select(ServiceOrder).order_by(ServiceOrder.opened_at.desc(), ServiceOrder.id.desc()).limit(limit)
    if reason:
        query = query.where(ServiceOrder.closing_reason_id == get_reason(session, reason).id)
    if status:
        if status not in ORDER_STATUSES:
            raise RuleViolation("service_order.status_invalid",
                                f"status must be one of {', '.join(ORDER_STATUSES)}: {status}")
        query = query.where(ServiceOrder.status == status)
    if since is not None:
        query = query.where(ServiceOrder.opened_at >= since)
    if until is not None:
        query = query.where(ServiceOrder.opened_at < until)
    if protocol:
        query = query.where(ServiceOrder.ticket_id == get_ticket(session, protocol).id)
    if login:
        query = query.where(ServiceOrder.service_id.in_(select(Service.id).where(Service.login == login)))
    if customer_id is not None:
        query = query.where(ServiceOrder.customer_id == customer_id)
    return list(session.scalars(query))
