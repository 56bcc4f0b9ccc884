"""`aaa passwords ...`: equipment passwords documented per service (Documentação de Senhas)."""

from __future__ import annotations

import sys
from typing import Any

import click

from aaa.cliutil import AppState, format_option, pass_state, render
from management import equipment_passwords as ep
from management import inventory, subscriber_passwords


@click.group("passwords")
def passwords_group() -> None:
    """Equipment passwords (router, ONU, Wi-Fi) of a service, kept encrypted."""


def _password_value(password: str | None, suggest: bool, length: int,
                    required: bool) -> tuple[str | None, bool]:
    """(password, suggested?) from --password / --suggest; `-` reads one line from stdin."""
    if password is not None and suggest:
        raise click.UsageError("give --password or --suggest, not both")
    if suggest:
        return ep.suggest_password(length), True
    if password == "-":
        line = sys.stdin.readline()
        return line.rstrip("\r\n"), False
    if password is None and required:
        raise click.UsageError("give --password P (or - to read it from stdin) or --suggest")
    return password, False


_password_options = [
    click.option("--password", default=None, metavar="P",
                 help="The password; `-` reads it from stdin (keeps it out of shell history)."),
    click.option("--suggest", is_flag=True,
                 help="Generate a strong password (secrets.password_length) and print it once."),
]


def password_options(func: Any) -> Any:
    for option in reversed(_password_options):
        func = option(func)
    return func


@passwords_group.command("list")
@click.argument("login")
@format_option
@pass_state
def list_(state: AppState, login: str) -> None:
    """The entries of LOGIN's service, without the passwords."""
    with state.context() as ctx:
        data = [ep.as_dict(e, login) for e in ep.list_entries(ctx, login)]
    render(state, data)


@passwords_group.command("show")
@click.argument("login")
@click.argument("entry", type=int)
@format_option
@pass_state
def show(state: AppState, login: str, entry: int) -> None:
    """One entry with its password (passwords.view; the view goes to the history)."""
    with state.context() as ctx:
        row, password = ep.reveal(ctx, state.config.secrets, login, entry)
        data = ep.as_dict(row, login, password)
    render(state, data)


@passwords_group.command("add")
@click.argument("login")
@click.option("--kind", required=True, help='What it opens, e.g. "router admin", "Wi-Fi 5 GHz".')
@click.option("--username", default=None, help="User name or SSID.")
@password_options
@click.option("--note", default=None, help="Free text (not encrypted: no secrets here).")
@format_option
@pass_state
def add(state: AppState, login: str, kind: str, username: str | None, password: str | None,
        suggest: bool, note: str | None) -> None:
    """Document a credential of LOGIN's equipment (passwords.edit)."""
    value, suggested = _password_value(password, suggest, state.config.secrets.password_length, True)
    assert value is not None
    with state.context() as ctx:
        entry = ep.add_entry(ctx, state.config.secrets, login, kind, value, username, note)
        data = ep.as_dict(entry, login, value if suggested else None)
    render(state, data)


@passwords_group.command("edit")
@click.argument("login")
@click.argument("entry", type=int)
@click.option("--kind", default=None)
@click.option("--username", default=None, help="New user name or SSID; empty clears it.")
@password_options
@click.option("--note", default=None, help="New note; empty clears it.")
@format_option
@pass_state
def edit(state: AppState, login: str, entry: int, kind: str | None, username: str | None,
         password: str | None, suggest: bool, note: str | None) -> None:
    """Change an entry (passwords.edit); with --suggest the new password is printed once."""
    value, suggested = _password_value(password, suggest, state.config.secrets.password_length, False)
    changes: dict[str, Any] = {}
    if username is not None:
        changes["username"] = username
    if note is not None:
        changes["note"] = note
    with state.context() as ctx:
        row = ep.edit_entry(ctx, state.config.secrets, login, entry, kind=kind, password=value, **changes)
        data = ep.as_dict(row, login, value if suggested else None)
    render(state, data)


