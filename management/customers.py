"""Customers (Clientes): PF with a CPF or PJ with a CNPJ."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from aaa.db.enums import ServiceStatus
from aaa.db.models import Customer, Service
from management import audit, scope
from management.context import Actor, Context
from management.errors import NotFound, RuleViolation
from management.validation import normalize_document

FIELDS = ("person_type", "name", "document", "email", "phones", "city", "state", "address",
          "group_name", "origin", "active")


def get_customer(session: Session, ref: str | int, *, actor: Actor | None = None) -> Customer:
    """A customer by id, or by CPF/CNPJ (with or without punctuation); with `actor`, only
    one of the cities he is limited to (management.scope)."""
    text_ref = str(ref).strip()
    customer: Customer | None = None
    if text_ref.isdigit() and len(text_ref) < 11:
        customer = session.get(Customer, int(text_ref))
    else:
        try:
            document, _ = normalize_document(text_ref)
        except RuleViolation:
            raise NotFound("customer", text_ref) from None
        customer = session.scalar(select(Customer).where(Customer.document == document))
    if customer is None:
        raise NotFound("customer", text_ref)
    return scope.check_customer(session, actor, customer)


def create_customer(
    ctx: Context,
    name: str,
    document: str,
    email: str | None = None,
    phones: str | None = None,
    city: str | None = None,
    state: str | None = None,
    address: str | None = None,
    group_name: str | None = None,
    origin: str | None = None,
) -> Customer:
    ctx.require("customers.edit")
    if not name.strip():
        raise RuleViolation("customer.name_required", "customer name is required")
    normalized, person_type = normalize_document(document)
    if ctx.session.scalar(select(Customer.id).where(Customer.document == normalized)):
        raise RuleViolation("customer.document_duplicate",
                            f"a customer with document {normalized} already exists")
    if state is not None and len(state.strip()) != 2:
        raise RuleViolation("customer.state_invalid", f"state must be a 2-letter code: {state}")
    scope.check_city(ctx.session, ctx.actor, city, "the new customer")
    customer = Customer(
        person_type=person_type.value, name=name.strip(), document=normalized, email=email,
        phones=phones, city=city, state=state.strip().upper() if state else None,
        address=address, group_name=group_name, origin=origin, active=True,
        created_at=ctx.now,
    )
    ctx.session.add(customer)
    ctx.session.flush()
    audit.record(ctx, "customer", customer.id, "create",
                 audit.diff({}, audit.snapshot(customer, FIELDS)), customer_id=customer.id)
    return customer


def list_customers(
    session: Session, active: bool | None = None, city: str | None = None,
    search: str | None = None, *, actor: Actor | None = None,
) -> list[Customer]:
    query = scope.restrict(select(Customer).order_by(Customer.id), session, actor)
    if active is not None:
        query = query.where(Customer.active == active)
    if city:
        query = query.where(Customer.city == city)
    if search:
        query = query.where(Customer.name.ilike(f"%{search}%"))
    return list(session.scalars(query))


def inactivate_customer(ctx: Context, ref: str | int, note: str | None = None) -> Customer:
    """Hide a customer; refused while any of its services is not cancelled."""
    ctx.require("customers.inactivate")
    customer = get_customer(ctx.session, ref, actor=ctx.actor)
    live = ctx.session.scalars(
        select(Service.login).where(
            Service.customer_id == customer.id, Service.status != ServiceStatus.CANCELLED.value
        )
    ).all()
    if live:
        raise RuleViolation(
            "customer.has_live_services",
            f"customer {customer.id} still has services that are not cancelled: {', '.join(live)}",
        )
    if customer.active:
        customer.active = False
        audit.record(ctx, "customer", customer.id, "inactivate", {"active": [True, False]},
                     customer_id=customer.id, note=note)
    return customer
