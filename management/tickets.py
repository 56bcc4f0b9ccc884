"""Tickets (Atendimentos): protocol numbers, drafts, the message timeline, finishing,
the diagnostics snapshot taken at opening, and what the subscriber portal may do.

Protocols are the opening day in the provider's zone (YYYYMMDD) followed by the day's
sequence (at least six digits): 20261123000001. The sequence comes from one atomic
upsert on a per-day counter row (`INSERT .. ON CONFLICT DO UPDATE .. RETURNING`), which
PostgreSQL serialises on the row and SQLite on its write lock; the unique constraint on
`tickets.protocol` is the backstop. The counter moves in the opening's own transaction:
a committed protocol is never handed out again, and an opening that rolls back gives its
number back (no ticket ever carried it, nobody was told it).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aaa.db import authlog
from aaa.db.enums import ServiceStatus
from aaa.db.models import AcctSession, Customer, Invoice, Nas, Operator, Plan, Service
from aaa.db.models_tickets import (
    TICKET_ORIGINS,
    TICKET_STATUSES,
    ProtocolCounter,
    ServiceOrder,
    ServiceOrderReason,
    Ticket,
    TicketMessage,
    TicketType,
)
from management import audit
from management.context import Actor, Context
from management.errors import NotFound, RuleViolation
from management.services import find_service
from management.validation import normalize_document

SAC_LOGIN = "sac"
SAC_NAME = "SAC (Atendimento)"
SAC_TYPE = "SAC"
DRAFT, AWAITING, PENDING, RESOLVED, FINISHED = TICKET_STATUSES
OPERATOR_ORIGIN, PORTAL_ORIGIN = TICKET_ORIGINS
# What an operator may set by hand (finished only through `finish_ticket`).
EDITABLE_STATUSES = (DRAFT, AWAITING, PENDING, RESOLVED)
MAX_TEXT = 10_000
FIELDS = ("status", "type", "destination", "opening_description", "closing_description",
          "finished_at", "finished_by_login")
PORTAL_PERMISSIONS = frozenset({"tickets.open"})


# --- types -------------------------------------------------------------------------------

def get_type(session: Session, name: str) -> TicketType:
    found = session.scalar(select(TicketType).where(TicketType.name == name.strip()))
    if found is None:
        raise NotFound("ticket_type", name)
    return found


def sac_type(ctx: Context) -> TicketType:
    """The built-in SAC type (made by the migration; re-made if someone removed it)."""
    found = ctx.session.scalar(select(TicketType).where(TicketType.name == SAC_TYPE))
    if found is None:
        found = TicketType(name=SAC_TYPE, builtin=True, active=True, created_at=ctx.now)
        ctx.session.add(found)
        ctx.session.flush()
    return found


def create_type(ctx: Context, name: str) -> TicketType:
    ctx.require("tickets.configure")
    name = name.strip()
    if not name or len(name) > 100:
        raise RuleViolation("ticket_type.name_invalid", "a ticket type name has 1-100 characters")
    if ctx.session.scalar(select(TicketType.id).where(TicketType.name == name)):
        raise RuleViolation("ticket_type.duplicate", f"ticket type {name} already exists")
    ticket_type = TicketType(name=name, builtin=False, active=True, created_at=ctx.now)
    ctx.session.add(ticket_type)
    ctx.session.flush()
    audit.record(ctx, "ticket_type", ticket_type.name, "create", {"name": [None, name]})
    return ticket_type


def list_types(session: Session) -> list[TicketType]:
    return list(session.scalars(select(TicketType).order_by(TicketType.name)))


def type_dict(t: TicketType) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "builtin": t.builtin, "active": t.active,
            "created_at": t.created_at.isoformat()}


# --- the built-in portal operator --------------------------------------------------------

def sac_operator(session: Session, now: datetime) -> Operator:
    """The operator "SAC (Atendimento)" that opens the portal's tickets; it has no
    password, so nobody logs in as it."""
    operator = session.scalar(select(Operator).where(Operator.login == SAC_LOGIN))
    if operator is None:
        operator = Operator(login=SAC_LOGIN, name=SAC_NAME, password_hash=None, active=True,
                            is_admin=False, created_at=now)
        session.add(operator)
        session.flush()
    return operator


def portal_actor(session: Session, now: datetime) -> Actor:
    """Who the subscriber portal acts as: the SAC operator, allowed to open tickets only."""
    operator = sac_operator(session, now)
    return Actor(operator_id=operator.id, login=operator.login, is_admin=False,
                 permissions=PORTAL_PERMISSIONS)


# --- protocol numbers --------------------------------------------------------------------

def allocate_protocol(ctx: Context) -> str:
    """The next protocol of the provider's day; safe under concurrent openings."""
    day = ctx.today
    dialect = ctx.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(ProtocolCounter).values(day=day, last=1)
        .on_conflict_do_update(index_elements=[ProtocolCounter.day],
                               set_={"last": ProtocolCounter.last + 1})
        .returning(ProtocolCounter.last)
    )
    sequence = ctx.session.execute(statement).scalar_one()
    return f"{day:%Y%m%d}{sequence:06d}"


