"""`aaa nas ...`, `aaa pop ...`, `aaa subnet ...`"""

from __future__ import annotations

import click

from aaa.cliutil import AppState, format_option, pass_state, render
from aaa.db.enums import NasVendor
from management import network, serialize


@click.group("nas")
def nas_group() -> None:
    """NAS / BRAS equipment (concentradores)."""


@nas_group.command("add")
@click.argument("name")
@click.option("--ip", required=True)
@click.option("--secret", required=True, help="RADIUS shared secret.")
@click.option("--vendor", type=click.Choice([v.value for v in NasVendor]), required=True)
@click.option("--model")
@click.option("--pop")
@click.option("--coa-port", type=click.IntRange(1, 65535), default=3799, show_default=True)
@click.option("--require-message-authenticator/--no-require-message-authenticator", default=True,
              show_default=True, help="Drop requests without Message-Authenticator (BlastRADIUS).")
@format_option
@pass_state
def add(state: AppState, name: str, ip: str, secret: str, vendor: str, model: str | None,
        pop: str | None, coa_port: int, require_message_authenticator: bool) -> None:
    """Register a NAS."""
    with state.context() as ctx:
        data = serialize.nas(network.create_nas(ctx, name, ip, secret, vendor, model, pop,
                                                coa_port, require_message_authenticator))
    render(state, data)


@nas_group.command("list")
@format_option
@pass_state
def list_(state: AppState) -> None:
    """List NAS (secrets are never shown)."""
    with state.reading() as session:
        render(state, [serialize.nas(n) for n in network.list_nas(session)])


@nas_group.command("show")
@click.argument("nas")
@format_option
@pass_state
def show(state: AppState, nas: str) -> None:
    """Show one NAS by name or IP."""
    with state.reading() as session:
        render(state, serialize.nas(network.get_nas(session, nas)))


@click.group("pop")
def pop_group() -> None:
    """Points of presence."""


@pop_group.command("add")
@click.argument("name")
@click.option("--city")
@format_option
@pass_state
def pop_add(state: AppState, name: str, city: str | None) -> None:
    """Register a POP."""
    with state.context() as ctx:
        data = serialize.pop(network.create_pop(ctx, name, city))
    render(state, data)


@pop_group.command("list")
@format_option
@pass_state
def pop_list(state: AppState) -> None:
    """List POPs."""
    with state.reading() as session:
        render(state, [serialize.pop(p) for p in network.list_pops(session)])


@click.group("subnet")
def subnet_group() -> None:
    """IP subnets for fixed addresses, grouped in folders."""


@subnet_group.command("add")
@click.argument("cidr")
@click.option("--folder", default="default", show_default=True)
@click.option("--description")
@format_option
@pass_state
def subnet_add(state: AppState, cidr: str, folder: str, description: str | None) -> None:
    """Register a subnet."""
    with state.context() as ctx:
        data = serialize.subnet(network.create_subnet(ctx, cidr, folder, description))
    render(state, data)


@subnet_group.command("list")
@click.option("--folder")
@format_option
@pass_state
def subnet_list(state: AppState, folder: str | None) -> None:
    """List subnets."""
    with state.reading() as session:
        render(state, [serialize.subnet(s) for s in network.list_subnets(session, folder)])


COMMANDS = [nas_group, pop_group, subnet_group]
