"""The billing bridge through time, on both databases: invoices go overdue, the suspension
routine slows then blocks the service, a payment brings it back; each step is checked in
the daemon's own answer (aaa.policy.rules.decide on a view loaded from the database) for a
MikroTik and a Huawei NAS, with history rows and CoA jobs for the live session."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from aaa.db.models import AcctSession, ChangeFeedEntry, CoaJob, HistoryEntry, Invoice, Service
from aaa.db.views import load_view
from aaa.policy.rules import Decision, PolicySettings, RequestFacts, decide
from billing_bridge import bridge, payments, trust
from billing_bridge.rules import Debt, MethodRule, debt_status
from management import network, operators, services, variables
from management.context import Context, load_actor
from management.errors import RuleViolation
from tests import factories

DUE = date(2026, 11, 10)
SETTINGS = PolicySettings()


def at(ctx: Context, day: date, hour: int = 12) -> Context:
    """The same session and operator on another day (noon UTC = 09:00 in São Paulo)."""
    return dataclasses.replace(ctx, now=datetime(day.year, day.month, day.day, hour, tzinfo=UTC))


def setup_isp(ctx: Context, reduction: str = "relative", value: int = 50,
              min_amount: str = "10.00") -> Service:
    """Plan 100/50 Mbit/s, a MikroTik and a Huawei NAS, the blocked pool, a method with
    partial after 5 days and total after 15; service `ana` with that method, online."""
    factories.plan(ctx, "FIBRA-100", pool="pool-fibra")
    network.create_nas(ctx, "mk1", "10.0.0.1", "segredo", "mikrotik")
    network.create_nas(ctx, "hw1", "10.0.0.2", "segredo", "huawei")
    variables.set_variable(ctx, "POOL_SUSPENSAO_TOTAL", "bloqueados")
    payments.create_method(ctx, "BOLETO", partial_after_days=5, total_after_days=15,
                           min_open_amount=min_amount, reduction_type=reduction,
                           reduction_value=value)
    service = factories.service(ctx, "ana")
    payments.assign_method(ctx, "ana", "BOLETO")
    go_online(ctx, service)
    return service


def go_online(ctx: Context, service: Service) -> None:
    """An open accounting session: only services online get CoA jobs."""
    ctx.session.add(AcctSession(
        unique_id=f"u-{service.login}", acct_session_id=f"s-{service.login}", nas_id=None,
        nas_ip="10.0.0.1", login=service.login, service_id=service.id,
        started_at=ctx.now - timedelta(days=30), updated_at=ctx.now))
    ctx.session.flush()


def answer(ctx: Context, login: str, nas_ip: str) -> Decision:
    """What the daemon would reply now to an Access-Request from that NAS."""
    view = load_view(ctx.session)
    return decide(RequestFacts(login=login, nas=view.nas_by_ip[nas_ip]), view, ctx.now, SETTINGS)


def reply(ctx: Context, login: str, nas_ip: str) -> dict[str, object]:
    decision = answer(ctx, login, nas_ip)
    assert decision.accepted, decision.reasons
    return dict(decision.reply)


def status(ctx: Context, login: str) -> str:
    ctx.session.expire_all()
    return services.find_service(ctx.session, login).status


def history(ctx: Context, service_id: int) -> list[str]:
    return list(ctx.session.scalars(select(HistoryEntry.action).where(
        HistoryEntry.object_type == "service", HistoryEntry.object_id == str(service_id))
        .order_by(HistoryEntry.id)))


def coa_jobs(ctx: Context, service_id: int) -> int:
    return ctx.session.scalar(select(func.count()).select_from(CoaJob)
                              .where(CoaJob.service_id == service_id)) or 0


def test_overdue_partial_total_paid_enabled_relative(ctx: Context) -> None:
    """Relative 50 %: 4 days overdue nothing; day 5 partial (MikroTik 25000k/50000k, Huawei
    halves); day 15 total (Framed-Pool bloqueados); paying re-enables at full speed. Each
    move leaves a status history row and a CoA job for the live session."""
    service = setup_isp(ctx)
    payments.add_invoice(ctx, "ana", DUE, "99.90")

    day4 = at(ctx, DUE + timedelta(days=4))
    assert bridge.suspension_routine(day4).changes == []
    assert reply(day4, "ana", "10.0.0.1")["Mikrotik-Rate-Limit"] == "50000k/100000k"

    day5 = at(ctx, DUE + timedelta(days=5))
    outcome = bridge.suspension_routine(day5)
    assert [(c.login, c.to_status) for c in outcome.changes] == [("ana", "suspended_partial")]
    assert "5 days overdue" in outcome.changes[0].reason and outcome.coa_jobs == 1
    assert status(day5, "ana") == "suspended_partial"
    assert reply(day5, "ana", "10.0.0.1")["Mikrotik-Rate-Limit"] == "25000k/50000k"
    huawei = reply(day5, "ana", "10.0.0.2")
    assert huawei["Huawei-Output-Average-Rate"] == 50_000_000  # download 100 → 50 Mbit/s
    assert huawei["Huawei-Input-Peak-Rate"] == 25_000_000  # upload 50 → 25 Mbit/s
    assert huawei.get("Framed-Pool") == "pool-fibra"
    assert history(day5, service.id)[-1] == "status:suspended_partial"
    assert coa_jobs(day5, service.id) == 1

    assert bridge.suspension_routine(at(ctx, DUE + timedelta(days=14))).changes == []
    day15 = at(ctx, DUE + timedelta(days=15))
    outcome = bridge.suspension_routine(day15)
    assert [c.to_status for c in outcome.changes] == ["suspended_debt"]
    assert status(day15, "ana") == "suspended_debt"
    for nas_ip in ("10.0.0.1", "10.0.0.2"):
        assert reply(day15, "ana", nas_ip)["Framed-Pool"] == "bloqueados"
    assert history(day15, service.id)[-1] == "status:suspended_debt"
    assert coa_jobs(day15, service.id) == 2

    day16 = at(ctx, DUE + timedelta(days=16))
    invoice = payments.list_invoices(day16.session, "ana")[0]
    payments.pay_invoice(day16, invoice.id)
    assert bridge.suspension_routine(day16).changes == []  # the suspension never relaxes
    outcome = bridge.enable_routine(day16)
    assert [(c.from_status, c.to_status) for c in outcome.changes] == [("suspended_debt", "enabled")]
    assert status(day16, "ana") == "enabled"
    assert reply(day16, "ana", "10.0.0.1")["Mikrotik-Rate-Limit"] == "50000k/100000k"
    assert reply(day16, "ana", "10.0.0.2")["Huawei-Output-Peak-Rate"] == 100_000_000
    assert history(day16, service.id)[-1] == "status:enabled"
    assert coa_jobs(day16, service.id) == 3


def test_absolute_reduction_in_the_daemon_answer(ctx: Context) -> None:
    """An absolute reduction caps both directions at the method's kbit/s, on both vendors."""
    setup_isp(ctx, reduction="absolute", value=2048)
    payments.add_invoice(ctx, "ana", DUE, "120.00")
    day6 = at(ctx, DUE + timedelta(days=6))
    assert [c.to_status for c in bridge.suspension_routine(day6).changes] == ["suspended_partial"]
    assert reply(day6, "ana", "10.0.0.1")["Mikrotik-Rate-Limit"] == "2048k/2048k"
    huawei = reply(day6, "ana", "10.0.0.2")
    assert huawei["Huawei-Input-Average-Rate"] == huawei["Huawei-Output-Average-Rate"] == 2_048_000


