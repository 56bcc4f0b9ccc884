"""`aaa operator ...` and `aaa history ...`"""

from __future__ import annotations

import click

from aaa.cliutil import AppState, format_option, pass_state, render
from management import history, operators, serialize
from management.context import load_actor
from management.permissions import PERMISSIONS


@click.group("operator")
def operator_group() -> None:
    """Operators (system users) and permissions."""


@operator_group.command("add")
@click.argument("login")
@click.option("--name", required=True)
@click.option("--password", help="Initial password (hashed with scrypt).")
@click.option("--permission", "permissions", multiple=True, help="Repeatable.")
@click.option("--admin", is_flag=True, help="Administrator: every permission.")
@format_option
@pass_state
def add(state: AppState, login: str, name: str, password: str | None,
        permissions: tuple[str, ...], admin: bool) -> None:
    """Create an operator."""
    with state.context() as ctx:
        data = serialize.operator(operators.create_operator(ctx, login, name, password,
                                                            list(permissions), admin))
    render(state, data)


@operator_group.command("list")
@format_option
@pass_state
def list_(state: AppState) -> None:
    """List operators."""
    with state.reading() as session:
        render(state, [serialize.operator(o) for o in operators.list_operators(session)])


@operator_group.command("permissions")
@click.argument("login", required=False)
@click.option("--grant", "grants", multiple=True, help="Permission to add (repeatable).")
@click.option("--revoke", "revokes", multiple=True, help="Permission to remove (repeatable).")
@format_option
@pass_state
def permissions(state: AppState, login: str | None, grants: tuple[str, ...],
                revokes: tuple[str, ...]) -> None:
    """Show or change an operator's permissions; without LOGIN, list every permission."""
    if login is None:
        render(state, [{"permission": k, "meaning": v} for k, v in PERMISSIONS.items()])
        return
    if grants or revokes:
        with state.context() as ctx:
            data = serialize.operator(operators.grant(ctx, login, list(grants), list(revokes)))
    else:
        with state.reading() as session:
            data = serialize.operator(operators.get_operator(session, login))
    render(state, data)


@operator_group.command("clone-permissions")
@click.argument("login")
@click.option("--from", "source", required=True, help="Operator to copy permissions from.")
@format_option
@pass_state
def clone_permissions(state: AppState, login: str, source: str) -> None:
    """Give LOGIN exactly the permissions of another operator."""
    with state.context() as ctx:
        data = serialize.operator(operators.clone_permissions(ctx, login, source))
    render(state, data)


@operator_group.command("inactivate")
@click.argument("login")
@format_option
@pass_state
def inactivate(state: AppState, login: str) -> None:
    """Inactivate an operator: he can no longer act."""
    with state.context() as ctx:
        data = serialize.operator(operators.inactivate_operator(ctx, login))
    render(state, data)


@click.command("history")
@click.argument("login", required=False)
@click.option("--customer", help="Customer id or CPF/CNPJ.")
@click.option("--operator", "operator_login", help="Everything an operator did.")
@format_option
@pass_state
def history_command(state: AppState, login: str | None, customer: str | None,
                    operator_login: str | None) -> None:
    """History of a service (by LOGIN), a customer, or an operator."""
    if sum(x is not None for x in (login, customer, operator_login)) != 1:
        raise click.UsageError("give exactly one of LOGIN, --customer or --operator")
    with state.reading() as session:
        actor = load_actor(session, state.operator_login)
        if login is not None:
            rows = history.for_login(session, login, actor=actor)
        elif customer is not None:
            rows = history.for_customer(session, customer, actor=actor)
        else:
            rows = history.for_operator(session, operator_login or "")
        render(state, [serialize.history(h) for h in rows])


COMMANDS = [operator_group, history_command]
