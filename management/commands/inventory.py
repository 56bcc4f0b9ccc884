"""`aaa olt ...`, `aaa address ...`, service and customer addresses, PON ports of services,
`aaa operator cities`, `aaa report ports|neighbourhoods`.

Commands that belong to groups of other modules (service, customer, operator, report) are
attached to those groups by `register`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from aaa.cliutil import AppState, format_option, pass_state, render
from management import addresses, inventory, scope
from management.context import load_actor
from management.operators import get_operator

_UNSET: Any = object()


def _read_password(password: str | None) -> str | None:
    """`-` reads the password from one line of stdin (keeps it out of the shell history)."""
    if password == "-":
        return sys.stdin.readline().rstrip("\r\n")
    return password


def _warn(messages: list[str]) -> None:
    for message in messages:
        click.echo(f"aaa: warning: {message}", err=True)


# --- aaa olt --------------------------------------------------------------------------------


@click.group("olt")
def olt_group() -> None:
    """OLTs (access equipment) and their PON ports."""


@olt_group.command("models")
@format_option
@pass_state
def models(state: AppState) -> None:
    """The known vendors and models with their default management protocol and port."""
    render(state, inventory.known_models())


_PROTOCOLS = click.Choice(sorted(inventory.PROTOCOL_PORTS))


@olt_group.command("add")
@click.argument("name")
@click.option("--ip", required=True)
@click.option("--vendor", required=True, help="bdcom, cdata, fiberhome, huawei, parks, "
                                             "zhone-intelbras, zte (see `aaa olt models`).")
@click.option("--model", required=True)
@click.option("--pop")
@click.option("--user", "username", help="Management user.")
@click.option("--password", help="Management password (stored encrypted); `-` reads stdin.")
@click.option("--protocol", type=_PROTOCOLS, help="Default: the vendor's (Telnet or SSH).")
@click.option("--port", type=click.IntRange(1, 65535), help="Default: 23 for Telnet, 22 for SSH.")
@format_option
@pass_state
def olt_add(state: AppState, name: str, ip: str, vendor: str, model: str, pop: str | None,
            username: str | None, password: str | None, protocol: str | None,
            port: int | None) -> None:
    """Register an OLT."""
    password = _read_password(password)
    with state.context() as ctx:
        olt = inventory.create_olt(ctx, name, ip, vendor, model, pop, username, password,
                                   protocol, port,
                                   config=state.config.secrets if password is not None else None)
        data = inventory.olt_dict(ctx.session, olt)
    render(state, data)


@olt_group.command("list")
@format_option
@pass_state
def olt_list(state: AppState) -> None:
    """List OLTs (passwords are never listed)."""
    with state.reading() as session:
        render(state, [inventory.olt_dict(session, o) for o in inventory.list_olts(session)])


@olt_group.command("show")
@click.argument("olt")
@click.option("--show-password", is_flag=True,
              help="Also show the management password (needs passwords.view; goes to history).")
@format_option
@pass_state
def olt_show(state: AppState, olt: str, show_password: bool) -> None:
    """Show an OLT (by name or IP) with its PON ports."""
    if show_password:
        with state.context() as ctx:
            row = inventory.get_olt(ctx.session, olt)
            data = inventory.olt_dict(ctx.session, row)
            data["password"] = inventory.reveal_password(ctx, state.config.secrets, olt)
            data["pon_ports"] = [inventory.port_dict(ctx.session, p) for p in row.ports]
    else:
        with state.reading() as session:
            row = inventory.get_olt(session, olt)
            data = inventory.olt_dict(session, row)
            data["pon_ports"] = [inventory.port_dict(session, p) for p in row.ports]
    if state.output_format != "json":
        data["pon_ports"] = [f"{p['name']} ({p['clients']}/{p['max_clients'] or '-'})"
                             for p in data["pon_ports"]]
    render(state, data)


@olt_group.command("edit")
@click.argument("olt")
@click.option("--name")
@click.option("--ip")
@click.option("--model")
@click.option("--pop", help="Empty string clears it.")
@click.option("--user", "username", help="Empty string clears it.")
@click.option("--password", help="New management password; `-` reads stdin.")
@click.option("--protocol", type=_PROTOCOLS)
@click.option("--port", type=click.IntRange(1, 65535))
@format_option
@pass_state
def olt_edit(state: AppState, olt: str, name: str | None, ip: str | None, model: str | None,
             pop: str | None, username: str | None, password: str | None,
             protocol: str | None, port: int | None) -> None:
    """Change an OLT."""
    password = _read_password(password)
    given: dict[str, Any] = {k: (v or None) for k, v in {"pop": pop, "username": username}.items()
                             if v is not None}
    with state.context() as ctx:
        row = inventory.edit_olt(ctx, olt, name=name, ip=ip, model=model, password=password,
                                 protocol=protocol, port=port,
                                 config=state.config.secrets if password is not None else None,
                                 **given)
        data = inventory.olt_dict(ctx.session, row)
    render(state, data)


# --- aaa olt port ------------------------------------------------------------------------------


@olt_group.group("port")
def port_group() -> None:
    """PON ports (Portas de Atendimento) of an OLT."""


def _port_options(adding: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    options = [
        click.option("--technology", type=click.Choice(["gpon", "epon"]),
                     default="gpon" if adding else None, show_default=adding),
        click.option("--chassis", type=click.IntRange(0, 255), default=0 if adding else None,
                     show_default=adding),
        click.option("--slot", type=click.IntRange(0, 255), required=adding),
        click.option("--pon", type=click.IntRange(0, 255), required=adding),
        click.option("--description"),
        click.option("--vlan", "default_vlan", type=click.IntRange(1, 4094), help="Default VLAN."),
        click.option("--cpe-profile", "default_cpe_profile", help="Default CPE profile."),
        click.option("--routing-nas", help="NAS (name or IP) that authenticates the port's clients."),
        click.option("--routing-interface",
                     help="Interface of the routing NAS towards the OLT (the services' NAS-Port-Id)."),
        click.option("--max-clients", type=click.IntRange(min=1)),
        click.option("--block-over-utilization/--allow-over-utilization", default=None,
                     help="Refuse services on a full port (default: allow with a warning)."),
        click.option("--allow-verification/--no-verification", default=None,
                     help="Signal verification by the alarm routine (needs --signal-limit)."),
        click.option("--signal-limit", "signal_limit_dbm", help="Signal limit in dBm (e.g. -27)."),
    ]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


@port_group.command("add")
@click.argument("olt")
@click.argument("name")
@_port_options(adding=True)
@format_option
@pass_state
def port_add(state: AppState, /, olt: str, name: str, **fields: Any) -> None:
    """Register a PON port NAME on OLT."""
    fields["block_over_utilization"] = bool(fields["block_over_utilization"])
    fields["allow_verification"] = bool(fields["allow_verification"])
    with state.context() as ctx:
        port = inventory.create_port(ctx, olt, name, **fields)
        data = inventory.port_dict(ctx.session, port)
    render(state, data)


@port_group.command("edit")
@click.argument("olt")
@click.argument("port")
@click.option("--name")
@_port_options(adding=False)
@format_option
@pass_state
def port_edit(state: AppState, /, olt: str, port: str, **fields: Any) -> None:
    """Change a PON port (by name or CHASSIS/SLOT/PON); services that follow its routing
    interface take the new one."""
    changes = {k: v for k, v in fields.items() if v is not None}
    for key in ("description", "default_cpe_profile", "routing_nas", "routing_interface",
                "signal_limit_dbm"):
        if changes.get(key) == "":
            changes[key] = None
    with state.context() as ctx:
        row, followers = inventory.edit_port(ctx, olt, port, **changes)
        data = inventory.port_dict(ctx.session, row)
        data["services_updated"] = [s.login for s in followers]
    render(state, data)


@port_group.command("list")
@click.argument("olt", required=False)
@format_option
@pass_state
def port_list(state: AppState, olt: str | None) -> None:
    """List PON ports (of one OLT, or of all) with their clients."""
    with state.reading() as session:
        render(state, [inventory.port_dict(session, p) for p in inventory.list_ports(session, olt)])


# --- services on ports, service addresses --------------------------------------------------------


@click.command("attach-port")
@click.argument("login")
@click.option("--olt", required=True, help="OLT name or IP.")
@click.option("--port", "port_ref", required=True, help="Port name or CHASSIS/SLOT/PON.")
@click.option("--keep-interface", is_flag=True,
              help="Keep the service's registered NAS and interface (default: take the port's).")
@format_option
@pass_state
def attach_port(state: AppState, login: str, olt: str, port_ref: str, keep_interface: bool) -> None:
    """Put a service on a PON port (a full port refuses it or warns, per the port)."""
    with state.context() as ctx:
        result = inventory.attach_port(ctx, login, olt, port_ref, not keep_interface)
        service = result.service
        data = {"login": service.login, "olt": result.port.olt.name, "port": result.port.name,
                "clients": result.clients, "max_clients": result.port.max_clients,
                "interface": service.interface, "nas": service.nas.name if service.nas else None,
                "warnings": result.warnings}
    _warn(result.warnings)
    render(state, data)


@click.command("detach-port")
@click.argument("login")
@format_option
@pass_state
def detach_port(state: AppState, login: str) -> None:
    """Take a service off its PON port."""
    with state.context() as ctx:
        service = inventory.detach_port(ctx, login)
        data = {"login": service.login, "olt": None, "port": None, "interface": service.interface}
    render(state, data)


def _address_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--street"),
        click.option("--number", help="Empty string clears it."),
        click.option("--complement", help="Empty string clears it."),
        click.option("--neighbourhood", "--bairro", "neighbourhood"),
        click.option("--city"),
        click.option("--state", "uf", help="Two-letter UF."),
        click.option("--cep", help="8 digits, with or without the dash."),
        click.option("--lat", "latitude", help="Latitude (decimal degrees); empty clears."),
        click.option("--long", "--lon", "longitude", help="Longitude (decimal degrees); empty clears."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _given(fields: dict[str, Any]) -> dict[str, Any]:
    given = {k: v for k, v in fields.items() if v is not None}
    if "uf" in given:
        given["state"] = given.pop("uf")
    return given


@click.group("address")
def service_address_group() -> None:
    """The addresses of a service: installation, registration, fiscal, billing."""


@service_address_group.command("set")
@click.argument("login")
@click.option("--kind", type=click.Choice(addresses.KINDS), required=True,
              help="Which address; `all` writes the four at once.")
@_address_options
@format_option
@pass_state
def service_address_set(state: AppState, /, login: str, kind: str, **fields: Any) -> None:
    """Set one address of a service, or the four (`--kind all`); fields not given are kept."""
    given = _given(fields)
    if not given:
        raise click.UsageError("give at least one address field")
    with state.context() as ctx:
        rows = addresses.set_service_address(ctx, login, kind, **given)
        data = [addresses.as_dict(r, login=login, kind=r.kind) for r in rows]
    render(state, data[0] if kind != addresses.ALL else data)


@service_address_group.command("show")
@click.argument("login")
@format_option
@pass_state
def service_address_show(state: AppState, login: str) -> None:
    """The addresses of a service."""
    with state.reading() as session:
        actor = load_actor(session, state.operator_login)
        service, rows = addresses.service_addresses(session, login, actor=actor)
        render(state, [addresses.as_dict(r, login=service.login, kind=r.kind) for r in rows])


@click.group("address")
def customer_address_group() -> None:
    """The customer's registration address (sets his city, state and address line)."""


