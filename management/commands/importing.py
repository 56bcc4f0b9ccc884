"""`aaa import services FILE.csv`"""

from __future__ import annotations

from pathlib import Path

import click

from aaa.cliutil import AppState, format_option, pass_state, render
from management import importer


@click.group("import")
def import_group() -> None:
    """Bulk imports from another system (columns: docs/import-format.md)."""


@import_group.command("services")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-errors", is_flag=True,
              help="Import the good rows and report the bad ones (default: all or nothing).")
@format_option
@pass_state
def services(state: AppState, file: Path, skip_errors: bool) -> None:
    """Import services (and their customers, matched by CPF/CNPJ) from a CSV file.

    Delimiter `,` or `;` (detected), UTF-8 with or without BOM, header row required.
    Every bad row is reported on stderr with its line number. Without --skip-errors one
    bad row refuses the whole file (exit 1, nothing written).
    """
    data = file.read_bytes()
    try:
        with state.context() as ctx:
            result = importer.import_services(ctx, data, skip_errors=skip_errors,
                                              source=file.name)
    except importer.ImportRefused as refused:
        _report(refused.errors)
        raise
    _report(result.errors)
    if state.output_format == "json":
        render(state, result.as_dict())
    else:
        render(state, {"imported": result.imported,
                       "customers_created": result.customers_created,
                       "errors": len(result.errors)})


def _report(errors: list[importer.RowError]) -> None:
    for error in errors:
        click.echo(f"aaa: line {error.line}: {error.error}", err=True)


COMMANDS = [import_group]