# --- reading -----------------------------------------------------------------------------

def get_ticket(session: Session, protocol: str) -> Ticket:
    ticket = session.scalar(select(Ticket).where(Ticket.protocol == protocol.strip()))
    if ticket is None:
        raise NotFound("ticket", protocol)
    return ticket


def list_tickets(
    session: Session, since: datetime | None = None, until: datetime | None = None,
    type_name: str | None = None, status: str | None = None, operator: str | None = None,
    origin: str | None = None, login: str | None = None, customer_id: int | None = None,
    limit: int = 1000,
) -> list[Ticket]:
    """Newest first. `operator` is the opening operator's login (e.g. `sac`)."""
    query = select(Ticket).order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)
    if since is not None:
        query = query.where(Ticket.created_at >= since)
    if until is not None:
        query = query.where(Ticket.created_at < until)
    if type_name:
        query = query.where(Ticket.type_id == get_type(session, type_name).id)
    if status:
        _check_status(status, TICKET_STATUSES)
        query = query.where(Ticket.status == status)
    if operator:
        query = query.where(Ticket.opened_by_login == operator)
    if origin:
        if origin not in TICKET_ORIGINS:
            raise RuleViolation("ticket.origin_invalid",
                                f"origin must be one of {', '.join(TICKET_ORIGINS)}: {origin}")
        query = query.where(Ticket.origin == origin)
    if login:
        query = query.where(Ticket.service_id.in_(select(Service.id).where(Service.login == login)))
    if customer_id is not None:
        query = query.where(Ticket.customer_id == customer_id)
    return list(session.scalars(query))


def messages_of(session: Session, ticket: Ticket) -> list[TicketMessage]:
    return list(session.scalars(select(TicketMessage).where(TicketMessage.ticket_id == ticket.id)
                                .order_by(TicketMessage.created_at, TicketMessage.id)))


def message_dict(m: TicketMessage) -> dict[str, Any]:
    return {"id": m.id, "author": m.author_login, "author_kind": m.author_kind, "body": m.body,
            "created_at": m.created_at.isoformat(),
            "edited_at": m.edited_at.isoformat() if m.edited_at else None}


def ticket_dict(session: Session, t: Ticket, full: bool = False) -> dict[str, Any]:
    """The CLI's and the API's view of a ticket; `full` adds messages, diagnostics, orders."""
    service = session.get(Service, t.service_id)
    customer = session.get(Customer, t.customer_id)
    operator = session.get(Operator, t.opened_by_id)
    ticket_type = session.get(TicketType, t.type_id) if t.type_id is not None else None
    data: dict[str, Any] = {
        "protocol": t.protocol, "status": t.status, "type": ticket_type.name if ticket_type else None,
        "origin": t.origin, "customer_id": t.customer_id,
        "customer": customer.name if customer else None,
        "login": service.login if service else None,
        "opened_by": t.opened_by_login, "opened_by_name": operator.name if operator else None,
        "destination": t.destination, "opening_description": t.opening_description,
        "closing_description": t.closing_description, "created_at": t.created_at.isoformat(),
        "updated_at": t.updated_at.isoformat(),
        "finished_at": t.finished_at.isoformat() if t.finished_at else None,
        "finished_by": t.finished_by_login,
    }
    if full:
        data["messages"] = [message_dict(m) for m in messages_of(session, t)]
        data["service_orders"] = [
            {"id": o.id, "kind": o.kind, "status": o.status, "opened_at": o.opened_at.isoformat()}
            for o in session.scalars(select(ServiceOrder).where(ServiceOrder.ticket_id == t.id)
                                     .order_by(ServiceOrder.id))]
        data["diagnostics"] = json.loads(t.diagnostics or "{}")
    return data