def test_partial_skipped_when_already_past_total(ctx: Context) -> None:
    """A service first judged 20 days late goes straight to the stricter total suspension."""
    setup_isp(ctx)
    payments.add_invoice(ctx, "ana", DUE, "99.90")
    outcome = bridge.suspension_routine(at(ctx, DUE + timedelta(days=20)))
    assert [(c.from_status, c.to_status) for c in outcome.changes] == [("enabled", "suspended_debt")]


def test_minimum_open_amount_is_respected(ctx: Context) -> None:
    """Open 5.00 under a 10.00 minimum suspends nobody; a second overdue invoice crosses it."""
    setup_isp(ctx)
    payments.add_invoice(ctx, "ana", DUE, "5.00")
    day20 = at(ctx, DUE + timedelta(days=20))
    assert bridge.suspension_routine(day20).changes == []
    verdicts = {d.login: d.verdict for d in bridge.load_debts(day20, day20.today)}
    assert "below the minimum 10.00" in verdicts["ana"].reason
    payments.add_invoice(ctx, "ana", DUE + timedelta(days=1), "5.00")
    assert [c.to_status for c in bridge.suspension_routine(day20).changes] == ["suspended_debt"]


def test_partial_payment_keeps_the_debt_open(ctx: Context) -> None:
    """A partial payment marks the invoice partially_paid; the rest still counts as debt, and
    a cancelled invoice stops counting."""
    setup_isp(ctx, min_amount="0")
    invoice = payments.add_invoice(ctx, "ana", DUE, "99.90")
    paid, payment = payments.pay_invoice(ctx, invoice.id, "50.00")
    assert (paid.status, paid.amount_paid, payment.amount) == ("partially_paid", Decimal("50.00"),
                                                               Decimal("50.00"))
    day20 = at(ctx, DUE + timedelta(days=20))
    debts = {d.login: d for d in bridge.load_debts(day20, day20.today)}
    assert debts["ana"].verdict.status == "suspended_debt" and "open 49.90" in debts["ana"].verdict.reason
    bridge.suspension_routine(day20)
    payments.cancel_invoice(day20, invoice.id, "negotiated")
    assert [c.to_status for c in bridge.enable_routine(day20).changes] == ["enabled"]


