"""`aaa demo`: create/migrate the database and install the demo ISP once."""

from __future__ import annotations

from typing import Any

import click

from aaa.cliutil import AppState, format_option, pass_state, render
from aaa.db.cli import initialise
from management import demo as demo_data


@click.command("demo")
@format_option
@pass_state
def demo_command(state: AppState) -> None:
    """Install the demo dataset (a small ISP); does nothing if it is already there.

    Creates and migrates the database when needed (as `aaa db init`), then adds two POPs,
    a MikroTik NAS at 127.0.0.1 and a Huawei NAS at 127.0.0.2 (secret testing123), four
    plans, the suspension pools and alarm variables, a fixed-IP subnet, 50 customers and
    their services in every status. It prints the demo logins and how to try them.
    """
    admin_password = initialise(state)
    with state.reading() as session:
        installed = demo_data.is_installed(session)
    if not installed:
        with state.context() as ctx:
            demo_data.install(ctx)
    with state.reading() as session:
        data: dict[str, Any] = {"created": not installed, **demo_data.summary(session)}
    if admin_password:
        data["admin_password"] = admin_password
    if state.output_format == "json":
        render(state, data)
    else:
        _print_human(data)


def _print_human(data: dict[str, Any]) -> None:
    if data["created"]:
        click.echo("demo data installed.")
    else:
        click.echo("demo data already installed; nothing changed.")
    if data.get("admin_password"):
        click.echo(f"initial operator: admin / {data['admin_password']}  "
                   "(shown once; set AAA_ADMIN_PASSWORD to choose it)")
    click.echo(f"{data['pops']} POPs, {len(data['nas'])} NAS, {data['plans']} plans, "
               f"{data['customers']} customers, {data['services']} services")
    click.echo("services by status: " + ", ".join(
        f"{status} {count}" for status, count in data["services_by_status"].items()))
    for nas in data["nas"]:
        click.echo(f"NAS {nas['name']}: {nas['ip']} ({nas['vendor']}), secret {nas['secret']}")
    click.echo(f"\ndemo logins (password {demo_data.DEMO_PASSWORD}):")
    width = max(len(d["login"]) for d in data["logins"])
    for d in data["logins"]:
        click.echo(f"  {d['login'].ljust(width)}  {d['plan']:<10}  {d['what']}")
    click.echo("\ntry it with the RADIUS server running on 127.0.0.1 (FreeRADIUS's radclient):")
    click.echo(f"  {data['try']}")
    click.echo("look around: aaa service list | aaa service show demo.ipfixo | "
               "aaa history demo.debt")


COMMANDS = [demo_command]
