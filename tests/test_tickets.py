"""Tickets and service orders on both databases: protocols, drafts, the message timeline,
finishing, permissions, the self-service setting, filters, diagnostics, closing reasons."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aaa.db.models import AcctSession, AuthLogEntry, Customer, HistoryEntry, Invoice, Service
from management import operators, service_orders, services, tickets
from management.context import Context, load_actor
from management.errors import NotFound, PermissionDenied, RuleViolation
from tests import factories
from tests.conftest import NOW


@contextmanager
def refused(rule: str) -> Iterator[None]:
    """The block raises a RuleViolation naming `rule`."""
    with pytest.raises(RuleViolation) as info:
        yield
    assert info.value.rule == rule, info.value


@contextmanager
def denied(permission: str) -> Iterator[None]:
    with pytest.raises(PermissionDenied) as info:
        yield
    assert info.value.permission == permission


def as_operator(ctx: Context, login: str, permissions: list[str]) -> Context:
    """A context acting as a (new) operator holding exactly `permissions`."""
    operators.create_operator(ctx, login, login.title(), permissions=permissions)
    return replace(ctx, actor=load_actor(ctx.session, login))


@pytest.fixture
def svc(ctx: Context) -> Service:
    factories.plan(ctx)
    return factories.service(ctx, "ana", password="ana-pw")


@pytest.fixture
def tech(ctx: Context) -> None:
    tickets.create_type(ctx, "Técnico")
    tickets.create_type(ctx, "Financeiro")


def history(session: Session, object_type: str, object_id: object) -> list[HistoryEntry]:
    return list(session.scalars(select(HistoryEntry).where(
        HistoryEntry.object_type == object_type, HistoryEntry.object_id == str(object_id))
        .order_by(HistoryEntry.id)))


# --- protocols ---------------------------------------------------------------------------

def test_protocol_is_the_local_day_and_a_daily_sequence(ctx: Context, svc: Service, tech: None) -> None:
    """YYYYMMDD of the provider's day + 6-digit sequence; the next day starts again at 1,
    and a moment that is still the previous day in São Paulo keeps the previous day."""
    first = tickets.open_ticket(ctx, "ana", "Técnico", "sem conexão")
    second = tickets.open_ticket(ctx, "ana", "Técnico", "lento")
    assert (first.protocol, second.protocol) == ("20261123000001", "20261123000002")
    next_day = replace(ctx, now=datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    assert tickets.open_ticket(next_day, "ana", "Técnico", "x").protocol == "20261124000001"
    late_evening = replace(ctx, now=datetime(2026, 11, 24, 2, 30, tzinfo=UTC))  # 23:30 on the 23rd
    assert tickets.open_ticket(late_evening, "ana", "Técnico", "y").protocol == "20261123000003"


def test_protocol_survives_a_counter_in_the_past(ctx: Context, svc: Service, tech: None) -> None:
    """The unique constraint backs the counter: a protocol is never given to two tickets."""
    ticket = tickets.open_ticket(ctx, "ana", "Técnico", "a")
    with pytest.raises(IntegrityError, match=r"(?i)unique|duplicate"), ctx.session.begin_nested():
        clone = tickets.Ticket(**{c: getattr(ticket, c) for c in (
            "protocol", "customer_id", "service_id", "type_id", "status", "origin", "opened_by_id",
            "opened_by_login", "diagnostics", "created_at", "updated_at")})
        ctx.session.add(clone)
        ctx.session.flush()


# --- opening and drafts ------------------------------------------------------------------

def test_open_ticket_records_everything(ctx: Context, svc: Service, tech: None) -> None:
    ticket = tickets.open_ticket(ctx, "ana", "Técnico", "  sem conexão  ", destination="Suporte N2")
    data = tickets.ticket_dict(ctx.session, ticket, full=True)
    assert data["status"] == "awaiting_analysis" and data["type"] == "Técnico"
    assert data["origin"] == "operator" and data["opened_by"] == "admin"
    assert data["opening_description"] == "sem conexão" and data["destination"] == "Suporte N2"
    assert data["login"] == "ana" and data["customer_id"] == svc.customer_id
    assert data["messages"] == [] and data["diagnostics"]["service"]["login"] == "ana"
    [entry] = history(ctx.session, "ticket", ticket.protocol)
    assert entry.action == "open" and entry.operator_login == "admin"
    assert json.loads(entry.changes)["status"] == [None, "awaiting_analysis"]


def test_half_filled_ticket_is_a_draft_keeping_its_protocol(ctx: Context, svc: Service, tech: None) -> None:
    draft = tickets.open_ticket(ctx, "ana")
    assert draft.status == "draft" and re.fullmatch(r"20261123\d{6}", draft.protocol)
    only_type = tickets.open_ticket(ctx, "ana", "Técnico")
    assert only_type.status == "draft"
    explicit = tickets.open_ticket(ctx, "ana", "Técnico", "complete but parked", status="draft")
    assert explicit.status == "draft"
    protocol = draft.protocol
    completed = tickets.update_ticket(ctx, protocol, type_name="Técnico", description="agora sim")
    assert (completed.protocol, completed.status) == (protocol, "awaiting_analysis")
    assert [h.action for h in history(ctx.session, "ticket", protocol)] == ["open", "edit"]


@pytest.mark.parametrize(("kwargs", "missing"), [
    ({"status": "pending"}, "type, description"),
    ({"type_name": "Técnico", "status": "awaiting_analysis"}, "description"),
    ({"type_name": "Técnico", "description": "x", "status": "resolved"}, "closing description"),
])
def test_a_status_beyond_draft_needs_the_fields(ctx: Context, svc: Service, tech: None,
                                                 kwargs: dict[str, str], missing: str) -> None:
    with pytest.raises(RuleViolation) as info:
        tickets.open_ticket(ctx, "ana", **kwargs)
    assert info.value.rule == "ticket.incomplete" and missing in info.value.message


def test_resolved_at_opening_and_invalid_values(ctx: Context, svc: Service, tech: None) -> None:
    resolved = tickets.open_ticket(ctx, "ana", "Técnico", "senha wifi", closing_description="passada")
    assert resolved.status == "resolved"
    with refused("ticket.status_invalid"):
        tickets.open_ticket(ctx, "ana", "Técnico", "x", status="closed")
    with pytest.raises(NotFound):
        tickets.open_ticket(ctx, "ana", "Inexistente", "x")
    with pytest.raises(NotFound):
        tickets.open_ticket(ctx, "nobody", "Técnico", "x")
    with refused("ticket.text_too_long"):
        tickets.open_ticket(ctx, "ana", "Técnico", "x" * 10_001)


def test_sac_is_built_in(ctx: Context) -> None:
    assert [t.name for t in tickets.list_types(ctx.session) if t.builtin] == ["SAC"]
    sac = operators.get_operator(ctx.session, "sac")
    assert sac.name == "SAC (Atendimento)" and sac.password_hash is None
    with refused("ticket_type.duplicate"):
        tickets.create_type(ctx, "SAC")


# --- finishing ---------------------------------------------------------------------------

def test_finish_needs_the_permission_and_a_closing_description(
        ctx: Context, svc: Service, tech: None) -> None:
    ticket = tickets.open_ticket(ctx, "ana", "Técnico", "sem conexão")
    clerk = as_operator(ctx, "clerk", ["tickets.open"])
    with pytest.raises(PermissionDenied) as info:
        tickets.finish_ticket(clerk, ticket.protocol, "resolvido")
    assert info.value.permission == "tickets.finish"
    boss = as_operator(ctx, "boss", ["tickets.finish"])
    with refused("ticket.closing_description_required"):
        tickets.finish_ticket(boss, ticket.protocol, "   ")
    finished = tickets.finish_ticket(boss, ticket.protocol, "cabo trocado")
    assert finished.status == "finished" and finished.closing_description == "cabo trocado"
    assert finished.finished_by_login == "boss" and finished.finished_at == NOW
    for attempt in (lambda: tickets.finish_ticket(boss, ticket.protocol, "again"),
                    lambda: tickets.update_ticket(ctx, ticket.protocol, description="late"),
                    lambda: tickets.add_message(ctx, ticket.protocol, "late")):
        with refused("ticket.finished"):
            attempt()
    assert [h.action for h in history(ctx.session, "ticket", ticket.protocol)] == ["open", "finish"]


def test_a_draft_is_not_finished_and_finished_at_opening_needs_the_permission(
        ctx: Context, svc: Service, tech: None) -> None:
    draft = tickets.open_ticket(ctx, "ana")
    with refused("ticket.draft"):
        tickets.finish_ticket(ctx, draft.protocol, "x")
    clerk = as_operator(ctx, "clerk", ["tickets.open"])
    with pytest.raises(PermissionDenied):
        tickets.open_ticket(clerk, "ana", "Técnico", "x", status="finished", closing_description="y")
    done = tickets.open_ticket(ctx, "ana", "Técnico", "x", status="finished", closing_description="y")
    assert done.status == "finished" and done.finished_by_login == "admin"
    with refused("ticket.status_invalid"):
        protocol = tickets.open_ticket(ctx, "ana", "Técnico", "z").protocol
        tickets.update_ticket(ctx, protocol, status="finished")


def test_permissions_for_opening_and_configuring(ctx: Context, svc: Service, tech: None) -> None:
    nobody = as_operator(ctx, "nobody", [])
    for attempt, permission in (
            (lambda: tickets.open_ticket(nobody, "ana", "Técnico", "x"), "tickets.open"),
            (lambda: tickets.create_type(nobody, "Outro"), "tickets.configure"),
            (lambda: service_orders.create_reason(nobody, "Fonte queimada"), "tickets.configure")):
        with pytest.raises(PermissionDenied) as info:
            attempt()
        assert info.value.permission == permission
    ticket = tickets.open_ticket(ctx, "ana", "Técnico", "x")
    with denied("orders.open"):
        service_orders.open_order(nobody, ticket.protocol, "Visita", "ir lá")
    with denied("tickets.open"):
        tickets.add_message(nobody, ticket.protocol, "oi")
    order = service_orders.open_order(ctx, ticket.protocol, "Visita", "ir lá")
    service_orders.create_reason(ctx, "Fonte queimada")
    with denied("orders.close"):
        service_orders.close_order(nobody, order.id, "Fonte queimada")


# --- messages ----------------------------------------------------------------------------

def test_only_the_author_edits_or_deletes_and_history_keeps_every_change(
        ctx: Context, svc: Service, tech: None) -> None:
    ticket = tickets.open_ticket(ctx, "ana", "Técnico", "sem conexão")
    ana_ops = as_operator(ctx, "joana", ["tickets.open"])
    other = as_operator(ctx, "pedro", ["tickets.open"])
    message = tickets.add_message(ana_ops, ticket.protocol, "liguei para o cliente")
    for who in (other, ctx):  # another operator, and even the administrator
        with pytest.raises(RuleViolation) as info:
            tickets.edit_message(who, message.id, "mudado")
        assert info.value.rule == "ticket_message.not_author"
        with refused("ticket_message.not_author"):
            tickets.delete_message(who, message.id)
    later = replace(ana_ops, now=NOW + timedelta(minutes=5))
    edited = tickets.edit_message(later, message.id, "liguei duas vezes")
    assert edited.body == "liguei duas vezes" and edited.edited_at == later.now
    tickets.add_message(other, ticket.protocol, "visita marcada")
    assert [m.author_login for m in tickets.messages_of(ctx.session, ticket)] == ["joana", "pedro"]
    tickets.delete_message(ana_ops, message.id)
    assert [m.body for m in tickets.messages_of(ctx.session, ticket)] == ["visita marcada"]
    trail = history(ctx.session, "ticket_message", message.id)
    assert [(h.action, h.operator_login) for h in trail] == [
        ("create", "joana"), ("edit", "joana"), ("delete", "joana")]
    assert [json.loads(h.changes)["body"] for h in trail] == [
        [None, "liguei para o cliente"], ["liguei para o cliente", "liguei duas vezes"],
        ["liguei duas vezes", None]]
    with pytest.raises(NotFound):
        tickets.edit_message(ana_ops, message.id, "gone")
    with refused("ticket_message.empty"):
        tickets.add_message(ana_ops, ticket.protocol, "  ")


def test_subscriber_messages_are_nobody_elses_to_edit(ctx: Context, svc: Service, tech: None) -> None:
    portal = replace(ctx, actor=tickets.portal_actor(ctx.session, ctx.now))
    ticket = tickets.open_self_service_ticket(portal, svc.customer_id, "ana", "sem sinal", allowed=True)
    message = tickets.add_subscriber_message(portal, svc.customer_id, ticket.protocol, "ainda sem sinal")
    assert (message.author_kind, message.author_id) == ("subscriber", None)
    for who in (ctx, portal):
        with refused("ticket_message.not_author"):
            tickets.edit_message(who, message.id, "x")


# --- the self-service setting and the portal's rules -------------------------------------

def test_self_service_opening_follows_the_setting(ctx: Context, svc: Service) -> None:
    portal = replace(ctx, actor=tickets.portal_actor(ctx.session, ctx.now))
    with pytest.raises(RuleViolation) as info:
        tickets.open_self_service_ticket(portal, svc.customer_id, "ana", "sem sinal", allowed=False)
    assert info.value.rule == "ticket.self_service_disabled"
    ticket = tickets.open_self_service_ticket(portal, svc.customer_id, "ana", "sem sinal", allowed=True)
    data = tickets.ticket_dict(ctx.session, ticket)
    assert (data["type"], data["opened_by"], data["opened_by_name"], data["origin"], data["status"]) == (
        "SAC", "sac", "SAC (Atendimento)", "portal", "awaiting_analysis")
    assert re.fullmatch(r"20261123\d{6}", data["protocol"])


def test_self_service_required_fields_and_ownership(ctx: Context, svc: Service) -> None:
    portal = replace(ctx, actor=tickets.portal_actor(ctx.session, ctx.now))
    for login, description, rule in (("ana", " ", "ticket.description_required"),
                                     ("", "x", "ticket.service_required")):
        with pytest.raises(RuleViolation) as info:
            tickets.open_self_service_ticket(portal, svc.customer_id, login, description, allowed=True)
        assert info.value.rule == rule
    stranger = factories.service(ctx, "bruno")
    with pytest.raises(NotFound):
        tickets.open_self_service_ticket(portal, svc.customer_id, "bruno", "x", allowed=True)
    theirs = tickets.open_ticket(ctx, "bruno", "SAC", "x")
    with pytest.raises(NotFound):
        tickets.add_subscriber_message(portal, svc.customer_id, theirs.protocol, "peek")
    with pytest.raises(NotFound):
        tickets.customer_ticket(ctx.session, svc.customer_id, theirs.protocol)
    assert tickets.customer_ticket(ctx.session, stranger.customer_id, theirs.protocol) is theirs


def test_subscriber_login_by_document_and_service_password(ctx: Context, svc: Service) -> None:
    customer = ctx.session.get(Customer, svc.customer_id)
    assert customer is not None
    factories.service(ctx, "ana-2", owner=customer, password="second-pw")
    doc = customer.document
    formatted = f"{doc[:3]}.{doc[3:6]}.{doc[6:9]}-{doc[9:]}"
    assert tickets.authenticate_subscriber(ctx.session, formatted, "ana-pw") is customer
    assert tickets.authenticate_subscriber(ctx.session, doc, "second-pw") is customer
    for document, password in ((doc, "wrong"), (doc, ""), ("00000000000", "ana-pw"),
                               (factories.cpf(), "ana-pw"), ("garbage", "ana-pw")):
        assert tickets.authenticate_subscriber(ctx.session, document, password) is None
    services.change_status(ctx, "ana-2", "cancelled")
    assert tickets.authenticate_subscriber(ctx.session, doc, "second-pw") is None  # cancelled
    customer.active = False
    assert tickets.authenticate_subscriber(ctx.session, doc, "ana-pw") is None


# --- filters -----------------------------------------------------------------------------

def test_filters(ctx: Context, svc: Service, tech: None) -> None:
    other = factories.service(ctx, "bruno")
    portal = replace(ctx, actor=tickets.portal_actor(ctx.session, ctx.now))
    clerk = as_operator(ctx, "clerk", ["tickets.open"])
    week_ago = replace(clerk, now=NOW - timedelta(days=7))
    t1 = tickets.open_ticket(week_ago, "ana", "Técnico", "antigo")
    t2 = tickets.open_ticket(ctx, "ana", "Financeiro", "boleto", status="pending")
    t3 = tickets.open_self_service_ticket(portal, svc.customer_id, "ana", "pelo portal", allowed=True)
    t4 = tickets.open_ticket(clerk, "bruno")  # a draft

    def protocols(**kw: object) -> set[str]:
        return {t.protocol for t in tickets.list_tickets(ctx.session, **kw)}  # type: ignore[arg-type]

    assert protocols() == {t1.protocol, t2.protocol, t3.protocol, t4.protocol}
    assert protocols(since=NOW - timedelta(days=1)) == {t2.protocol, t3.protocol, t4.protocol}
    assert protocols(until=NOW - timedelta(days=1)) == {t1.protocol}
    assert protocols(type_name="SAC") == {t3.protocol}
    assert protocols(type_name="Financeiro") == {t2.protocol}
    assert protocols(status="pending") == {t2.protocol}
    assert protocols(status="draft") == {t4.protocol}
    assert protocols(operator="sac") == {t3.protocol}
    assert protocols(operator="sac", type_name="SAC") == {t3.protocol}
    assert protocols(operator="clerk") == {t1.protocol, t4.protocol}
    assert protocols(origin="portal") == {t3.protocol}
    assert protocols(origin="operator") == {t1.protocol, t2.protocol, t4.protocol}
    assert protocols(login="bruno") == {t4.protocol}
    assert protocols(customer_id=other.customer_id) == {t4.protocol}
    newest_first = [t.protocol for t in tickets.list_tickets(ctx.session)]
    assert newest_first[-1] == t1.protocol
    with refused("ticket.origin_invalid"):
        tickets.list_tickets(ctx.session, origin="email")
    with pytest.raises(NotFound):
        tickets.list_tickets(ctx.session, type_name="Nope")


# --- diagnostics -------------------------------------------------------------------------

def test_diagnostics_snapshot_at_opening(ctx: Context, svc: Service, tech: None) -> None:
    s = ctx.session
    s.add(AcctSession(unique_id="u1", acct_session_id="a1", nas_id=None, nas_ip="10.0.0.1", login="ana",
                      service_id=svc.id, framed_ip="100.64.0.10", mac="AA:BB:CC:DD:EE:FF",
                      nas_port_id="vlan100", started_at=NOW - timedelta(hours=2),
                      updated_at=NOW - timedelta(minutes=5)))
    s.add(AcctSession(unique_id="u0", acct_session_id="a0", nas_id=None, nas_ip="10.0.0.1", login="ana",
                      service_id=svc.id, started_at=NOW - timedelta(days=1), updated_at=NOW,
                      stopped_at=NOW - timedelta(hours=3)))
    for days, mac_differs in ((1, True), (3, False), (8, False)):
        s.add(AuthLogEntry(at=NOW - timedelta(days=days), login="ana", service_id=svc.id, nas_ip="10.0.0.1",
                           result="accept", reason="ok", mac="AA:BB:CC:DD:EE:00", mac_differs=mac_differs,
                           interface="vlan9", interface_differs=True))
    for due, status in ((date(2026, 11, 10), "open"), (date(2026, 11, 1), "partially_paid"),
                        (date(2026, 12, 10), "open"), (date(2026, 10, 10), "paid")):
        s.add(Invoice(service_id=svc.id, due_date=due, amount=Decimal("99.90"),
                      amount_paid=Decimal("10.00") if status == "partially_paid" else Decimal("0.00"),
                      status=status, created_at=NOW, updated_at=NOW))
    old = tickets.open_ticket(replace(ctx, now=NOW - timedelta(days=120)), "ana", "Técnico", "muito antigo")
    recent = tickets.open_ticket(replace(ctx, now=NOW - timedelta(days=20)), "ana", "Técnico", "recente")
    order = service_orders.open_order(ctx, recent.protocol, "Visita técnica", "trocar ONU")
    s.flush()
    ticket = tickets.open_ticket(ctx, "ana", "Técnico", "de novo sem conexão")
    snap = tickets.ticket_dict(s, ticket, full=True)["diagnostics"]
    assert snap["service"]["status"] == "enabled" and snap["service"]["plan"] == "FIBRA-100"
    [online] = snap["online"]
    assert online["ip"] == "100.64.0.10" and online["uptime_seconds"] == 7200
    assert online["nas_ip"] == "10.0.0.1" and online["interface"] == "vlan100"
    auths = snap["authentications_last_week"]
    assert len(auths) == 2 and auths[0]["mac_differs"] is True and auths[1]["mac_differs"] is False
    assert all(a["interface_differs"] for a in auths)
    assert [(i["due_date"], i["amount"], i["amount_paid"]) for i in snap["overdue_invoices"]] == [
        ("2026-11-01", "99.90", "10.00"), ("2026-11-10", "99.90", "0.00")]
    assert [t["protocol"] for t in snap["tickets_last_three_months"]] == [recent.protocol]
    assert old.protocol not in json.dumps(snap)
    assert [(o["id"], o["status"]) for o in snap["service_orders_last_three_months"]] == [(order.id, "open")]
    assert snap["open_service_orders"] == 1
    # Frozen: later changes do not alter the stored snapshot.
    services.suspend(ctx, "ana", "debt")
    again = tickets.ticket_dict(s, tickets.get_ticket(s, ticket.protocol), full=True)["diagnostics"]
    assert again["service"]["status"] == "enabled"


# --- service orders ----------------------------------------------------------------------

def test_service_orders_with_closing_reasons(ctx: Context, svc: Service, tech: None) -> None:
    for name in ("Fonte roteador queimada", "Cabo rompido"):
        service_orders.create_reason(ctx, name)
    assert [r.name for r in service_orders.list_reasons(ctx.session)] == [
        "Cabo rompido", "Fonte roteador queimada"]
    draft = tickets.open_ticket(ctx, "ana")
    with refused("ticket.draft"):
        service_orders.open_order(ctx, draft.protocol, "Visita", "x")
    ticket = tickets.open_ticket(ctx, "ana", "Técnico", "cliente não conecta")
    tech_ctx = as_operator(ctx, "tecnico", ["orders.close"])
    first = service_orders.open_order(ctx, ticket.protocol, "Cliente não conecta", "verificar", "Zé")
    second = service_orders.open_order(ctx, ticket.protocol, "Cliente não conecta", "voltar lá")
    assert tickets.get_ticket(ctx.session, ticket.protocol).status == "pending"
    with refused("ticket.open_orders"):
        tickets.finish_ticket(ctx, ticket.protocol, "x")
    for reason, rule in (("", "service_order.reason_required"), ("Inexistente", "closing_reason.not_found")):
        with pytest.raises(RuleViolation) as info:
            service_orders.close_order(tech_ctx, first.id, reason)
        assert info.value.rule == rule
    closed = service_orders.close_order(tech_ctx, first.id, "Fonte roteador queimada", "trocada")
    assert closed.status == "closed" and closed.closed_by_login == "tecnico"
    with refused("service_order.closed"):
        service_orders.close_order(tech_ctx, first.id, "Cabo rompido")
    service_orders.close_order(tech_ctx, second.id, "Cabo rompido")
    by_reason = service_orders.list_orders(ctx.session, reason="Fonte roteador queimada")
    assert [o.id for o in by_reason] == [first.id]
    data = service_orders.order_dict(ctx.session, by_reason[0])
    assert (data["closing_reason"], data["ticket"], data["technician"], data["login"]) == (
        "Fonte roteador queimada", ticket.protocol, "Zé", "ana")
    assert {o.id for o in service_orders.list_orders(ctx.session, status="closed")} == {first.id, second.id}
    assert service_orders.list_orders(ctx.session, status="open") == []
    of_ticket = service_orders.list_orders(ctx.session, protocol=ticket.protocol)
    assert {o.id for o in of_ticket} == {first.id, second.id}
    assert service_orders.list_orders(ctx.session, since=NOW + timedelta(seconds=1)) == []
    assert tickets.finish_ticket(ctx, ticket.protocol, "resolvido").status == "finished"
    with refused("ticket.finished"):
        service_orders.open_order(ctx, ticket.protocol, "Visita", "x")
    assert [h.action for h in history(ctx.session, "service_order", first.id)] == ["open", "close"]
