"""The management CLI groups; `aaa.cli` registers them on the root command."""

from __future__ import annotations

import click

from management.commands import customers, demo, importing, network, operators, passwords, plans, services
from management.commands import inventory as inventory_commands
from management.commands import tickets as ticket_commands


def register(root: click.Group) -> None:
    for module in (customers, plans, network, services, operators, importing, demo, passwords):
        for command in module.COMMANDS:
            root.add_command(command)
    for command in ticket_commands.COMMANDS:
        root.add_command(command)
    inventory_commands.register(root)
