"""The billing contract's write side, for operators and for trying it by hand.

In production the billing module writes `invoices` and `payments` itself (see CONTRACT.md);
these functions do the same writes with the same rules so that the CLI, the tests and the
benchmark exercise exactly what the bridge will read. Every refusal is a RuleViolation
with a stable rule name; every write leaves a history row.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aaa.db.models import Invoice, Payment, PaymentMethod, Service
from billing_bridge.rules import PARTIAL
from management import audit, coa
from management.context import Context
from management.errors import NotFound, RuleViolation
from management.services import CANCELLED, find_service

PERMISSION = "billing.edit"
REDUCTIONS = ("relative", "absolute")
INVOICE_STATUSES = ("open", "paid", "partially_paid", "cancelled")
OPEN_STATUSES = ("open", "partially_paid")
METHOD_FIELDS = ("name", "allows_partial", "partial_after_days", "allows_total", "total_after_days",
                 "min_open_amount", "reduction_type", "reduction_value")
INVOICE_FIELDS = ("service_id", "due_date", "amount", "amount_paid", "status", "payment_method_id",
                  "description")
MAX_AMOUNT = Decimal("9999999999.99")  # NUMERIC(12,2)
MAX_DUE_YEARS = 10  # a due date further than this from today is a typing error


def parse_amount(raw: str | Decimal | int, rule: str = "billing.amount_invalid",
                 allow_zero: bool = False) -> Decimal:
    """A BRL amount: a decimal with at most two places, positive (or zero if allowed)."""
    try:
        value = Decimal(str(raw).strip().replace(",", "."))
    except InvalidOperation:
        raise RuleViolation(rule, f"not an amount: {raw!r}") from None
    if not value.is_finite():
        raise RuleViolation(rule, f"not an amount: {raw!r}")
    if value != value.quantize(Decimal("0.01")):
        raise RuleViolation(rule, f"{raw} has more than two decimal places")
    if value < 0 or (value == 0 and not allow_zero):
        raise RuleViolation(rule, f"amount must be {'zero or more' if allow_zero else 'positive'}: {raw}")
    if value > MAX_AMOUNT:
        raise RuleViolation(rule, f"amount {raw} exceeds {MAX_AMOUNT}")
    return value.quantize(Decimal("0.01"))


# --- payment methods (Formas de Cobrança) -------------------------------------------------


def get_method(session: Session, name: str) -> PaymentMethod:
    method = session.scalar(select(PaymentMethod).where(PaymentMethod.name == name))
    if method is None:
        raise NotFound("payment_method", name)
    return method


def list_methods(session: Session) -> list[PaymentMethod]:
    return list(session.scalars(select(PaymentMethod).order_by(PaymentMethod.name)))


def _days(value: int | None, option: str) -> int | None:
    if value is not None and value < 0:
        raise RuleViolation("billing.days_invalid", f"{option} must be zero or more days: {value}")
    return value


def create_method(ctx: Context, name: str, partial_after_days: int | None = None,
                  total_after_days: int | None = None, min_open_amount: str | Decimal = "0",
                  reduction_type: str = "relative", reduction_value: int = 50) -> PaymentMethod:
    """A payment method; partial suspension is allowed iff its days are given, total likewise."""
    ctx.require(PERMISSION)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise RuleViolation("billing.method_name_invalid", "payment method name: 1-100 characters")
    if ctx.session.scalar(select(PaymentMethod.id).where(PaymentMethod.name == name)):
        raise RuleViolation("billing.method_duplicate", f"payment method {name} already exists")
    partial = _days(partial_after_days, "partial_after_days")
    total = _days(total_after_days, "total_after_days")
    if partial is not None and total is not None and partial >= total:
        raise RuleViolation("billing.thresholds_order",
                            f"partial suspension ({partial} days) must come before total ({total} days)")
    if reduction_type not in REDUCTIONS:
        raise RuleViolation("billing.reduction_invalid",
                            f"reduction must be relative or absolute: {reduction_type}")
    if reduction_type == "relative" and not 0 <= reduction_value <= 100:
        raise RuleViolation("billing.reduction_invalid",
                            f"a relative reduction is a percentage 0-100: {reduction_value}")
    if reduction_type == "absolute" and reduction_value < 1:
        raise RuleViolation("billing.reduction_invalid",
                            f"an absolute reduction is a speed in kbit/s >= 1: {reduction_value}")
    method = PaymentMethod(
        name=name, allows_partial=partial is not None, partial_after_days=partial,
        allows_total=total is not None, total_after_days=total,
        min_open_amount=parse_amount(min_open_amount, allow_zero=True),
        reduction_type=reduction_type, reduction_value=reduction_value, created_at=ctx.now)
    ctx.session.add(method)
    ctx.session.flush()
    audit.record(ctx, "payment_method", method.id, "create",
                 audit.diff({}, audit.snapshot(method, METHOD_FIELDS)))
    audit.publish(ctx, "payment_method", method.id)
    return method


def assign_method(ctx: Context, login: str, method_name: str | None) -> Service:
    """Set (or clear, with None) a service's payment method: it decides the service's
    suspension thresholds and its partial reduction, which the daemon re-reads."""
    ctx.require(PERMISSION)
    service = find_service(ctx.session, login, actor=ctx.actor)
    if service.status == CANCELLED:
        raise RuleViolation("service.cancelled", f"service {login} is cancelled")
    method = get_method(ctx.session, method_name) if method_name else None
    old = ctx.session.get(PaymentMethod, service.payment_method_id) if service.payment_method_id else None
    new_id = method.id if method else None
    if new_id == service.payment_method_id:
        return service
    service.payment_method_id = new_id
    service.updated_at = ctx.now
    ctx.session.flush()
    audit.record(ctx, "service", service.id, "payment_method",
                 {"payment_method": [old.name if old else None, method.name if method else None]},
                 customer_id=service.customer_id)
    audit.publish(ctx, "service", service.id)
    if service.status == PARTIAL:  # the reduced speed of a live session follows the method
        coa.enqueue(ctx, service, coa.COA, "payment method changed")
    return service


# --- invoices and payments -----------------------------------------------------------------


def get_invoice(session: Session, invoice_id: int) -> Invoice:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound("invoice", invoice_id)
    return invoice


def list_invoices(session: Session, login: str | None = None, status: str | None = None) -> list[Invoice]:
    query = select(Invoice).order_by(Invoice.id)
    if login is not None:
        ids = list(session.scalars(select(Service.id).where(Service.login == login)))
        if not ids:
            raise NotFound("service", login)
        query = query.where(Invoice.service_id.in_(ids))
    if status is not None:
        if status not in INVOICE_STATUSES:
            raise RuleViolation("billing.status_invalid", f"unknown invoice status {status}")
        query = query.where(Invoice.status == status)
    return list(session.scalars(query))


def add_invoice(ctx: Context, login: str, due_date: date, amount: str | Decimal,
                method_name: str | None = None, description: str | None = None) -> Invoice:
    """An open invoice for a live service; its method defaults to the service's."""
    ctx.require(PERMISSION)
    service = find_service(ctx.session, login, actor=ctx.actor)
    if service.status == CANCELLED:
        raise RuleViolation("billing.service_cancelled", f"service {login} is cancelled")
    if not isinstance(due_date, date) or abs(due_date.year - ctx.today.year) > MAX_DUE_YEARS:
        raise RuleViolation("billing.due_invalid", f"implausible due date {due_date}")
    value = parse_amount(amount)
    method_id = get_method(ctx.session, method_name).id if method_name else service.payment_method_id
    invoice = Invoice(service_id=service.id, due_date=due_date, amount=value,
                      amount_paid=Decimal("0.00"), status="open", payment_method_id=method_id,
                      description=description, created_at=ctx.now, updated_at=ctx.now)
    ctx.session.add(invoice)
    ctx.session.flush()
    audit.record(ctx, "invoice", invoice.id, "create",
                 audit.diff({}, audit.snapshot(invoice, INVOICE_FIELDS)),
                 customer_id=service.customer_id)
    return invoice


