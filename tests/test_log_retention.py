"""The LOG_RETENTION routine: authentication-log rows older than the retention are deleted."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from aaa.db import authlog
from aaa.db.authlog import AuthRecord
from aaa.db.models import AuthLogEntry
from billing_bridge import routines
from management import connections
from management.context import Context
from tests.conftest import NOW


def test_purge_keeps_recent_rows(ctx: Context) -> None:
    """Rows older than N days go, newer ones stay; a dry run only counts; 0 days keeps all."""
    for days in (1, 10, 100, 200):
        at = NOW - timedelta(days=days)
        ctx.session.add(AuthLogEntry(**{**AuthRecord(at.timestamp(), f"u{days}", None, None, "10.0.0.1",
                                                     "accept", "", None, False, None, False, None, None,
                                                     None, None)._asdict(), "at": at}))
    ctx.session.flush()
    assert connections.purge_auth_log(ctx, 90, dry_run=True) == 2
    assert connections.purge_auth_log(ctx, 0) == 0
    assert connections.purge_auth_log(ctx, 90) == 2
    assert ctx.session.scalar(select(func.count()).select_from(AuthLogEntry)) == 2
    assert {r.login for r in authlog.query(ctx.session)} == {"u1", "u10"}


def test_log_retention_is_a_routine_task(ctx: Context) -> None:
    """LOG_RETENTION can be stored as a routine and runs with the configured retention."""
    routine = routines.add_routine(ctx, "limpeza-log", "LOG_RETENTION", hour="3")
    assert routine.task == "LOG_RETENTION"
    result = routines.TASKS["LOG_RETENTION"](ctx, True, routines.RoutineSettings(auth_log_retention_days=30))
    assert result.counts == {"deleted": 0}
