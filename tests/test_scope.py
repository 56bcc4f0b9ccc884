"""Operators limited to cities: they see and change only customers (and services) of those cities."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from aaa.accounting.events import AcctEvent
from management import addresses, customers, history, inventory, operators, scope, services
from management.context import Context, load_actor
from management.errors import RuleViolation
from tests import factories
from tests.conftest import NOW, ZONE, CliResult

Cli = Callable[..., CliResult]
ALL = ["customers.edit", "customers.inactivate", "services.create", "services.edit",
       "services.suspend", "services.enable", "services.cancel", "services.migrate",
       "addresses.edit", "inventory.edit"]


def _as(session: Session, login: str) -> Context:
    return Context(session=session, actor=load_actor(session, login), now=NOW, zone=ZONE)


def test_operator_limited_to_a_city(ctx: Context) -> None:
    """Listings hide, and show and every write refuse, customers and services of other cities."""
    factories.plan(ctx)
    recife = factories.customer(ctx, city="Recife")
    olinda = factories.customer(ctx, city="Olinda")
    factories.service(ctx, "rec", owner=recife)
    factories.service(ctx, "oli", owner=olinda)
    operators.create_operator(ctx, "op", "Operadora", permissions=ALL)
    assert scope.set_cities(ctx, "op", ["  olinda ", "Olinda", "Paulista"]) == ["Paulista", "olinda"]
    op = _as(ctx.session, "op")
    actor = op.actor
    assert [c.id for c in customers.list_customers(ctx.session, actor=actor)] == [olinda.id]
    assert [s.login for s in services.list_services(ctx.session, actor=actor)] == ["oli"]
    assert customers.get_customer(ctx.session, olinda.id, actor=actor) is olinda
    refusals = (
        lambda: customers.get_customer(ctx.session, recife.id, actor=actor),
        lambda: services.find_service(ctx.session, "rec", actor=actor),
        lambda: history.for_customer(ctx.session, recife.id, actor=actor),
        lambda: customers.inactivate_customer(op, recife.id),
        lambda: customers.create_customer(op, "Nova", factories.cpf(), city="Recife"),
        lambda: services.create_service(op, recife.id, "FIBRA-100", "new", "pw"),
        lambda: services.edit_service(op, "rec", note="x"),
        lambda: services.suspend(op, "rec", "debt"),
        lambda: services.set_plan(op, "rec", "FIBRA-100"),
        lambda: services.transfer(op, "oli", recife.id),
        lambda: addresses.set_service_address(op, "rec", "all", street="R", neighbourhood="B",
                                              city="Olinda", state="PE", cep="53000000"),
        lambda: addresses.set_customer_address(op, olinda.id, street="R", neighbourhood="B",
                                               city="Recife", state="PE", cep="50000000"),
        lambda: addresses.group_neighbourhoods(op, "Recife", "B", ["A"]),
    )
    for refused_call in refusals:
        with pytest.raises(RuleViolation) as refused:
            refused_call()
        assert refused.value.rule == "operator.city_scope"
    # ... while the customer of his city is his to change
    services.edit_service(op, "oli", note="ok")
    customers.create_customer(op, "Nova", factories.cpf(), city="OLINDA")
    # the admin (no cities) still sees everyone; lifting the limit restores the view
    assert len(customers.list_customers(ctx.session, actor=ctx.actor)) == 3
    assert scope.set_cities(ctx, "op", []) == []
    assert len(customers.list_customers(ctx.session, actor=actor)) == 3


def test_attach_port_respects_the_city(ctx: Context) -> None:
    """Putting a service of another city on a port is refused like any other write."""
    factories.plan(ctx)
    factories.service(ctx, "rec", owner=factories.customer(ctx, city="Recife"))
    inventory.create_olt(ctx, "O", "10.9.0.1", "zte", "C300")
    inventory.create_port(ctx, "O", "P", slot=1, pon=1)
    operators.create_operator(ctx, "op", "Op", permissions=ALL)
    scope.set_cities(ctx, "op", ["Olinda"])
    with pytest.raises(RuleViolation) as refused:
        inventory.attach_port(_as(ctx.session, "op"), "rec", "O", "P")
    assert refused.value.rule == "operator.city_scope"


def test_cli_operator_cities(cli: Cli) -> None:
    """`aaa operator cities`: a limited operator cannot list, show or change a customer of
    another city (exit 1 naming the rule); --clear lifts the limit."""
    assert cli("plan", "add", "FIBRA", "--download", "1000", "--upload", "1000").code == 0
    for city in ("Recife", "Olinda"):
        assert cli("customer", "add", "--name", city, "--document", factories.cpf(), "--city", city).code == 0
    assert cli("service", "add", "--customer", "1", "--plan", "FIBRA", "--login", "rec",
               "--password", "p").code == 0
    assert cli("service", "add", "--customer", "2", "--plan", "FIBRA", "--login", "oli",
               "--password", "p").code == 0
    perms = [x for p in ALL for x in ("--permission", p)]
    assert cli("operator", "add", "op", "--name", "Op", *perms).code == 0
    limited = cli("operator", "cities", "op", "Olinda", "--format", "json")
    assert limited.code == 0 and limited.json == {"login": "op", "cities": ["Olinda"], "limited": True}
    assert cli("operator", "cities", "op", "--format", "json").json["cities"] == ["Olinda"]
    as_op = ["--as", "op", "--format", "json"]
    assert [c["city"] for c in cli(*as_op, "customer", "list").json] == ["Olinda"]
    assert [s["login"] for s in cli(*as_op, "service", "list").json] == ["oli"]
    for args in (["customer", "show", "1"], ["service", "show", "rec"],
                 ["service", "edit", "rec", "--note", "x"], ["service", "suspend", "rec", "--mode", "debt"],
                 ["customer", "inactivate", "1"], ["history", "--customer", "1"], ["history", "rec"],
                 ["service", "address", "show", "rec"]):
        result = cli(*as_op, *args)
        assert result.code == 1 and "operator.city_scope" in result.err, args
        assert result.err.strip().count("\n") == 0
    assert cli(*as_op, "customer", "show", "2").json["city"] == "Olinda"
    assert cli(*as_op, "service", "edit", "oli", "--note", "mine").code == 0
    assert cli("operator", "cities", "op", "--clear").code == 0
    assert len(cli(*as_op, "customer", "list").json) == 2
    assert cli(*as_op, "service", "show", "rec").code == 0


def test_city_limit_reaches_tickets_billing_passwords_and_coa(ctx: Context) -> None:
    """The other areas that act on a service by login refuse a service of another city too."""
    from datetime import timedelta
    from decimal import Decimal

    from billing_bridge import payments, trust
    from management import coa, tickets

    factories.plan(ctx)
    recife = factories.customer(ctx, city="Recife")
    factories.service(ctx, "rec", owner=recife)
    operators.create_operator(ctx, "op2", "Operadora", permissions=[
        "tickets.open", "billing.edit", "services.trust_unlock", "coa.send", "passwords.edit"])
    scope.set_cities(ctx, "op2", ["Olinda"])
    op = _as(ctx.session, "op2")
    refusals = (
        lambda: tickets.open_ticket(op, "rec", "SAC", "sem conexão"),
        lambda: payments.add_invoice(op, "rec", NOW.date() + timedelta(days=5), Decimal("99.90")),
        lambda: trust.trust_unlock(op, "rec", NOW + timedelta(days=1), "promessa"),
        lambda: coa.request(op, "rec", coa.DISCONNECT, "teste"),
    )
    for refused_call in refusals:
        with pytest.raises(RuleViolation) as refused:
            refused_call()
        assert refused.value.rule == "operator.city_scope"


def test_city_limit_reaches_sessions_auth_log_alarms_and_explain(cli: Cli) -> None:
    """The accounting and authentication reports show a limited operator only the sessions,
    log rows and alarms of his cities' services (a row of an unknown login is in no city);
    `aaa explain` of another city's login is refused like `service show`. The admin (no
    cities) sees everything."""
    from datetime import timedelta

    from aaa.accounting.events import START
    from aaa.db.accounting import apply_events
    from aaa.db.authlog import AuthRecord, write_records
    from aaa.db.engine import make_engine, session_factory
    from aaa.db.models import ConnectionAlarm

    assert cli("plan", "add", "FIBRA", "--download", "1000", "--upload", "1000").code == 0
    assert cli("nas", "add", "mk", "--ip", "10.0.0.1", "--secret", "s", "--vendor", "mikrotik").code == 0
    for n, city in enumerate(("Recife", "Olinda"), 1):
        assert cli("customer", "add", "--name", city, "--document", factories.cpf(), "--city", city).code == 0
        login = city[:3].lower()
        assert cli("service", "add", "--customer", str(n), "--plan", "FIBRA", "--login", login,
                   "--password", "p").code == 0
    ids = {login: cli("service", "show", login, "--format", "json").json["id"] for login in ("rec", "oli")}
    engine = make_engine(cli.url)  # type: ignore[attr-defined]
    try:
        sessions = session_factory(engine)
        apply_events(sessions, [AcctEvent(START, NOW - timedelta(minutes=5), 1, "10.0.0.1", unique_id=login,
                                          acct_session_id=login, login=login, service_id=ids.get(login))
                                for login in ("rec", "oli", "ghost")])
        write_records(engine, [AuthRecord(NOW.timestamp(), login, ids.get(login), 1, "10.0.0.1", "accept",
                                          "enabled", None, False, None, False, None, "pool", 1000, 1000)
                               for login in ("rec", "oli", "ghost")])
        with sessions() as session, session.begin():
            session.add_all(ConnectionAlarm(service_id=ids[login], login=login, sessions=9, period_days=1,
                                            limit=5, raised_at=NOW, expires_at=NOW + timedelta(days=3650))
                            for login in ("rec", "oli"))
    finally:
        engine.dispose()
    perms = [x for p in ALL for x in ("--permission", p)]
    assert cli("operator", "add", "op", "--name", "Op", *perms).code == 0
    assert cli("operator", "cities", "op", "Olinda").code == 0
    reports = (["sessions", "online"], ["report", "connections"], ["report", "auth-log"],
               ["report", "alarms"])
    for args in reports:
        assert sorted(r["login"] for r in cli("--format", "json", *args).json) == (
            ["oli", "rec"] if args[-1] == "alarms" else ["ghost", "oli", "rec"]), args
        assert [r["login"] for r in cli("--as", "op", "--format", "json", *args).json] == ["oli"], args
    refused = cli("--as", "op", "explain", "rec")
    assert refused.code == 1 and "operator.city_scope" in refused.err
    assert cli("--as", "op", "--format", "json", "explain", "oli").json["verdict"] == "accept"