# --- diagnostics -------------------------------------------------------------------------

def _months_ago(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    for last_day in (day.day, 30, 29, 28):
        try:
            return date(year, month, last_day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def diagnostics(ctx: Context, service: Service) -> dict[str, Any]:
    """What the support screen shows beside a new ticket, frozen at opening."""
    session = ctx.session
    plan = session.get(Plan, service.plan_id)
    week_ago = ctx.now - timedelta(days=7)
    online = []
    for s in session.scalars(select(AcctSession).where(
            AcctSession.service_id == service.id, AcctSession.stopped_at.is_(None))
            .order_by(AcctSession.started_at)):
        nas = session.get(Nas, s.nas_id) if s.nas_id is not None else None
        online.append({
            "ip": s.framed_ip, "ipv6_prefix": s.delegated_ipv6_prefix or s.ipv6_prefix,
            "nas": nas.name if nas else None, "nas_ip": s.nas_ip, "mac": s.mac,
            "interface": s.nas_port_id, "started_at": s.started_at.isoformat(),
            "uptime_seconds": max(0, int((ctx.now - s.started_at).total_seconds())),
        })
    authentications = [
        {"at": a.at.isoformat(), "result": a.result, "reason": a.reason, "nas_ip": a.nas_ip,
         "mac": a.mac, "mac_differs": a.mac_differs, "interface": a.interface,
         "interface_differs": a.interface_differs, "ip": a.ip}
        for a in authlog.query(session, service.login, since=week_ago, until=ctx.now, limit=200)
    ]
    overdue = [
        {"id": i.id, "due_date": i.due_date.isoformat(), "amount": f"{i.amount:.2f}",
         "amount_paid": f"{i.amount_paid:.2f}", "days_overdue": (ctx.today - i.due_date).days}
        for i in session.scalars(select(Invoice).where(
            Invoice.service_id == service.id, Invoice.status.in_(("open", "partially_paid")),
            Invoice.due_date < ctx.today).order_by(Invoice.due_date))
    ]
    three_months = datetime.combine(_months_ago(ctx.today, 3), datetime.min.time(), ctx.zone)
    tickets = [
        {"protocol": t.protocol, "status": t.status, "created_at": t.created_at.isoformat(),
         "type": (session.get(TicketType, t.type_id).name  # type: ignore[union-attr]
                  if t.type_id is not None else None)}
        for t in session.scalars(select(Ticket).where(
            Ticket.customer_id == service.customer_id, Ticket.created_at >= three_months)
            .order_by(Ticket.created_at.desc()))
    ]
    orders = []
    for o in session.scalars(select(ServiceOrder).where(
            ServiceOrder.customer_id == service.customer_id,
            (ServiceOrder.opened_at >= three_months) | (ServiceOrder.status == "open"))
            .order_by(ServiceOrder.opened_at.desc())):
        reason = session.get(ServiceOrderReason, o.closing_reason_id) if o.closing_reason_id else None
        orders.append({"id": o.id, "kind": o.kind, "status": o.status,
                       "opened_at": o.opened_at.isoformat(),
                       "closing_reason": reason.name if reason else None})
    return {
        "taken_at": ctx.now.isoformat(),
        "service": {
            "login": service.login, "status": service.status,
            "plan": plan.name if plan else None,
            "download_kbps": service.nav_download_kbps or (plan.download_kbps if plan else None),
            "upload_kbps": service.nav_upload_kbps or (plan.upload_kbps if plan else None),
            "trust_unlock_until": (service.trust_unlock_until.isoformat()
                                   if service.trust_unlock_until else None),
            "mac": service.mac, "interface": service.interface,
        },
        "online": online,
        "authentications_last_week": authentications,
        "overdue_invoices": overdue,
        "tickets_last_three_months": tickets,
        "service_orders_last_three_months": orders,
        "open_service_orders": sum(1 for o in orders if o["status"] == "open"),
    }


# --- opening, editing, finishing ---------------------------------------------------------

def _check_status(status: str, allowed: Sequence[str]) -> str:
    if status not in allowed:
        raise RuleViolation("ticket.status_invalid",
                            f"status must be one of {', '.join(allowed)}: {status}")
    return status


def _text(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise RuleViolation("ticket.text_too_long", f"{what} is longer than {MAX_TEXT} characters")
    return value or None


def _snapshot(session: Session, t: Ticket) -> dict[str, Any]:
    ticket_type = session.get(TicketType, t.type_id) if t.type_id is not None else None
    data = audit.snapshot(t, [f for f in FIELDS if f != "type"])
    data["type"] = ticket_type.name if ticket_type else None
    return data


def _require_complete(t: Ticket, status: str) -> None:
    """Every status but draft needs a type and an opening description; resolved and
    finished also a closing description."""
    if status == DRAFT:
        return
    missing = [name for name, value in (("type", t.type_id), ("description", t.opening_description))
               if not value]
    if status in (RESOLVED, FINISHED) and not t.closing_description:
        missing.append("closing description")
    if missing:
        raise RuleViolation("ticket.incomplete",
                            f"a {status} ticket needs: {', '.join(missing)} (or keep it as a draft)")


def _active_type(session: Session, name: str) -> TicketType:
    ticket_type = get_type(session, name)
    if not ticket_type.active:
        raise RuleViolation("ticket_type.inactive", f"ticket type {name} is inactive")
    return ticket_type


def _insert(ctx: Context, service: Service, ticket_type: TicketType | None, origin: str,
            opener: Operator, status: str | None, destination: str | None,
            description: str | None, closing_description: str | None) -> Ticket:
    snapshot = diagnostics(ctx, service)
    ticket = Ticket(
        protocol="", customer_id=service.customer_id, service_id=service.id,
        type_id=ticket_type.id if ticket_type else None, status=DRAFT, origin=origin,
        opened_by_id=opener.id, opened_by_login=opener.login,
        destination=_text(destination, "destination"),
        opening_description=_text(description, "description"),
        closing_description=_text(closing_description, "closing description"),
        diagnostics=json.dumps(snapshot, ensure_ascii=False, sort_keys=True),
        created_at=ctx.now, updated_at=ctx.now,
    )
    if ticket.destination and len(ticket.destination) > 100:
        raise RuleViolation("ticket.text_too_long", "destination is longer than 100 characters")
    if status is None:  # a ticket left half-filled is kept as a draft
        complete = ticket.type_id is not None and ticket.opening_description
        status = AWAITING if complete else DRAFT
        if complete and ticket.closing_description:
            status = RESOLVED
    if status == FINISHED:
        ctx.require("tickets.finish")
        ticket.finished_at, ticket.finished_by_login = ctx.now, ctx.actor.login
    _require_complete(ticket, status)
    ticket.status = status
    ticket.protocol = allocate_protocol(ctx)
    ctx.session.add(ticket)
    ctx.session.flush()
    audit.record(ctx, "ticket", ticket.protocol, "open",
                 audit.diff({}, _snapshot(ctx.session, ticket)), customer_id=ticket.customer_id,
                 note=f"{origin} ticket for {service.login}")
    return ticket


def open_ticket(
    ctx: Context, login: str, type_name: str | None = None, description: str | None = None,
    status: str | None = None, destination: str | None = None,
    closing_description: str | None = None,
) -> Ticket:
    """An operator opens a ticket for a service; without a type or description (or with
    status `draft`) it is kept as a draft, protocol and all."""
    ctx.require("tickets.open")
    if status is not None:
        _check_status(status, TICKET_STATUSES)
    service = find_service(ctx.session, login, actor=ctx.actor)
    ticket_type = _active_type(ctx.session, type_name) if type_name else None
    if ctx.actor.operator_id is None:
        raise RuleViolation("ticket.operator_required", "tickets are opened by an operator")
    opener = ctx.session.get(Operator, ctx.actor.operator_id)
    assert opener is not None
    return _insert(ctx, service, ticket_type, OPERATOR_ORIGIN, opener, status, destination,
                   description, closing_description)


def _not_finished(ticket: Ticket) -> None:
    if ticket.status == FINISHED:
        raise RuleViolation("ticket.finished", f"ticket {ticket.protocol} is finished")


def update_ticket(
    ctx: Context, protocol: str, type_name: str | None = None, description: str | None = None,
    status: str | None = None, destination: str | None = None,
    closing_description: str | None = None,
) -> Ticket:
    """Complete a draft or move a ticket along (finishing goes through `finish_ticket`)."""
    ctx.require("tickets.open")
    ticket = get_ticket(ctx.session, protocol)
    _not_finished(ticket)
    before = _snapshot(ctx.session, ticket)
    if type_name is not None:
        ticket.type_id = _active_type(ctx.session, type_name).id
    if description is not None:
        ticket.opening_description = _text(description, "description")
    if destination is not None:
        ticket.destination = _text(destination, "destination")
    if closing_description is not None:
        ticket.closing_description = _text(closing_description, "closing description")
    if status is not None:
        ticket.status = _check_status(status, EDITABLE_STATUSES)
    elif ticket.status == DRAFT and ticket.type_id and ticket.opening_description:
        ticket.status = AWAITING  # a completed draft goes to analysis
    _require_complete(ticket, ticket.status)
    changes = audit.diff(before, _snapshot(ctx.session, ticket))
    if changes:
        ticket.updated_at = ctx.now
        ctx.session.flush()
        audit.record(ctx, "ticket", ticket.protocol, "edit", changes, customer_id=ticket.customer_id)
    return ticket


def finish_ticket(ctx: Context, protocol: str, description: str) -> Ticket:
    """Finish with a closing description (permission tickets.finish)."""
    ctx.require("tickets.finish")
    ticket = get_ticket(ctx.session, protocol)
    _not_finished(ticket)
    closing = _text(description, "closing description")
    if not closing:
        raise RuleViolation("ticket.closing_description_required",
                            "a closing description is required to finish a ticket")
    if ticket.status == DRAFT:
        raise RuleViolation("ticket.draft", f"ticket {protocol} is a draft: complete it first")
    open_orders = ctx.session.scalar(select(func.count()).select_from(ServiceOrder).where(
        ServiceOrder.ticket_id == ticket.id, ServiceOrder.status == "open"))
    if open_orders:
        raise RuleViolation("ticket.open_orders",
                            f"ticket {protocol} has {open_orders} open service order(s): close them first")
    before = _snapshot(ctx.session, ticket)
    ticket.closing_description = closing
    ticket.status = FINISHED
    ticket.finished_at, ticket.finished_by_login = ctx.now, ctx.actor.login
    ticket.updated_at = ctx.now
    ctx.session.flush()
    audit.record(ctx, "ticket", ticket.protocol, "finish", audit.diff(before, _snapshot(ctx.session, ticket)),
                 customer_id=ticket.customer_id)
    return ticket


# --- the message timeline ----------------------------------------------------------------

def _body(body: str) -> str:
    text = (body or "").strip()
    if not text:
        raise RuleViolation("ticket_message.empty", "a message needs some text")
    if len(text) > MAX_TEXT:
        raise RuleViolation("ticket_message.too_long", f"a message has at most {MAX_TEXT} characters")
    return text


def _message_history(ctx: Context, ticket: Ticket, message: TicketMessage, action: str,
                     before: str | None, after: str | None) -> None:
    audit.record(ctx, "ticket_message", message.id, action, {"body": [before, after]},
                 customer_id=ticket.customer_id, note=f"ticket {ticket.protocol}")


def _add(ctx: Context, ticket: Ticket, body: str, author_kind: str, author_login: str) -> TicketMessage:
    _not_finished(ticket)
    message = TicketMessage(
        ticket_id=ticket.id, author_kind=author_kind,
        author_id=ctx.actor.operator_id if author_kind == "operator" else None,
        author_login=author_login, body=_body(body), created_at=ctx.now)
    ctx.session.add(message)
    ticket.updated_at = ctx.now
    ctx.session.flush()
    _message_history(ctx, ticket, message, "create", None, message.body)
    return message


def add_message(ctx: Context, protocol: str, body: str) -> TicketMessage:
    ctx.require("tickets.open")
    if ctx.actor.operator_id is None:
        raise RuleViolation("ticket.operator_required", "messages are written by an operator")
    return _add(ctx, get_ticket(ctx.session, protocol), body, "operator", ctx.actor.login)


def _own_message(ctx: Context, message_id: int) -> tuple[Ticket, TicketMessage]:
    ctx.require("tickets.open")
    message = ctx.session.get(TicketMessage, message_id)
    if message is None:
        raise NotFound("ticket_message", message_id)
    if (message.author_kind != "operator" or ctx.actor.operator_id is None
            or message.author_id != ctx.actor.operator_id):
        raise RuleViolation("ticket_message.not_author",
                            f"only its author ({message.author_login}) edits or deletes message {message_id}")
    ticket = ctx.session.get(Ticket, message.ticket_id)
    assert ticket is not None
    _not_finished(ticket)
    return ticket, message


def edit_message(ctx: Context, message_id: int, body: str) -> TicketMessage:
    """Only the author edits his own message; the old text stays in history."""
    ticket, message = _own_message(ctx, message_id)
    before, message.body = message.body, _body(body)
    if before != message.body:
        message.edited_at = ctx.now
        ticket.updated_at = ctx.now
        ctx.session.flush()
        _message_history(ctx, ticket, message, "edit", before, message.body)
    return message


def delete_message(ctx: Context, message_id: int) -> TicketMessage:
    """Only the author deletes his own message; its text stays in history."""
    ticket, message = _own_message(ctx, message_id)
    _message_history(ctx, ticket, message, "delete", message.body, None)
    ctx.session.delete(message)
    ticket.updated_at = ctx.now
    ctx.session.flush()
    return message


# --- the subscriber portal ---------------------------------------------------------------

_DUMMY = b"\x00" * 32


def authenticate_subscriber(session: Session, document: str, password: str,
                           open_password: Callable[[str], str] = lambda stored: stored
                           ) -> Customer | None:
    """The active customer with this CPF/CNPJ when `password` is the password of one of
    his live services; None otherwise. Every candidate password is compared in constant
    time, and an unknown document costs a comparison too."""
    given = password.encode()
    try:
        normalized, _ = normalize_document(document)
    except RuleViolation:
        hmac.compare_digest(given, _DUMMY)
        return None
    customer = session.scalar(select(Customer).where(Customer.document == normalized))
    passwords = [] if customer is None or not customer.active else list(session.scalars(
        select(Service.password).where(Service.customer_id == customer.id,
                                       Service.status != ServiceStatus.CANCELLED.value)))
    matched = False
    for candidate in passwords or [_DUMMY.decode()]:
        matched |= hmac.compare_digest(given, open_password(candidate).encode())
    return customer if matched and passwords else None


def customer_services(session: Session, customer_id: int) -> list[Service]:
    return list(session.scalars(select(Service).where(Service.customer_id == customer_id)
                                .order_by(Service.id)))


def customer_service(session: Session, customer_id: int, login: str) -> Service:
    """A service of this customer (the live one when a login was re-used)."""
    service = session.scalar(
        select(Service).where(Service.customer_id == customer_id, Service.login == login)
        .order_by((Service.status == ServiceStatus.CANCELLED.value).asc(), Service.id.desc()).limit(1))
    if service is None:
        raise NotFound("service", login)
    return service


def customer_tickets(session: Session, customer_id: int, limit: int = 200) -> list[Ticket]:
    """What the subscriber sees: his tickets, newest first, without the operators' drafts."""
    return [t for t in list_tickets(session, customer_id=customer_id, limit=limit) if t.status != DRAFT]


def customer_ticket(session: Session, customer_id: int, protocol: str) -> Ticket:
    """One of the subscriber's tickets (drafts are the operators' business)."""
    ticket = get_ticket(session, protocol)
    if ticket.customer_id != customer_id or ticket.status == DRAFT:
        raise NotFound("ticket", protocol)
    return ticket


def open_self_service_ticket(ctx: Context, customer_id: int, login: str, description: str,
                             allowed: bool) -> Ticket:
    """The subscriber opens his own ticket from the portal: only when the provider allows
    it (portal.allow_self_service_tickets), for one of his services, with a description.
    It is opened by "SAC (Atendimento)" with type SAC and waits for analysis."""
    if not allowed:
        raise RuleViolation("ticket.self_service_disabled",
                            "opening tickets from the subscriber portal is turned off")
    if not (login or "").strip():
        raise RuleViolation("ticket.service_required", "choose the service the ticket is about")
    if not (description or "").strip():
        raise RuleViolation("ticket.description_required", "describe the problem")
    service = customer_service(ctx.session, customer_id, login.strip())
    return _insert(ctx, service, sac_type(ctx), PORTAL_ORIGIN, sac_operator(ctx.session, ctx.now),
                   AWAITING, None, description, None)


def add_subscriber_message(ctx: Context, customer_id: int, protocol: str, body: str) -> TicketMessage:
    """The subscriber writes on one of his tickets (never edited or deleted afterwards)."""
    ticket = customer_ticket(ctx.session, customer_id, protocol)
    return _add(ctx, ticket, body, "subscriber", "subscriber")
