"""Service and customer addresses, neighbourhood grouping and the neighbourhoods report."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import select

from aaa.db.models import HistoryEntry
from aaa.db.models_inventory import ServiceAddress
from management import addresses, services
from management.context import Context
from management.errors import RuleViolation
from tests import factories
from tests.conftest import CliResult

Cli = Callable[..., CliResult]
HOME = {"street": "Rua das Flores", "number": "10", "neighbourhood": "Boa Viagem",
        "city": "Recife", "state": "pe", "cep": "51020-000"}


def _history(ctx: Context, action_prefix: str) -> list[HistoryEntry]:
    return list(ctx.session.scalars(select(HistoryEntry).where(
        HistoryEntry.action.like(f"{action_prefix}%")).order_by(HistoryEntry.id)))


def test_address_validation(ctx: Context) -> None:
    """CEP has 8 digits, the state is a UF, coordinates go in pairs and in range, the
    required fields are there; nothing is written on a refusal."""
    factories.plan(ctx)
    factories.service(ctx, "ana")
    cases = (({"cep": "5102-000"}, "address.cep_invalid"),
             ({"cep": "51020-00a"}, "address.cep_invalid"),
             ({"state": "XX"}, "address.state_invalid"),
             ({"state": "Pernambuco"}, "address.state_invalid"),
             ({"latitude": "-8.1"}, "address.coordinates_invalid"),
             ({"latitude": "-91", "longitude": "0"}, "address.coordinates_invalid"),
             ({"latitude": "abc", "longitude": "0"}, "address.coordinates_invalid"),
             ({"street": ""}, "address.incomplete"))
    for override, rule in cases:
        with pytest.raises(RuleViolation) as refused:
            addresses.set_service_address(ctx, "ana", "installation", **{**HOME, **override})
        assert refused.value.rule == rule, override
    with pytest.raises(RuleViolation) as partial:
        addresses.set_service_address(ctx, "ana", "billing", street="Rua X")
    assert partial.value.rule == "address.incomplete" and "cep" in partial.value.message
    with pytest.raises(RuleViolation) as kind:
        addresses.set_service_address(ctx, "ana", "delivery", **HOME)
    assert kind.value.rule == "address.kind_invalid"
    row, = addresses.set_service_address(ctx, "ana", "installation", **HOME,
                                         latitude="-8,123456", longitude="-34.9")
    assert (row.cep, row.state, str(row.latitude)) == ("51020000", "PE", "-8.123456")
    assert addresses.one_line(row) == "Rua das Flores, 10 - Boa Viagem, Recife/PE, CEP 51020-000"


def test_update_all_four_and_history(ctx: Context) -> None:
    """`all` writes the four addresses in one call with one history row each; later a single
    kind changes alone, keeping the fields not given; an empty string clears an optional field."""
    factories.plan(ctx)
    service = factories.service(ctx, "ana")
    rows = addresses.set_service_address(ctx, "ana", "all", **HOME, complement="apto 1")
    assert sorted(r.kind for r in rows) == sorted(addresses.ADDRESS_KINDS)
    entries = _history(ctx, "address:")
    assert [e.action for e in entries] == [f"address:{k}" for k in addresses.ADDRESS_KINDS]
    assert all(e.customer_id == service.customer_id for e in entries)
    assert json.loads(entries[0].changes)["cep"] == [None, "51020000"]
    addresses.set_service_address(ctx, "ana", "billing", number="99", complement="")
    _, stored = addresses.service_addresses(ctx.session, "ana")
    by_kind = {r.kind: r for r in stored}
    assert (by_kind["billing"].number, by_kind["billing"].complement) == ("99", None)
    assert (by_kind["fiscal"].number, by_kind["fiscal"].complement) == ("10", "apto 1")
    assert len(_history(ctx, "address:")) == 5
    addresses.set_service_address(ctx, "ana", "billing", number="99")  # no change, no row
    assert len(_history(ctx, "address:")) == 5
    new = services.migrate(ctx, "ana", "FIBRA-100")  # the new service keeps the addresses
    kinds = ctx.session.scalars(select(ServiceAddress.kind).where(ServiceAddress.service_id == new.id))
    assert sorted(kinds) == sorted(addresses.ADDRESS_KINDS)


def test_customer_registration_address_sets_his_city(ctx: Context) -> None:
    """The customer's own address is separate from the services' and sets his city and line."""
    customer = factories.customer(ctx, city="Olinda")
    addresses.set_customer_address(ctx, customer.id, **HOME)
    assert (customer.city, customer.state) == ("Recife", "PE")
    assert customer.address == "Rua das Flores, 10 - Boa Viagem, Recife/PE, CEP 51020-000"
    entry, = _history(ctx, "address")
    assert entry.object_type == "customer" and json.loads(entry.changes)["city"] == ["Olinda", "Recife"]


def test_group_neighbourhoods_with_history_per_customer(ctx: Context) -> None:
    """Several spellings of a city's neighbourhood become one in every address at once; one
    history row per affected customer; other cities are untouched."""
    factories.plan(ctx)
    ana, bia, caio = (factories.customer(ctx) for _ in range(3))
    factories.service(ctx, "ana", owner=ana)
    factories.service(ctx, "ana2", owner=ana)
    factories.service(ctx, "bia", owner=bia)
    factories.service(ctx, "caio", owner=caio)
    addresses.set_service_address(ctx, "ana", "all", **{**HOME, "neighbourhood": "B. Viagem"})
    addresses.set_service_address(ctx, "ana2", "installation", **{**HOME, "neighbourhood": "boa viagem"})
    addresses.set_service_address(ctx, "bia", "installation", **{**HOME, "neighbourhood": "Bv"})
    addresses.set_service_address(ctx, "caio", "installation",
                                  **{**HOME, "neighbourhood": "Bv", "city": "Olinda"})
    addresses.set_customer_address(ctx, bia.id, **{**HOME, "neighbourhood": "BV"})
    result = addresses.group_neighbourhoods(ctx, "recife", "Boa Viagem", ["B. Viagem", "bv", "BOA VIAGEM"])
    assert (result["addresses"], result["customers"]) == (7, 2)
    names = {(r.city, r.neighbourhood) for r in ctx.session.scalars(select(ServiceAddress))}
    assert names == {("Recife", "Boa Viagem"), ("Olinda", "Bv")}
    assert bia.address is not None and "Boa Viagem" in bia.address
    entries = _history(ctx, "group_neighbourhoods")
    assert sorted(e.customer_id for e in entries) == sorted([ana.id, bia.id])
    ana_entry = next(e for e in entries if e.customer_id == ana.id)
    assert json.loads(ana_entry.changes)["neighbourhood"] == [["B. Viagem", "boa viagem"], "Boa Viagem"]
    listing = addresses.neighbourhoods(ctx.session, "Recife")
    assert listing == [{"city": "Recife", "state": "PE", "neighbourhood": "Boa Viagem", "addresses": 7}]
    with pytest.raises(RuleViolation):
        addresses.group_neighbourhoods(ctx, "Recife", " ", ["x"])


def test_cli_addresses_grouping_and_report(cli: Cli) -> None:
    """service address set --kind all|one, validation exit 1, grouping, report neighbourhoods."""
    assert cli("plan", "add", "FIBRA", "--download", "1000", "--upload", "1000").code == 0
    for city in ("Recife", "Olinda"):
        assert cli("customer", "add", "--name", city, "--document", factories.cpf(), "--city", city).code == 0
    for login, customer in (("ana", "1"), ("bia", "1"), ("caio", "2")):
        assert cli("service", "add", "--customer", customer, "--plan", "FIBRA", "--login", login,
                   "--password", "p").code == 0
    base = ["--street", "Rua A", "--number", "1", "--city", "Recife", "--state", "PE", "--cep", "51020000"]
    every = cli("service", "address", "set", "ana", "--kind", "all", *base, "--bairro", "Centro",
                "--format", "json")
    assert every.code == 0, every.err
    assert sorted(r["kind"] for r in every.json) == ["billing", "fiscal", "installation", "registration"]
    one = cli("service", "address", "set", "bia", "--kind", "installation", *base,
              "--neighbourhood", "centro velho", "--format", "json")
    assert one.code == 0 and one.json["kind"] == "installation"
    assert cli("service", "address", "set", "caio", "--kind", "installation", *base[:-1], "123",
               "--bairro", "X").code == 1
    olinda = ["--street", "Rua B", "--city", "Olinda", "--state", "PE", "--cep", "53000000"]
    assert cli("service", "address", "set", "caio", "--kind", "installation", *olinda,
               "--bairro", "Centro").code == 0
    shown = cli("service", "address", "show", "ana", "--format", "json").json
    assert [r["kind"] for r in shown] == ["installation", "registration", "fiscal", "billing"]
    grouped = cli("address", "group-neighbourhoods", "--city", "Recife", "--into", "Centro",
                  "centro velho", "--format", "json")
    assert grouped.code == 0 and grouped.json["addresses"] == 1 and grouped.json["customers"] == 1
    history = cli("history", "--customer", "1", "--format", "json").json
    assert "group_neighbourhoods" in [h["action"] for h in history]
    report = cli("report", "neighbourhoods", "--format", "json").json
    assert [(r["city"], r["neighbourhood"], r["services"]) for r in report] == [
        ("Olinda", "Centro", 1), ("Recife", "Centro", 2)]
    customer = cli("customer", "address", "set", "2", *olinda, "--bairro", "Carmo", "--format", "json")
    assert customer.code == 0 and customer.json["city"] == "Olinda"
