"""`aaa ticket ...` and `aaa order ...`: support tickets and service orders."""

from __future__ import annotations

import click

from aaa.cliutil import AppState, format_option, parse_moment, pass_state, render
from aaa.db.models_tickets import ORDER_STATUSES, TICKET_ORIGINS, TICKET_STATUSES
from management import service_orders, tickets


@click.group("ticket")
def ticket_group() -> None:
    """Support tickets (Atendimentos), addressed by protocol."""


@ticket_group.command("open")
@click.option("--login", required=True, help="The service the ticket is about.")
@click.option("--type", "type_name", help="Ticket type (see `aaa ticket type list`).")
@click.option("--description", help="Opening description.")
@click.option("--status", type=click.Choice(TICKET_STATUSES),
              help="Default: awaiting_analysis, or draft while type or description is missing.")
@click.option("--destination", help="Destination / department.")
@click.option("--closing-description", help="Needed for status resolved or finished.")
@format_option
@pass_state
def open_(state: AppState, login: str, type_name: str | None, description: str | None,
          status: str | None, destination: str | None, closing_description: str | None) -> None:
    """Open a ticket and print its protocol (with --format json: the ticket)."""
    with state.context() as ctx:
        ticket = tickets.open_ticket(ctx, login, type_name, description, status, destination,
                                     closing_description)
        data = tickets.ticket_dict(ctx.session, ticket)
    if state.output_format == "table":
        click.echo(data["protocol"])
        return
    render(state, data)


@ticket_group.command("edit")
@click.argument("protocol")
@click.option("--type", "type_name")
@click.option("--description")
@click.option("--status", type=click.Choice(tickets.EDITABLE_STATUSES))
@click.option("--destination")
@click.option("--closing-description")
@format_option
@pass_state
def edit(state: AppState, protocol: str, type_name: str | None, description: str | None,
         status: str | None, destination: str | None, closing_description: str | None) -> None:
    """Complete a draft or change a ticket's type, descriptions or status."""
    with state.context() as ctx:
        ticket = tickets.update_ticket(ctx, protocol, type_name, description, status, destination,
                                       closing_description)
        data = tickets.ticket_dict(ctx.session, ticket)
    render(state, data)