def test_associated_service_follows(ctx: Context) -> None:
    """A fixed-IP service with no debt of its own, associated to a debtor, is suspended and
    re-enabled with it (the stricter of the two verdicts)."""
    service = setup_isp(ctx)
    factories.plan(ctx, "IP-FIXO", download_kbps=1000, upload_kbps=1000, allows_association=True)
    extra = factories.service(ctx, "ana-ip", plan_name="IP-FIXO", owner=service.customer)
    services.associate(ctx, "ana-ip", "ana")
    go_online(ctx, extra)
    payments.add_invoice(ctx, "ana", DUE, "99.90")
    day15 = at(ctx, DUE + timedelta(days=15))
    outcome = bridge.suspension_routine(day15)
    changes = {c.login: c for c in outcome.changes}
    assert {k: c.to_status for k, c in changes.items()} == {"ana": "suspended_debt",
                                                            "ana-ip": "suspended_debt"}
    assert changes["ana-ip"].reason.startswith("associated service ana")
    assert outcome.coa_jobs == 2 and coa_jobs(day15, extra.id) == 1
    assert history(day15, extra.id)[-1] == "status:suspended_debt"
    payments.pay_invoice(day15, payments.list_invoices(ctx.session, "ana")[0].id)
    back = bridge.enable_routine(day15, service_ids=[service.id])  # the fast path's call
    assert sorted(c.login for c in back.changes) == ["ana", "ana-ip"]


def test_service_without_method_uses_the_invoice_method(ctx: Context) -> None:
    """When the service has no method, its overdue invoices' method judges it; with neither,
    nobody is suspended."""
    setup_isp(ctx)
    payments.assign_method(ctx, "ana", None)
    payments.add_invoice(ctx, "ana", DUE, "99.90")
    day20 = at(ctx, DUE + timedelta(days=20))
    assert bridge.suspension_routine(day20).changes == []
    payments.add_invoice(ctx, "ana", DUE, "99.90", method_name="BOLETO")
    assert [c.to_status for c in bridge.suspension_routine(day20).changes] == ["suspended_debt"]


def test_operator_trust_unlock_needs_note_date_permission_and_expires(ctx: Context) -> None:
    """An operator's trust unlock needs the permission, a note and a future end; while in
    force the daemon answers as enabled and the routine leaves it alone; once expired the
    debt answer (blocked pool) is back, all in history."""
    service = setup_isp(ctx)
    payments.add_invoice(ctx, "ana", DUE, "99.90")
    day20 = at(ctx, DUE + timedelta(days=20))
    bridge.suspension_routine(day20)
    until = day20.now + timedelta(days=3)
    operators.create_operator(ctx, "clerk", "Clerk", permissions=["services.suspend"])
    clerk = dataclasses.replace(day20, actor=load_actor(ctx.session, "clerk"))
    with pytest.raises(RuleViolation) as refused:
        trust.trust_unlock(clerk, "ana", until, "promised to pay")
    assert refused.value.rule == "operator.permission"
    with pytest.raises(RuleViolation) as refused:
        trust.trust_unlock(day20, "ana", until, "  ")
    assert refused.value.rule == "trust.note_required"
    with pytest.raises(RuleViolation) as refused:
        trust.trust_unlock(day20, "ana", day20.now - timedelta(hours=1), "late")
    assert refused.value.rule == "trust.until_past"

    unlock = trust.trust_unlock(day20, "ana", until, "promised to pay on Friday")
    assert unlock.note == "promised to pay on Friday" and not unlock.self_service
    assert "trust_unlock" in history(day20, service.id)
    assert reply(day20, "ana", "10.0.0.1")["Mikrotik-Rate-Limit"] == "50000k/100000k"
    day22 = at(ctx, DUE + timedelta(days=22))
    assert bridge.suspension_routine(day22).changes == []
    assert trust.expire_trust_unlocks(day22) == []  # not yet
    day24 = at(ctx, DUE + timedelta(days=24))
    assert trust.expire_trust_unlocks(day24) == ["ana"]
    assert history(day24, service.id)[-1] == "trust_unlock_expired"
    assert reply(day24, "ana", "10.0.0.1")["Framed-Pool"] == "bloqueados"


