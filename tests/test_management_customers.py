"""Customers, plans, NAS, subnets and variables: the rules of the management functions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from aaa.db.models import ChangeFeedEntry, HistoryEntry
from management import customers, network, plans, variables
from management.context import Context
from management.errors import NotFound, RuleViolation
from tests import factories


def rule_of(exc: pytest.ExceptionInfo[RuleViolation]) -> str:
    return exc.value.rule


def test_customer_created_with_history(ctx: Context) -> None:
    """A customer is stored with its normalised document and PF/PJ type, and history names the operator."""
    c = customers.create_customer(ctx, "Ana", "529.982.247-25", city="Recife", state="pe")
    assert (c.document, c.person_type, c.state) == ("52998224725", "PF", "PE")
    entry = ctx.session.scalar(select(HistoryEntry).where(HistoryEntry.object_type == "customer"))
    assert entry is not None and entry.operator_login == "admin" and entry.action == "create"
    pj = customers.create_customer(ctx, "Empresa", "11.222.333/0001-81")
    assert pj.person_type == "PJ"


def test_customer_document_rules(ctx: Context) -> None:
    """Invalid check digits and duplicate documents are refused, naming the rule."""
    with pytest.raises(RuleViolation) as bad:
        customers.create_customer(ctx, "Ana", "529.982.247-26")
    assert rule_of(bad) == "customer.document_invalid"
    customers.create_customer(ctx, "Ana", "52998224725")
    with pytest.raises(RuleViolation) as dup:
        customers.create_customer(ctx, "Outra", "529.982.247-25")
    assert rule_of(dup) == "customer.document_duplicate"


def test_customer_lookup_by_id_or_document(ctx: Context) -> None:
    """A customer is found by id or by document with punctuation; unknown refs are NotFound."""
    c = factories.customer(ctx, document="52998224725")
    assert customers.get_customer(ctx.session, str(c.id)) is c
    assert customers.get_customer(ctx.session, "529.982.247-25") is c
    with pytest.raises(NotFound):
        customers.get_customer(ctx.session, "999999")


def test_inactivation_refused_with_live_services(ctx: Context) -> None:
    """A customer with a service that is not cancelled cannot be inactivated; after cancelling he can."""
    from management import services

    factories.plan(ctx)
    owner = factories.customer(ctx)
    factories.service(ctx, "ana", owner=owner)
    with pytest.raises(RuleViolation) as refused:
        customers.inactivate_customer(ctx, owner.id)
    assert rule_of(refused) == "customer.has_live_services"
    services.change_status(ctx, "ana", "cancelled")
    assert customers.inactivate_customer(ctx, owner.id).active is False


def test_plan_rules_and_clone(ctx: Context) -> None:
    """Plan names are unique, speeds positive; a clone copies speeds, price, pool and flag."""
    p = factories.plan(ctx, "FIBRA-100", pool="pool-a", allows_association=True)
    assert p.price == Decimal("99.90")
    with pytest.raises(RuleViolation) as dup:
        factories.plan(ctx, "FIBRA-100")
    assert rule_of(dup) == "plan.name_duplicate"
    with pytest.raises(RuleViolation) as speed:
        factories.plan(ctx, "ZERO", download_kbps=0)
    assert rule_of(speed) == "plan.speed_invalid"
    clone = plans.clone_plan(ctx, "FIBRA-100", "FIBRA-100-B")
    assert (clone.download_kbps, clone.price, clone.pool, clone.allows_association) == (
        100_000, Decimal("99.90"), "pool-a", True)
    feed = ctx.session.scalars(select(ChangeFeedEntry).where(ChangeFeedEntry.object_type == "plan")).all()
    assert len(feed) == 2


def test_nas_rules(ctx: Context) -> None:
    """NAS need a valid unique IP, a known vendor and a secret; the secret never reaches history."""
    nas = network.create_nas(ctx, "mk1", "10.0.0.1", "s3cr3t-value", "mikrotik")
    assert nas.require_message_authenticator is True and nas.coa_port == 3799
    network.create_nas(ctx, "hw1", "2001:db8::1", "x", "huawei", coa_port=1700,
                       require_message_authenticator=False)
    for kwargs, rule in (
        ({"name": "mk2", "ip": "10.0.0.1"}, "nas.ip_duplicate"),
        ({"name": "mk1", "ip": "10.0.0.9"}, "nas.name_duplicate"),
        ({"name": "mk3", "ip": "10.0.0.300"}, "ip.invalid"),
        ({"name": "mk4", "ip": "10.0.0.4", "vendor": "cisco"}, "nas.vendor_invalid"),
    ):
        args = {"secret": "x", "vendor": "mikrotik", **kwargs}
        with pytest.raises(RuleViolation) as refused:
            network.create_nas(ctx, **args)
        assert rule_of(refused) == rule
    histories = ctx.session.scalars(select(HistoryEntry.changes).where(HistoryEntry.object_type == "nas"))
    assert all("s3cr3t" not in text for text in histories)
    assert network.get_nas(ctx.session, "10.0.0.1").name == "mk1"


def test_subnets_and_next_free_ip(ctx: Context) -> None:
    """next-ip skips network, broadcast and used addresses; overlapping subnets are refused."""
    factories.plan(ctx)
    network.create_subnet(ctx, "200.200.0.0/29", folder="clientes")
    with pytest.raises(RuleViolation) as overlap:
        network.create_subnet(ctx, "200.200.0.0/28")
    assert rule_of(overlap) == "subnet.overlap"
    with pytest.raises(RuleViolation):
        network.create_subnet(ctx, "200.200.1.1/24")  # host bits set
    assert network.next_free_ip(ctx.session, "200.200.0.0/29") == "200.200.0.1"
    factories.service(ctx, "a", ipv4="200.200.0.1")
    factories.service(ctx, "b", ipv4="200.200.0.3")
    assert network.next_free_ip(ctx.session, "200.200.0.0/29") == "200.200.0.2"
    for i, login in ((2, "c"), (4, "d"), (5, "e"), (6, "f")):
        factories.service(ctx, login, ipv4=f"200.200.0.{i}")
    with pytest.raises(RuleViolation) as full:
        network.next_free_ip(ctx.session, "200.200.0.0/29")
    assert rule_of(full) == "subnet.full"


def test_variables(ctx: Context) -> None:
    """Variables are upper-cased keys; alarm variables must be integers; changes hit the feed."""
    variables.set_variable(ctx, "pool_suspensao_total", "bloqueados")
    assert variables.get_variable(ctx.session, "POOL_SUSPENSAO_TOTAL").value == "bloqueados"
    with pytest.raises(RuleViolation) as bad:
        variables.set_variable(ctx, "ALARME_CONEXAO_DIAS_EXPIRACAO", "sete")
    assert rule_of(bad) == "variable.value_invalid"
    feed = ctx.session.scalars(select(ChangeFeedEntry.object_id).where(
        ChangeFeedEntry.object_type == "variable")).all()
    assert feed == ["POOL_SUSPENSAO_TOTAL"]