def open_amount(invoice: Invoice) -> Decimal:
    return (invoice.amount - invoice.amount_paid).quantize(Decimal("0.01"))


def _customer_of(ctx: Context, invoice: Invoice) -> int | None:
    return ctx.session.scalar(select(Service.customer_id).where(Service.id == invoice.service_id))


def pay_invoice(ctx: Context, invoice_id: int, amount: str | Decimal | None = None,
                note: str | None = None) -> tuple[Invoice, Payment]:
    """Record a payment (default: the whole open remainder). The invoice's `updated_at`
    moves, which is what the worker's payment fast path watches."""
    ctx.require(PERMISSION)
    invoice = get_invoice(ctx.session, invoice_id)
    if invoice.status not in OPEN_STATUSES:
        raise RuleViolation("billing.invoice_not_open", f"invoice {invoice_id} is {invoice.status}")
    remainder = open_amount(invoice)
    value = remainder if amount is None else parse_amount(amount)
    if value > remainder:
        raise RuleViolation("billing.overpayment",
                            f"payment {value} exceeds the open {remainder} of invoice {invoice_id}")
    before = audit.snapshot(invoice, INVOICE_FIELDS)
    payment = Payment(invoice_id=invoice.id, paid_at=ctx.now, amount=value, note=note)
    ctx.session.add(payment)
    invoice.amount_paid = (invoice.amount_paid + value).quantize(Decimal("0.01"))
    invoice.status = "paid" if invoice.amount_paid >= invoice.amount else "partially_paid"
    invoice.updated_at = ctx.now
    ctx.session.flush()
    audit.record(ctx, "invoice", invoice.id, "payment",
                 audit.diff(before, audit.snapshot(invoice, INVOICE_FIELDS)),
                 customer_id=_customer_of(ctx, invoice), note=note or f"payment {value}")
    return invoice, payment