def test_trust_unlock_only_for_debt_suspensions(ctx: Context) -> None:
    """An enabled or request-suspended service cannot be unlocked in trust."""
    setup_isp(ctx)
    with pytest.raises(RuleViolation) as refused:
        trust.self_service_unlock(ctx, "ana")
    assert refused.value.rule == "trust.not_suspended"


def test_self_service_once_per_calendar_month_for_one_day(ctx: Context) -> None:
    """The subscriber's own unlock lasts one day and is refused a second time in the same
    calendar month (provider's zone), allowed again the next month."""
    setup_isp(ctx)
    payments.add_invoice(ctx, "ana", DUE, "99.90")
    day20 = at(ctx, DUE + timedelta(days=20))  # 2026-11-30
    bridge.suspension_routine(day20)
    unlock = trust.self_service_unlock(day20, "ana")
    assert unlock.self_service and unlock.until == day20.now + timedelta(days=1)
    assert reply(day20, "ana", "10.0.0.2")["Huawei-Output-Peak-Rate"] == 100_000_000
    next_day = dataclasses.replace(day20, now=day20.now + timedelta(days=1, minutes=1))
    assert trust.expire_trust_unlocks(next_day) == ["ana"]
    assert reply(next_day, "ana", "10.0.0.2")["Framed-Pool"] == "bloqueados"
    # 2026-11-30 23:30 in São Paulo is still November there (02:30 UTC on December 1st).
    late_november = dataclasses.replace(ctx, now=datetime(2026, 12, 1, 2, 30, tzinfo=UTC))
    with pytest.raises(RuleViolation) as refused:
        trust.self_service_unlock(late_november, "ana")
    assert refused.value.rule == "trust.monthly_limit"
    december = dataclasses.replace(ctx, now=datetime(2026, 12, 1, 3, 30, tzinfo=UTC))
    assert trust.self_service_unlock(december, "ana").self_service
    assert ctx.session.scalar(select(func.count()).select_from(HistoryEntry).where(
        HistoryEntry.action == "trust_unlock_self")) == 2


def test_payment_during_trust_unlock_enables_at_once(ctx: Context) -> None:
    """A service under trust whose debt is paid is enabled (ending the trust) rather than
    left to fall back into the blocked pool when the trust expires."""
    service = setup_isp(ctx)
    invoice = payments.add_invoice(ctx, "ana", DUE, "99.90")
    day20 = at(ctx, DUE + timedelta(days=20))
    bridge.suspension_routine(day20)
    trust.trust_unlock(day20, "ana", day20.now + timedelta(days=5), "customer called")
    payments.pay_invoice(day20, invoice.id)
    assert [c.to_status for c in bridge.enable_routine(day20, service_ids=[service.id]).changes] \
        == ["enabled"]
    ctx.session.expire_all()
    row = ctx.session.get(Service, service.id)
    assert row is not None and row.status == "enabled" and row.trust_unlock_until is None


def test_dry_run_decides_and_writes_nothing(ctx: Context) -> None:
    """A dry run returns the changes it would make, with reasons, and writes no status,
    history, change feed or CoA job."""
    service = setup_isp(ctx)
    payments.add_invoice(ctx, "ana", DUE, "99.90")
    day20 = at(ctx, DUE + timedelta(days=20))

    def counts() -> tuple[int | None, ...]:
        return tuple(ctx.session.scalar(select(func.count()).select_from(model))
                     for model in (HistoryEntry, ChangeFeedEntry, CoaJob))

    before = counts()
    outcome = bridge.suspension_routine(day20, dry_run=True)
    assert [(c.login, c.to_status) for c in outcome.changes] == [("ana", "suspended_debt")]
    assert "20 days overdue" in outcome.changes[0].reason
    assert outcome.counts["suspended_debt"] == 1 and outcome.coa_jobs == 0
    assert counts() == before and status(day20, "ana") == "enabled"
    assert service.status == "enabled"