@passwords_group.command("delete")
@click.argument("login")
@click.argument("entry", type=int)
@format_option
@pass_state
def delete(state: AppState, login: str, entry: int) -> None:
    """Remove an entry (passwords.edit); prints what was removed, without the password."""
    with state.context() as ctx:
        data = ep.as_dict(ep.delete_entry(ctx, login, entry), login)
    render(state, data)


def _key_option(value: str | None, path: str | None, name: str) -> ep.SecretKey | None:
    """The key given as `--NAME` (base64, `-` reads stdin) or `--NAME-file`; None when neither."""
    if value is not None and path is not None:
        raise click.UsageError(f"give --{name} or --{name}-file, not both")
    if path is not None:
        with open(path, encoding="ascii") as handle:
            raw, hint = handle.read(), f"--{name}-file"
    elif value is not None:
        raw, hint = (sys.stdin.readline() if value == "-" else value), f"--{name}"
    else:
        return None
    try:
        return ep.SecretKey.from_base64(raw, hint)
    except ep.SecretsKeyError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], param_hint=hint) from None


@passwords_group.command("rotate-key")
@click.option("--new-key", default=None, metavar="BASE64",
              help="The new key (base64 of 32 bytes); `-` reads it from stdin.")
@click.option("--new-key-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file holding the new key.")
@click.option("--previous-key", default=None, metavar="BASE64",
              help="An earlier key that values left behind by an older rotation are still under; "
                   "`-` reads it from stdin.")
@click.option("--previous-key-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file holding the earlier key.")
@format_option
@pass_state
def rotate_key(state: AppState, new_key: str | None, new_key_file: str | None,
               previous_key: str | None, previous_key_file: str | None) -> None:
    """Re-encrypt every entry with a new key, in one transaction (passwords.edit).

    Every value under the key moves: equipment passwords, OLT management passwords and
    sealed subscriber (PPPoE) passwords; one that does not decrypt refuses the whole rotation.
    The configured key (secrets.key, key_file or AAA_SECRETS_KEY) must be the current one;
    afterwards put the new key in the configuration. --previous-key (or --previous-key-file)
    names an earlier key that an older rotation left values under (OLT passwords, before
    rotate-key moved them), so that those move to the new key too.
    """
    if (new_key is None) == (new_key_file is None):
        raise click.UsageError("give exactly one of --new-key or --new-key-file")
    if new_key == "-" and previous_key == "-":
        raise click.UsageError("only one key can come from stdin; give the other with its -file option")
    key = _key_option(new_key, new_key_file, "new-key")
    assert key is not None
    previous = _key_option(previous_key, previous_key_file, "previous-key")
    with state.context() as ctx:
        ctx.require("passwords.edit")
        configured = ep.current_key(state.config.secrets)
        if previous is not None and previous.key_id in (configured.key_id, key.key_id):
            which = "configured" if previous.key_id == configured.key_id else "new"
            raise click.UsageError(f"the previous key is the {which} key: give the key before the "
                                   "configured one, or leave the option out")
        result = ep.rotate_key(ctx, state.config.secrets, key, previous)
        # OLT passwords are under the same key: left behind, they would not open after the switch.
        olts = inventory.rekey_olt_passwords(ctx, state.config.secrets, key, previous)
        # Subscribers' PPPoE passwords, when sealed (or to be sealed), move to the new key too.
        resealed = 0
        if state.config.secrets.encrypt_subscriber_passwords or subscriber_passwords.any_sealed(ctx):
            resealed = subscriber_passwords.reseal_all(ctx, configured, key, previous)
    render(state, {"old_key_id": result.old_key_id, "new_key_id": result.new_key_id,
                   "entries": result.entries, "olt_passwords": olts, "subscriber_passwords": resealed})
    if state.output_format == "table":
        click.echo("now put the new key in the configuration (secrets.key, key_file or "
                   "AAA_SECRETS_KEY)", err=True)


@passwords_group.command("generate-key")
@format_option
@pass_state
def generate_key(state: AppState) -> None:
    """Print a new random key (base64 of 32 bytes) for secrets.key or key_file."""
    key = ep.generate_key()
    if state.output_format == "table":
        click.echo(key)
        return
    render(state, {"key": key, "key_id": ep.SecretKey.from_base64(key, "key").key_id})


COMMANDS = [passwords_group]