def cancel_invoice(ctx: Context, invoice_id: int, note: str | None = None) -> Invoice:
    """An invoice no longer owed (open or partially paid); it stops counting as debt."""
    ctx.require(PERMISSION)
    invoice = get_invoice(ctx.session, invoice_id)
    if invoice.status not in OPEN_STATUSES:
        raise RuleViolation("billing.invoice_not_open", f"invoice {invoice_id} is {invoice.status}")
    before = audit.snapshot(invoice, INVOICE_FIELDS)
    invoice.status = "cancelled"
    invoice.updated_at = ctx.now
    ctx.session.flush()
    audit.record(ctx, "invoice", invoice.id, "cancel",
                 audit.diff(before, audit.snapshot(invoice, INVOICE_FIELDS)),
                 customer_id=_customer_of(ctx, invoice), note=note)
    return invoice


# --- plain dicts for the CLI (§7: money as "99.90", ISO 8601 times) -------------------------


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def method_dict(m: PaymentMethod) -> dict[str, Any]:
    return {
        "id": m.id, "name": m.name, "allows_partial": m.allows_partial,
        "partial_after_days": m.partial_after_days, "allows_total": m.allows_total,
        "total_after_days": m.total_after_days, "min_open_amount": _money(m.min_open_amount),
        "reduction_type": m.reduction_type, "reduction_value": m.reduction_value,
        "created_at": m.created_at.isoformat(),
    }


def invoice_dict(session: Session, i: Invoice) -> dict[str, Any]:
    login = session.scalar(select(Service.login).where(Service.id == i.service_id))
    method = session.get(PaymentMethod, i.payment_method_id) if i.payment_method_id else None
    return {
        "id": i.id, "login": login, "service_id": i.service_id, "due_date": i.due_date.isoformat(),
        "amount": _money(i.amount), "amount_paid": _money(i.amount_paid),
        "open_amount": _money(open_amount(i) if i.status in OPEN_STATUSES else Decimal("0")),
        "status": i.status, "method": method.name if method else None,
        "description": i.description, "created_at": i.created_at.isoformat(),
        "updated_at": i.updated_at.isoformat(),
    }


def payment_dict(p: Payment) -> dict[str, Any]:
    return {"id": p.id, "invoice_id": p.invoice_id, "paid_at": p.paid_at.isoformat(),
            "amount": _money(p.amount), "note": p.note}