def test_contract_refusals(ctx: Context) -> None:
    """The write side of the contract refuses bad input with named rules."""
    setup_isp(ctx)
    cases = [
        (lambda: payments.add_invoice(ctx, "ana", DUE, "0"), "billing.amount_invalid"),
        (lambda: payments.add_invoice(ctx, "ana", DUE, "-1"), "billing.amount_invalid"),
        (lambda: payments.add_invoice(ctx, "ana", DUE, "9.999"), "billing.amount_invalid"),
        (lambda: payments.add_invoice(ctx, "ana", DUE, "abc"), "billing.amount_invalid"),
        (lambda: payments.add_invoice(ctx, "ana", date(1990, 1, 1), "1"), "billing.due_invalid"),
        (lambda: payments.add_invoice(ctx, "nobody", DUE, "1"), "service.not_found"),
        (lambda: payments.add_invoice(ctx, "ana", DUE, "1", "PIX"), "payment_method.not_found"),
        (lambda: payments.create_method(ctx, "BOLETO"), "billing.method_duplicate"),
        (lambda: payments.create_method(ctx, "X", 10, 5), "billing.thresholds_order"),
        (lambda: payments.create_method(ctx, "Y", reduction_type="relative", reduction_value=150),
         "billing.reduction_invalid"),
        (lambda: payments.create_method(ctx, "Z", reduction_type="absolute", reduction_value=0),
         "billing.reduction_invalid"),
        (lambda: payments.create_method(ctx, "W", -1), "billing.days_invalid"),
        (lambda: payments.pay_invoice(ctx, 999_999), "invoice.not_found"),
    ]
    for call, rule in cases:
        with pytest.raises(RuleViolation) as refused:
            call()
        assert refused.value.rule == rule
    invoice = payments.add_invoice(ctx, "ana", DUE, "10.00")
    with pytest.raises(RuleViolation) as refused:
        payments.pay_invoice(ctx, invoice.id, "10.01")
    assert refused.value.rule == "billing.overpayment"
    payments.pay_invoice(ctx, invoice.id)
    for call in (lambda: payments.pay_invoice(ctx, invoice.id),
                 lambda: payments.cancel_invoice(ctx, invoice.id)):
        with pytest.raises(RuleViolation) as refused:
            call()
        assert refused.value.rule == "billing.invoice_not_open"
    operators.create_operator(ctx, "viewer", "Viewer", permissions=[])
    viewer = dataclasses.replace(ctx, actor=load_actor(ctx.session, "viewer"))
    with pytest.raises(RuleViolation) as refused:
        payments.add_invoice(viewer, "ana", DUE, "1")
    assert refused.value.rule == "operator.permission"


def test_invoice_writes_keep_money_exact_and_touch_updated_at(ctx: Context) -> None:
    """Amounts round-trip as exact Decimals; every invoice write moves updated_at and leaves
    an invoice history row."""
    setup_isp(ctx)
    invoice = payments.add_invoice(ctx, "ana", DUE, "0,10")
    later = dataclasses.replace(ctx, now=ctx.now + timedelta(minutes=5))
    payments.pay_invoice(later, invoice.id, "0.03")
    ctx.session.expire_all()
    row = ctx.session.get(Invoice, invoice.id)
    assert row is not None and (row.amount, row.amount_paid) == (Decimal("0.10"), Decimal("0.03"))
    assert row.updated_at == later.now
    assert payments.invoice_dict(ctx.session, row)["open_amount"] == "0.07"
    actions = list(ctx.session.scalars(select(HistoryEntry.action).where(
        HistoryEntry.object_type == "invoice").order_by(HistoryEntry.id)))
    assert actions == ["create", "payment"]
    change = json.loads(ctx.session.scalars(select(HistoryEntry.changes).where(
        HistoryEntry.object_type == "invoice").order_by(HistoryEntry.id.desc())).first() or "{}")
    assert change["amount_paid"] == ["0.00", "0.03"] and change["status"] == ["open", "partially_paid"]


def test_debt_status_is_pure() -> None:
    """The pure rule: the stricter threshold that applies; the due day itself is not overdue."""
    method = MethodRule("M", True, 5, True, 15, Decimal("10.00"))
    today = date(2026, 11, 30)
    assert debt_status(Debt(today, Decimal("99")), method, today).status == "enabled"
    assert debt_status(Debt(today - timedelta(days=5), Decimal("99")), method, today).status \
        == "suspended_partial"
    assert debt_status(Debt(today - timedelta(days=15), Decimal("99")), method, today).status \
        == "suspended_debt"
    only_total = MethodRule("T", False, None, True, 10, Decimal("0"))
    assert debt_status(Debt(today - timedelta(days=9), Decimal("1")), only_total, today).status \
        == "enabled"
    assert debt_status(Debt(today - timedelta(days=99), Decimal("1")), None, today).status == "enabled"
