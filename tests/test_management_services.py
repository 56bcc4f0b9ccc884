"""Services: creation rules, status changes, plans, navigation, association, migration."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from aaa.db.models import ChangeFeedEntry, HistoryEntry, Service
from management import history, operators, plans, services
from management.context import Context, load_actor
from management.errors import PermissionDenied, RuleViolation
from tests import factories


@pytest.fixture
def base(ctx: Context) -> Context:
    """Two plans (one allowing association), a subnet for fixed IPs, a NAS."""
    from management import network

    factories.plan(ctx, "FIBRA-100", pool="pool-fibra")
    factories.plan(ctx, "FIBRA-300", download_kbps=300_000, upload_kbps=150_000, price="149.90")
    factories.plan(ctx, "IP-FIXO", download_kbps=1_000, upload_kbps=1_000, price="30.00",
                   allows_association=True)
    network.create_subnet(ctx, "200.200.0.0/29")
    network.create_nas(ctx, "mk1", "10.0.0.1", "secret", "mikrotik")
    return ctx


def feed_count(ctx: Context, service: Service) -> int:
    return ctx.session.scalar(select(func.count()).select_from(ChangeFeedEntry).where(
        ChangeFeedEntry.object_type == "service", ChangeFeedEntry.object_id == str(service.id))) or 0


def rule(exc: pytest.ExceptionInfo[RuleViolation]) -> str:
    return exc.value.rule


def test_create_service_normalises_and_records(base: Context) -> None:
    """A service stores the normalised MAC and fixed IP, and writes history and a change-feed row."""
    s = factories.service(base, "ana", mac="aabb-ccdd-eeff", mac_binding="enforce",
                          interface="vlan100", nas="mk1", ipv4="200.200.0.2",
                          ipv6_prefix="2001:db8:100::/56")
    assert (s.mac, s.ipv4, s.subnet_id is not None, s.ipv6_prefix) == (
        "AA:BB:CC:DD:EE:FF", "200.200.0.2", True, "2001:db8:100::/56")
    assert feed_count(base, s) == 1
    entries = history.for_login(base.session, "ana")
    assert [e.action for e in entries] == ["create"]
    assert json.loads(entries[0].changes)["login"] == [None, "ana"]
    assert "secret" not in entries[0].changes  # the password never reaches history


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"mac": "zz:zz"}, "service.mac_invalid"),
    ({"ipv4": "10.9.9.9"}, "service.ip_outside_subnet"),
    ({"ipv4": "200.200.0.0"}, "service.ip_outside_subnet"),  # network address
    ({"ipv4": "200.200.0.7"}, "service.ip_outside_subnet"),  # broadcast address
    ({"ipv4": "200.200.0.300"}, "ip.invalid"),
    ({"ipv6_prefix": "2001:db8::1/56"}, "ip.invalid"),
    ({"mac_binding": "sometimes"}, "service.mac_binding_invalid"),
    ({"login": "has space"}, "service.login_invalid"),
    ({"status": "cancelled"}, "service.status_invalid"),
])
def test_create_service_refusals(base: Context, kwargs: dict[str, str], expected: str) -> None:
    """Each invalid field is refused with its rule name and nothing is created."""
    kwargs = dict(kwargs)
    login = kwargs.pop("login", "bob")
    with pytest.raises(RuleViolation) as refused:
        factories.service(base, login, **kwargs)
    assert rule(refused) == expected


def test_login_and_ip_unique_among_live_services(base: Context) -> None:
    """A login or fixed IP in use is refused; once its service is cancelled it may be re-used."""
    factories.service(base, "ana", ipv4="200.200.0.1")
    with pytest.raises(RuleViolation) as dup:
        factories.service(base, "ana")
    assert rule(dup) == "service.login_duplicate"
    with pytest.raises(RuleViolation) as used:
        factories.service(base, "bob", ipv4="200.200.0.1")
    assert rule(used) == "service.ip_in_use"
    services.change_status(base, "ana", "cancelled")
    again = factories.service(base, "ana", ipv4="200.200.0.1")
    assert services.find_service(base.session, "ana").id == again.id


def test_status_changes_and_permissions(base: Context) -> None:
    """Suspension modes map to statuses; each target status needs its permission; cancelled is final."""
    factories.service(base, "ana")
    for mode, status in (("debt", "suspended_debt"), ("partial", "suspended_partial"),
                         ("request", "suspended_request")):
        assert services.suspend(base, "ana", mode, note="n").status == status
    with pytest.raises(RuleViolation) as bad_mode:
        services.suspend(base, "ana", "forever")
    assert rule(bad_mode) == "service.suspend_mode_invalid"

    operators.create_operator(base, "suporte", "Suporte", permissions=["services.suspend"])
    support = Context(base.session, load_actor(base.session, "suporte"), base.now, base.zone)
    with pytest.raises(PermissionDenied) as denied:
        services.change_status(support, "ana", "enabled")
    assert denied.value.permission == "services.enable"
    services.suspend(support, "ana", "debt")

    services.change_status(base, "ana", "cancelled")
    with pytest.raises(RuleViolation) as final:
        services.change_status(base, "ana", "enabled")
    assert rule(final) == "service.cancelled"
    actions = [e.action for e in history.for_login(base.session, "ana")]
    assert actions[-1] == "status:cancelled" and "status:suspended_partial" in actions


def test_trust_unlock_cleared_by_status_change(base: Context) -> None:
    """Any status change other than enabling ends a trust unlock in force."""
    s = factories.service(base, "ana")
    s.trust_unlock_until = base.now + timedelta(days=1)
    services.suspend(base, "ana", "debt")
    assert s.trust_unlock_until is None


def test_set_plan_and_navigation(base: Context) -> None:
    """Plan change and custom navigation are recorded; a past end date is refused; clear works."""
    s = factories.service(base, "ana")
    services.set_plan(base, "ana", "FIBRA-300")
    assert s.plan.name == "FIBRA-300"
    until = base.now + timedelta(days=3)
    services.set_navigation(base, "ana", 5_000, 2_000, until)
    assert (s.nav_download_kbps, s.nav_upload_kbps, s.nav_until) == (5_000, 2_000, until)
    with pytest.raises(RuleViolation) as past:
        services.set_navigation(base, "ana", 5_000, 2_000, base.now - timedelta(seconds=1))
    assert rule(past) == "service.navigation_invalid"
    services.set_navigation(base, "ana", None, None)
    assert s.nav_download_kbps is None and s.nav_until is None
    assert feed_count(base, s) == 4


def test_association_rules(base: Context) -> None:
    """Only a service whose plan allows association may be tied; not to itself, not in a cycle."""
    owner = factories.customer(base)
    factories.service(base, "ana", owner=owner)
    factories.service(base, "ana-ip", plan_name="IP-FIXO", owner=owner, ipv4="200.200.0.3")
    with pytest.raises(RuleViolation) as not_allowed:
        services.associate(base, "ana", "ana-ip")
    assert rule(not_allowed) == "service.association_not_allowed"
    with pytest.raises(RuleViolation) as itself:
        services.associate(base, "ana-ip", "ana-ip")
    assert rule(itself) == "service.association_self"
    tied = services.associate(base, "ana-ip", "ana")
    assert tied.associated_service is not None and tied.associated_service.login == "ana"
    with pytest.raises(RuleViolation) as plan_refused:
        services.set_plan(base, "ana-ip", "FIBRA-100")
    assert rule(plan_refused) == "service.association_not_allowed"
    assert services.associate(base, "ana-ip", None).associated_service_id is None


def test_immediate_migration_carries_authentication(base: Context) -> None:
    """Immediate migration: old cancelled, new enabled with the same login, password, MAC and IPs."""
    old = factories.service(base, "ana", password="pw1", mac="aa:bb:cc:dd:ee:01",
                            ipv4="200.200.0.4", nas="mk1", interface="vlan7")
    new = services.migrate(base, "ana", "FIBRA-300")
    assert old.status == "cancelled" and new.status == "enabled"
    assert (new.login, new.password, new.mac, new.ipv4, new.interface, new.plan.name) == (
        "ana", "pw1", "AA:BB:CC:DD:EE:01", "200.200.0.4", "vlan7", "FIBRA-300")
    assert services.find_service(base.session, "ana").id == new.id
    actions = {e.action for e in history.for_login(base.session, "ana")}
    assert {"migrated_out", "migrated_in"} <= actions


def test_deferred_migration_waits_until_enabled(base: Context) -> None:
    """Deferred: the old keeps working, the new awaits; enabling the new completes the move."""
    old = factories.service(base, "ana", ipv4="200.200.0.5")
    new = services.migrate(base, "ana", "FIBRA-300", deferred=True)
    assert (old.status, new.status) == ("enabled", "awaiting_migration")
    assert new.login != "ana" and new.ipv4 is None
    with pytest.raises(RuleViolation) as pending:
        services.migrate(base, "ana", "IP-FIXO", deferred=True)
    assert rule(pending) == "service.migration_pending"
    services.change_status(base, new.login, "enabled")
    assert (old.status, new.status, new.login, new.ipv4) == (
        "cancelled", "enabled", "ana", "200.200.0.5")


def test_transfer_to_another_customer(base: Context) -> None:
    """Transfer changes the owner and leaves a history row on both customers."""
    first, second = factories.customer(base), factories.customer(base)
    s = factories.service(base, "ana", owner=first)
    services.transfer(base, "ana", second.document)
    assert s.customer_id == second.id
    assert any(e.action == "transfer_out" for e in history.for_customer(base.session, first.id))
    assert any(e.action == "transfer_in" for e in history.for_customer(base.session, second.id))
    with pytest.raises(RuleViolation) as same:
        services.transfer(base, "ana", second.id)
    assert rule(same) == "service.transfer_same"


def test_mass_plan_change(base: Context) -> None:
    """Every live service of plan A moves to B, history per service; price kept unless updated."""
    a = factories.service(base, "a")
    b = factories.service(base, "b")
    c = factories.service(base, "c")
    services.change_status(base, "c", "cancelled")
    changed = plans.mass_change(base, "FIBRA-100", "FIBRA-300")
    assert {s.login for s in changed} == {"a", "b"}
    assert a.plan.name == "FIBRA-300" and a.price_override == Decimal("99.90")
    assert c.plan.name == "FIBRA-100"
    plans.mass_change(base, "FIBRA-300", "FIBRA-100", update_price=True)
    assert b.price_override is None
    assert [e.action for e in history.for_login(base.session, "a")].count("mass_plan_change") == 2


def test_schedule_status_change(base: Context) -> None:
    """Tasks are stored for a future day in the provider's zone; past days and duplicates refused."""
    factories.service(base, "ana")
    tomorrow = base.today + timedelta(days=1)
    task = services.schedule(base, "ana", "cancelled", tomorrow, note="pedido do cliente")
    assert (task.kind, task.target_status, task.run_on) == ("cancel", "cancelled", tomorrow)
    change = services.schedule(base, "ana", "suspended_request", tomorrow)
    assert change.kind == "status_change"
    with pytest.raises(RuleViolation) as past:
        services.schedule(base, "ana", "enabled", base.today)
    assert rule(past) == "task.date_past"
    with pytest.raises(RuleViolation) as dup:
        services.schedule(base, "ana", "cancelled", tomorrow)
    assert rule(dup) == "task.duplicate"
    assert len(services.pending_tasks(base.session, "ana")) == 2
    assert base.today == date(2026, 11, 23)