@customer_address_group.command("set")
@click.argument("customer")
@_address_options
@format_option
@pass_state
def customer_address_set(state: AppState, /, customer: str, **fields: Any) -> None:
    """Set the customer's registration address; fields not given are kept."""
    given = _given(fields)
    if not given:
        raise click.UsageError("give at least one address field")
    with state.context() as ctx:
        row = addresses.set_customer_address(ctx, customer, **given)
        data = addresses.as_dict(row, customer_id=row.customer_id)
    render(state, data)


@customer_address_group.command("show")
@click.argument("customer")
@format_option
@pass_state
def customer_address_show(state: AppState, customer: str) -> None:
    """The customer's registration address."""
    with state.reading() as session:
        actor = load_actor(session, state.operator_login)
        owner, row = addresses.customer_address(session, customer, actor=actor)
        data = (addresses.as_dict(row, customer_id=owner.id) if row is not None
                else {"customer_id": owner.id, "address": owner.address, "city": owner.city,
                      "state": owner.state})
    render(state, data)


# --- aaa address ---------------------------------------------------------------------------------


@click.group("address")
def address_group() -> None:
    """Neighbourhoods of the addresses (Configuração > Endereço > Bairro)."""


@address_group.command("group-neighbourhoods")
@click.argument("olds", nargs=-1, required=True, metavar="OLD...")
@click.option("--city", required=True)
@click.option("--into", required=True, help="The neighbourhood name they become.")
@format_option
@pass_state
def group_neighbourhoods(state: AppState, olds: tuple[str, ...], city: str, into: str) -> None:
    """Merge neighbourhoods OLD... of a city into one name in every address."""
    with state.context() as ctx:
        data = addresses.group_neighbourhoods(ctx, city, into, list(olds))
    render(state, data)


