"""What every `aaa` command shares: state, transactions, output formats, exit codes.

Exit codes: 0 done; 1 a business rule refused it (one line naming the rule); 2 usage or
configuration error. Nothing is committed on 1 or 2: the transaction rolls back.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from aaa.config import Config, ConfigError, load_config
from aaa.db.engine import make_engine, session_factory
from management.context import Context, load_actor
from management.errors import RuleViolation
from management.subscriber_passwords import sealing_key

FORMATS = ("table", "json", "csv")
EXIT_RULE = 1
EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppState:
    """Built once per invocation by the root group; commands reach it via `pass_state`."""

    config_path: str | None
    output_format: str
    operator_login: str
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _config: Config | None = None
    _engine: Engine | None = None
    _sessions: sessionmaker[Session] | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.config.database_url, self.config.database.echo)
        return self._engine

    def session(self) -> Session:
        if self._sessions is None:
            self._sessions = session_factory(self.engine)
        return self._sessions()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def zone(self) -> ZoneInfo:
        return self.config.zone

    @contextmanager
    def context(self, operator: str | None = None) -> Iterator[Context]:
        """One transaction acting as the CLI's operator; committed only if nothing raised."""
        with self.session() as session, session.begin():
            actor = load_actor(session, operator or self.operator_login)
            yield Context(session=session, actor=actor, now=self.clock(), zone=self.zone,
                          password_key=sealing_key(self.config.secrets))

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.session() as session:
            yield session


pass_state = click.make_pass_decorator(AppState)


def format_option(func: F) -> F:
    """`--format` on a command; overrides the global one."""

    def store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value:
            ctx.find_object(AppState).output_format = value  # type: ignore[union-attr]

    return click.option("--format", "output_format", type=click.Choice(FORMATS), default=None,
                        expose_value=False, callback=store, is_eager=False,
                        help="Output format (overrides the global --format).")(func)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def render(state: AppState, data: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> None:
    """Print a listing (a sequence of dicts) or one object (a dict) in the chosen format."""
    fmt = state.output_format
    if fmt == "json":
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        return
    rows = [data] if isinstance(data, Mapping) else list(data)
    if fmt == "csv":
        if not rows:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        click.echo(buffer.getvalue(), nl=False)
        return
    if isinstance(data, Mapping):
        width = max((len(k) for k in data), default=0)
        for key, value in data.items():
            click.echo(f"{key.ljust(width)}  {_cell(value)}")
        return
    if not rows:
        click.echo("(none)")
        return
    headers = list(rows[0])
    cells = [[_cell(row.get(h)) for h in headers] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not a date (YYYY-MM-DD): {value}", param_hint=option) from None


def parse_moment(value: str, zone: ZoneInfo, option: str, end_of_day: bool = False) -> datetime:
    """A date (judged in the provider's zone) or an ISO 8601 moment → aware UTC datetime.

    With `end_of_day`, a bare date means "through that whole day" (until next midnight).
    """
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end_of_day:
                day += timedelta(days=1)
            return datetime.combine(day, time(0), zone).astimezone(UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not a date or ISO 8601 time: {value}", param_hint=option) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def fail(message: str, code: int = EXIT_RULE) -> None:
    click.echo(f"aaa: {message}", err=True)
    sys.exit(code)


def run_cli(group: click.Group, args: Sequence[str] | None = None) -> int:
    """Run the root group turning every failure into one stderr line and an exit code."""
    try:
        group.main(args=list(args) if args is not None else None, prog_name="aaa",
                   standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("aaa: aborted", err=True)
        return EXIT_USAGE
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "aaa"
        click.echo(f"{command}: {exc.format_message()}", err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"aaa: {exc.format_message()}", err=True)
        return EXIT_USAGE
    except ConfigError as exc:
        click.echo(f"aaa: configuration error: {exc}", err=True)
        return EXIT_USAGE
    except RuleViolation as exc:
        click.echo(f"aaa: {exc}", err=True)
        return EXIT_RULE
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        click.echo(f"aaa: database unavailable or not initialised ({reason}); "
                   "run `aaa db init` or check database.url", err=True)
        return EXIT_RULE
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        click.echo(f"aaa: database refused the change: {reason}", err=True)
        return EXIT_RULE
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the machine refused: a path, a permission, a full disk
        where = f" ({exc.filename})" if exc.filename else ""
        click.echo(f"aaa: {exc.strerror or exc}{where}", err=True)
        return EXIT_RULE
    return 0


def default_operator() -> str:
    return os.environ.get("AAA_OPERATOR", "admin")


def as_rows(items: Sequence[Any], to_dict: Callable[[Any], Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [to_dict(item) for item in items]