@ticket_group.command("list")
@click.option("--since", help="Opened from this date or ISO 8601 moment (provider's zone).")
@click.option("--until", help="Opened up to this date (inclusive) or before this moment.")
@click.option("--type", "type_name")
@click.option("--status", type=click.Choice(TICKET_STATUSES))
@click.option("--operator", help="Opening operator's login (e.g. sac for the portal's).")
@click.option("--origin", type=click.Choice(TICKET_ORIGINS))
@click.option("--login", help="Service login.")
@click.option("--customer", type=int, help="Customer id.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@format_option
@pass_state
def list_(state: AppState, since: str | None, until: str | None, type_name: str | None,
          status: str | None, operator: str | None, origin: str | None, login: str | None,
          customer: int | None, limit: int) -> None:
    """List tickets, newest first."""
    start = parse_moment(since, state.zone, "--since") if since else None
    end = parse_moment(until, state.zone, "--until", end_of_day=True) if until else None
    with state.reading() as session:
        rows = tickets.list_tickets(session, start, end, type_name, status, operator, origin, login,
                                    customer, limit)
        render(state, [tickets.ticket_dict(session, t) for t in rows])


@ticket_group.command("show")
@click.argument("protocol")
@format_option
@pass_state
def show(state: AppState, protocol: str) -> None:
    """One ticket with its messages, service orders and diagnostics snapshot."""
    with state.reading() as session:
        data = tickets.ticket_dict(session, tickets.get_ticket(session, protocol), full=True)
    render(state, data)


@ticket_group.command("finish")
@click.argument("protocol")
@click.option("--description", required=True, help="Closing description.")
@format_option
@pass_state
def finish(state: AppState, protocol: str, description: str) -> None:
    """Finish a ticket (permission tickets.finish)."""
    with state.context() as ctx:
        data = tickets.ticket_dict(ctx.session, tickets.finish_ticket(ctx, protocol, description))
    render(state, data)


@ticket_group.group("message")
def message_group() -> None:
    """The ticket's message timeline; only the author edits or deletes a message."""


@message_group.command("add")
@click.argument("protocol")
@click.option("--text", required=True)
@format_option
@pass_state
def message_add(state: AppState, protocol: str, text: str) -> None:
    """Add a message to a ticket."""
    with state.context() as ctx:
        data = tickets.message_dict(tickets.add_message(ctx, protocol, text))
    render(state, data)


@message_group.command("list")
@click.argument("protocol")
@format_option
@pass_state
def message_list(state: AppState, protocol: str) -> None:
    """A ticket's messages, oldest first."""
    with state.reading() as session:
        ticket = tickets.get_ticket(session, protocol)
        render(state, [tickets.message_dict(m) for m in tickets.messages_of(session, ticket)])


@message_group.command("edit")
@click.argument("message_id", type=int)
@click.option("--text", required=True)
@format_option
@pass_state
def message_edit(state: AppState, message_id: int, text: str) -> None:
    """Change your own message."""
    with state.context() as ctx:
        data = tickets.message_dict(tickets.edit_message(ctx, message_id, text))
    render(state, data)


@message_group.command("delete")
@click.argument("message_id", type=int)
@format_option
@pass_state
def message_delete(state: AppState, message_id: int) -> None:
    """Delete your own message (its text stays in history)."""
    with state.context() as ctx:
        data = tickets.message_dict(tickets.delete_message(ctx, message_id))
    render(state, data)


@ticket_group.group("type")
def type_group() -> None:
    """Ticket types (SAC is built in)."""


@type_group.command("add")
@click.argument("name")
@format_option
@pass_state
def type_add(state: AppState, name: str) -> None:
    """Add a ticket type."""
    with state.context() as ctx:
        data = tickets.type_dict(tickets.create_type(ctx, name))
    render(state, data)


@type_group.command("list")
@format_option
@pass_state
def type_list(state: AppState) -> None:
    """List ticket types."""
    with state.reading() as session:
        render(state, [tickets.type_dict(t) for t in tickets.list_types(session)])


@click.group("order")
def order_group() -> None:
    """Service orders (Ordens de Serviço), opened from tickets."""


@order_group.command("open")
@click.option("--ticket", "protocol", required=True, help="Protocol of the ticket.")
@click.option("--kind", required=True, help="Type of O.S. (e.g. \"Cliente não conecta\").")
@click.option("--description", required=True)
@click.option("--technician")
@format_option
@pass_state
def order_open(state: AppState, protocol: str, kind: str, description: str, technician: str | None) -> None:
    """Open a service order from a ticket."""
    with state.context() as ctx:
        order = service_orders.open_order(ctx, protocol, kind, description, technician)
        data = service_orders.order_dict(ctx.session, order)
    render(state, data)


@order_group.command("list")
@click.option("--reason", help="Closing reason.")
@click.option("--status", type=click.Choice(ORDER_STATUSES))
@click.option("--since", help="Opened from this date or ISO 8601 moment (provider's zone).")
@click.option("--until", help="Opened up to this date (inclusive) or before this moment.")
@click.option("--ticket", "protocol")
@click.option("--login")
@click.option("--customer", type=int, help="Customer id.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@format_option
@pass_state
def order_list(state: AppState, reason: str | None, status: str | None, since: str | None,
               until: str | None, protocol: str | None, login: str | None, customer: int | None,
               limit: int) -> None:
    """List service orders, newest first."""
    start = parse_moment(since, state.zone, "--since") if since else None
    end = parse_moment(until, state.zone, "--until", end_of_day=True) if until else None
    with state.reading() as session:
        rows = service_orders.list_orders(session, reason, status, start, end, protocol, login,
                                          customer, limit)
        render(state, [service_orders.order_dict(session, o) for o in rows])


@order_group.command("show")
@click.argument("order_id", type=int)
@format_option
@pass_state
def order_show(state: AppState, order_id: int) -> None:
    """One service order."""
    with state.reading() as session:
        data = service_orders.order_dict(session, service_orders.get_order(session, order_id))
    render(state, data)


@order_group.command("close")
@click.argument("order_id", type=int)
@click.option("--reason", required=True, help="Closing reason (see `aaa order reason list`).")
@click.option("--description")
@format_option
@pass_state
def order_close(state: AppState, order_id: int, reason: str, description: str | None) -> None:
    """Close a service order with a closing reason."""
    with state.context() as ctx:
        order = service_orders.close_order(ctx, order_id, reason, description)
        data = service_orders.order_dict(ctx.session, order)
    render(state, data)


@order_group.group("reason")
def reason_group() -> None:
    """Closing reasons (Motivos de Fechamento)."""


@reason_group.command("add")
@click.argument("name")
@format_option
@pass_state
def reason_add(state: AppState, name: str) -> None:
    """Add a closing reason."""
    with state.context() as ctx:
        data = service_orders.reason_dict(service_orders.create_reason(ctx, name))
    render(state, data)


@reason_group.command("list")
@format_option
@pass_state
def reason_list(state: AppState) -> None:
    """List closing reasons."""
    with state.reading() as session:
        render(state, [service_orders.reason_dict(r) for r in service_orders.list_reasons(session)])


COMMANDS = [ticket_group, order_group]
