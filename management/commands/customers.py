"""`aaa customer ...`"""

from __future__ import annotations

import click

from aaa.cliutil import AppState, format_option, pass_state, render
from management import customers, serialize
from management.context import load_actor


@click.group("customer")
def customer_group() -> None:
    """Customers (PF/PJ), addressed by id or CPF/CNPJ."""


@customer_group.command("add")
@click.option("--name", required=True)
@click.option("--document", required=True, help="CPF or CNPJ, with or without punctuation.")
@click.option("--email")
@click.option("--phones", help="Comma-separated phone numbers.")
@click.option("--city")
@click.option("--state", "uf", help="Two-letter state code (UF).")
@click.option("--address")
@click.option("--group", "group_name")
@click.option("--origin")
@format_option
@pass_state
def add(state: AppState, name: str, document: str, email: str | None, phones: str | None,
        city: str | None, uf: str | None, address: str | None, group_name: str | None,
        origin: str | None) -> None:
    """Register a customer."""
    with state.context() as ctx:
        customer = customers.create_customer(ctx, name, document, email, phones, city, uf,
                                             address, group_name, origin)
        data = serialize.customer(customer)
    render(state, data)


@customer_group.command("list")
@click.option("--active/--inactive", default=None, help="Only active or only inactive customers.")
@click.option("--city")
@click.option("--search", help="Part of the name.")
@format_option
@pass_state
def list_(state: AppState, active: bool | None, city: str | None, search: str | None) -> None:
    """List customers."""
    with state.reading() as session:
        rows = customers.list_customers(session, active, city, search,
                                        actor=load_actor(session, state.operator_login))
        render(state, [serialize.customer(c) for c in rows])


@customer_group.command("show")
@click.argument("customer")
@format_option
@pass_state
def show(state: AppState, customer: str) -> None:
    """Show one customer with its services."""
    with state.reading() as session:
        row = customers.get_customer(session, customer,
                                     actor=load_actor(session, state.operator_login))
        data = serialize.customer(row)
        data["services"] = [f"{s.login} ({s.status})" for s in row.services]
    render(state, data)


@customer_group.command("inactivate")
@click.argument("customer")
@click.option("--note")
@format_option
@pass_state
def inactivate(state: AppState, customer: str, note: str | None) -> None:
    """Inactivate a customer (refused while a service is not cancelled)."""
    with state.context() as ctx:
        data = serialize.customer(customers.inactivate_customer(ctx, customer, note))
    render(state, data)


COMMANDS = [customer_group]