def test_edit_service(base: Context) -> None:
    """Edits change only what is given; clearing works; the password shows only as masked."""
    s = factories.service(base, "ana", mac="aa:bb:cc:dd:ee:ff", ipv4="200.200.0.1")
    services.edit_service(base, "ana", password="novasenha", mac=None, ipv4="200.200.0.2",
                          simultaneous_use=2)
    assert (s.password, s.mac, s.ipv4, s.simultaneous_use) == ("novasenha", None, "200.200.0.2", 2)
    last = history.for_login(base.session, "ana")[-1]
    assert "novasenha" not in last.changes and json.loads(last.changes)["password"] == ["***", "***"]


def test_inactive_operator_and_unknown_operator_refused(base: Context) -> None:
    """An inactive or unknown operator cannot act."""
    operators.create_operator(base, "ex", "Ex-funcionário", permissions=["services.create"])
    operators.inactivate_operator(base, "ex")
    with pytest.raises(RuleViolation) as inactive:
        load_actor(base.session, "ex")
    assert rule(inactive) == "operator.inactive"
    with pytest.raises(RuleViolation) as unknown:
        load_actor(base.session, "ghost")
    assert rule(unknown) == "operator.unknown"


def test_operator_permissions_clone(base: Context) -> None:
    """Cloning replaces the target's permissions with the source's; unknown names are refused."""
    operators.create_operator(base, "a", "A", permissions=["services.suspend", "tickets.finish"])
    operators.create_operator(base, "b", "B", permissions=["passwords.view"])
    b = operators.clone_permissions(base, "b", "a")
    assert [p.permission for p in b.permissions] == ["services.suspend", "tickets.finish"]
    with pytest.raises(RuleViolation) as unknown:
        operators.grant(base, "b", ["services.fly"], [])
    assert rule(unknown) == "operator.permission_unknown"
    entry = base.session.scalars(select(HistoryEntry).where(
        HistoryEntry.object_id == "b").order_by(HistoryEntry.id.desc())).first()
    assert entry is not None and entry.action == "clone_permissions:a"
