"""The root `aaa` command: global options, and the groups of the other packages."""

from __future__ import annotations

import sys

import click

from aaa.accounting import commands as accounting_commands
from aaa.cliutil import FORMATS, AppState, default_operator, run_cli
from aaa.coa import commands as coa_commands
from aaa.daemon import commands as daemon_commands
from aaa.db.cli import db_group
from billing_bridge import commands as billing_commands
from management.commands import register


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Configuration file (default: $AAA_CONFIG, then ./aaa.toml, then built-in defaults).")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table",
              help="Output format for listings and objects.")
@click.option("--as", "operator", default=None,
              help="Operator acting (default: $AAA_OPERATOR, then admin).")
@click.version_option(package_name="isp-aaa")
@click.pass_context
def root(ctx: click.Context, config_path: str | None, output_format: str, operator: str | None) -> None:
    """ISP AAA server and management core."""
    state = AppState(config_path=config_path, output_format=output_format,
                     operator_login=operator or default_operator())
    ctx.obj = state
    ctx.call_on_close(state.close)


root.add_command(db_group)
for command in daemon_commands.COMMANDS + accounting_commands.COMMANDS + coa_commands.COMMANDS:
    root.add_command(command)
for report in accounting_commands.REPORTS:
    daemon_commands.report_group.add_command(report)
register(root)
billing_commands.register(root)


def main() -> None:
    sys.exit(run_cli(root))


if __name__ == "__main__":
    main()
