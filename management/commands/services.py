"""`aaa service ...`"""

from __future__ import annotations

import click

from aaa.cliutil import AppState, format_option, parse_date, parse_moment, pass_state, render
from aaa.db.enums import MacBinding, ServiceStatus
from management import network, serialize, services
from management.context import load_actor

STATUSES = [s.value for s in ServiceStatus]


@click.group("service")
def service_group() -> None:
    """Services: the PPPoE logins, addressed by login."""


@service_group.command("add")
@click.option("--customer", required=True, help="Customer id or CPF/CNPJ.")
@click.option("--plan", required=True)
@click.option("--login", required=True)
@click.option("--password", required=True)
@click.option("--status", type=click.Choice(STATUSES), default=ServiceStatus.ENABLED.value,
              show_default=True)
@click.option("--mac")
@click.option("--mac-binding", type=click.Choice([m.value for m in MacBinding]),
              default=MacBinding.OFF.value, show_default=True)
@click.option("--interface", help="Registered NAS-Port-Id (e.g. vlan100).")
@click.option("--nas", help="Registered NAS (name or IP).")
@click.option("--ip", "ipv4", help="Fixed IPv4 address (inside a registered subnet).")
@click.option("--subnet", help="Subnet the fixed IP belongs to (default: the one containing it).")
@click.option("--ipv6-prefix", help="Delegated IPv6 prefix.")
@click.option("--simultaneous-use", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--price", help="Price override in BRL.")
@click.option("--note")
@format_option
@pass_state
def add(state: AppState, customer: str, plan: str, login: str, password: str, status: str,
        mac: str | None, mac_binding: str, interface: str | None, nas: str | None,
        ipv4: str | None, subnet: str | None, ipv6_prefix: str | None, simultaneous_use: int,
        price: str | None, note: str | None) -> None:
    """Create a service for a customer."""
    with state.context() as ctx:
        service = services.create_service(
            ctx, customer, plan, login, password, status, mac, mac_binding, interface, nas,
            ipv4, subnet, ipv6_prefix, simultaneous_use, price, note)
        data = serialize.service(service)
    render(state, data)


@service_group.command("list")
@click.option("--customer", type=int, help="Customer id.")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--plan")
@format_option
@pass_state
def list_(state: AppState, customer: int | None, status: str | None, plan: str | None) -> None:
    """List services."""
    with state.reading() as session:
        actor = load_actor(session, state.operator_login)
        rows = services.list_services(session, customer, status, plan, actor=actor)
        render(state, [serialize.service(s) for s in rows])


@service_group.command("show")
@click.argument("login")
@format_option
@pass_state
def show(state: AppState, login: str) -> None:
    """Show one service (the live one when a login was re-used)."""
    with state.reading() as session:
        service = services.find_service(session, login,
                                        actor=load_actor(session, state.operator_login))
        data = serialize.service(service)
        data["scheduled"] = [serialize.task(t) for t in services.pending_tasks(session, login)]
    render(state, data)


@service_group.command("edit")
@click.argument("login")
@click.option("--password")
@click.option("--mac", help="New MAC; empty string clears it.")
@click.option("--mac-binding", type=click.Choice([m.value for m in MacBinding]))
@click.option("--interface", help="Empty string clears it.")
@click.option("--nas", help="Empty string clears it.")
@click.option("--ip", "ipv4", help="Fixed IPv4; empty string clears it.")
@click.option("--subnet")
@click.option("--ipv6-prefix", help="Empty string clears it.")
@click.option("--simultaneous-use", type=click.IntRange(min=1))
@click.option("--price", help="Price override in BRL.")
@click.option("--note")
@click.option("--new-login")
@format_option
@pass_state
def edit(state: AppState, login: str, password: str | None, mac: str | None,
         mac_binding: str | None, interface: str | None, nas: str | None, ipv4: str | None,
         subnet: str | None, ipv6_prefix: str | None, simultaneous_use: int | None,
         price: str | None, note: str | None, new_login: str | None) -> None:
    """Change a service's authentication or addressing data."""
    given = {name: value for name, value in {
        "mac": mac, "interface": interface, "nas": nas, "ipv4": ipv4,
        "ipv6_prefix": ipv6_prefix, "price": price, "note": note}.items() if value is not None}
    with state.context() as ctx:
        service = services.edit_service(
            ctx, login, password=password, mac_binding=mac_binding, subnet=subnet,
            simultaneous_use=simultaneous_use, new_login=new_login,
            **{k: (v or None) for k, v in given.items()})
        data = serialize.service(service)
    render(state, data)


def _status_command(name: str, status: str | None, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("login")
    @click.option("--note")
    @format_option
    @pass_state
    def command(state: AppState, login: str, note: str | None) -> None:
        with state.context() as ctx:
            data = serialize.service(services.change_status(ctx, login, status or "", note))
        render(state, data)

    return command


service_group.add_command(_status_command(
    "enable", ServiceStatus.ENABLED.value,
    "Enable a service (completes a pending migration)."))
service_group.add_command(_status_command(
    "cancel", ServiceStatus.CANCELLED.value, "Cancel a service."))


@service_group.command("suspend")
@click.argument("login")
@click.option("--mode", type=click.Choice(list(services.SUSPEND_MODES)), required=True)
@click.option("--note")
@format_option
@pass_state
def suspend(state: AppState, login: str, mode: str, note: str | None) -> None:
    """Suspend a service: for debt (blocked pool), partially (reduced speed) or on request."""
    with state.context() as ctx:
        data = serialize.service(services.suspend(ctx, login, mode, note))
    render(state, data)


@service_group.command("set-status")
@click.argument("login")
@click.argument("status", type=click.Choice(STATUSES))
@click.option("--note")
@format_option
@pass_state
def set_status(state: AppState, login: str, status: str, note: str | None) -> None:
    """Move a service to any status (with the permission that status needs)."""
    with state.context() as ctx:
        data = serialize.service(services.change_status(ctx, login, status, note))
    render(state, data)


@service_group.command("set-plan")
@click.argument("login")
@click.argument("plan")
@click.option("--note")
@format_option
@pass_state
def set_plan(state: AppState, login: str, plan: str, note: str | None) -> None:
    """Change a service's plan."""
    with state.context() as ctx:
        data = serialize.service(services.set_plan(ctx, login, plan, note))
    render(state, data)


@service_group.command("navigation")
@click.argument("login")
@click.option("--download", type=click.IntRange(min=1), help="kbit/s")
@click.option("--upload", type=click.IntRange(min=1), help="kbit/s")
@click.option("--until", help="Last day (YYYY-MM-DD, inclusive) or an ISO 8601 moment.")
@click.option("--clear", is_flag=True, help="Remove the custom navigation.")
@format_option
@pass_state
def navigation(state: AppState, login: str, download: int | None, upload: int | None,
               until: str | None, clear: bool) -> None:
    """Custom navigation: a speed override, optionally until a date."""
    if clear == (download is not None or upload is not None):
        raise click.UsageError("give --download and --upload, or --clear")
    if not clear and (download is None or upload is None):
        raise click.UsageError("--download and --upload go together")
    end = parse_moment(until, state.zone, "--until", end_of_day=True) if until else None
    with state.context() as ctx:
        data = serialize.service(services.set_navigation(ctx, login, download, upload, end))
    render(state, data)


@service_group.command("associate")
@click.argument("login")
@click.argument("other_login", required=False)
@click.option("--clear", is_flag=True, help="Remove the association.")
@format_option
@pass_state
def associate(state: AppState, login: str, other_login: str | None, clear: bool) -> None:
    """Tie LOGIN (whose plan allows association) to OTHER_LOGIN."""
    if clear == (other_login is not None):
        raise click.UsageError("give OTHER_LOGIN, or --clear")
    with state.context() as ctx:
        data = serialize.service(services.associate(ctx, login, other_login))
    render(state, data)


@service_group.command("migrate")
@click.argument("login")
@click.argument("plan")
@click.option("--deferred", is_flag=True,
              help="Create the new service awaiting migration; enabling it completes the move.")
@click.option("--note")
@format_option
@pass_state
def migrate(state: AppState, login: str, plan: str, deferred: bool, note: str | None) -> None:
    """Migrate a service to another plan; prints the new service."""
    with state.context() as ctx:
        data = serialize.service(services.migrate(ctx, login, plan, deferred, note))
    render(state, data)


@service_group.command("transfer")
@click.argument("login")
@click.option("--customer", required=True, help="New owner: id or CPF/CNPJ.")
@click.option("--note")
@format_option
@pass_state
def transfer(state: AppState, login: str, customer: str, note: str | None) -> None:
    """Transfer a service to another customer."""
    with state.context() as ctx:
        data = serialize.service(services.transfer(ctx, login, customer, note))
    render(state, data)


@service_group.command("next-ip")
@click.option("--subnet", required=True, help="Registered subnet (CIDR).")
@format_option
@pass_state
def next_ip(state: AppState, subnet: str) -> None:
    """Print the next free address of a subnet."""
    with state.reading() as session:
        render(state, {"subnet": subnet, "ip": network.next_free_ip(session, subnet)})


@service_group.command("schedule")
@click.argument("login")
@click.option("--status", type=click.Choice(STATUSES), required=True)
@click.option("--on", "on_date", required=True, help="YYYY-MM-DD, in the provider's time zone.")
@click.option("--note")
@format_option
@pass_state
def schedule(state: AppState, login: str, status: str, on_date: str, note: str | None) -> None:
    """Schedule a status change (or a cancellation) for a future day."""
    day = parse_date(on_date, "--on")
    with state.context() as ctx:
        data = serialize.task(services.schedule(ctx, login, status, day, note))
    render(state, data)


COMMANDS = [service_group]