@address_group.command("neighbourhoods")
@click.option("--city")
@format_option
@pass_state
def list_neighbourhoods(state: AppState, city: str | None) -> None:
    """The neighbourhood names in use, per city, with how many addresses use each."""
    with state.reading() as session:
        actor = load_actor(session, state.operator_login)
        render(state, addresses.neighbourhoods(session, city, actor=actor))


# --- aaa operator cities ----------------------------------------------------------------------------


@click.command("cities")
@click.argument("login")
@click.argument("cities", nargs=-1)
@click.option("--clear", is_flag=True, help="Lift the limit: the operator sees every city.")
@format_option
@pass_state
def operator_cities(state: AppState, login: str, cities: tuple[str, ...], clear: bool) -> None:
    """Show or set the cities operator LOGIN is limited to (he sees only their customers)."""
    if clear and cities:
        raise click.UsageError("give CITY... or --clear, not both")
    if clear or cities:
        with state.context() as ctx:
            result = scope.set_cities(ctx, login, list(cities))
    else:
        with state.reading() as session:
            operator = get_operator(session, login)
            result = scope.operator_cities(session, operator.id)
    render(state, {"login": login, "cities": result, "limited": bool(result)})


# --- reports -------------------------------------------------------------------------------------------


@click.command("ports")
@click.option("--olt", help="Only this OLT.")
@click.option("--full", is_flag=True, help="Only ports at or over their maximum.")
@format_option
@pass_state
def report_ports(state: AppState, olt: str | None, full: bool) -> None:
    """PON ports with their occupancy (clients / maximum clients)."""
    with state.reading() as session:
        render(state, inventory.ports_report(session, olt, full))


@click.command("neighbourhoods")
@click.option("--city")
@click.option("--status", help="Only services in this status (default: every one not cancelled).")
@format_option
@pass_state
def report_neighbourhoods(state: AppState, city: str | None, status: str | None) -> None:
    """Services per neighbourhood and city (installation address)."""
    with state.reading() as session:
        actor = load_actor(session, state.operator_login)
        render(state, addresses.neighbourhoods_report(session, city, status, actor=actor))


COMMANDS = [olt_group, address_group]


def register(root: click.Group) -> None:
    """Add the groups of this module to `root` and the sub-commands to the groups of others."""
    for top in COMMANDS:
        root.add_command(top)
    targets: dict[str, list[click.Command]] = {
        "service": [attach_port, detach_port, service_address_group],
        "customer": [customer_address_group],
        "operator": [operator_cities],
        "report": [report_ports, report_neighbourhoods],
    }
    for group_name, commands in targets.items():
        existing = root.commands.get(group_name)
        group = existing if isinstance(existing, click.Group) else click.Group(group_name)
        if group is not existing:
            root.add_command(group)
        for sub in commands:
            group.add_command(sub)
