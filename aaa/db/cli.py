"""`aaa db init|upgrade|check`."""

from __future__ import annotations

import click

from aaa.cliutil import AppState, fail, pass_state
from aaa.db import migrate
from management.context import SYSTEM, Context
from management.operators import ensure_admin


@click.group("db")
def db_group() -> None:
    """Create, upgrade and check the shared database."""


def initialise(state: AppState) -> str | None:
    """Migrate to head and create the initial admin; returns a generated admin password."""
    migrate.upgrade(state.engine)
    with state.session() as session, session.begin():
        return ensure_admin(Context(session=session, actor=SYSTEM, now=state.clock(), zone=state.zone))


@db_group.command("init")
@pass_state
def init(state: AppState) -> None:
    """Create or upgrade the database and the initial `admin` operator."""
    password = initialise(state)
    click.echo(f"database ready at revision {migrate.current_revision(state.engine)}")
    if password:
        click.echo(f"initial operator: admin / {password}  (shown once; set AAA_ADMIN_PASSWORD to choose it)")


@db_group.command("upgrade")
@pass_state
def upgrade(state: AppState) -> None:
    """Apply pending migrations."""
    migrate.upgrade(state.engine)
    click.echo(f"database at revision {migrate.current_revision(state.engine)}")


@db_group.command("check")
@pass_state
def check(state: AppState) -> None:
    """Check that the models and the migrated database agree (exit 1 when they differ)."""
    problems = migrate.check(state.engine)
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        fail(f"database and models differ in {len(problems)} place(s)")
    click.echo("models and migrations agree")
